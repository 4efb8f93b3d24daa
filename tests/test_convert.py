"""`convert_checkpoint`: official .ckpt → inference-only .safetensors, bit-identical after loading."""

from __future__ import annotations

import pytest
import torch

import lsegrt
from lsegrt.convert import FORMAT, convert_checkpoint, read_metadata
from lsegrt.errors import LsegError
from lsegrt.model.checkpoint import expected_shapes
from lsegrt.model.config import get_config
from lsegrt.sidecar import sha256_file
from lsegrt.synthetic import official_key_shapes, official_state_dict, save_lightning_checkpoint


@pytest.mark.parametrize("variant", ["vit_tiny", "rn_tiny"])
def test_convert_round_trip(tmp_path, official_ckpt, variant):
    from safetensors.torch import load_file

    src = official_ckpt(variant)
    dst = tmp_path / f"{variant}.safetensors"
    info = convert_checkpoint(src, dst)
    assert info["variant"] == variant
    assert sorted(p.name for p in tmp_path.iterdir()) == [dst.name]

    tensors = load_file(str(dst))
    exp = expected_shapes(get_config(variant))
    assert set(tensors) == set(exp) and info["kept"] == len(exp)
    assert info["dropped"] == len(official_key_shapes(variant)) - len(exp)
    assert "clip_pretrained.visual.*" in info["dropped_families"]
    assert info["dst_bytes"] < info["src_bytes"]  # no momentum, no unused families
    # stored dtypes are kept: fp16 CLIP stays fp16
    assert tensors["clip_pretrained.text_projection"].dtype == torch.float16
    assert tensors["clip_pretrained.transformer.resblocks.1.mlp.c_fc.weight"].dtype == torch.float16
    assert tensors["clip_pretrained.ln_final.weight"].dtype == torch.float32
    original = official_state_dict(variant)
    assert all(torch.equal(v, original["net." + k]) for k, v in tensors.items())

    a, b = lsegrt.load(src), lsegrt.load(dst)
    meta = read_metadata(dst)
    assert meta == {"format": FORMAT, "variant": variant, "source": src.name, "source_sha256": sha256_file(src),
                    "weights_sha256": a.sha256, "lsegrt_version": lsegrt.__version__}
    assert a.sha256 == b.sha256  # one model, one identity: engines built from either serve both

    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.encode_image(x), b.encode_image(x))
    assert torch.equal(a.encode_text(["dog", "other"]), b.encode_text(["dog", "other"]))


def test_refuses_other_suffix(tmp_path, official_ckpt):
    with pytest.raises(LsegError, match=r"\.safetensors"):
        convert_checkpoint(official_ckpt("vit_tiny"), tmp_path / "out.pt")
    assert list(tmp_path.iterdir()) == []


def test_refuses_invalid_source(tmp_path):
    sd = official_state_dict("rn_tiny")
    sd["net.scratch.head1.weight"] = torch.zeros(3, 3)
    src = save_lightning_checkpoint(tmp_path / "bad.ckpt", sd)
    with pytest.raises(LsegError, match="bad.ckpt does not match"):
        convert_checkpoint(src, tmp_path / "out.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.ckpt"]


def test_refuses_missing_output_folder(tmp_path, official_ckpt):
    with pytest.raises(LsegError, match="does not exist"):
        convert_checkpoint(official_ckpt("vit_tiny"), tmp_path / "missing" / "out.safetensors")
    assert list(tmp_path.iterdir()) == []
