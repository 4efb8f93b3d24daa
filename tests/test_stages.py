"""The encoder cut into stages: chained, the stages compute exactly the encoder's output; FLOPs per stage
sum to the whole encoder's count."""

from __future__ import annotations

import pytest
import torch

from lsegrt.backends.common import encoder_module
from lsegrt.flops import encoder_flops, flops_by_stage
from lsegrt.stages import block_groups, encoder_stages, run_stages


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_chained_stages_reproduce_the_encoder(tiny_model, precision):
    enc = encoder_module(tiny_model, precision, torch.device("cpu"))
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = enc(x)
        staged = run_stages(encoder_stages(enc), x)
    assert staged.dtype == torch.float32 and torch.equal(whole, staged)


def test_stage_names_follow_the_architecture(tiny_vit, tiny_rn):
    vit = [s.name for s in encoder_stages(encoder_module(tiny_vit, "fp32", torch.device("cpu")), groups=2)]
    assert vit == ["patch_embed", "blocks 0-1", "blocks 2-3", "reassemble", "layer_rn", "refinenet4",
                   "refinenet3", "refinenet2", "refinenet1", "head", "l2norm"]
    rn = [s.name for s in encoder_stages(tiny_rn.net.image_encoder())]
    assert rn[:4] == ["stem+layer1", "layer2", "layer3", "layer4"] and rn[4:] == vit[4:]


def test_block_groups_cover_every_block_once():
    assert block_groups(24, (5, 11, 17, 23), 4) == [(0, 5), (6, 11), (12, 17), (18, 23)]
    assert block_groups(4, (0, 1, 2, 3), 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    five = block_groups(24, (5, 11, 17, 23), 5)
    assert five[0][0] == 0 and five[-1][1] == 23 and all(a[1] + 1 == b[0] for a, b in zip(five, five[1:]))
    assert {last - first + 1 for first, last in five} == {4, 5}
    assert block_groups(4, (0, 1, 2, 3), 9) == [(0, 0), (1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("variant, hw", [("vit_l16", (384, 384)), ("rn101", (480, 640)), ("vit_tiny", (64, 96))])
def test_stage_flops_sum_to_the_encoder(variant, hw):
    per_stage = flops_by_stage(variant, *hw)
    assert sum(per_stage.values()) == encoder_flops(variant, *hw)
    assert per_stage["l2norm"] == 0 and min(v for k, v in per_stage.items() if k != "l2norm") > 0
    if variant == "vit_l16":  # the four block groups are identical
        assert len({v for k, v in per_stage.items() if k.startswith("blocks")}) == 1
