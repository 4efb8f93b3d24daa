"""Official Lightning checkpoint → inference-only `.safetensors` (docs/ARCHITECTURE.md §9).

Keeps exactly the tensors the encoders use, with their stored dtypes (fp16 CLIP stays fp16) and
without the `net.` prefix; drops optimizer state, Lightning extras and the unused families. The result
loads through :func:`lsegrt.load` to bit-identical outputs, without pickle, and memory-maps.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from .errors import LsegError
from .fileio import atomic_path, check_output_path
from .model.checkpoint import UNUSED_PREFIXES, detect_variant, is_unused, read_state_dict, validate, weights_sha256

FORMAT = "lsegrt.state_dict.v1"


def _family(key: str) -> str:
    prefix = next(p for p in UNUSED_PREFIXES if key.startswith(p))
    return prefix + "*" if prefix.endswith(".") else prefix


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors with private storage (safetensors refuses aliases; a plain .pt may hold views)."""
    seen: set[int] = set()
    out = {}
    for key, t in tensors.items():
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, Any]:
    """Validate ``src`` strictly, write its inference weights to ``dst`` (`.safetensors`, atomically).

    Metadata (all strings): ``format``, ``variant``, ``source`` (file name), ``source_sha256``,
    ``weights_sha256`` (the identity engines are bound to, equal for source and output), ``lsegrt_version``. Returns a summary: variant, kept/dropped key counts, kept elements, dropped
    families, byte sizes of both files and the seconds taken.
    """
    from safetensors.torch import save_file

    from . import __version__
    from .sidecar import sha256_file

    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise LsegError(f"output {dst} must end in .safetensors (the converted format)")
    check_output_path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise LsegError(f"output {dst} is the input file; choose another name")
    t0 = time.perf_counter()
    sd = read_state_dict(src)
    cfg = detect_variant(sd)
    # raises naming every missing, unexpected, mis-shaped, mistyped or non-finite tensor
    identity = weights_sha256(validate(sd, cfg, source=src.name))
    kept = {k: v for k, v in sd.items() if not is_unused(k)}
    dropped = Counter(_family(k) for k in sd if is_unused(k))
    metadata = {
        "format": FORMAT,
        "variant": cfg.name,
        "source": src.name,
        "source_sha256": sha256_file(src),
        "weights_sha256": identity,
        "lsegrt_version": __version__,
    }
    with atomic_path(dst) as tmp:
        save_file(_unshared(kept), str(tmp), metadata=metadata)
    return {
        "variant": cfg.name,
        "kept": len(kept),
        "kept_elements": sum(v.numel() for v in kept.values()),
        "dtypes": dict(Counter(str(v.dtype).removeprefix("torch.") for v in kept.values())),
        "dropped": sum(dropped.values()),
        "dropped_families": dict(sorted(dropped.items())),
        "src_bytes": src.stat().st_size,
        "dst_bytes": dst.stat().st_size,
        "seconds": time.perf_counter() - t0,
        "metadata": metadata,
    }


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a `.safetensors` file (empty for files written elsewhere)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error type for a bad header
        raise LsegError(f"cannot read {Path(path).name}: not a valid .safetensors file ({exc})") from None
