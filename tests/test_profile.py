"""`lsegrt.profile`: kernel classes, candidate specs, gap arithmetic, and a CPU profile of a tiny
model whose stage table sums to the total it reports."""

from __future__ import annotations

import importlib

import pytest

from lsegrt.errors import LsegError
from lsegrt.profile import (CLASSES, RANGE, Candidate, Event, _attribute, _events, classify, parse_candidate,
                            profile_candidate, top_kernels, whole_span_note, window_stats)


@pytest.mark.parametrize("name, cls", [
    ("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NTN", "gemm"),
    ("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_cublas", "gemm"),
    ("triton_tem_fused_addmm_gelu_0", "gemm"),
    ("triton_poi_fused_addmm_gelu_view_2", "elementwise"),
    ("triton_red_fused_native_layer_norm_3", "elementwise"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64", "attention"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4> >", "attention"),
    ("fmha_cutlassF_f16_aligned_64x64_rf_sm80", "attention"),
    ("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc", "conv"),
    ("void cudnn::detail::dgrad_engine<float, 128, 6, 7, 3, 3, 5, false>", "conv"),
    ("void nchwToNhwcKernel<__half, __half, float, true, false>", "copy"),
    ("Memcpy DtoD (Device -> Device)", "copy"),
    ("Memset (Device)", "copy"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "elementwise"),
    ("void at::native::upsample_bilinear2d_out_frame<c10::Half, float>", "elementwise"),
    ("aten::addmm", "gemm"), ("aten::mkldnn_convolution", "conv"), ("aten::copy_", "copy"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"), ("aten::gelu", "elementwise"),
    ("Torch-Compiled Region: 0/0", "elementwise"), ("aten::empty", "other"),
])
def test_kernel_names_are_classified(name, cls):
    assert classify(name) == cls


def test_candidate_specs():
    c = parse_candidate("compile:fp16:autotune=gemm,cuda_graph=true", {"tf32": False})
    assert c == Candidate("compile", "fp16", {"tf32": False, "autotune": "gemm", "cuda_graph": True})
    assert c.label == "compile:fp16:autotune=gemm,cuda_graph=true,tf32=false"
    assert parse_candidate("compile:fp16:freezing=true:sdpa=flash").options == {"freezing": True, "sdpa": "flash"}
    assert parse_candidate("torch") == Candidate("torch", "fp32", {})
    for bad, msg in [("tensorrt:fp16", "PyTorch backends"), ("torch:fp64", "precision"),
                     ("compile:fp16:freezing", "KEY=VALUE")]:
        with pytest.raises(LsegError, match=msg):
            parse_candidate(bad)


def test_gaps_are_span_minus_busy_time():
    evs = [Event("a", 0, 10, 10, "gemm"), Event("b", 5, 12, 7, "gemm"), Event("c", 20, 25, 5, "copy")]
    s = window_stats(evs)
    assert (s["span_us"], s["busy_us"], s["gaps_us"], s["kernel_us"], s["launches"]) == (25, 17, 8, 22, 3)
    assert s["classes"]["gemm"] == {"us": 17, "launches": 2} and s["classes"]["copy"]["us"] == 5
    assert window_stats([])["span_us"] == 0


@pytest.mark.parametrize("span, latency, missed", [
    (0.893, 3.346, True),    # RN101 `fast` on an H100: 54 launches traced of a 3.3 ms call
    (15.98, 4.283, False),   # stock compile, same run: the span includes the copies around the graph
    (1.9, 3.6, False),       # a launch-bound call spans its latency, gaps and all
    (0.0, 0.0, False),       # nothing measured: nothing to say
])
def test_a_whole_model_span_shorter_than_half_the_call_is_noted_as_missed_kernels(span, latency, missed):
    note = whole_span_note({"span_ms": span, "latency_ms_p50": latency})
    assert (note is not None) == missed
    if missed:
        assert f"{span:.3f} ms of a {latency:.3f} ms call" in note and "incomplete" in note


def test_lsegrts_own_operators_are_not_read_as_call_ranges():
    # "lsegrt::upsample2x_normalize" once matched the ranges' prefix: every kernel after it fell outside its call
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    importlib.import_module("lsegrt.model.upsample_norm")  # registers the operator

    x, bias, a = torch.randn(1, 8, 4, 4), torch.zeros(8), torch.randn(16, 16)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(2):
            with record_function(f"{RANGE}call#{i}"):
                torch.ops.lsegrt.upsample2x_normalize(x, bias)  # as compiled code calls it: through the dispatcher
                torch.mm(a, a)
    events, ranges = _events(prof, cuda=False)
    calls, rest = _attribute(events, ranges, RANGE)
    assert sorted(name for name, *_ in ranges) == [f"{RANGE}call#0", f"{RANGE}call#1"]
    assert set(calls) == {"call"} and len(calls["call"]) == 2 and not rest
    for window in calls["call"]:
        names = {e.name for e in window}
        assert "lsegrt::upsample2x_normalize" in names and "aten::mm" in names


def test_profile_stage_table_sums_to_its_total(tiny_vit):
    res = profile_candidate(tiny_vit, Candidate("torch", "fp32"), 64, 96, 2, iters=2, timed_iters=5, groups=2)
    rows, total = res["stages"], res["stagewise_total"]
    assert [r["stage"] for r in rows][:3] == ["patch_embed", "blocks 0-1", "blocks 2-3"]
    for key in ("wall_ms", "kernel_ms", "launches", "gaps_ms", "gflop"):
        assert sum(r[key] for r in rows) == pytest.approx(total[key], rel=1e-9, abs=1e-9)
    for c in CLASSES:
        assert sum(r["classes"][c]["ms"] for r in rows) == pytest.approx(total["classes"][c]["ms"], abs=1e-9)
    assert sum(total["classes"][c]["ms"] for c in CLASSES) == pytest.approx(total["kernel_ms"])
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert res["unattributed"] == {"whole": 0, "stages": 0}
    assert total["kernel_ms"] > 0 and total["launches"] > 0 and res["whole"]["launches"] > 0
    assert res["whole"]["gflop"] == pytest.approx(total["gflop"]) and total["gflop"] > 0
    assert res["whole"]["classes"]["gemm"]["launches"] > 0 and res["whole"]["latency_ms_p50"] > 0
    assert res["timer"] == "perf_counter" and res["encoder"]["backend"] == "torch"
    top = res["top_kernels"]
    assert 0 < len(top) <= 12 and [k["ms"] for k in top] == sorted((k["ms"] for k in top), reverse=True)
    assert sum(k["ms"] for k in top) <= res["whole"]["kernel_ms"] + 1e-9 and all(k["class"] in CLASSES for k in top)


def test_top_kernels_are_per_window_means_by_name():
    w1 = [Event("gemm_a", 0, 4, 4, "gemm"), Event("add", 4, 5, 1, "elementwise"), Event("gemm_a", 5, 9, 4, "gemm")]
    w2 = [Event("gemm_a", 0, 6, 6, "gemm"), Event("add", 6, 9, 3, "elementwise")]
    top = top_kernels([w1, w2], k=1)
    assert top == [{"kernel": "gemm_a", "class": "gemm", "ms": pytest.approx(7e-3), "launches": 1.5}]
    assert [k["kernel"] for k in top_kernels([w1, w2])] == ["gemm_a", "add"]


def test_profile_refuses_unknown_options_before_any_work(tiny_vit):
    with pytest.raises(LsegError, match="unknown option.*bogus"):
        profile_candidate(tiny_vit, parse_candidate("torch:fp32:bogus=1"), 64, 64)
    with pytest.raises(LsegError, match="unknown option.*frezing"):
        profile_candidate(tiny_vit, parse_candidate("compile:fp32:frezing=true"), 64, 64)


def test_profile_of_the_fast_compile_path_runs_its_stages_alone_with_the_switches(tiny_vit):
    """Whole model: the overlap path; stage by stage: each stage alone (no side stream), switches set."""
    res = profile_candidate(tiny_vit, parse_candidate("compile:fp32:fast=true"), 64, 64, iters=2, timed_iters=5,
                            groups=2)
    assert res["encoder"]["options"]["overlap"] is True and res["encoder"]["options"]["patch_gemm"] is True
    rows, total = res["stages"], res["stagewise_total"]
    assert sum(r["kernel_ms"] for r in rows) == pytest.approx(total["kernel_ms"], rel=1e-9)
    assert res["whole"]["latency_ms_p50"] > 0 and res["unattributed"] == {"whole": 0, "stages": 0}
    assert any(n.startswith("overlap: stage by stage") for n in res["notes"])


@pytest.mark.parametrize("channels_last", [False, True])
def test_stage_runner_hands_channels_last_maps_between_stages_when_asked(tiny_rn, channels_last):
    """With ``channels_last`` every stage after the image's takes its 4-D maps channels-last (compiled
    alone, a stage would otherwise convert NCHW inputs and convert back); the values are the same."""
    import torch

    from lsegrt.profile import ChannelsLastMaps, _stage_runner

    cand = parse_candidate(f"compile:fp32:channels_last={str(channels_last).lower()}")
    stages, runners, _, _ = _stage_runner(tiny_rn, cand, torch.device("cpu"), 2, 64, 96)
    inner = [r._orig_mod for r in runners]  # torch.compile's wrapper: nothing compiles before a call
    assert not isinstance(inner[0], ChannelsLastMaps) and stages[-1].kind == "norm"
    assert not isinstance(inner[-1], ChannelsLastMaps)  # the head's output as it comes
    assert all(isinstance(m, ChannelsLastMaps) for m in inner[1:-1]) == channels_last
    seen = []
    hooks = [s.module.register_forward_pre_hook(lambda _, args: seen.append(
        [a.is_contiguous(memory_format=torch.channels_last) for a in args if a.dim() == 4])) for s in stages]
    image = torch.rand(1, 3, 64, 96)
    state = plain = (image,)
    with torch.inference_mode():
        for m in inner:
            state = m(*state)
        for h in hooks:
            h.remove()
        for s in stages:
            plain = s.module(*plain)
    assert len(seen) == len(stages) and all(seen[1:-1])
    assert all(flags == [channels_last] * len(flags) for flags in seen[1:-1])
    torch.testing.assert_close(state[0], plain[0])


def test_stage_runner_caches_the_position_embedding_for_the_profiled_size(tiny_vit):
    """With ``pos_cache`` the stage-wise run embeds as the backend's call does: from the cached embedding."""
    import torch

    from lsegrt.model.vit import pos_cache_trunks
    from lsegrt.profile import _stage_runner

    stages, _, _, _ = _stage_runner(tiny_vit, parse_candidate("compile:fp32:pos_cache=true"), torch.device("cpu"),
                                    2, 64, 96)
    (trunk,) = {id(t): t for s in stages for t in pos_cache_trunks(s.module)}.values()
    assert list(trunk.pos_embeds) == [(4, 6)]
