"""The Python API: load / random_model / load_or_random and LSegModel's methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lsegrt
from lsegrt.api import load_or_random
from lsegrt.errors import LsegError


def test_public_names():
    for name in ("load", "random_model", "Encoder", "LSegModel", "LsegError", "split_labels", "__version__"):
        assert hasattr(lsegrt, name)


def test_random_model_is_seeded():
    a, b = lsegrt.random_model("vit_tiny", seed=0), lsegrt.random_model("vit_tiny", seed=0)
    c = lsegrt.random_model("vit_tiny", seed=1)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.encode_image(x), b.encode_image(x))
    assert not torch.equal(a.encode_image(x), c.encode_image(x))
    assert a.is_random and a.source == "random:vit_tiny:seed0"


def test_preprocess(tiny_model, chelsea):
    from PIL import Image

    x = tiny_model.preprocess(chelsea, 128)
    assert x.shape == (1, 3, 96, 128) and x.dtype == torch.float32
    assert torch.equal(x, tiny_model.preprocess(Image.fromarray(chelsea), 128))
    assert tiny_model.preprocess(chelsea, (64, 96)).shape == (1, 3, 64, 96)
    lo, hi = (-1.0, 1.0) if tiny_model.variant == "vit_tiny" else (-2.2, 2.7)
    assert lo - 1e-4 <= float(x.min()) and float(x.max()) <= hi


def test_encode_image_and_text(tiny_model):
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    f = tiny_model.encode_image(x)
    assert f.shape == (2, 512, 32, 48)
    assert torch.allclose(torch.linalg.vector_norm(f, dim=1), torch.ones(2, 32, 48), atol=1e-5)
    t = tiny_model.encode_text("dog, grass, other")
    assert t.shape == (3, 512)
    assert torch.allclose(t.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(t, tiny_model.encode_text(["dog", "grass", "other"]))


def test_encode_image_rejects_bad_shapes(tiny_vit):
    with pytest.raises(LsegError, match="multiples of 32"):
        tiny_vit.encode_image(torch.zeros(1, 3, 48, 64))
    with pytest.raises(LsegError, match=r"\(B,3,H,W\)"):
        tiny_vit.encode_image(torch.zeros(3, 64, 64))


def test_segment(tiny_model, chelsea):
    labels = tiny_model.segment(chelsea, "cat, grass, other", size=128)
    assert labels.shape == chelsea.shape[:2] and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() < 3
    logits = tiny_model.segment_logits(chelsea, ["cat", "grass", "other"], size=128)
    assert logits.shape == (3, *chelsea.shape[:2])
    assert np.array_equal(logits.argmax(0).numpy(), labels)


def test_segment_with_an_encoder(tiny_vit, chelsea):
    with lsegrt.Encoder.open("torch", checkpoint=tiny_vit) as enc:
        a = tiny_vit.segment(chelsea, "cat, other", size=64, encoder=enc)
    assert np.array_equal(a, tiny_vit.segment(chelsea, "cat, other", size=64))


def test_split_labels():
    assert lsegrt.split_labels(" dog,grass , other ,") == ["dog", "grass", "other"]
    with pytest.raises(LsegError, match="empty label list"):
        lsegrt.split_labels(" , ")


def test_long_label_is_an_error(tiny_vit):
    with pytest.raises(LsegError, match="77"):
        tiny_vit.encode_text(["word " * 80])


def test_load_or_random(official_ckpt):
    said = []
    model = load_or_random(None, "rn_tiny", say=said.append)
    assert model.variant == "rn_tiny" and len(said) == 1 and "random" in said[0]
    said.clear()
    model = load_or_random(official_ckpt("vit_tiny"), "rn_tiny", say=said.append)
    assert model.variant == "vit_tiny" and not said and not model.is_random
    assert len(model.sha256) == 64


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu():
    with pytest.raises(LsegError, match="no CUDA GPU"):
        lsegrt.random_model("vit_tiny", device="cuda")


# -- one model-spec grammar --------------------------------------------------------------------------
def test_load_takes_random_specs():
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    a = lsegrt.load("random:vit_tiny:seed1")
    assert a.source == "random:vit_tiny:seed1" and a.is_random
    assert torch.equal(a.encode_image(x), lsegrt.random_model("vit_tiny", seed=1).encode_image(x))
    assert lsegrt.load("random:rn_tiny").source == "random:rn_tiny:seed0"
    for bad, match in (("random:vit_tiny:seedx", "random:VARIANT"), ("random:", "random:VARIANT"),
                       ("random:vit_tiny:1", "random:VARIANT"), ("random:vit_huge", "unknown variant")):
        with pytest.raises(LsegError, match=match):
            lsegrt.load(bad)


# -- bounded text cache ------------------------------------------------------------------------------
def test_text_cache_is_bounded_lru():
    from lsegrt.api import TEXT_CACHE_SIZE

    model = lsegrt.random_model("vit_tiny")
    first = model.encode_text(["label 0"])
    for i in range(1, TEXT_CACHE_SIZE + 20):
        model.encode_text([f"label {i}"])
        assert model.encode_text(["label 0"]) is first  # recently used: kept
    assert len(model._text_cache) == TEXT_CACHE_SIZE
    assert ("label 1",) not in model._text_cache  # least recently used: dropped
    assert torch.equal(model.encode_text(["label 1"]), lsegrt.random_model("vit_tiny").encode_text(["label 1"]))


# -- devices -----------------------------------------------------------------------------------------
ABSENT_GPU = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU here (cuda:0 on a CPU machine)


@pytest.mark.parametrize("device, match", [
    ("meta", "not supported"), ("mps", "not supported"), ("xpu", "not supported"), ("bogus", "unknown device"),
    (ABSENT_GPU, "CUDA GPU"),
])
def test_unsupported_devices(device, match):
    with pytest.raises(LsegError, match=match):
        lsegrt.random_model("vit_tiny", device=device)
