"""The one interface every backend implements.

An :class:`Encoder` maps a normalized image batch to per-pixel unit embeddings:

    (B,3,H,W) float32, normalized, on ``encoder.device``  →  (B,512,H/2,W/2) float32, on the same device

Precision (fp32/fp16/bf16) is what the backend computes in; I/O stays float32 everywhere, with
LayerNorm and the final L2 norm in fp32 (docs/ARCHITECTURE.md §8), so every backend is a drop-in replacement
for every other and `compare` can diff them directly.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from ..errors import LsegError

PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# name → "module:Class", imported only when asked for (Polygraphy style: heavy deps stay lazy).
REGISTRY: dict[str, str] = {
    "torch": "lsegrt.backends.torch_eager:TorchEncoder",
    "compile": "lsegrt.backends.compiled:CompiledEncoder",
    "aoti": "lsegrt.backends.aoti:AOTIEncoder",
    "onnxruntime": "lsegrt.backends.onnxruntime:OnnxRuntimeEncoder",
    "tensorrt": "lsegrt.backends.tensorrt:TensorRTEncoder",
}


from ..devices import canonical_device  # noqa: E402,F401  (lives with the device checks; backends use it from here)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise LsegError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def backend_class(name: str) -> type["Encoder"]:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise LsegError(f"unknown backend {name!r}; choose one of {', '.join(REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


class Encoder(ABC):
    """Image encoder behind one call signature. Use :meth:`open`; close it (or use ``with``)."""

    name: ClassVar[str] = "?"

    def __init__(self, device: torch.device | str, precision: str):
        self.device = canonical_device(device)
        self.precision = check_precision(precision)

    @classmethod
    def open(
        cls,
        backend: str,
        *,
        checkpoint: Any = None,
        engine: str | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        **options: Any,
    ) -> "Encoder":
        """Open ``backend`` ("torch", "compile", "aoti", "onnxruntime", "tensorrt").

        ``checkpoint`` is a path, an already loaded :class:`lsegrt.LSegModel`, or None for the
        embedded random default. Engine backends take ``engine`` (a built file with its JSON
        sidecar); without one they build into the cache, keyed by every input that matters.
        """
        klass = backend_class(backend)
        return klass.create(checkpoint=checkpoint, engine=engine, device=device, precision=precision, **options)

    @classmethod
    @abstractmethod
    def create(cls, *, checkpoint, engine, device, precision, **options) -> "Encoder":
        """Backend-specific constructor behind :meth:`open`."""

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) float32 normalized on ``self.device`` → (B,512,H/2,W/2) float32 unit vectors."""

    def describe(self) -> dict[str, Any]:
        """What runs: backend, device, precision and backend-specific details (engine path, versions)."""
        return {"backend": self.name, "device": str(self.device), "precision": self.precision}

    def close(self) -> None:
        """Release engines, sessions and device memory."""

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise LsegError(f"{self.name}: expected a (B,3,H,W) tensor, got {tuple(x.shape)}")
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise LsegError(f"{self.name}: H and W must be multiples of 32, got {x.shape[-2]}x{x.shape[-1]}")
        if x.device != self.device:
            raise LsegError(f"{self.name}: input is on {x.device}, encoder runs on {self.device}")
