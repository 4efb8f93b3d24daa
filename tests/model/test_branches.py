"""The encoder cut into segments, side branches and a tail (lsegrt.model.branches), and the ViT's
kernel switches (PatchEmbed.as_gemm, Mlp.gelu_epilogue): same results as the encoder itself."""

from __future__ import annotations

import copy

import pytest
import torch
from timm.layers import Mlp as TimmMlp

from lsegrt.model.branches import split_encoder
from lsegrt.model.vit import Mlp, PatchEmbed


@pytest.mark.parametrize("shape", [(2, 3, 64, 96), (1, 3, 96, 64)])
def test_split_pieces_in_order_are_the_encoder_bit_for_bit(tiny_model, shape):
    enc = tiny_model.net.image_encoder().eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(split_encoder(enc)(x), enc(x))


def test_split_has_four_segments_and_branches_covering_every_block(tiny_vit):
    enc = tiny_vit.net.image_encoder()
    split = split_encoder(enc)
    trunk = enc.pretrained.model
    blocks = [b for seg in split.segments for b in seg.blocks]
    assert len(split.segments) == len(split.branches) == 4
    assert [id(b) for b in blocks] == [id(b) for b in trunk.blocks]  # shared, in order, none twice
    assert split.branches[3].unit is None and all(b.unit is not None for b in split.branches[:3])
    assert split.grid(384, 480) == (24, 30)


def test_patch_embedding_as_a_gemm_matches_the_convolution():
    torch.manual_seed(0)
    pe = PatchEmbed(32).eval()
    gemm = copy.deepcopy(pe)
    gemm.as_gemm = True
    for h, w in ((64, 96), (70, 90)):  # 70×90: the pixels past the last full patch are ignored, as by the stride
        x = torch.randn(2, 3, h, w)
        ref, out = pe(x), gemm(x)
        assert out.shape == ref.shape == (2, 32, h // 16, w // 16)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert PatchEmbed.as_gemm is False  # the switch is per copy, off by default


def test_mlp_keeps_timms_keys_and_its_gelu_epilogue_computes_the_same_on_cpu():
    torch.manual_seed(0)
    mlp = Mlp(16, 64).eval()
    assert isinstance(mlp, TimmMlp) and set(mlp.state_dict()) == set(TimmMlp(16, 64).state_dict())
    x = torch.randn(2, 5, 16) * 3
    ref = mlp(x)
    mlp.gelu_epilogue = True
    # on the CPU torch._addmm_activation applies the exact GELU (on CUDA, cuBLASLt's tanh approximation)
    torch.testing.assert_close(mlp(x), ref, rtol=1e-6, atol=1e-6)
    assert Mlp.gelu_epilogue is False


@pytest.mark.parametrize("fold", [False, True])
def test_finish_starts_at_refinenet1s_out_conv_with_or_without_folding(tiny_vit, fold):
    from lsegrt.model.folding import fold_linear_maps

    enc = copy.deepcopy(tiny_vit.net.image_encoder()).eval()
    if fold:
        fold_linear_maps(enc)
    split = split_encoder(enc)
    sc = enc.scratch
    assert split.finish.out_conv is sc.refinenet1.out_conv and split.finish.head1 is sc.head1
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.equal(split(x), enc(x))


def test_channels_last_split_keeps_a_resnets_maps_channels_last_between_pieces(tiny_rn):
    """With ``channels_last`` every map a ResNet's pieces hand on is channels-last (a compiled piece keeps
    the memory format its inputs give, so NCHW maps were converted at every boundary); same features."""
    enc = tiny_rn.net.image_encoder().eval()
    split = split_encoder(enc, channels_last=True)
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        maps, y = [], x
        for segment, branch in zip(split.segments, split.branches):
            y = segment(y)
            maps += [y, branch(y, 0, 0)]
        s1, s2, s3, b4 = maps[1::2]
        maps.append(split.tail(b4, s3, s2, s1))
        assert all(m.is_contiguous(memory_format=torch.channels_last) and not m.is_contiguous() for m in maps)
        torch.testing.assert_close(split(x), enc(x), rtol=1e-5, atol=1e-5)
        assert split_encoder(enc).segments[0](x).is_contiguous()  # off by default: the encoder's own NCHW
