"""Model input sizes and preprocessing. Sizes are always ``(H, W)``, height first.

LSeg needs an even 16-px patch grid (docs/ARCHITECTURE.md §7: 400x400 and 368x368 fail in the fusion
decoder), so every size handed to a model is a multiple of 32 on both sides, and no side exceeds
:data:`MAX_SIDE` (4096; at 4096² one 256-channel decoder activation at H/2 is already 4 GiB in fp32).
Larger sizes are refused before anything is allocated: ``--size 99999`` used to ask for 80 GB for the
resized image alone.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import LsegError

if TYPE_CHECKING:
    import torch

MULTIPLE = 32
MAX_SIDE = 4096
_EXACT = re.compile(r"^\s*([+-]?\d+)\s*[x×X*]\s*([+-]?\d+)\s*$")
_LONG = re.compile(r"^\s*([+-]?\d+)\s*$")


def _round_to_multiple(v: float) -> int:
    # Round half up (not Python's banker's rounding) so the result does not depend on parity.
    return max(MULTIPLE, int(math.floor(v / MULTIPLE + 0.5)) * MULTIPLE)


def _neighbours(v: int) -> tuple[int, int]:
    lo = max(MULTIPLE, (v // MULTIPLE) * MULTIPLE)
    hi = max(MULTIPLE, -(-v // MULTIPLE) * MULTIPLE)
    return lo, hi


def check_exact_size(hw: Sequence[int]) -> tuple[int, int]:
    """Validate an exact ``(H, W)`` model size → ``(H, W)`` ints, both positive multiples of 32."""
    h, w = (int(v) for v in hw)
    label = f"{h}x{w}"
    if h <= 0 or w <= 0:
        raise LsegError(f"size {label}: H and W must be positive multiples of 32, e.g. 480x480")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise LsegError(f"size {label}: each side must be at most {MAX_SIDE} (the model input; images of any "
                        "size are resized to it), e.g. 1024x1024")
    if h % MULTIPLE or w % MULTIPLE:
        (h_lo, h_hi), (w_lo, w_hi) = _neighbours(h), _neighbours(w)
        options = list(dict.fromkeys([f"{h_lo}x{w_lo}", f"{h_hi}x{w_hi}"]))
        raise LsegError(
            f"size {label}: H and W must be multiples of 32 (LSeg needs an even 16-px patch grid); "
            f"try {' or '.join(options)}"
        )
    return h, w


def parse_size(text: str) -> int | tuple[int, int]:
    """Parse a CLI size: ``"384"`` → ``384`` (long side), ``"480x640"`` → ``(480, 640)`` (H x W).

    A long side may be any integer ≥ 32 (it is rounded later by :func:`target_size`); an exact
    ``HxW`` must already be multiples of 32. Anything else raises a one-line :class:`LsegError`.
    """
    text = str(text)
    m = _EXACT.match(text)
    if m:
        return check_exact_size((int(m.group(1)), int(m.group(2))))
    m = _LONG.match(text)
    if not m:
        raise LsegError(
            f"size {text!r}: expected a long side like 480 or an exact HxW like 480x640"
        )
    return _check_long_side(int(m.group(1)))


def _check_long_side(side: int) -> int:
    if side < MULTIPLE:
        raise LsegError(f"size {side}: the long side must be at least {MULTIPLE}, e.g. 480")
    if side > MAX_SIDE:
        raise LsegError(f"size {side}: the long side must be at most {MAX_SIDE}, e.g. 1024")
    return side


def target_size(image_hw: Sequence[int], size: int | Sequence[int]) -> tuple[int, int]:
    """Model input ``(H, W)`` for an image of ``image_hw = (H, W)``.

    ``size`` int S: scale so the long side is S keeping aspect, then round each side to the nearest
    multiple of 32 (at least 32). ``size`` ``(H, W)``: validated and returned unchanged.
    """
    if not isinstance(size, (int, np.integer)):
        return check_exact_size(size)
    side = _check_long_side(int(size))
    h, w = (int(v) for v in image_hw)
    if h <= 0 or w <= 0:
        raise LsegError(f"image size {h}x{w}: height and width must be positive")
    scale = side / max(h, w)
    return _round_to_multiple(h * scale), _round_to_multiple(w * scale)


def model_pixels(image: np.ndarray, hw: Sequence[int]) -> "torch.Tensor":
    """``(H0, W0, 3) uint8`` RGB → model-size pixels before normalization.

    Same size: the image itself as ``(H, W, 3) uint8`` (no resampling, 4× fewer bytes to move).
    Other size: ``(3, H, W) float32`` in 0..255, resized with ``torch.nn.functional.interpolate(
    mode="bilinear", align_corners=False, antialias=True)`` in float32: the same triangle filter as
    PIL's BILINEAR (antialiased when shrinking), without PIL's rounding back to uint8.
    :func:`normalize` turns either into the model input; the extraction pipeline runs this part in its
    decode workers and :func:`normalize` on the device, so it computes exactly what
    :func:`to_model_input` computes.
    """
    import torch
    import torch.nn.functional as F

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise LsegError(
            f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    h, w = (int(v) for v in hw)
    if not image.flags.writeable:  # PIL hands out read-only arrays; torch warns on those
        image = image.copy()
    pixels = torch.from_numpy(np.ascontiguousarray(image))
    if (h, w) == tuple(image.shape[:2]):
        return pixels
    x = pixels.permute(2, 0, 1)[None].to(torch.float32)
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]


def normalize(pixels: "torch.Tensor", mean: Sequence[float], std: Sequence[float]) -> "torch.Tensor":
    """``(B, 3, H, W)`` pixels in 0..255 (any dtype) → float32 ``(x / 255 - mean) / std`` per channel.

    docs/ARCHITECTURE.md §7: mean = std = 0.5 for ViT checkpoints, ImageNet statistics for ResNet ones.
    """
    import torch

    x = pixels.to(torch.float32)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    return ((x / 255.0 - mean_t) / std_t).contiguous()


def as_chw(pixels: "torch.Tensor") -> "torch.Tensor":
    """:func:`model_pixels` output → a ``(3, H, W)`` view (``(H, W, 3)`` uint8 is permuted, not copied)."""
    import torch

    return pixels.permute(2, 0, 1) if pixels.dtype == torch.uint8 else pixels


def to_model_input(
    image: np.ndarray, hw: Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> "torch.Tensor":
    """``(H0, W0, 3) uint8`` RGB → ``(1, 3, H, W) float32`` normalized model input.

    :func:`model_pixels` (bilinear, antialiased, float32) then :func:`normalize`.
    """
    return normalize(as_chw(model_pixels(image, hw))[None], mean, std)
