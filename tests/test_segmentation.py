"""The batched multi-scale evaluator equals the one-window-at-a-time reference it replaced."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsegrt import segmentation
from lsegrt.segmentation import _pad, logits, multiscale_logits, resize_logits


def _reference(encode, text, image, black):
    """The evaluator as it was before batching: each window and its flip encoded alone (B=1)."""
    S = segmentation

    def flip_sum(x):
        out = logits(encode(x), text)
        return out + torch.flip(logits(encode(torch.flip(x, dims=[3])), text), dims=[3])

    _, _, h, w = image.shape
    total = None
    for scale in S.SCALES:
        long = int(math.ceil(S.BASE_SIZE * scale))
        sh, sw = (long, int(w * long / h + 0.5)) if h > w else (int(h * long / w + 0.5), long)
        x = F.interpolate(image, size=(sh, sw), mode="bilinear", align_corners=True)
        if long <= S.CROP:
            out = flip_sum(_pad(x, S.CROP, S.CROP, black))[..., :sh, :sw]
        else:
            x = _pad(x, max(sh, S.CROP), max(sw, S.CROP), black)
            ph, pw = x.shape[-2:]
            out = torch.zeros(1, text.shape[0], ph, pw)
            count = torch.zeros(1, 1, ph, pw)
            for iy in range(int(math.ceil((ph - S.CROP) / S.STRIDE)) + 1):
                for ix in range(int(math.ceil((pw - S.CROP) / S.STRIDE)) + 1):
                    y0, x0 = iy * S.STRIDE, ix * S.STRIDE
                    y1, x1 = min(y0 + S.CROP, ph), min(x0 + S.CROP, pw)
                    crop = _pad(x[..., y0:y1, x0:x1], S.CROP, S.CROP, black)
                    out[..., y0:y1, x0:x1] += flip_sum(crop)[..., : y1 - y0, : x1 - x0]
                    count[..., y0:y1, x0:x1] += 1
            out = (out / count)[..., :sh, :sw]
        out = resize_logits(out, (h, w))
        total = out if total is None else total + out
    return total


@pytest.mark.parametrize("batch_size", [None, 5])
def test_batched_multiscale_equals_reference(monkeypatch, tiny_vit, batch_size):
    # The real geometry (480² windows) costs ~2 s per window on CPU; the same code at 2/15 scale
    # (64² windows; every branch: padded small scales, tiled large ones, clipped border windows).
    monkeypatch.setattr(segmentation, "BASE_SIZE", 70)
    monkeypatch.setattr(segmentation, "CROP", 64)
    monkeypatch.setattr(segmentation, "STRIDE", 42)
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.standard_normal((1, 3, 30, 44)).astype(np.float32))
    text = tiny_vit.encode_text("a, b, c")
    black = torch.full((3,), -1.0)
    shapes = []

    def encode(x):
        shapes.append(tuple(x.shape))
        return tiny_vit.encode_image(x)

    got = multiscale_logits(encode, text, image, black, batch_size=batch_size)
    n_calls = len(shapes)
    want = _reference(tiny_vit.encode_image, text, image, black)
    assert got.shape == want.shape == (1, 3, 30, 44)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    if batch_size is None:
        assert n_calls == 1  # every crop of the image in one batch
    else:
        assert {s[0] for s in shapes} == {batch_size}  # the last call is padded to the same shape
