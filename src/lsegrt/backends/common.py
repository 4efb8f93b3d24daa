"""Helpers shared by backends: resolving the model a backend serves, TF32 policy, the engine cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..errors import LsegError
from .base import DTYPES


def resolve_model(checkpoint: Any, device: str | torch.device = "cpu", variant: str | None = None):
    """A path → :func:`lsegrt.load`; an :class:`LSegModel` → itself; None → the random default."""
    from ..api import DEFAULT_VARIANT, LSegModel, load, random_model

    if isinstance(checkpoint, LSegModel):
        return checkpoint
    if checkpoint is None:
        return random_model(variant or DEFAULT_VARIANT, 0, device)
    return load(checkpoint, device)


def checkpoint_identity(checkpoint: Any) -> tuple[str, str] | None:
    """(weights identity, how to name it in messages) of ``checkpoint`` for sidecar checks, without
    building a network: a path → :func:`lsegrt.model.checkpoint.checkpoint_identity` (read once per file
    version), an :class:`LSegModel` → its ``.sha256``, None → None (nothing to check)."""
    import os

    if checkpoint is None:
        return None
    if isinstance(checkpoint, (str, os.PathLike)):
        from ..model.checkpoint import checkpoint_identity as identity

        return identity(checkpoint), str(checkpoint)
    return checkpoint.sha256, str(checkpoint.file or checkpoint.source)


def checkpoint_sha256(checkpoint: Any) -> str | None:
    """The weights identity of ``checkpoint`` (see :func:`checkpoint_identity`), None for None."""
    found = checkpoint_identity(checkpoint)
    return found[0] if found else None


def encoder_module(model, precision: str, device: torch.device, private: bool = False) -> torch.nn.Module:
    """The exported/compiled graph: image encoder in ``precision`` with float32 I/O, eval mode.

    Weights are copied (not cast in place) for fp16/bf16, so the caller's fp32 model stays intact;
    ``private``: copy in fp32 too (a backend that sets switches on the modules).
    """
    import copy

    from ..model.net import CastEncoder

    enc = model.image_encoder()
    if private or precision != "fp32" or torch.device(device) != model.device:
        enc = copy.deepcopy(enc)
    enc = enc.to(device=device, dtype=DTYPES[precision])
    if precision == "bf16":
        # TensorRT-RTX's Myelin cannot type a bf16 ConvTranspose (the ViT reassemble's ×4/×2 upsampling):
        # keep those two layers in fp32 so one bf16 graph serves every backend.
        for module in enc.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):
                module.float()
    return CastEncoder(enc, DTYPES[precision]).eval()


def check_tf32(tf32: Any) -> bool | None:
    """The ``tf32`` option of the PyTorch backends: None (PyTorch's global setting), True or False."""
    if tf32 is None or isinstance(tf32, bool):
        return tf32
    raise LsegError(f"option tf32={tf32!r}: expected true or false")


@contextmanager
def tf32_scope(tf32: bool | None) -> Iterator[None]:
    """Allow (True) or forbid (False) TF32 in fp32 matmuls and cuDNN convolutions for one call.

    PyTorch's defaults differ per op family (matmuls IEEE fp32, cuDNN convolutions TF32), and on an
    H100 TF32 convolutions move LSeg's fp32 features by a relative L2 of 8-9e-4
    (docs/BENCHMARKS.md), so a strict fp32 reference needs both off. The flags are process-wide:
    they are set for the call and restored after it, never left changed.
    """
    if tf32 is None:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def tf32_description(tf32: bool | None) -> dict[str, bool]:
    """The TF32 flags a call runs under, as recorded in describe()."""
    if tf32 is None:
        return {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    return {"tf32_matmul": tf32, "tf32_cudnn": tf32}


def require_cuda(device: torch.device, what: str) -> None:
    if device.type != "cuda":
        raise LsegError(f"{what} needs a CUDA device (got {device}); use --device cuda on a GPU machine")
    if not torch.cuda.is_available():
        raise LsegError(f"{what} needs a CUDA GPU, and none is available here")


def cached_engine(request: dict[str, Any], suffix: str, build) -> "Path":
    """Engine for ``request`` from the cache, built by ``build(path)`` when absent or not reusable.

    The name is derived from the whole request, and the sidecar (request and the engine's bytes) is
    checked before any reuse: a cached engine built from other inputs, swapped, truncated or damaged
    is rebuilt, never used. Builders of one entry take turns (:func:`lsegrt.sidecar.engine_lock`), so
    concurrent processes build it once.
    """
    from ..progress import note
    from ..sidecar import cache_dir, check_sidecar, engine_lock, engine_name

    folder = cache_dir() / "engines"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / engine_name(request, suffix)
    with engine_lock(path):
        if path.exists():
            try:
                check_sidecar(path, request)
                note(f"using the cached engine {path}")
                return path
            except LsegError:
                pass  # other recorded inputs, other bytes or a broken sidecar: rebuild
        note(f"building {path.name} into the cache {folder} (once for these inputs; this can take minutes)")
        build(path)
        check_sidecar(path, request)
    return path


def check_engine(engine, request: dict[str, Any], checkpoint: Any = None) -> dict[str, Any]:
    """Sidecar of a user-given engine, refused unless it describes the engine's bytes and every key in
    ``request`` matches; with ``checkpoint`` (path or model), the engine must be built from its weights."""
    from ..sidecar import check_sidecar

    found = checkpoint_identity(checkpoint)
    label = None
    if found is not None:
        request = {**request, "checkpoint_sha256": found[0]}
        label = found[1]
    return check_sidecar(engine, request, checkpoint=label)
