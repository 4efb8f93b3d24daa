"""Digests of big files, remembered by the file's stat so a 1.5 GB engine or checkpoint is read once.

An entry is keyed by the kind of digest and the file's resolved path, and holds the stat it was
computed for: size, mtime_ns, ctime_ns and inode. Rewriting, replacing, renaming onto or touching the
file changes at least one of them (ctime cannot be set back from user space), so a changed file is
always read again; only an untouched file is trusted. The entries live in one small JSON file under
:func:`lsegrt.sidecar.cache_dir`, bounded to the most recent :data:`MAX_ENTRIES`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Callable

MAX_ENTRIES = 2048
_LOCK = threading.Lock()


def _store_path() -> Path:
    from .sidecar import cache_dir

    return cache_dir() / "file_digests.json"


def stamp(path: str | os.PathLike) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load(store: Path) -> dict[str, list]:
    try:
        entries = json.loads(store.read_text())
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or damaged: start afresh (it only saves work)


def _key(kind: str, path: Path) -> str:
    return f"{kind}:{path}"


def lookup(path: str | os.PathLike, kind: str) -> str | None:
    """The remembered ``kind`` digest of ``path`` if the file is untouched since, else None."""
    path = Path(path).resolve()
    try:
        now = stamp(path)
        store = _store_path()
    except OSError:  # no file, or no usable cache folder: nothing remembered
        return None
    hit = _load(store).get(_key(kind, path))
    if isinstance(hit, list) and len(hit) == 2 and hit[0] == now:
        return hit[1]
    return None


def remember(path: str | os.PathLike, kind: str, digest: str, at: list[int] | None = None) -> None:
    """Record ``digest`` for ``path`` as it is now (or as it was at stamp ``at``; skipped if it changed)."""
    from .fileio import write_text

    path = Path(path).resolve()
    with contextlib.suppress(OSError):  # an unwritable cache costs a re-read later, never a failure
        now = stamp(path)
        if at is not None and at != now:
            return
        store = _store_path()
        with _LOCK, _file_lock(store):
            entries = _load(store)
            entries.pop(_key(kind, path), None)
            entries[_key(kind, path)] = [now, digest]
            for old in list(entries)[: max(0, len(entries) - MAX_ENTRIES)]:
                del entries[old]
            write_text(store, json.dumps(entries, indent=0) + "\n")


def digest(path: str | os.PathLike, kind: str, compute: Callable[[Path], str]) -> str:
    """``compute(path)`` unless remembered for this exact file; the result is remembered."""
    path = Path(path).resolve()
    found = lookup(path, kind)
    if found is not None:
        return found
    before = stamp(path)
    value = compute(path)
    remember(path, kind, value, at=before)  # only if the file did not change while it was read
    return value


@contextlib.contextmanager
def _file_lock(target: Path):
    """Exclusive fcntl lock on ``target``.lock (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(str(target) + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
