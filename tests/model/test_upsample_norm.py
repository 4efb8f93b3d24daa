"""lsegrt.model.upsample_norm: the ×2 bilinear upsampling, bias and L2 norm in one op compute what the
encoder's own layers compute: the op against F.interpolate in float64, its Triton kernel in Triton's
interpreter (no GPU), through torch.compile, and in the whole encoder (folded, split; compiled:
tests/model/test_folding.py)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lsegrt
from lsegrt.model.branches import split_encoder
from lsegrt.model.folding import fold_linear_maps
from lsegrt.model.upsample_norm import UpsampleNormHead, upsample2x_normalize

from .conftest import run_interpreted
from .test_folding import _randomize


def _by_hand(x, bias):
    """float64: interpolate, add the bias, divide by the norm."""
    up = F.interpolate(x.double(), scale_factor=2.0, mode="bilinear", align_corners=True) + bias.double()[:, None, None]
    return up / up.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("shape", [(2, 16, 5, 7), (1, 512, 3, 4), (1, 8, 1, 1)])
def test_op_is_upsampling_bias_and_norm(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x, bias = torch.randn(shape, generator=g), torch.randn(shape[1], generator=g)
    out = upsample2x_normalize(x.to(memory_format=torch.channels_last), bias)
    b, c, h, w = shape
    assert out.shape == (b, c, 2 * h, 2 * w) and out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out.double(), _by_hand(x, bias), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.double().norm(dim=1), torch.ones(b, 2 * h, 2 * w, dtype=torch.float64))


def test_op_compiles_to_the_same_result():
    x, bias = torch.randn(1, 16, 6, 6), torch.randn(16)
    compiled = torch.compile(lambda x, b: upsample2x_normalize(x * 2, b), fullgraph=True)
    torch.testing.assert_close(compiled(x, bias).double(), _by_hand(x * 2, bias), rtol=0, atol=1e-6)


TRITON_CHECK = """
import json, torch
from lsegrt.model.upsample_norm import _triton, reference
out = {}
for shape, dtype, cl in (((2, 16, 5, 7), torch.float32, True), ((1, 40, 4, 9), torch.float16, True),
                         ((1, 8, 3, 3), torch.float16, False), ((1, 24, 1, 2), torch.float32, True)):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g).to(dtype)
    if cl:
        x = x.to(memory_format=torch.channels_last)
    bias = torch.randn(shape[1], generator=g).to(dtype)
    for tile in ((16, 4, False), (8, 2, True), (32, 8, False)):  # the default, and tiles the GPU probe times
        a, b = _triton(x, bias, tile), reference(x, bias)
        out[f"{shape}:{dtype}:{cl}:{tile}"] = [list(a.shape), str(a.dtype), a.is_contiguous(),
                                               float((a.double() - b.double()).abs().max())]
print(json.dumps(out))
"""


def test_triton_kernel_matches_the_reference_in_tritons_interpreter():
    res = run_interpreted(TRITON_CHECK)
    assert len(res) == 4 * 3
    for key, (shape, dtype, contiguous, diff) in res.items():
        b, c, h, w = json.loads(key.split(":")[0].replace("(", "[").replace(")", "]"))
        assert shape == [b, c, 2 * h, 2 * w] and dtype == "torch.float32" and contiguous
        assert diff <= 1e-6, (key, diff)  # both in fp32 from the same inputs


def test_fold_with_upsample_norm_moves_the_merged_head_and_is_not_applied_twice(tiny_vit):
    enc = fold_linear_maps(copy.deepcopy(tiny_vit.net.image_encoder()), upsample_norm=True)
    sc = enc.scratch
    assert isinstance(sc.head1, UpsampleNormHead) and isinstance(sc.refinenet1.out_conv, nn.Identity)
    assert sc.head_normalizes and sc.refinenet1.head_upsamples and sc.refinenet1.conv_first
    head = sc.head1
    assert head.weight.shape == (tiny_vit.net.scratch.head1.out_channels, sc.refinenet1.resConfUnit2.conv1.in_channels, 1, 1)
    fold_linear_maps(enc, upsample_norm=True)
    fold_linear_maps(enc)
    assert sc.head1 is head and isinstance(sc.refinenet1.out_conv, nn.Identity)
    assert not tiny_vit.net.scratch.head_normalizes  # the caller's model is untouched


@pytest.mark.parametrize("shape", [(2, 3, 64, 96), (1, 3, 96, 64)])
def test_encoder_with_upsample_norm_matches_the_checkpoint_layers(tiny_model, shape):
    enc = _randomize(copy.deepcopy(tiny_model.net.image_encoder())).eval()
    moved = fold_linear_maps(copy.deepcopy(enc), upsample_norm=True)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, out = enc(x), moved(x)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(split_encoder(moved)(x), ref, rtol=1e-5, atol=1e-5)  # the overlap path's pieces


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_head_hands_the_op_a_channels_last_map_whatever_its_input(monkeypatch, memory_format):
    """The Triton kernel reads along the channels (10× slower on NCHW, RN101's maps): the head makes its
    convolution's output channels-last itself."""
    import lsegrt.model.upsample_norm as un

    seen = []
    monkeypatch.setattr(un, "upsample2x_normalize", lambda x, b: seen.append(x) or un.reference(x, b))
    conv = nn.Conv2d(8, 16, 1)
    x = torch.randn(1, 8, 5, 6).contiguous(memory_format=memory_format)
    out = UpsampleNormHead(conv)(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last) and not seen[0].is_contiguous()
    torch.testing.assert_close(out.double(), _by_hand(F.conv2d(x, conv.weight), conv.bias), rtol=0, atol=1e-6)


def test_upsample_norm_needs_fold():
    with pytest.raises(lsegrt.LsegError, match="upsample_norm=true .* needs fold=true"):
        lsegrt.Encoder.open("compile", variant="vit_tiny", upsample_norm=True)
