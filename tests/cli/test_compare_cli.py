"""`lsegrt compare` from the command line (CPU, tiny models, sizes 64–96)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def compare_cli(run_cli):
    """Run `lsegrt compare ...` in-process → (exit code, stdout, stderr)."""
    return lambda *argv: run_cli("compare", *argv)


def test_torch_vs_itself_passes(tmp_path, compare_cli):
    code, stdout, err = compare_cli("--checkpoint", "random:vit_tiny", "--candidate", "torch", "--size", "64",
                                    "--size", "96x64", "sample:chelsea", "--device", "cpu", "--out", tmp_path)
    assert code == 0, err
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["passed"] and data["pairs"][0]["aggregate"]["mean_cosine"] <= 1 + 1e-6
    assert len(data["pairs"][0]["items"]) == 2 and "PASS" in stdout and "environment" in data
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_a_failing_pair_exits_1(tmp_path, compare_cli):
    # bf16 is ~1e-4 off in cosine: a threshold no half precision can meet must fail the run
    code, stdout, _ = compare_cli("--checkpoint", "random:vit_tiny", "--candidate", "torch:bf16", "--candidate",
                                  "torch", "--min-cosine", "0.9999999", "--size", "32", "sample:chelsea",
                                  "--device", "cpu", "--out", tmp_path)
    assert code == 1 and "FAIL" in stdout
    data = json.loads((tmp_path / "compare.json").read_text())
    assert [p["passed"] for p in data["pairs"]] == [False, True] and not data["passed"]
    assert data["pairs"][0]["thresholds"]["min_cosine"] == 0.9999999


def test_cross_checkpoint_table(tmp_path, compare_cli, tiny_vit):
    import torch

    ckpt = tmp_path / "seed1.pt"
    import lsegrt

    torch.save(lsegrt.random_model("vit_tiny", seed=1).net.state_dict(), ckpt)
    code, stdout, err = compare_cli("--checkpoints", "random:vit_tiny", ckpt, "--size", "64", "sample:chelsea",
                                    "--device", "cpu", "--out", tmp_path / "x")
    assert code == 0, err
    assert "checkpoints" in stdout and "seed1" in stdout
    data = json.loads((tmp_path / "x" / "compare.json").read_text())
    assert data["mode"] == "checkpoints" and len(data["pairs"]) == 1 and data["pairs"][0]["mean_cosine"] < 0.99


def test_user_errors(tmp_path, compare_cli):
    code, _, err = compare_cli("--checkpoints", "random:vit_tiny", "random:rn_tiny", "--size", "64", "--device",
                               "cpu", "--out", tmp_path)
    assert code == 2 and "one variant" in err and "rn_tiny" in err
    code, _, err = compare_cli("--variant", "vit_tiny", "--device", "cpu", "--out", tmp_path)
    assert code == 2 and "--candidate" in err
    code, _, err = compare_cli("--variant", "vit_tiny", "--candidate", "tensorflow", "--out", tmp_path)
    assert code == 2 and "unknown backend" in err
    code, _, err = compare_cli("--variant", "vit_tiny", "--candidate", "compile:fp32:frezing=true", "--out", tmp_path)
    assert code == 2 and "unknown option frezing" in err and err.count("\n") == 1
