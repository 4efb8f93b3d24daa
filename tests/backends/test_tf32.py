"""The `tf32` option of the PyTorch backends: flags set for the call only, recorded, validated."""

from __future__ import annotations

import pytest
import torch

import lsegrt
from lsegrt.backends.common import tf32_scope
from lsegrt.errors import LsegError


def _flags():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("tf32", [True, False])
def test_scope_sets_both_flags_and_restores_them(tf32):
    before = _flags()
    with tf32_scope(tf32):
        assert _flags() == (tf32, tf32)
    assert _flags() == before
    with pytest.raises(RuntimeError), tf32_scope(tf32):
        raise RuntimeError("a failing call restores the flags too")
    assert _flags() == before


def test_unset_leaves_pytorch_flags_alone():
    before = _flags()
    with tf32_scope(None):
        assert _flags() == before


@pytest.mark.parametrize("tf32", [True, False])
def test_torch_backend_runs_under_the_requested_flags(tiny_model, tf32):
    seen = []
    with lsegrt.Encoder.open("torch", checkpoint=tiny_model, tf32=tf32) as enc:
        inner = enc.module.forward
        enc.module.forward = lambda x: (seen.append(_flags()), inner(x))[1]
        before = _flags()
        out = enc(torch.randn(1, 3, 64, 64))
        assert seen == [(tf32, tf32)] and _flags() == before
        assert out.shape == (1, 512, 32, 32)
        described = enc.describe()
    assert (described["tf32_matmul"], described["tf32_cudnn"]) == (tf32, tf32)


def test_describe_reports_pytorch_defaults_when_unset(tiny_model):
    with lsegrt.Encoder.open("torch", checkpoint=tiny_model) as enc:
        d = enc.describe()
    assert (d["tf32_matmul"], d["tf32_cudnn"]) == _flags()


@pytest.mark.parametrize("backend", ["torch", "compile"])
def test_bad_value_is_one_line_error(tiny_model, backend):
    with pytest.raises(LsegError, match="tf32='maybe': expected true or false"):
        lsegrt.Encoder.open(backend, checkpoint=tiny_model, tf32="maybe")
