"""`lsegrt <verb>`: one module per verb, each a thin layer over the library.

Each verb module defines ``add_parser(subparsers)`` (declaring its arguments) and ``run(args) -> int``.
User errors (:class:`lsegrt.errors.LsegError`) print one line and exit 2; ``LSEGRT_DEBUG=1`` shows the
traceback of anything else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

VERBS = ("encode", "extract", "segment", "convert", "wordfree", "export", "build", "bench", "compare", "profile",
         "info")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        self.exit(2, f"lsegrt: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="lsegrt", description="Fast, faithful LSeg encoders: run, export, build, bench, compare.")
    parser.add_argument("--version", action="version", version=f"lsegrt {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for verb in VERBS:
        importlib.import_module(f".{verb}", __name__).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import LsegError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LsegError as exc:
        print(f"lsegrt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lsegrt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless asked for more
        if os.environ.get("LSEGRT_DEBUG"):
            raise
        print(f"lsegrt: internal error: {type(exc).__name__}: {exc} (set LSEGRT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
