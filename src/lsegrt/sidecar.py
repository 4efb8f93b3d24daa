"""Engine sidecars: the JSON file that says exactly what an engine was built from and for, and which bytes.

An engine file ``X`` always has ``X.json`` next to it. Its ``request`` part holds every input that
changes the engine (checkpoint weights identity, ONNX hash, precision, shape profile, backend and
version, torch and CUDA versions, GPU). A load compares the caller's request with it key by key; any
difference is a refusal that names the differing keys: never a silent reuse.

Its ``contents`` part binds it to the engine's bytes: the sha256 and size of the engine file and of
any file the engine needs beside it (an ONNX's external data). Every load checks them, so an engine
copied, rebuilt or swapped beside someone else's sidecar is refused. Digests are remembered by file
stat (:mod:`lsegrt.hashcache`): a large engine is read once, not on every load.

Writes are ordered so that no interruption can pair a new engine with an old sidecar: the old sidecar
is removed first, the engine is renamed into place (from a uniquely named staging folder), and the new
sidecar is written last, atomically. Writers of one output path take turns (:func:`engine_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import hashcache
from .errors import LsegError
from .fileio import write_text

SIDECAR_VERSION = 2


def sidecar_path(engine: str | os.PathLike) -> Path:
    return Path(str(engine) + ".json")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    """sha256 of a file's bytes, read now (see :func:`file_sha256` for the remembered one)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read only if the file changed since it was last hashed."""
    return hashcache.digest(path, "sha256", lambda p: sha256_file(p))


def cache_dir() -> Path:
    """Where engines built on demand and text-embedding caches live (``LSEGRT_CACHE`` overrides)."""
    root = os.environ.get("LSEGRT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lsegrt"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def gpu_info(device: str | None = None) -> dict[str, Any]:
    """Name and compute capability of the CUDA device an engine targets; CPU otherwise."""
    import torch

    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(idx)
        return {"gpu": torch.cuda.get_device_name(idx), "compute_capability": f"{major}.{minor}"}
    return {"gpu": "cpu", "compute_capability": None, "cpu": platform.machine()}


def runtime_versions() -> dict[str, Any]:
    import torch

    return {"torch": torch.__version__, "cuda": torch.version.cuda}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower() or "x"


def engine_name(request: dict[str, Any], suffix: str) -> str:
    """Deterministic file name: readable parts plus a hash of the whole request.

    Two requests that differ in anything recorded get different names, so a cache lookup can only
    ever find an engine built for exactly this request (and the sidecar check confirms it).
    """
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:12]
    prof = request.get("profile") or {}
    shape = "-".join("x".join(str(v) for v in prof[k]) for k in ("min", "max") if k in prof) or "any"
    parts = [
        request.get("checkpoint_name", "model"),
        request.get("backend", "engine"),
        request.get("precision", "fp32"),
        shape,
        request.get("gpu", "cpu"),
        digest,
    ]
    return "_".join(_slug(p) for p in parts) + suffix


# -- output paths, locks and staged writes ---------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_engine_output(path: str | os.PathLike, suffixes: tuple[str, ...] = (),
                        inputs: tuple[str | os.PathLike | None, ...] = (), data_suffixes: tuple[str, ...] = ()) -> Path:
    """An engine output path, refused (one line) before any work when it cannot or must not be written:
    missing or read-only folder, a folder in its place, a wrong suffix, or one of ``inputs`` (an output
    never replaces an input, nor the input's sidecar, nor do the data files ``path`` + each of
    ``data_suffixes`` written beside it)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if suffixes and path.suffix not in suffixes:
        raise LsegError(f"output {path} must end in {' or '.join(suffixes)}")
    if not parent.is_dir():
        raise LsegError(f"output folder does not exist: {parent} (create it first)")
    if path.is_dir():
        raise LsegError(f"output {path} is a folder; name the engine file to write")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LsegError(f"cannot write into {parent}: permission denied")
    for given in inputs:
        if given is None:
            continue
        given = Path(given)
        for out in (path, sidecar_path(path), *(path.with_name(path.name + x) for x in data_suffixes)):
            if _same_file(out, given):
                raise LsegError(f"output {out} is the input {given}; choose another output name")
    return path


_HELD = threading.local()


@contextlib.contextmanager
def engine_lock(path: str | os.PathLike) -> Iterator[None]:
    """Exclusive lock for writing engine ``path`` (fcntl.flock on a per-path lock file in the cache).

    Other processes and threads wait; the thread that holds it may take it again (a cache build that
    exports an ONNX on the way takes it for both).
    """
    key = str(Path(path).resolve())
    held = getattr(_HELD, "paths", None)
    if held is None:
        held = _HELD.paths = set()
    if key in held:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
        fcntl = None
    try:
        folder = cache_dir() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"), "a")
    except OSError:  # no writable cache: staging and ordered renames still keep each pair whole
        handle = contextlib.nullcontext()
        fcntl = None
    with handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging(path: str | os.PathLike) -> Iterator[Path]:
    """A new, uniquely named folder beside ``path`` for an engine's files before they are published;
    removed afterwards with whatever was not published (an interrupted build leaves nothing visible)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise LsegError(f"cannot write into {parent}: {exc.strerror or exc}") from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _contents_of(path: Path, digest: str | None = None) -> dict[str, Any]:
    return {"sha256": digest or sha256_file(path), "bytes": path.stat().st_size}


def publish(engine: str | os.PathLike, staged: str | os.PathLike, request: dict[str, Any], info: dict[str, Any],
            data_files: dict[str, str | os.PathLike] | None = None, engine_sha256: str | None = None) -> Path:
    """Move a staged engine (and its ``data_files``: final name → staged path) into place, then its sidecar.

    Order: hashes of the staged files, old sidecar removed, data files renamed, engine renamed, new
    sidecar written atomically. Interrupted anywhere, the engine has no sidecar or a sidecar whose
    recorded contents refuse any other bytes. ``engine_sha256`` skips re-reading a staged engine whose
    bytes the caller hashed while writing.
    """
    engine, staged = Path(engine), Path(staged)
    data_files = {name: Path(p) for name, p in (data_files or {}).items()}
    contents = {"engine": _contents_of(staged, engine_sha256),
                "data_files": {name: _contents_of(p) for name, p in sorted(data_files.items())}}
    try:
        sidecar_path(engine).unlink(missing_ok=True)  # never a new engine beside an old sidecar
        for name, src in data_files.items():
            os.replace(src, engine.parent / name)
        os.replace(staged, engine)
    except OSError as exc:
        raise LsegError(f"cannot write {engine}: {exc.strerror or exc}") from None
    return write_sidecar(engine, request, info, contents=contents)


def write_sidecar(engine: str | os.PathLike, request: dict[str, Any], info: dict[str, Any],
                  contents: dict[str, Any] | None = None) -> Path:
    """Record ``request`` (what must match), ``contents`` (the engine's bytes; hashed from disk when
    None) and ``info`` (build time, options, sizes) beside ``engine``."""
    engine = Path(engine)
    contents = contents or {"engine": _contents_of(engine), "data_files": {}}
    payload = {"sidecar_version": SIDECAR_VERSION, "request": request, "contents": contents, "info": info}
    try:
        path = write_text(sidecar_path(engine), json.dumps(payload, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise LsegError(f"cannot write {sidecar_path(engine)}: {exc.strerror or exc}") from None
    # the files were just hashed: remember it, so the first load does not read them again
    hashcache.remember(engine, "sha256", contents["engine"]["sha256"])
    for name, item in contents["data_files"].items():
        hashcache.remember(engine.parent / name, "sha256", item["sha256"])
    return path


# -- reading and checking --------------------------------------------------------------------------
def read_sidecar(engine: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """The sidecar of ``engine``; with ``verify`` (the default) also checks the engine's bytes against it."""
    path = sidecar_path(engine)
    if not Path(engine).is_file():
        raise LsegError(f"engine not found: {engine}")
    if not path.is_file():
        raise LsegError(f"engine {engine} has no sidecar {path.name}; rebuild it with `lsegrt build`")
    try:
        payload = json.loads(path.read_text())
        payload["request"]["backend"]
        version = payload.get("sidecar_version")
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        raise LsegError(f"sidecar {path} is not a valid lsegrt sidecar; rebuild the engine") from None
    if version != SIDECAR_VERSION:
        raise LsegError(f"sidecar {path.name} has version {version!r}, this lsegrt writes {SIDECAR_VERSION} "
                        "(which binds an engine to its bytes and a checkpoint to its weights): rebuild the engine")
    if verify:
        verify_contents(engine, payload)
    return payload


def verify_contents(engine: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Refuse unless ``engine`` (and each recorded data file beside it) has the recorded size and sha256."""
    engine = Path(engine)
    try:
        contents = payload["contents"]
        files = [(engine, contents["engine"])]
        for name, item in sorted(contents["data_files"].items()):
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(name)
            files.append((engine.parent / name, item))
        recorded = [(p, str(item["sha256"]), int(item["bytes"])) for p, item in files]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise LsegError(f"sidecar {sidecar_path(engine).name} does not record the engine's contents; "
                        "rebuild the engine") from None
    for path, sha, size in recorded:
        if not path.is_file():
            raise LsegError(f"{path.name}, recorded in {sidecar_path(engine).name}, is missing; rebuild the engine")
        have = path.stat().st_size
        digest = file_sha256(path) if have == size else None
        if digest != sha:
            what = f"{have:,} bytes, recorded {size:,}" if digest is None else f"sha256 {digest[:12]}…, recorded {sha[:12]}…"
            raise LsegError(f"{path.name} is not the file its sidecar {sidecar_path(engine).name} describes ({what}): "
                            "it was replaced or changed after the build; rebuild it (lsegrt export / lsegrt build) "
                            "instead of pairing files by hand")


def mismatches(recorded: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """Keys of ``request`` whose recorded value differs, as 'key: recorded → requested'."""
    out = []
    for key, want in sorted(request.items()):
        have = recorded.get(key, "<absent>")
        if json.loads(json.dumps(have)) != json.loads(json.dumps(want)):
            out.append(f"{key}: {have!r} → {want!r}")
    return out


def recorded_checkpoint(payload: dict[str, Any]) -> str:
    """The checkpoint an engine was built from, for messages: its file as recorded, else its name."""
    req, info = payload["request"], payload.get("info") or {}
    if not req.get("checkpoint_sha256"):
        return f"a graph that names no checkpoint ({req.get('checkpoint_name') or 'unnamed'})"
    where = info.get("checkpoint_file") or req.get("checkpoint_name") or "an unnamed checkpoint"
    return f"{where} (weights sha256 {str(req['checkpoint_sha256'])[:12]}…)"


def check_sidecar(engine: str | os.PathLike, request: dict[str, Any], checkpoint: str | None = None) -> dict[str, Any]:
    """Return the sidecar if it describes ``engine``'s bytes and matches ``request`` (only keys present
    in it); else refuse. ``checkpoint`` names the caller's checkpoint in a checkpoint refusal."""
    payload = read_sidecar(engine)
    name = Path(engine).name
    recorded = payload["request"]
    want = request.get("checkpoint_sha256")
    if "checkpoint_sha256" in request and recorded.get("checkpoint_sha256") != want:
        given = checkpoint or "the given checkpoint"
        raise LsegError(f"engine {name} was built from {recorded_checkpoint(payload)}, not from {given} "
                        f"(weights sha256 {str(want)[:12]}…); rebuild it for this checkpoint or pass the one it "
                        "was built from")
    diff = mismatches(recorded, request)
    if diff:
        raise LsegError(
            f"engine {name} was built for a different request ({'; '.join(diff)}); "
            "rebuild it with `lsegrt build` or pass the matching options"
        )
    return payload
