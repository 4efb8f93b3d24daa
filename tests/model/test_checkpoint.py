"""Reading checkpoints: official layout, other containers, strict validation, hostile and broken files."""

from __future__ import annotations

import gc
import os
import random
import sys
import time
import types

import pytest
import torch

import lsegrt
from lsegrt.errors import LsegError
from lsegrt.model.checkpoint import detect_variant, is_unused, read_state_dict, validate
from lsegrt.synthetic import official_key_shapes, official_state_dict, save_lightning_checkpoint


def _check_features(f: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(f.shape) == shape
    assert f.dtype == torch.float32
    norms = torch.linalg.vector_norm(f, dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def _x(h: int = 64, w: int = 64, b: int = 1) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(0))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


@pytest.mark.parametrize("variant", ["vit_tiny", "rn_tiny"])
def test_official_layout_loads_strictly(official_ckpt, variant):
    model = lsegrt.load(official_ckpt(variant))
    assert model.variant == variant
    f = model.encode_image(_x(64, 96, b=2))
    _check_features(f, (2, 512, 32, 48))
    # the image path is stored in fp32: identical to the random model of the same seed
    ref = lsegrt.random_model(variant, seed=0)
    assert torch.equal(f, ref.encode_image(_x(64, 96, b=2)))
    # the text tower went through fp16 storage: equal up to that rounding
    t, t_ref = model.encode_text(["dog", "grass"]), ref.encode_text(["dog", "grass"])
    assert torch.allclose(t, t_ref, atol=2e-2) and not torch.equal(t, t_ref)


@pytest.mark.parametrize("prefix", ["net.", ""])
def test_plain_state_dict_pt(tmp_path, prefix):
    sd = {prefix + k.removeprefix("net."): v for k, v in official_state_dict("vit_tiny").items()}
    torch.save(sd, tmp_path / "plain.pt")
    model = lsegrt.load(tmp_path / "plain.pt")
    _check_features(model.encode_image(_x()), (1, 512, 32, 32))


def test_safetensors_with_mixed_dtypes(tmp_path):
    from safetensors.torch import save_file

    save_file(official_state_dict("rn_tiny"), str(tmp_path / "x.safetensors"))
    model = lsegrt.load(tmp_path / "x.safetensors")
    assert model.variant == "rn_tiny"
    _check_features(model.encode_image(_x()), (1, 512, 32, 32))


def _fake_lightning_module(monkeypatch):
    """A class named pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint, as old Lightning
    pickled it into `callbacks` (docs/ARCHITECTURE.md §9)."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class ModelCheckpoint:
        def __init__(self):
            self.monitor = "val_acc_epoch"
            self.best_model_score = torch.tensor(0.43)
            self.best_model_path = "checkpoints/lseg/epoch=199.ckpt"

    ModelCheckpoint.__module__ = names[-1]
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    sys.modules[names[-1]].ModelCheckpoint = ModelCheckpoint
    return ModelCheckpoint, names


def test_pickled_model_checkpoint_callback_loads(tmp_path, monkeypatch):
    ModelCheckpoint, names = _fake_lightning_module(monkeypatch)
    path = save_lightning_checkpoint(tmp_path / "cb.ckpt", official_state_dict("vit_tiny"),
                                     callbacks={ModelCheckpoint: ModelCheckpoint()})
    for name in names:  # loading must not need Lightning
        monkeypatch.delitem(sys.modules, name)
    assert b"ModelCheckpoint" in path.read_bytes()
    model = lsegrt.load(path)
    _check_features(model.encode_image(_x()), (1, 512, 32, 32))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_arbitrary_global_is_refused(tmp_path):
    marker = tmp_path / "executed"
    path = save_lightning_checkpoint(tmp_path / "evil.ckpt", official_state_dict("vit_tiny"),
                                     callbacks={"x": _Evil(marker)})
    with pytest.raises(LsegError) as exc:
        lsegrt.load(path)
    assert "evil.ckpt" in _one_line(exc)
    assert not marker.exists()


def test_torchvision_resnet_is_not_lseg(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pt")
    with pytest.raises(LsegError) as exc:
        lsegrt.load(tmp_path / "resnet18.pt")
    msg = _one_line(exc)
    assert "not an LSeg state_dict" in msg and "bn1" in msg


def _meta_state_dict(variant: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix("net."): torch.empty(s, dtype=d, device="meta")
            for k, (s, d) in official_key_shapes(variant).items()}


@pytest.mark.parametrize("variant", ["vit_l16", "rn101"])
def test_full_size_layout_validates(variant):
    sd = _meta_state_dict(variant)
    cfg = detect_variant(sd)
    assert cfg.name == variant
    used = validate(sd, cfg)
    assert len(used) == len(sd) - {"vit_l16": 157, "rn101": 153}[variant]
    assert all(v.dtype in (torch.float32, torch.int64) for v in used.values())


def test_renamed_dropped_and_reshaped_keys_are_named():
    sd = _meta_state_dict("vit_l16")
    sd["pretrained.model.blocks.3.attn.qkv.wieght"] = sd.pop("pretrained.model.blocks.3.attn.qkv.weight")
    del sd["scratch.refinenet2.out_conv.bias"]
    sd["scratch.head1.weight"] = torch.empty(256, 256, 1, 1, device="meta")
    with pytest.raises(LsegError) as exc:
        validate(sd, detect_variant(sd), source="broken.ckpt")
    msg = _one_line(exc)
    assert "broken.ckpt" in msg and "vit_l16" in msg
    assert "2 missing" in msg and "pretrained.model.blocks.3.attn.qkv.weight" in msg
    assert "scratch.refinenet2.out_conv.bias" in msg
    assert "1 unexpected" in msg and "pretrained.model.blocks.3.attn.qkv.wieght" in msg
    assert "1 mis-shaped" in msg and "scratch.head1.weight [256, 256, 1, 1]≠[512, 256, 1, 1]" in msg


def test_broken_tiny_checkpoint_file_is_refused(tmp_path):
    sd = official_state_dict("vit_tiny")
    del sd["net.scratch.head1.bias"]
    save_lightning_checkpoint(tmp_path / "broken.ckpt", sd)
    with pytest.raises(LsegError) as exc:
        lsegrt.load(tmp_path / "broken.ckpt")
    assert "broken.ckpt" in _one_line(exc)


def test_missing_file(tmp_path):
    with pytest.raises(LsegError) as exc:
        lsegrt.load(tmp_path / "nope.ckpt")
    assert "not found" in _one_line(exc)


def test_corrupt_file(tmp_path):
    (tmp_path / "random.ckpt").write_bytes(random.Random(0).randbytes(8192))
    with pytest.raises(LsegError) as exc:
        lsegrt.load(tmp_path / "random.ckpt")
    assert "random.ckpt" in _one_line(exc)


@pytest.mark.parametrize("data", [b"\x87" + bytes(100), random.Random(2).randbytes(8192)], ids=["tuple2", "seed2"])
def test_corrupt_file_escaping_errors(tmp_path, data):
    (tmp_path / "random.ckpt").write_bytes(data)
    with pytest.raises(LsegError):
        lsegrt.load(tmp_path / "random.ckpt")


def test_truncated_file(tmp_path, official_ckpt):
    data = official_ckpt("vit_tiny").read_bytes()
    (tmp_path / "half.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(LsegError) as exc:
        lsegrt.load(tmp_path / "half.ckpt")
    assert "half.ckpt" in _one_line(exc)


def test_corrupt_safetensors(tmp_path):
    (tmp_path / "random.safetensors").write_bytes(os.urandom(4096))
    with pytest.raises(LsegError):
        read_state_dict(tmp_path / "random.safetensors")


def test_prefix_is_removed_not_stripped(tmp_path):
    """§9: removeprefix('net.'), never lstrip('net.') (which would eat 'n', 'e', 't' and '.')."""
    torch.save({"net.net.x": torch.zeros(1), "net.text": torch.zeros(1)}, tmp_path / "x.pt")
    assert set(read_state_dict(tmp_path / "x.pt")) == {"net.x", "text"}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["vit_l16", "rn101"])
def test_full_size_official_checkpoint(tmp_path, variant):
    """A full-size synthetic official checkpoint (≈1.7 GB for ViT-L/16) loads strictly and runs."""
    t0 = time.perf_counter()
    path = save_lightning_checkpoint(tmp_path / f"{variant}.ckpt", official_state_dict(variant, seed=0))
    gc.collect()
    t_write = time.perf_counter() - t0
    model = lsegrt.load(path)
    assert model.variant == variant
    gc.collect()
    t_load = time.perf_counter() - t0 - t_write
    f = model.encode_image(_x(64, 64))
    _check_features(f, (1, 512, 32, 32))
    assert model.encode_text(["others", "dog"]).shape == (2, 512)
    del model, f
    path.unlink()
    gc.collect()
    print(f"{variant}: wrote {t_write:.1f} s, loaded {t_load:.1f} s, total {time.perf_counter() - t0:.1f} s")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_weight_is_refused_by_name(tmp_path, value):
    sd = official_state_dict("rn_tiny")
    sd["net.scratch.head1.weight"][3, 7] = value  # one value among thousands
    src = save_lightning_checkpoint(tmp_path / "diverged.ckpt", sd)
    with pytest.raises(LsegError, match=r"diverged.ckpt: 1 tensor\(s\) hold NaN or Inf \(scratch.head1.weight\)") as exc:
        lsegrt.load(src)
    _one_line(exc)


def test_many_non_finite_weights_are_listed_truncated():
    sd = {k.removeprefix("net."): v for k, v in official_state_dict("rn_tiny").items()}
    bad = sorted(k for k, v in sd.items() if v.is_floating_point() and not is_unused(k))[:9]
    for key in bad:
        sd[key].view(-1)[0] = float("nan")
    with pytest.raises(LsegError) as exc:
        validate(sd, detect_variant(sd), source="many.ckpt")
    msg = _one_line(exc)
    assert "9 tensor(s) hold NaN or Inf" in msg and bad[0] in msg and "(+3 more)" in msg and bad[-1] not in msg


def test_non_finite_values_in_unused_families_are_ignored():
    sd = {k.removeprefix("net."): v for k, v in official_state_dict("rn_tiny").items()}
    sd["clip_pretrained.logit_scale"] = torch.tensor(float("inf"))  # never used by the encoders
    validate(sd, detect_variant(sd))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_non_float_tensor_where_floats_belong_is_refused(tmp_path, dtype):
    sd = official_state_dict("vit_tiny")
    key = "net.pretrained.model.blocks.0.attn.qkv.weight"
    sd[key] = torch.ones_like(sd[key], dtype=dtype)
    src = save_lightning_checkpoint(tmp_path / "typed.ckpt", sd)
    with pytest.raises(LsegError, match=r"typed.ckpt does not match LSeg vit_tiny: 1 of the wrong type "
                                        rf"\(pretrained.model.blocks.0.attn.qkv.weight {str(dtype)[6:]} \(expected float\)\)"):
        lsegrt.load(src)


def test_float_where_an_integer_counter_belongs_is_refused():
    sd = {k.removeprefix("net."): v for k, v in official_state_dict("vit_tiny").items()}
    key = "scratch.refinenet1.resConfUnit1.bn1.num_batches_tracked"
    sd[key] = sd[key].float()
    with pytest.raises(LsegError, match=rf"{key} float32 \(expected integer\)"):
        validate(sd, detect_variant(sd), source="x.ckpt")


def test_weights_identity_ignores_file_bytes_and_unused_entries(tmp_path):
    """The identity engines are bound to: same inference weights → same identity, whatever the container."""
    from lsegrt.model.checkpoint import weights_sha256

    sd = official_state_dict("rn_tiny")
    a = lsegrt.load(save_lightning_checkpoint(tmp_path / "a.ckpt", sd, momentum=True))
    b = lsegrt.load(save_lightning_checkpoint(tmp_path / "b.ckpt", sd))  # no optimizer state: other bytes
    torch.save({k.removeprefix("net."): v for k, v in sd.items() if not k.startswith("net.clip_pretrained.visual")},
               tmp_path / "c.pt")  # plain state dict without the unused family
    c = lsegrt.load(tmp_path / "c.pt")
    assert a.sha256 == b.sha256 == c.sha256 and len(a.sha256) == 64
    sd["net.scratch.head1.bias"][0] += 1e-3
    d = lsegrt.load(save_lightning_checkpoint(tmp_path / "d.ckpt", sd))
    assert d.sha256 != a.sha256
    clean = {k.removeprefix("net."): v for k, v in official_state_dict("rn_tiny").items()}
    assert weights_sha256(validate(clean, detect_variant(clean))) == a.sha256
    assert lsegrt.random_model("rn_tiny", 0).sha256 != lsegrt.random_model("rn_tiny", 1).sha256  # recipe hash


def test_weights_identity_is_read_once_per_file_version(tmp_path, monkeypatch, cache_dir):
    from lsegrt.model import checkpoint as C

    src = save_lightning_checkpoint(tmp_path / "m.ckpt", official_state_dict("rn_tiny"))
    first = C.checkpoint_identity(src)
    reads = []
    real = C.read_state_dict
    monkeypatch.setattr(C, "read_state_dict", lambda p: reads.append(p) or real(p))
    assert C.checkpoint_identity(src) == first and reads == []  # remembered by stat: no reload
    assert lsegrt.load(src).sha256 == first
    reads.clear()
    sd = official_state_dict("rn_tiny")
    sd["net.scratch.head1.bias"][0] += 1
    save_lightning_checkpoint(src, sd)  # same path, new weights
    assert C.checkpoint_identity(src) != first and len(reads) == 1


# -- the text tower, built on first use -------------------------------------------------------------
@pytest.mark.parametrize("variant", ["vit_tiny", "vit_l16"])
def test_text_layout_written_out_equals_open_clips_tower(variant):
    """Checking a checkpoint uses text.state_shapes (no open_clip); it must be open_clip's real layout."""
    from lsegrt.model.config import get_config
    from lsegrt.model.text import build_text_tower, state_shapes

    cfg = get_config(variant).text
    with torch.device("meta"):
        tower = build_text_tower(cfg)
    assert {k: (tuple(v.shape), v.dtype) for k, v in tower.state_dict().items()} == {
        k: (tuple(s), d) for k, (s, d) in state_shapes(cfg).items()}


def test_image_only_work_never_imports_open_clip(official_ckpt, tmp_path):
    """Loading a checkpoint and encoding images (what encode/extract and a saved build's first inference
    do) leaves open_clip (and the transformers import it triggers) out; text builds the tower then."""
    import subprocess

    path = official_ckpt("vit_tiny")
    code = (
        "import sys, torch, lsegrt\n"
        f"m = lsegrt.load({str(path)!r})\n"
        "x = torch.randn(1, 3, 64, 64)\n"
        "feats = m.encode_image(x)\n"
        "enc = lsegrt.Encoder.open('torch', checkpoint=m)\n"
        "assert torch.equal(enc(x), feats)\n"
        "print('open_clip' in sys.modules)\n"
        "t = m.encode_text(['dog', 'grass'])\n"
        "print('open_clip' in sys.modules, tuple(t.shape))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["False", "True (2, 512)"]


def test_net_is_the_whole_tree_whose_text_tower_is_built_on_first_use(official_ckpt):
    from lsegrt.model.checkpoint import build_net, detect_variant, read_state_dict, validate

    path = official_ckpt("vit_tiny")
    model = lsegrt.load(path)
    lazy = model.encode_text(["a dog", "grass"])
    sd = read_state_dict(path)
    sd = validate(sd, detect_variant(sd))
    eager = build_net(detect_variant(sd), sd)
    assert eager.has_text_tower
    assert set(model.net.state_dict()) == set(eager.state_dict())  # `net` is the whole checkpoint tree
    for k, v in eager.state_dict().items():
        assert torch.equal(model.net.state_dict()[k], v), k
    from lsegrt.model.text import encode_tokens, tokenize

    ids = tokenize(["a dog", "grass"])
    ref = torch.nn.functional.normalize(encode_tokens(eager.clip_pretrained, ids), dim=-1)
    assert torch.allclose(lazy, ref, atol=1e-6)
    # built under encode_text's inference mode, the tower still holds ordinary parameters
    assert not any(p.is_inference() for p in model.text_tower.parameters())
    model.net.load_state_dict(eager.state_dict())  # in-place updates outside inference mode work
