"""`lsegrt extract`: outputs, summary, exit codes, refusals, torchrun sharding."""

from __future__ import annotations

import json

import numpy as np

import lsegrt

from ..pipeline.conftest import make_frames


def test_extract_labels_with_a_corrupt_frame(tmp_path, run_cli):
    make_frames(tmp_path / "in", n=4, nested=False)
    (tmp_path / "in" / "zz.jpg").write_bytes(b"broken")
    out, js = tmp_path / "ds", tmp_path / "summary.json"
    code, stdout, err = run_cli("extract", tmp_path / "in", "--out", out, "--variant", "vit_tiny", "--size", "64",
                                "--labels", "a, b", "--no-features", "--workers", "0", "--json", js)
    assert code == 3, err
    assert err == ""
    assert "bytes per frame at input" in stdout and "labels" in stdout
    assert "4 frames written, 1 skipped" in stdout and "busy: decode" in stdout and "exit 3" in stdout
    summary = json.loads(js.read_text())
    assert summary["written"] == 4 and summary["skipped"] == 1 and summary["time_to_first_frame_s"] > 0
    assert set(summary["utilisation"]) == {"decode", "wait", "h2d", "gpu", "d2h", "write"}
    ds = lsegrt.open_features(out)
    assert ds.ids == ["f00", "f01", "f02", "f03"] and set(ds[0]) == {"labels"}
    assert ds.skipped[0]["frame_id"] == "zz"
    # again without --resume: one line, exit 2, nothing changed
    before = sorted(p.name for p in out.rglob("*"))
    code, _, err = run_cli("extract", tmp_path / "in", "--out", out, "--variant", "vit_tiny", "--size", "64",
                           "--labels", "a, b", "--no-features", "--workers", "0")
    assert code == 2 and err.startswith("lsegrt: error:") and "--resume" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.rglob("*")) == before


def test_help_names_the_fast_gpu_path(run_cli):
    code, out, _ = run_cli("extract", "--help")
    assert code == 0
    assert "--backend compile --precision fp16 --cuda-graph" in out and "--resume" in out and "exit" in out.lower()


def test_torchrun_environment_picks_the_shard(tmp_path, run_cli, monkeypatch):
    make_frames(tmp_path / "in", n=4, nested=False)
    (tmp_path / "in" / "list.txt").write_text("f00.png\nf01.jpg\nf02.jpg\n")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    out = tmp_path / "ds"
    code, _, err = run_cli("extract", "--list", tmp_path / "in" / "list.txt", "--out", out, "--variant", "vit_tiny",
                           "--size", "64", "--workers", "0", "--device", "cpu", "--stride", "2", "--no-progress")
    assert code == 0, err
    assert (out / "manifest-1-of-2.jsonl").is_file() and not (out / "manifest-0-of-1.jsonl").exists()
    ds = lsegrt.open_features(out)
    assert ds.ids == ["f01"]  # the list's second line: order 1 → shard 1
    assert ds[0]["features"].dtype == np.float16 and ds[0]["features"].shape == (512, 16, 8)  # 80x40 → input 64x32 → 32x16 → stride 2


def test_shard_flag(tmp_path, run_cli):
    make_frames(tmp_path / "in", n=4, nested=False)
    out = tmp_path / "ds"
    code, _, err = run_cli("extract", tmp_path / "in", "--out", out, "--variant", "vit_tiny", "--size", "64",
                           "--workers", "0", "--shard", "0/2")
    assert code == 0, err
    assert lsegrt.open_features(out).ids == ["f00", "f02"]
    code, _, err = run_cli("extract", tmp_path / "in", "--out", out, "--variant", "vit_tiny", "--shard", "2/2")
    assert code == 2 and "0 <= rank < world" in err
