"""Synthetic checkpoints have the official layout (docs/ARCHITECTURE.md §3, §4, §9), checked without allocating."""

from __future__ import annotations

import pytest
import torch

from lsegrt.model.checkpoint import expected_shapes, is_unused, random_state_dict
from lsegrt.model.config import get_config
from lsegrt.synthetic import lightning_payload, official_key_shapes, official_state_dict, save_lightning_checkpoint

FULL = {"vit_l16": (730, 495_144_697), "rn101": (1036, 212_578_617)}


@pytest.mark.parametrize("variant", list(FULL))
def test_full_size_key_counts_and_elements(variant):
    shapes = official_key_shapes(variant)
    keys, elements = FULL[variant]
    assert len(shapes) == keys
    assert sum(s.numel() for s, _ in shapes.values()) == elements
    assert all(k.startswith("net.") for k in shapes)
    bare = {k.removeprefix("net."): v for k, v in shapes.items()}
    used = {k: v for k, v in bare.items() if not is_unused(k)}
    assert {k: tuple(s) for k, (s, _) in used.items()} == {
        k: tuple(s) for k, (s, _) in expected_shapes(get_config(variant)).items()}
    visual = [k for k in bare if k.startswith("clip_pretrained.visual.")]
    assert len(visual) == 152
    assert sum(bare[k][0].numel() for k in visual) == 87_849_216
    # 12 text blocks × 8 attention/MLP tensors + text_projection; the same + proj + conv1 on the visual side
    assert sum(d == torch.float16 for _, d in shapes.values()) == 97 + 98


def test_vit_family_counts():
    """§3: 296 pretrained.model.*, 22 act_postprocess, 110 scratch, 302 clip_pretrained (150 text)."""
    bare = [k.removeprefix("net.") for k in official_key_shapes("vit_l16")]
    count = lambda p: sum(k.startswith(p) for k in bare)  # noqa: E731
    assert (count("pretrained.model."), count("pretrained.act_postprocess"), count("scratch."),
            count("clip_pretrained.")) == (296, 22, 110, 302)
    shapes = official_key_shapes("vit_l16")
    assert tuple(shapes["net.pretrained.model.head.weight"][0]) == (1000, 1024)
    assert tuple(shapes["net.pretrained.model.norm.bias"][0]) == (1024,)
    assert tuple(shapes["net.clip_pretrained.logit_scale"][0]) == ()


def test_visual_tower_is_clip_vit_b32():
    """Keys, shapes and fp16/fp32 dtypes of `clip_pretrained.*` equal open_clip's ViT-B-32 after
    OpenAI-style fp16 conversion (an independent source for the unused image tower)."""
    import open_clip
    from open_clip.model import CLIP, convert_weights_to_lp

    with torch.device("meta"):
        ref = CLIP(**open_clip.get_model_config("ViT-B-32"))
    convert_weights_to_lp(ref, torch.float16)
    ref_sd = {k: (tuple(v.shape), v.dtype) for k, v in ref.state_dict().items()}
    ours = {k.removeprefix("net.clip_pretrained."): (tuple(s), d)
            for k, (s, d) in official_key_shapes("vit_l16").items() if k.startswith("net.clip_pretrained.")}
    assert ours == ref_sd
    v = "visual.transformer.resblocks.11."
    assert ours[v + "attn.in_proj_weight"] == ((2304, 768), torch.float16)
    assert ours["visual.positional_embedding"] == ((50, 768), torch.float32)
    assert ours["visual.conv1.weight"] == ((768, 3, 32, 32), torch.float16)


@pytest.mark.parametrize("variant", ["vit_tiny", "rn_tiny"])
def test_tiny_official_state_dict(variant):
    sd = official_state_dict(variant, seed=0)
    shapes = official_key_shapes(variant)
    assert list(sd) == list(shapes)
    assert all(tuple(sd[k].shape) == tuple(s) and sd[k].dtype == d for k, (s, d) in shapes.items())
    assert sd["net.clip_pretrained.transformer.resblocks.0.attn.in_proj_weight"].dtype == torch.float16
    assert sd["net.clip_pretrained.text_projection"].dtype == torch.float16
    assert sd["net.clip_pretrained.token_embedding.weight"].dtype == torch.float32
    assert sd["net.clip_pretrained.ln_final.weight"].dtype == torch.float32
    # used weights are random_state_dict's, only rounded to the stored dtype
    ref = random_state_dict(get_config(variant), 0)
    for key, value in ref.items():
        assert torch.equal(sd["net." + key], value.to(sd["net." + key].dtype)), key
    again = official_state_dict(variant, seed=0)
    assert all(torch.equal(sd[k], again[k]) for k in sd)
    other = official_state_dict(variant, seed=1)
    assert not torch.equal(sd["net.scratch.head1.weight"], other["net.scratch.head1.weight"])


def test_without_unused_and_fp32():
    sd = official_state_dict("vit_tiny", clip_fp16=False, with_unused=False)
    assert not any(is_unused(k.removeprefix("net.")) for k in sd)
    assert all(v.dtype in (torch.float32, torch.int64) for v in sd.values())


def test_lightning_checkpoint_file(tmp_path):
    sd = official_state_dict("rn_tiny")
    path = save_lightning_checkpoint(tmp_path / "x.ckpt", sd, momentum=True)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert set(obj) == {"state_dict", "epoch", "global_step", "pytorch-lightning_version", "callbacks",
                        "optimizer_states", "lr_schedulers"}
    assert list(obj["state_dict"]) == list(sd)
    state = obj["optimizer_states"][0]["state"]
    assert state and all(set(v) == {"momentum_buffer"} for v in state.values())
    assert [p.name for p in tmp_path.iterdir()] == ["x.ckpt"]  # no temp file left behind


def test_payload_adds_prefix():
    payload = lightning_payload({"scratch.head1.bias": torch.zeros(2)})
    assert list(payload["state_dict"]) == ["net.scratch.head1.bias"]
