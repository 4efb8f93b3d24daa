"""`aoti` backend: AOTInductor packages (`.pt2`) built ahead of time, loaded without recompiling.

Build: ``torch.export`` of the image encoder with dynamic batch and H, W = 32·k, compiled by
``torch._inductor.aoti_compile_and_package`` for one device type and precision. Load:
``torch._inductor.aoti_load_package``. Packages are tied to the torch version and device that built
them; the sidecar records both and a mismatch is refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..errors import LsegError
from ..fileio import check_output_path
from ..sidecar import gpu_info, runtime_versions, write_sidecar
from .base import Encoder, check_precision
from .common import cached_engine, check_engine, checkpoint_sha256, encoder_module, resolve_model

MAX_BATCH, MAX_SIDE = 64, 2048


def aoti_request(model, precision: str, device: torch.device, max_batch: int, max_side: int) -> dict[str, Any]:
    return {
        "backend": "aoti",
        "checkpoint_sha256": model.sha256,
        "checkpoint_name": model.name,
        "variant": model.variant,
        "precision": precision,
        "device_type": device.type,
        "profile": {"min": [1, 32, 32], "max": [max_batch, max_side, max_side]},
        "torch": torch.__version__,
        **{k: v for k, v in gpu_info(str(device)).items() if k in ("gpu", "compute_capability")},
    }


def build_aoti(model, path: str | Path, *, precision: str = "fp32", device: str | torch.device = "cpu",
               max_batch: int = MAX_BATCH, max_side: int = MAX_SIDE, example=(2, 96, 64)) -> dict[str, Any]:
    """Export + AOT-compile the encoder into the `.pt2` package ``path`` (+ JSON sidecar); returns info."""
    check_precision(precision)
    device = torch.device(device)
    path = check_output_path(path)
    if path.suffix != ".pt2":
        raise LsegError(f"AOTInductor packages end in .pt2: {path}")
    if max_side % 32:
        raise LsegError(f"max side {max_side} must be a multiple of 32")
    module = encoder_module(model, precision, device)
    b, h, w = example
    x = torch.randn(b, 3, h, w, device=device, generator=torch.Generator(device).manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    gh = torch.export.Dim("h32", min=1, max=max_side // 32)
    gw = torch.export.Dim("w32", min=1, max=max_side // 32)
    start = time.perf_counter()
    with torch.inference_mode():
        program = torch.export.export(module, (x,), dynamic_shapes={"image": {0: batch, 2: 32 * gh, 3: 32 * gw}})
    export_s = time.perf_counter() - start
    tmp = path.with_name(f".{path.stem}.tmp.pt2")
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    info = {"export_seconds": round(export_s, 2), "build_seconds": round(time.perf_counter() - start, 2),
            "package_bytes": path.stat().st_size, **runtime_versions()}
    write_sidecar(path, aoti_request(model, precision, device, max_batch, max_side), info)
    return info


class AOTIEncoder(Encoder):
    name = "aoti"

    def __init__(self, path: Path, device, precision: str, profile: dict[str, Any]):
        super().__init__(device, precision)
        self.path = Path(path)
        self.profile = profile
        self.runner = torch._inductor.aoti_load_package(str(self.path))

    @classmethod
    def create(cls, *, checkpoint=None, engine=None, device="cpu", precision="fp32", variant=None,
               max_batch=MAX_BATCH, max_side=MAX_SIDE, **options):
        device = torch.device(device)
        if engine is not None:
            request = {"backend": "aoti", "precision": precision, "device_type": device.type,
                       "torch": torch.__version__}
            request.update({k: v for k, v in gpu_info(str(device)).items() if k in ("gpu", "compute_capability")})
            if checkpoint is not None:
                request["checkpoint_sha256"] = checkpoint_sha256(checkpoint)
            sidecar = check_engine(engine, request)
            return cls(engine, device, precision, sidecar["request"]["profile"])
        model = resolve_model(checkpoint, device, variant)
        request = aoti_request(model, precision, device, max_batch, max_side)
        path = cached_engine(request, ".pt2", lambda p: build_aoti(model, p, precision=precision, device=device,
                                                                   max_batch=max_batch, max_side=max_side))
        return cls(path, device, precision, request["profile"])

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, _, h, w = x.shape
        hi = self.profile["max"]
        if b > hi[0] or h > hi[1] or w > hi[2]:
            raise LsegError(f"input {b}x3x{h}x{w} exceeds the package's profile max {hi} (rebuild with larger limits)")
        return self.runner(x.float().contiguous())

    def describe(self):
        return {**super().describe(), "engine": str(self.path), "torch": torch.__version__}
