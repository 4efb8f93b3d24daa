"""Output files: checked before any work, written atomically, never onto an input.

A crash, Ctrl-C, SIGTERM (the CLI turns it into KeyboardInterrupt) or a bad input never leaves a
half-written output or a temp file behind, and no output ever replaces an input file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .errors import LsegError

# Suffixes that name a file, never a folder: an output folder called "out.png" is a typo.
FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".json", ".csv", ".npy", ".npz",
                 ".safetensors", ".onnx", ".engine", ".plan", ".pt2", ".ckpt", ".pt", ".pth")


def _check_folder_writable(folder: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LsegError(f"cannot write into {folder}: permission denied (choose another output folder)")


def check_output_path(path: str | os.PathLike, suffixes: Sequence[str] | None = None,
                      what: str = "output") -> Path:
    """Fail early, with one line, when an output file cannot be written: its folder is missing or not
    writable, the path is a folder, or (with ``suffixes``) its suffix is not one of them."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise LsegError(f"{what} {path}: must end in {' or '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise LsegError(f"output folder does not exist: {parent} (create it first)")
    if path.is_dir():
        raise LsegError(f"{what} {path} is a folder; give a file name")
    _check_folder_writable(parent)
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """An output folder: existing and writable, or new with an existing writable parent (created when the
    first file is written). Anything else is a one-line error before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LsegError(f"output {path} exists and is not a folder")
    if not path.exists() and path.suffix.lower() in FILE_SUFFIXES:
        raise LsegError(f"{what} {path} looks like a file name ({path.suffix}); this option takes a folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists() and not parent.is_dir():
        raise LsegError(f"output folder does not exist: {parent} (create it first)")
    _check_folder_writable(path if path.exists() else parent)
    return path


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def refuse_overwriting_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]) -> None:
    """One-line :class:`LsegError` when any output path is (or would replace) one of the input files.

    Paths are compared resolved (symlinks, ``..``) and by inode (hard links); inputs that are not
    files (``sample:NAME``, ``random:VARIANT``, None) are skipped.
    """
    files = []
    for item in inputs:
        if item is None:
            continue
        p = Path(item)
        if p.is_file():
            files.append(p)
    for out in outputs:
        out = Path(out)
        for src in files:
            if _same_file(out, src):
                raise LsegError(f"output {out} would overwrite the input {src}; choose another output name or folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, path)
    except OSError as exc:
        # Name the output the user asked for, not our temp file (disk full, output is a folder, ...).
        if exc.errno is not None and str(tmp_path) in (str(exc.filename), str(exc.filename2)):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())
