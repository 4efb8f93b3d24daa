"""`lsegrt profile` from the command line (CPU, vit_tiny, eager: seconds)."""

from __future__ import annotations

import json

FAST = ["--variant", "vit_tiny", "--device", "cpu", "--iters", "1", "--timed-iters", "5", "--size", "64"]


def test_profile_writes_tables_json_png_and_a_comparison(tmp_path, run_cli):
    out = tmp_path / "p"
    code, stdout, err = run_cli("profile", *FAST, "--candidate", "torch:fp32", "--candidate", "torch:bf16",
                                "--groups", "2", "--top", "3", "--out", out)
    assert code == 0, err
    data = json.loads((out / "profile.json").read_text())
    assert data["classes"] == ["gemm", "attention", "conv", "elementwise", "copy", "other"]
    assert [c["candidate"] for c in data["candidates"]] == ["torch:fp32", "torch:bf16"]
    for cand in data["candidates"]:
        assert {"whole", "stages", "stagewise_total", "unattributed", "encoder", "first_call_s"} <= set(cand)
        assert {"latency_ms_p50", "kernel_ms", "launches", "gaps_ms", "gap_share", "classes", "tflops_per_s"} \
            <= set(cand["whole"])
        assert {"stage", "kind", "wall_ms", "kernel_ms", "share", "launches", "gaps_ms", "gflop", "tflops_per_s",
                "classes"} <= set(cand["stages"][0])
    assert data["settings"]["top"] == 3
    assert all(1 <= len(c["top_kernels"]) <= 3 for c in data["candidates"])
    (cmp,) = data["comparisons"]
    assert cmp["before"] == "torch:fp32" and cmp["after"] == "torch:bf16" and len(cmp["stages"]) == 11
    assert (out / "profile.png").read_bytes()[:4] == b"\x89PNG"
    assert "stage-wise total" in stdout and "before torch:fp32 → after torch:bf16" in stdout
    assert "whole model" in stdout and "refinenet1" in stdout


def test_profile_bad_input_is_one_line(tmp_path, run_cli):
    for argv, msg in [(["--candidate", "onnxruntime:fp32"], "PyTorch backends"),
                      (["--candidate", "compile:fp32:autotune=turbo"], "autotune='turbo'"),
                      (["--size", "100"], "multiples of 32"),
                      (["--iters", "0"], "at least 1"), (["--top", "0"], "at least 1")]:
        code, _, err = run_cli("profile", "--variant", "vit_tiny", "--device", "cpu", *argv, "--out", tmp_path / "x")
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "x").exists()


def test_profile_refuses_percentiles_of_too_few_calls(tmp_path, run_cli):
    args = [a if a != "5" else "2" for a in FAST]
    code, _, err = run_cli("profile", *args, "--out", tmp_path / "p")
    assert code == 2 and "--timed-iters 2: at least 5" in err and err.count("\n") == 1
    assert not (tmp_path / "p").exists()
