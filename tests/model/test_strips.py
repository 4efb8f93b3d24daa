"""3×3 convolutions in row strips (lsegrt.model.strips, the compile backend's ``strip_pixels``): the same
output as one convolution, the same state-dict keys, and only the side branches' convolutions cut."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsegrt.model.branches import split_encoder
from lsegrt.model.strips import StripConv2d, strip_bounds


@pytest.mark.parametrize("height, width, pixels, expected", [
    (8, 4, 8, [(0, 2), (2, 4), (4, 6), (6, 8)]),
    (7, 4, 12, [(0, 3), (3, 6), (6, 7)]),  # the last strip shorter
    (8, 4, 32, [(0, 8)]),  # fits
    (8, 4, 0, [(0, 8)]),  # off
    (3, 100, 10, [(0, 1), (1, 2), (2, 3)]),  # at least one row a strip
])
def test_strip_bounds_cover_every_row_once(height, width, pixels, expected):
    assert strip_bounds(height, width, pixels) == expected


@pytest.mark.parametrize("bias, groups", [(False, 1), (True, 1), (True, 2)])
@pytest.mark.parametrize("height, width, pixels", [(9, 5, 10), (16, 8, 8), (5, 7, 7), (6, 6, 36)])
def test_a_strip_convolution_computes_what_one_convolution_does(bias, groups, height, width, pixels):
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, 3, padding=1, bias=bias, groups=groups).double()
    strip = StripConv2d(4, 6, 3, padding=1, bias=bias, groups=groups).double()
    strip.load_state_dict(ref.state_dict())
    strip.strip_pixels = pixels
    x = torch.randn(2, 4, height, width, dtype=torch.float64)
    torch.testing.assert_close(strip(x), ref(x), rtol=0, atol=1e-12)
    cl = x.contiguous(memory_format=torch.channels_last)  # the layout the compiled decoder runs in
    torch.testing.assert_close(strip(cl), ref(cl), rtol=0, atol=1e-12)


def test_a_strip_convolution_keeps_nn_conv2ds_keys_and_leaves_other_shapes_whole(monkeypatch):
    assert list(StripConv2d(4, 6, 3, padding=1).state_dict()) == list(nn.Conv2d(4, 6, 3, padding=1).state_dict())
    calls = []
    monkeypatch.setattr(torch.nn.functional, "conv2d",
                        lambda x, *a, **k: calls.append(x.shape[-2]) or torch.zeros(x.shape[0], 4, *x.shape[-2:]))
    for conv in (StripConv2d(4, 4, 1), StripConv2d(4, 4, 3, stride=2, padding=1), StripConv2d(4, 4, 3)):
        conv.strip_pixels = 4
        assert not conv._strippable()  # 1×1, strided, unpadded: one convolution, as nn.Conv2d
    conv = StripConv2d(4, 4, 3, padding=1)
    conv.strip_pixels = 8
    conv(torch.zeros(1, 4, 8, 4))
    assert calls == [3, 4, 4, 3]  # four strips of two rows, halo rows included


def test_split_encoder_cuts_only_the_convolutions_beside_the_backbone(tiny_vit):
    enc = tiny_vit.net.image_encoder().eval()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = enc(x)
        split = split_encoder(enc, strip_pixels=24)
        cut = {name for name, m in enc.named_modules() if isinstance(m, StripConv2d) and m.strip_pixels}
        assert cut == {f"scratch.layer{k}_rn" for k in (1, 2, 3)} | {
            f"scratch.refinenet{k}.resConfUnit1.conv{c}" for k in (1, 2, 3) for c in (1, 2)}
        torch.testing.assert_close(split(x), ref, rtol=1e-5, atol=1e-6)
