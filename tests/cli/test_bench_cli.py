"""`lsegrt bench` from the command line (CPU, vit_tiny, tiny sizes: seconds)."""

from __future__ import annotations

import csv
import json

import pytest

FAST = ["--min-seconds", "0.05", "--min-iters", "2", "--max-iters", "2", "--warmup-iters", "1", "--warmup-seconds", "0"]


@pytest.fixture
def bench_cli(run_cli):
    """Run `lsegrt bench ...` in-process → (exit code, stdout, stderr)."""
    return lambda *argv: run_cli("bench", *argv)


def test_bench_writes_json_csv_png(tmp_path, bench_cli):
    out = tmp_path / "b"
    code, stdout, err = bench_cli("--variant", "vit_tiny", "--size", "64", "--size", "64x96", "--batch", "2",
                                  "--backend", "torch", "--backend", "tensorrt", "--device", "cpu", "--out", out, *FAST)
    assert code == 0, err  # some configurations ran
    data = json.loads((out / "bench.json").read_text())
    assert [r["status"] for r in data["records"]] == ["ok", "ok", "error", "error"]
    assert data["settings"]["timing"]["max_iters"] == 2 and data["environment"]["device"] == "cpu"
    assert all(r["iters"] == 2 and r["batch"] == 2 for r in data["records"][:2])
    assert "needs a CUDA device" in data["records"][2]["error"] and "caveats" in data
    with open(out / "bench.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert "2 of 4 configurations failed" in stdout
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "lsegrt bench" in stdout and "host p50 ms" in stdout and "64x96" in stdout and "AMD" not in err
    header = next(line for line in stdout.splitlines() if "host p50 ms" in line)
    assert " n " in header  # the number of timed calls is a column
    assert "wrote" in stdout


def test_default_model_is_announced(tmp_path, bench_cli, monkeypatch):
    from lsegrt import bench

    seen = {}

    def fake_sweep(models, *args, **kwargs):
        seen["models"] = models
        return iter([])

    monkeypatch.setattr(bench, "sweep", fake_sweep)
    code, stdout, _ = bench_cli("--device", "cpu", "--out", tmp_path, *FAST)
    assert seen["models"] == ["random:vit_l16"] and "random vit_l16 weights" in stdout
    assert code == 1  # nothing ran, so nothing succeeded


def test_exit_1_when_every_configuration_failed(tmp_path, bench_cli):
    code, stdout, _ = bench_cli("--variant", "vit_tiny", "--size", "64", "--backend", "tensorrt", "--device", "cpu",
                                "--out", tmp_path, *FAST)
    assert code == 1 and "all 1 configurations failed" in stdout
    assert not (tmp_path / "bench.png").exists() and (tmp_path / "bench.json").exists()


def test_user_errors(tmp_path, bench_cli):
    code, _, err = bench_cli("--size", "400", "--out", tmp_path)
    assert code == 2 and "multiples of 32" in err
    code, _, err = bench_cli("--checkpoint", tmp_path / "missing.ckpt", "--device", "cpu", "--out", tmp_path)
    assert code == 2 and "checkpoint not found" in err and err.count("\n") == 1


def test_candidates_compare_stock_and_fast_compile_in_one_table(tmp_path, bench_cli):
    code, out, err = bench_cli("--variant", "vit_tiny", "--candidate", "compile:fp32", "--candidate",
                               "compile:fp32:fast=true", "--size", "64", "--device", "cpu", *FAST, "--out", tmp_path)
    assert code == 0, err
    assert "compile:fp32:fast=true" in out and "× first" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["settings"]["candidates"] == ["compile:fp32", "compile:fp32:fast=true"]
    stock, fast = data["records"]
    assert stock["speedup_vs_first"] == 1.0 and fast["speedup_vs_first"] > 0
    assert fast["encoder"]["options"]["overlap"] is True and stock["encoder"]["options"]["overlap"] is False


def test_candidate_errors_exit_2_before_any_work(tmp_path, bench_cli):
    code, _, err = bench_cli("--candidate", "compile:fp32:bogus=1", "--out", tmp_path / "b")
    assert code == 2 and "unknown option bogus" in err and err.count("\n") == 1
    code, _, err = bench_cli("--candidate", "torch", "--backend", "compile", "--out", tmp_path / "b")
    assert code == 2 and "drop --backend/--precision" in err
    assert not (tmp_path / "b").exists()
