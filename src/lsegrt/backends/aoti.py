"""`aoti` backend: AOTInductor packages (`.pt2`) built ahead of time, loaded without recompiling.

Build: ``torch.export`` of the image encoder with dynamic batch (static 1 when the largest batch is 1:
torch.export cannot make a dimension dynamic over a single value) and H, W = 32·k (k ≥ 2; a largest
side of 32 or 64 is static), compiled by ``torch._inductor.aoti_compile_and_package`` for one device type
and precision. Load: ``torch._inductor.aoti_load_package``, after the sidecar check (request and the
package's bytes). Packages are tied to the torch version and device that built them; the sidecar
records both and a mismatch is refused.

Options: ``max_batch``/``max_side`` (profile of a cache build), ``tf32`` (TF32 flags while a call
runs: the package's convolutions and matmuls are ATen library calls that read them at run time; unset
follows PyTorch's global flags), ``cuda_graph`` (accepted for sweeps, no effect).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..errors import LsegError
from ..sidecar import check_engine_output, engine_lock, gpu_info, publish, runtime_versions, staging
from .base import NO_CUDA_GRAPH, Encoder, Option, check_precision
from .common import (cached_engine, check_engine, check_tf32, encoder_module, resolve_model, tf32_description,
                     tf32_scope)

MAX_BATCH, MAX_SIDE = 64, 2048
BATCH_LIMIT, SIDE_LIMIT = 1024, 8192  # beyond these a build is a typo, not a deployment


def check_limits(max_batch: Any, max_side: Any) -> tuple[int, int]:
    """The largest batch and side of a package, refused (one line) unless they make sense."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= BATCH_LIMIT:
        raise LsegError(f"max batch {max_batch!r}: expected an integer from 1 to {BATCH_LIMIT}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or not 32 <= max_side <= SIDE_LIMIT or max_side % 32:
        raise LsegError(f"max side {max_side!r}: expected a multiple of 32 from 32 to {SIDE_LIMIT}")
    return max_batch, max_side


def _profile(max_batch: int, max_side: int) -> dict[str, list[int]]:
    # torch.export specializes sizes 0 and 1, so a dynamic side is 32·k with k ≥ 2, and a range needs
    # two values at least: a largest side of 32 or 64 is static.
    low = max_side if max_side <= 64 else 64
    return {"min": [1, low, low], "max": [max_batch, max_side, max_side]}


def aoti_request(model, precision: str, device: torch.device, max_batch: int, max_side: int) -> dict[str, Any]:
    return {
        "backend": "aoti",
        "checkpoint_sha256": model.sha256,
        "checkpoint_name": model.name,
        "variant": model.variant,
        "precision": precision,
        "device_type": device.type,
        "profile": _profile(max_batch, max_side),
        "torch": torch.__version__,
        **{k: v for k, v in gpu_info(str(device)).items() if k in ("gpu", "compute_capability")},
    }


def _export(module, device: torch.device, max_batch: int, max_side: int):
    sides = max_side // 32
    b, gh, gw = min(2, max_batch), min(3, sides), 2 if sides > 2 else sides
    x = torch.randn(b, 3, 32 * gh, 32 * gw, device=device, generator=torch.Generator(device).manual_seed(0))
    dims: dict[int, Any] = {}
    if max_batch > 1:
        dims[0] = torch.export.Dim("batch", min=1, max=max_batch)
    if sides > 2:
        dims[2] = 32 * torch.export.Dim("h32", min=2, max=sides)
        dims[3] = 32 * torch.export.Dim("w32", min=2, max=sides)
    with torch.inference_mode():
        return torch.export.export(module, (x,), dynamic_shapes={"image": dims or None})


def build_aoti(model, path: str | Path, *, precision: str = "fp32", device: str | torch.device = "cpu",
               max_batch: int = MAX_BATCH, max_side: int = MAX_SIDE) -> dict[str, Any]:
    """Export + AOT-compile the encoder into the `.pt2` package ``path`` (+ JSON sidecar); returns info."""
    check_precision(precision)
    max_batch, max_side = check_limits(max_batch, max_side)
    device = torch.device(device)
    path = check_engine_output(path, (".pt2",), inputs=(model.file,))
    module = encoder_module(model, precision, device)
    start = time.perf_counter()
    with engine_lock(path), staging(path) as stage:
        program = _export(module, device, max_batch, max_side)
        export_s = time.perf_counter() - start
        staged = stage / path.name
        torch._inductor.aoti_compile_and_package(program, package_path=str(staged))
        info = {"export_seconds": round(export_s, 2), "build_seconds": round(time.perf_counter() - start, 2),
                "package_bytes": staged.stat().st_size, "checkpoint_file": str(model.file or model.source),
                **runtime_versions()}
        publish(path, staged, aoti_request(model, precision, device, max_batch, max_side), info)
    return info


class AOTIEncoder(Encoder):
    name = "aoti"
    options = {
        **Encoder.options,
        "max_batch": Option(int, MAX_BATCH, "largest batch of a cache build", minimum=1),
        "max_side": Option(int, MAX_SIDE, "largest H or W of a cache build (multiple of 32)", minimum=32),
        "tf32": Option(bool, None, "TF32 flags while a call runs (unset: PyTorch's global flags)"),
        "cuda_graph": NO_CUDA_GRAPH,
    }

    def __init__(self, path: Path, device, precision: str, profile: dict[str, Any], tf32: bool | None = None):
        super().__init__(device, precision)
        self.path = Path(path)
        self.profile = profile
        self.tf32 = check_tf32(tf32)
        try:
            self.runner = torch._inductor.aoti_load_package(str(self.path))
        except Exception as exc:  # noqa: BLE001 - the loader raises RuntimeError/zipfile errors on bad files
            msg = " ".join(str(exc).split())[:300]
            raise LsegError(f"cannot load AOTInductor package {self.path.name}: {msg}") from None

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None,
               max_batch=MAX_BATCH, max_side=MAX_SIDE, tf32=None, cuda_graph=False):
        device = torch.device(device)
        if engine is not None:
            request = {"backend": "aoti", "precision": precision, "device_type": device.type,
                       "torch": torch.__version__}
            request.update({k: v for k, v in gpu_info(str(device)).items() if k in ("gpu", "compute_capability")})
            sidecar = check_engine(engine, request, checkpoint)
            return cls(engine, device, precision, sidecar["request"]["profile"], tf32)
        check_limits(max_batch, max_side)
        model = resolve_model(checkpoint, device, variant)
        request = aoti_request(model, precision, device, max_batch, max_side)
        path = cached_engine(request, ".pt2", lambda p: build_aoti(model, p, precision=precision, device=device,
                                                                   max_batch=max_batch, max_side=max_side))
        return cls(path, device, precision, request["profile"], tf32)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, _, h, w = x.shape
        lo, hi = self.profile["min"], self.profile["max"]
        if not all(a <= v <= c for a, v, c in zip(lo, (b, h, w), hi)):
            raise LsegError(f"input {b}x3x{h}x{w} is outside the package's profile (BxHxW min {lo}, max {hi}); "
                            "rebuild it with other limits")
        with tf32_scope(self.tf32):
            out = self.runner(x.float().contiguous())
        if tuple(out.shape) != (b, 512, h // 2, w // 2) or out.dtype != torch.float32:
            raise LsegError(f"{self.path.name} returned {out.dtype} {tuple(out.shape)}; an lsegrt package returns "
                            f"float32 {(b, 512, h // 2, w // 2)}")
        return out

    def describe(self):
        return {**super().describe(), "engine": str(self.path), "torch": torch.__version__, "cuda_graph": False,
                **tf32_description(self.tf32)}
