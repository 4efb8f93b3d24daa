"""Engine sidecars: the JSON file that says exactly what an engine was built from and for.

An engine file ``X`` always has ``X.json`` next to it. Its ``request`` part holds every input that
changes the engine (checkpoint hash, ONNX hash, precision, shape profile, backend and version, torch
and CUDA versions, GPU). A load compares the caller's request with it key by key; any difference is a
refusal that names the differing keys: never a silent reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

from .errors import LsegError
from .fileio import write_text

SIDECAR_VERSION = 1


def sidecar_path(engine: str | os.PathLike) -> Path:
    return Path(str(engine) + ".json")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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


def write_sidecar(engine: str | os.PathLike, request: dict[str, Any], info: dict[str, Any]) -> Path:
    """Record ``request`` (what must match) and ``info`` (build time, options, sizes) beside ``engine``."""
    payload = {"sidecar_version": SIDECAR_VERSION, "request": request, "info": info}
    return write_text(sidecar_path(engine), json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_sidecar(engine: str | os.PathLike) -> dict[str, Any]:
    path = sidecar_path(engine)
    if not Path(engine).is_file():
        raise LsegError(f"engine not found: {engine}")
    if not path.is_file():
        raise LsegError(f"engine {engine} has no sidecar {path.name}; rebuild it with `lsegrt build`")
    try:
        payload = json.loads(path.read_text())
        payload["request"]
    except (ValueError, KeyError, TypeError):
        raise LsegError(f"sidecar {path} is not a valid lsegrt sidecar; rebuild the engine") from None
    return payload


def mismatches(recorded: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """Keys of ``request`` whose recorded value differs, as 'key: recorded → requested'."""
    out = []
    for key, want in sorted(request.items()):
        have = recorded.get(key, "<absent>")
        if json.loads(json.dumps(have)) != json.loads(json.dumps(want)):
            out.append(f"{key}: {have!r} → {want!r}")
    return out


def check_sidecar(engine: str | os.PathLike, request: dict[str, Any]) -> dict[str, Any]:
    """Return the sidecar if it matches ``request`` (only keys present in it); else refuse."""
    payload = read_sidecar(engine)
    diff = mismatches(payload["request"], request)
    if diff:
        raise LsegError(
            f"engine {Path(engine).name} was built for a different request ({'; '.join(diff)}); "
            "rebuild it with `lsegrt build` or pass the matching options"
        )
    return payload
