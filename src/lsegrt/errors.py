"""User-facing errors.

Every problem a user can fix (bad path, bad size, mismatched checkpoint, missing optional package) is
raised as :class:`LsegError`. The CLI prints its message as one line and exits non-zero; anything else
escaping is a bug in lsegrt, not in the user's input.
"""

from __future__ import annotations


class LsegError(Exception):
    """An error the user can act on; ``str(err)`` is a single line."""


class MissingDependency(LsegError):
    """An optional heavy package (onnxruntime, tensorrt, ...) is not installed."""

    def __init__(self, package: str, purpose: str, pip_name: str | None = None):
        super().__init__(
            f"{purpose} needs the Python package '{package}': pip install {pip_name or package}"
        )


def require(module: str, purpose: str, pip_name: str | None = None):
    """Import ``module`` lazily, turning ImportError into a one-line :class:`MissingDependency`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependency(module, purpose, pip_name) from exc
