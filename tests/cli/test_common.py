"""Shared CLI pieces: one model-spec grammar for every verb, one encoder path, one device rule."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

SPEC = "random:vit_tiny:seed1"


@pytest.fixture(autouse=True)
def small_vocabulary(monkeypatch, cache_dir):
    from lsegrt import vocab

    monkeypatch.setattr(vocab, "whole_words", lambda min_len=3: ["cat", "dog", "grass", "sky"])


@pytest.mark.parametrize("verb", ["segment", "encode", "wordfree", "bench", "compare"])
def test_random_spec_works_in_every_verb(tmp_path, run_cli, chelsea, verb):
    import lsegrt

    out = tmp_path / "out"
    argv = {
        "segment": ["segment", "--labels", "cat, other", "--size", "64", "--out", out],
        "encode": ["encode", "--size", "64", "--out", tmp_path / "f.npy"],
        "wordfree": ["wordfree", "--size", "64", "--out", out],
        "bench": ["bench", "--size", "64", "--min-seconds", "0", "--min-iters", "2", "--max-iters", "2",
                  "--warmup-iters", "0", "--warmup-seconds", "0", "--out", out],
        "compare": ["compare", "--candidate", "torch", "--size", "64", "sample:chelsea", "--out", out],
    }[verb]
    code, stdout, err = run_cli(*argv, "--checkpoint", SPEC, "--device", "cpu")
    assert code == 0, err
    model = lsegrt.random_model("vit_tiny", seed=1)
    if verb == "segment":
        ref = model.segment(chelsea, "cat, other", size=64)
        assert np.array_equal(np.asarray(Image.open(out / "chelsea_labels.png")), ref)
    elif verb == "encode":
        assert np.array_equal(np.load(tmp_path / "f.npy"), model.encode_image(model.preprocess(chelsea, 64)).numpy())
    assert "random vit_l16" not in stdout  # the spec was used, not the default


def test_open_encoder_is_always_an_encoder(tiny_vit):
    from lsegrt.backends.base import Encoder
    from lsegrt.cli import build_parser
    from lsegrt.cli.common import open_encoder

    args = build_parser().parse_args(["segment"])
    with open_encoder(args, tiny_vit) as enc:
        assert isinstance(enc, Encoder)
        assert enc.describe()["backend"] == "torch" and enc.precision == "fp32" and enc.device == tiny_vit.device
        x = tiny_vit.preprocess(np.zeros((40, 60, 3), np.uint8), 64)
        assert np.array_equal(enc(x).numpy(), tiny_vit.encode_image(x).numpy())
    args = build_parser().parse_args(["segment", "--precision", "bf16"])
    with open_encoder(args, tiny_vit) as enc:
        assert enc.precision == "bf16"


def test_resolve_device():
    from lsegrt.cli.common import resolve_device
    from lsegrt.errors import LsegError

    assert resolve_device("cpu") == "cpu" and resolve_device("auto") in ("cpu", "cuda:0")
    import torch

    for bad in ("meta", "mps", "xpu", f"cuda:{torch.cuda.device_count()}", "nonsense"):
        with pytest.raises(LsegError):
            resolve_device(bad)
