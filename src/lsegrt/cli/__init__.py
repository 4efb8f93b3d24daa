"""`lsegrt <verb>`: one module per verb, each a thin layer over the library.

Each verb module defines ``add_parser(subparsers)`` (declaring its arguments) and ``run(args) -> int``.

Exit codes: 0 success; 1 the verb's own failure verdict (e.g. `compare` thresholds, every `bench`
configuration failed) or an internal error (a bug: ``LSEGRT_DEBUG=1`` shows its traceback); 2 a user
error, printed as one ``lsegrt: error: …`` line: bad input (:class:`lsegrt.errors.LsegError`), an
operating-system error (read-only folder, disk full, a folder where a file should go: named with its
errno and path) or running out of memory; 130 interrupted by Ctrl-C (SIGINT); 143 terminated (SIGTERM).
Interruptions unwind like an exception, so atomic writes remove their temp files and no half-written
output is left.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` (temp files, engines) runs."""


@contextlib.contextmanager
def _sigterm_raises():
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. main() called from a worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _SayHandler(logging.Handler):
    """``lsegrt.progress.note`` lines → stdout, like the verbs' own informational lines."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), flush=True)


def _show_notes() -> None:
    logger = logging.getLogger("lsegrt")
    if not any(isinstance(h, _SayHandler) for h in logger.handlers):
        logger.addHandler(_SayHandler())
    logger.setLevel(logging.INFO)


def os_error_text(exc: OSError) -> str:
    """'cannot write /x/y.png: Permission denied [EACCES]': the path(s), the reason and the errno name."""
    paths = " → ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno, "") if isinstance(exc.errno, int) else ""
    return f"{paths + ': ' if paths else ''}{reason}{f' [{name}]' if name else ''}"


def main(argv: list[str] | None = None) -> int:
    import torch

    from ..errors import LsegError

    args = build_parser().parse_args(argv)
    _show_notes()
    try:
        with _sigterm_raises():
            return int(args.func(args) or 0)
    except LsegError as exc:
        print(f"lsegrt: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("lsegrt: terminated (SIGTERM); nothing half-written was kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("lsegrt: interrupted", file=sys.stderr)
        return 130
    except torch.OutOfMemoryError as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        print(f"lsegrt: error: out of memory ({first}); try a smaller --size or --batch", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lsegrt: error: {os_error_text(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line unless asked for more
        if os.environ.get("LSEGRT_DEBUG"):
            raise
        print(f"lsegrt: internal error: {type(exc).__name__}: {exc} (set LSEGRT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
