"""lsegrt.model.folding: the decoder's re-associated 1×1 convolutions compute what the checkpoint's
layers compute."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lsegrt
from lsegrt.model.branches import split_encoder
from lsegrt.model.decoder import FusionBlock
from lsegrt.model.folding import fold_linear_maps, merged_head


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial biases and BN statistics (the synthetic weights leave some of them at 0/1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.add_(0.05 * torch.randn(t.shape, generator=g))
    return module


@pytest.mark.parametrize("shape", [(2, 3, 64, 96), (1, 3, 96, 64)])
def test_folded_encoder_matches_the_checkpoint_layers_in_float64(tiny_model, shape):
    enc = _randomize(copy.deepcopy(tiny_model.net.image_encoder())).double().eval()
    folded = fold_linear_maps(copy.deepcopy(enc))
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, out = enc(x), folded(x)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
        # the split pieces (the overlap path) use the same folded modules
        torch.testing.assert_close(split_encoder(folded, torch.float64)(x), ref, rtol=1e-10, atol=1e-10)


def test_fold_changes_only_the_copy_and_is_not_applied_twice(tiny_vit):
    enc = copy.deepcopy(tiny_vit.net.image_encoder())
    keys = set(enc.state_dict())
    fold_linear_maps(enc)
    assert isinstance(enc.scratch.head1, nn.Identity)
    head = enc.scratch.refinenet1.out_conv
    assert head.out_channels == tiny_vit.net.scratch.head1.out_channels
    fold_linear_maps(enc)  # a second fold keeps the merged head (head1 is already the identity)
    assert enc.scratch.refinenet1.out_conv is head
    assert keys - set(enc.state_dict()) == {"scratch.head1.weight", "scratch.head1.bias"}
    sc = enc.scratch
    assert [sc.refinenet4.conv_first, sc.refinenet3.conv_first, sc.refinenet2.conv_first] == [True] * 3
    assert not sc.refinenet1.conv_first  # its upsampling stays before the merged head (module docstring)
    assert FusionBlock.conv_first is False  # per copy, off by default
    original = tiny_vit.net.image_encoder()
    assert not isinstance(original.scratch.head1, nn.Identity)
    assert not any(getattr(m, "conv_first", False) for m in original.modules())


def test_out_conv_commutes_with_the_bilinear_upsampling():
    torch.manual_seed(0)
    block = _randomize(FusionBlock(8)).double().eval()
    x, skip = torch.randn(2, 8, 5, 7, dtype=torch.float64), torch.randn(2, 8, 5, 7, dtype=torch.float64)
    ref = block(x, skip)
    block.conv_first = True
    torch.testing.assert_close(block(x, skip), ref, rtol=1e-12, atol=1e-12)


def test_merged_head_is_the_two_convolutions():
    torch.manual_seed(0)
    a, b = nn.Conv2d(6, 6, 1), nn.Conv2d(6, 10, 1)
    x = torch.randn(1, 6, 4, 4)
    torch.testing.assert_close(merged_head(a, b)(x), b(a(x)), rtol=1e-5, atol=1e-5)
    assert merged_head(a, b).weight.dtype == torch.float32


@pytest.mark.parametrize("options, moved", [({"fold": True}, False), ({"fold": True, "upsample_norm": True}, True),
                                            ({"fast": True}, True), ({"fast": True, "upsample_norm": False}, False)])
def test_compile_backend_with_fold_matches_eager(tiny_model, options, moved):
    """With upsample_norm (in fast) the merged head runs before the upsampling (lsegrt.model.upsample_norm)."""
    x = torch.randn(1, 3, 64, 96)
    ref = lsegrt.Encoder.open("torch", checkpoint=tiny_model)(x)
    with lsegrt.Encoder.open("compile", checkpoint=tiny_model, **options) as enc:
        assert enc.describe()["options"]["fold"] is True and enc.describe()["options"]["upsample_norm"] is moved
        torch.testing.assert_close(enc(x), ref, rtol=1e-5, atol=1e-5)
    assert not isinstance(tiny_model.net.scratch.head1, nn.Identity)  # the caller's model is untouched
