"""FLOPs of the image encoder and the dense peak of known GPUs (for `lsegrt bench`).

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` on the eager fp32 image
encoder (:class:`lsegrt.model.ImageEncoder`, the graph every backend serves), built on the meta device:
no weights, no memory, no GPU, well under a second even for ViT-L/16. 1 multiply-accumulate = 2 FLOP.
Reference values (batch 1): ViT-L/16 ≈ 494 GFLOP at 384², ≈ 4.92 TFLOP at 1024².

The counter covers matmuls, convolutions (incl. transposed) and attention; element-wise work (GELU,
LayerNorm, softmax, the L2 norm) is not counted, as usual for "model FLOPs".
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch

# Dense (no 2:4 sparsity) tensor-core peaks in TFLOP/s, from NVIDIA's datasheets.
_HOPPER_SXM = {"fp16": 989.4, "bf16": 989.4, "tf32": 494.7, "fp32": 66.9}
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": _HOPPER_SXM,
    "H200": _HOPPER_SXM,  # same GH100 compute as H100 SXM; only the memory differs
}


def gpu_peak_key(gpu_name: str | None) -> str | None:
    """``torch.cuda.get_device_name()`` → key of :data:`PEAK_TFLOPS`, or None when unknown.

    Only names that identify the part unambiguously match: "NVIDIA H100 80GB HBM3" is the SXM board;
    H100 PCIe/NVL and H200 NVL have lower clocks/power and are left unknown rather than guessed.
    """
    if not gpu_name:
        return None
    name = gpu_name.upper()
    if re.search(r"\bNVL\b|PCIE", name):
        return None
    if "H200" in name:
        return "H200"
    if "H100" in name and ("SXM" in name or "HBM3" in name):
        return "H100 SXM"
    return None


def gpu_peak(gpu_name: str | None) -> dict[str, float] | None:
    """Dense peaks in TFLOP/s by precision ("fp16", "bf16", "tf32", "fp32") for a known GPU, else None."""
    key = gpu_peak_key(gpu_name)
    return dict(PEAK_TFLOPS[key]) if key else None


@lru_cache(maxsize=8)
def _meta_encoder(variant: str) -> torch.nn.Module:
    from .model.config import get_config
    from .model.net import ImageEncoder

    with torch.device("meta"):
        return ImageEncoder(get_config(variant)).eval()


@lru_cache(maxsize=256)
def flops_by_op(variant: str, height: int, width: int) -> dict[str, int]:
    """FLOPs of one ``(1,3,height,width)`` fp32 forward of ``variant``'s image encoder, by aten op."""
    from torch.utils.flop_counter import FlopCounterMode

    enc = _meta_encoder(variant)
    x = torch.empty(1, 3, int(height), int(width), device="meta")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        enc(x)
    return {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def encoder_flops(variant: str, height: int, width: int, batch: int = 1) -> int:
    """FLOPs of one ``(batch,3,height,width)`` call of the image encoder (batch-1 count × batch).

    Every layer acts per sample, so the count is exactly linear in the batch size.
    """
    return sum(flops_by_op(variant, int(height), int(width)).values()) * int(batch)


@lru_cache(maxsize=256)
def flops_by_stage(variant: str, height: int, width: int, groups: int = 4) -> dict[str, int]:
    """FLOPs of each :mod:`lsegrt.stages` stage of one ``(1,3,height,width)`` forward, in stage order.

    Counted the same way as :func:`flops_by_op` (the stages chain the same modules), so the values sum
    to ``encoder_flops(variant, height, width)``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from .stages import encoder_stages

    state: tuple = (torch.empty(1, 3, int(height), int(width), device="meta"),)
    out: dict[str, int] = {}
    with torch.inference_mode():
        for stage in encoder_stages(_meta_encoder(variant), groups):
            with FlopCounterMode(display=False) as counter:
                state = stage.module(*state)
            out[stage.name] = int(counter.get_total_flops())
    return out
