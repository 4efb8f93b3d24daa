"""From embeddings to labels (docs/ARCHITECTURE.md §6) and the multi-scale evaluator (§7)."""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .model.config import LOGIT_SCALE

# (B,3,H,W) normalized → (B,512,H/2,W/2) unit features; any backend Encoder or a model method.
EncodeFn = Callable[[torch.Tensor], torch.Tensor]


def logits(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """(B,512,h,w) unit pixels · (N,512) unit text → (B,N,2h,2w) float32 logits.

    fp32 dot product scaled by the constant 1/0.07, then ×2 bilinear with align_corners=True.
    """
    out = LOGIT_SCALE * torch.einsum("bchw,nc->bnhw", features.float(), text.float().to(features.device))
    return F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=True)


def resize_logits(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=True (the evaluator's rule for every logit resize)."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=True)


# §7 'quality mode': the official multi-scale evaluator.
BASE_SIZE, CROP, STRIDE = 520, 480, 320
SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _flip_sum(encode: EncodeFn, text: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    out = logits(encode(x), text)
    flipped = logits(encode(torch.flip(x, dims=[3])), text)
    return out + torch.flip(flipped, dims=[3])  # added, not averaged, as the reference does


def _pad(x: torch.Tensor, h: int, w: int, value: torch.Tensor) -> torch.Tensor:
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph <= 0 and pw <= 0:
        return x
    out = value.view(1, 3, 1, 1).expand(x.shape[0], 3, max(h, x.shape[-2]), max(w, x.shape[-1])).clone()
    out[..., : x.shape[-2], : x.shape[-1]] = x
    return out


def _scales(h: int, w: int) -> Iterator[tuple[int, int, int, int, int]]:
    """Per scale of an (h, w) image: resized (sh, sw), the long side, and the window grid (ny, nx)."""
    for scale in SCALES:
        long = int(math.ceil(BASE_SIZE * scale))
        if h > w:
            sh, sw = long, int(w * long / h + 0.5)
        else:
            sh, sw = int(h * long / w + 0.5), long
        if long <= CROP:
            yield sh, sw, long, 1, 1
        else:
            ph, pw = max(sh, CROP), max(sw, CROP)
            yield sh, sw, long, int(math.ceil((ph - CROP) / STRIDE)) + 1, int(math.ceil((pw - CROP) / STRIDE)) + 1


def multiscale_windows(h: int, w: int) -> int:
    """How many 480² windows the evaluator runs for an (h, w) image (each is encoded twice: flips)."""
    return sum(ny * nx for *_, ny, nx in _scales(h, w))


def multiscale_logits(
    encode: EncodeFn, text: torch.Tensor, image: torch.Tensor, black: torch.Tensor,
    on_window: Callable[[], object] | None = None,
) -> torch.Tensor:
    """(1,3,H,W) normalized image at its own size → (1,N,H,W) logits summed over 6 scales with flips.

    ``black`` is the normalized value of a black pixel per channel (−1 for ViT checkpoints), used to
    pad windows to 480×480 exactly like the reference evaluator. ``on_window()`` is called after each of
    the :func:`multiscale_windows` windows (progress).
    """
    _, _, h, w = image.shape
    total = None
    done = on_window or (lambda: None)
    for sh, sw, long, ny, nx in _scales(h, w):
        x = F.interpolate(image, size=(sh, sw), mode="bilinear", align_corners=True)
        if long <= CROP:
            out = _flip_sum(encode, text, _pad(x, CROP, CROP, black))[..., :sh, :sw]
            done()
        else:
            x = _pad(x, max(sh, CROP), max(sw, CROP), black)
            ph, pw = x.shape[-2:]
            out = torch.zeros(1, text.shape[0], ph, pw, device=x.device)
            count = torch.zeros(1, 1, ph, pw, device=x.device)
            for iy in range(ny):
                for ix in range(nx):
                    # The reference clips the last window at the border and pads it, not shifts it.
                    y0, x0 = iy * STRIDE, ix * STRIDE
                    y1, x1 = min(y0 + CROP, ph), min(x0 + CROP, pw)
                    crop = _pad(x[..., y0:y1, x0:x1], CROP, CROP, black)
                    out[..., y0:y1, x0:x1] += _flip_sum(encode, text, crop)[..., : y1 - y0, : x1 - x0]
                    count[..., y0:y1, x0:x1] += 1
                    done()
            out = (out / count)[..., :sh, :sw]
        out = resize_logits(out, (h, w))
        total = out if total is None else total + out
    return total
