"""The compile backend's `overlap` path and the `fast` bundle on the CPU: same features as the encoder,
several input shapes, the caller's model untouched, and their option rules. (On a GPU the pieces also
run on two streams inside one CUDA graph: measured in docs/BENCHMARKS.md.)"""

from __future__ import annotations

import pytest
import torch

import lsegrt
from lsegrt.backends.compiled import CompileOptions, pdl_supported
from lsegrt.backends.overlap import OverlapGraph
from lsegrt.errors import LsegError
from lsegrt.model.branches import split_encoder


def test_overlap_graph_on_the_cpu_runs_the_pieces_in_order(tiny_vit):
    enc = tiny_vit.net.image_encoder().eval()
    graph = OverlapGraph(split_encoder(enc), lambda m: m, torch.device("cpu"))
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(graph(x), enc(x))


def test_fast_compile_matches_the_encoder_for_more_shapes_than_dynamos_default_limit(tiny_vit):
    """Four segments share one forward, so each shape costs four Dynamo entries of it: three shapes
    (12 entries) pass the default limit of 8 only because the limit is scaled while pieces compile."""
    ref = lsegrt.Encoder.open("torch", checkpoint=tiny_vit)
    with lsegrt.Encoder.open("compile", checkpoint=tiny_vit, fast=True) as enc:
        opts = enc.describe()["options"]
        assert opts["overlap"] and opts["patch_gemm"] and opts["gelu_epilogue"] and opts["channels_last"]
        assert opts["fold"]
        for shape in ((1, 3, 64, 64), (2, 3, 64, 96), (1, 3, 96, 64)):
            x = torch.randn(shape)
            torch.testing.assert_close(enc(x), ref(x), rtol=1e-5, atol=1e-5)
    switched = [m for m in tiny_vit.net.modules() if getattr(m, "as_gemm", False) or getattr(m, "gelu_epilogue", False)
                or getattr(m, "conv_first", False)]
    assert switched == []  # the switches were set on the backend's own copy
    assert not isinstance(tiny_vit.net.scratch.head1, torch.nn.Identity)  # and the head merged there


def test_overlap_serves_resnet_too(tiny_rn):
    x = torch.randn(1, 3, 64, 64)
    ref = lsegrt.Encoder.open("torch", checkpoint=tiny_rn)(x)
    with lsegrt.Encoder.open("compile", checkpoint=tiny_rn, overlap=True) as enc:
        torch.testing.assert_close(enc(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels_last", [True, False])
def test_fast_resnet_pieces_hand_on_channels_last_maps_when_asked(tiny_rn, channels_last):
    x = torch.randn(1, 3, 64, 64)
    ref = lsegrt.Encoder.open("torch", checkpoint=tiny_rn)(x)
    with lsegrt.Encoder.open("compile", checkpoint=tiny_rn, fast=True, channels_last=channels_last) as enc:
        assert enc.module.split.segments[0].channels_last is channels_last
        torch.testing.assert_close(enc(x), ref, rtol=1e-5, atol=1e-5)


def test_fast_fills_only_what_the_caller_left_unset():
    opts = CompileOptions.parse({"fast": True, "channels_last": False})
    assert (opts.overlap, opts.patch_gemm, opts.gelu_epilogue, opts.channels_last, opts.fold) == (True, True, True,
                                                                                                  False, True)
    assert opts.cls_key_apart and opts.upsample_norm
    assert CompileOptions.parse({"fast": True}, "resnet").pdl == pdl_supported()  # measured with RN101 too
    assert CompileOptions.parse({"fast": True, "pdl": False}, "vit").pdl is False
    stock = CompileOptions.parse({})
    assert (stock.overlap, stock.patch_gemm, stock.gelu_epilogue, stock.fold, stock.fast) == (False,) * 5
    assert (stock.cls_key_apart, stock.upsample_norm, stock.pdl) == (False,) * 3
    # upsample_norm moves fold's merged head: without fold the bundle leaves it off instead of failing
    unfolded = CompileOptions.parse({"fast": True, "fold": False})
    assert not unfolded.fold and not unfolded.upsample_norm and unfolded.overlap
    # overlap compiles its pieces without Inductor's CUDA graphs: the whole call is one graph of its own
    assert CompileOptions.parse({"overlap": True, "cuda_graph": True}).effective_mode == "default"


@pytest.mark.parametrize("options, message", [
    ({"overlap": True, "dynamic": True}, "cannot be dynamic"),
    ({"overlap": True, "mode": "max-autotune"}, "leave mode unset"),
    ({"fast": "yes"}, "fast='yes': expected true or false"),
    ({"patch_gemm": 1}, "patch_gemm=1: expected true or false"),
])
def test_overlap_option_rules(options, message):
    with pytest.raises(LsegError, match=message):
        CompileOptions.parse(options)


def test_a_capture_drops_cublas_workspaces_before_and_after_even_when_it_fails(monkeypatch):
    """What keeps a captured GEMM's cuBLAS workspace in the graph's own pool (lsegrt.backends.overlap)."""
    from lsegrt.backends import overlap

    calls = []
    monkeypatch.setattr(torch._C, "_cuda_clearCublasWorkspaces", lambda: calls.append("clear"), raising=False)
    with overlap._cublas_workspaces_in_graph_pool():
        calls.append("capture")
    assert calls == ["clear", "capture", "clear"]
    calls.clear()
    with pytest.raises(RuntimeError), overlap._cublas_workspaces_in_graph_pool():
        calls.append("capture")
        raise RuntimeError("capture failed")
    assert calls == ["clear", "capture", "clear"]
