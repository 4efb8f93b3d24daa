"""From embeddings to labels (docs/ARCHITECTURE.md §6) and the multi-scale evaluator (§7)."""

from __future__ import annotations

import math
from typing import Callable

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


def _pad(x: torch.Tensor, h: int, w: int, value: torch.Tensor) -> torch.Tensor:
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph <= 0 and pw <= 0:
        return x
    out = value.view(1, 3, 1, 1).expand(x.shape[0], 3, max(h, x.shape[-2]), max(w, x.shape[-1])).clone()
    out[..., : x.shape[-2], : x.shape[-1]] = x
    return out


def _scale_size(h: int, w: int, scale: float) -> tuple[int, int, int]:
    long = int(math.ceil(BASE_SIZE * scale))
    if h > w:
        return long, int(w * long / h + 0.5), long
    return int(h * long / w + 0.5), long, long


def multiscale_crops(image: torch.Tensor, black: torch.Tensor):
    """The evaluator's plan for a (1,3,H,W) image: per scale ``(sh, sw, ph, pw, tiled)`` and a list of
    ``(scale index, y0, y1, x0, x1, crop)`` windows, every crop (1,3,480,480) (padded with ``black``)."""
    _, _, h, w = image.shape
    scales, crops = [], []
    for si, scale in enumerate(SCALES):
        sh, sw, long = _scale_size(h, w, scale)
        x = F.interpolate(image, size=(sh, sw), mode="bilinear", align_corners=True)
        if long <= CROP:
            scales.append((sh, sw, CROP, CROP, False))
            crops.append((si, 0, CROP, 0, CROP, _pad(x, CROP, CROP, black)))
            continue
        x = _pad(x, max(sh, CROP), max(sw, CROP), black)
        ph, pw = x.shape[-2:]
        scales.append((sh, sw, ph, pw, True))
        ny = int(math.ceil((ph - CROP) / STRIDE)) + 1
        nx = int(math.ceil((pw - CROP) / STRIDE)) + 1
        for iy in range(ny):
            for ix in range(nx):
                # The reference clips the last window at the border and pads it, not shifts it.
                y0, x0 = iy * STRIDE, ix * STRIDE
                y1, x1 = min(y0 + CROP, ph), min(x0 + CROP, pw)
                crops.append((si, y0, y1, x0, x1, _pad(x[..., y0:y1, x0:x1], CROP, CROP, black)))
    return scales, crops


def _encode_chunks(encode: EncodeFn, items: list[torch.Tensor], batch_size: int | None):
    """Encode (1,3,h,w) items in batches of ``batch_size`` (the last one padded to that size, so a
    compiled graph sees one shape); yields one (1,512,h/2,w/2) feature map per item, in order."""
    step = len(items) if not batch_size else batch_size
    for start in range(0, len(items), step):
        chunk = items[start:start + step]
        x = torch.cat(chunk)
        if batch_size and len(chunk) < batch_size:
            x = torch.cat([x, x.new_zeros((batch_size - len(chunk), *x.shape[1:]))])
        feats = encode(x)
        for j in range(len(chunk)):
            yield feats[j:j + 1]


def multiscale_windows(h: int, w: int) -> int:
    """How many 480² windows the evaluator runs for an (h, w) image (each is encoded twice: flips)."""
    n = 0
    for scale in SCALES:
        sh, sw, long = _scale_size(h, w, scale)
        if long <= CROP:
            n += 1
        else:
            ph, pw = max(sh, CROP), max(sw, CROP)
            n += (int(math.ceil((ph - CROP) / STRIDE)) + 1) * (int(math.ceil((pw - CROP) / STRIDE)) + 1)
    return n


def multiscale_logits(
    encode: EncodeFn, text: torch.Tensor, image: torch.Tensor, black: torch.Tensor,
    batch_size: int | None = 2, on_window: Callable[[], object] | None = None,
) -> torch.Tensor:
    """(1,3,H,W) normalized image at its own size → (1,N,H,W) logits summed over 6 scales with flips.

    ``black`` is the normalized value of a black pixel per channel (−1 for ViT checkpoints), used to
    pad windows to 480×480 exactly like the reference evaluator. Every window and its mirror image
    (all 480×480) go through ``encode`` together, ``batch_size`` crops per call (None: all crops of the
    image in one call; an int pads the last call to that size so a compiled graph is reused).
    ``on_window()`` is called after each of the :func:`multiscale_windows` windows (progress).
    """
    _, _, h, w = image.shape
    scales, crops = multiscale_crops(image, black)
    items = [t for *_, crop in crops for t in (crop, torch.flip(crop, dims=[3]))]
    outs = [None] * len(scales)
    counts = [None] * len(scales)
    feats = _encode_chunks(encode, items, batch_size)
    done = on_window or (lambda: None)
    for si, y0, y1, x0, x1, _ in crops:
        # added, not averaged, as the reference does
        window = logits(next(feats), text) + torch.flip(logits(next(feats), text), dims=[3])
        done()
        sh, sw, ph, pw, tiled = scales[si]
        if not tiled:
            outs[si] = window[..., :sh, :sw]
            continue
        if outs[si] is None:
            outs[si] = torch.zeros(1, text.shape[0], ph, pw, device=image.device)
            counts[si] = torch.zeros(1, 1, ph, pw, device=image.device)
        outs[si][..., y0:y1, x0:x1] += window[..., : y1 - y0, : x1 - x0]
        counts[si][..., y0:y1, x0:x1] += 1
    total = None
    for si, (sh, sw, _, _, tiled) in enumerate(scales):
        out = (outs[si] / counts[si])[..., :sh, :sw] if tiled else outs[si]
        out = resize_logits(out, (h, w))
        total = out if total is None else total + out
    return total
