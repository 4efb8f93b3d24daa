"""`lsegrt segment`: overlay + indexed label PNGs, coverage printout, notes, multiscale."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image


def test_segment_writes_both_pngs(tmp_path, run_cli, chelsea):
    code, out, err = run_cli("segment", "--variant", "vit_tiny", "--labels", "cat, grass, other",
                             "--size", "128", "--out", tmp_path)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chelsea_labels.png", "chelsea_overlay.png"]
    labels = Image.open(tmp_path / "chelsea_labels.png")
    assert labels.mode == "P" and labels.size == (chelsea.shape[1], chelsea.shape[0])
    assert json.loads(labels.text["labels"]) == ["cat", "grass", "other"]
    ids = np.asarray(labels)
    assert ids.max() < 3
    overlay = Image.open(tmp_path / "chelsea_overlay.png")
    assert overlay.width > chelsea.shape[1] and overlay.height >= chelsea.shape[0]  # legend on the right
    line = next(line for line in out.splitlines() if line.startswith("sample:chelsea"))
    cover = {name: float(line.split(f"{name} ")[1].split("%")[0]) for name in ("cat", "grass", "other")}
    assert abs(sum(cover.values()) - 100) < 0.5
    assert abs(cover["other"] - 100 * np.mean(ids == 2)) < 0.1
    assert err == ""


def test_segment_matches_api(tmp_path, run_cli, official_ckpt, chelsea):
    import lsegrt

    code, _, err = run_cli("segment", "--checkpoint", official_ckpt("vit_tiny"), "--labels", "cat, other",
                           "--size", "96", "--out", tmp_path)
    assert code == 0, err
    ref = lsegrt.load(official_ckpt("vit_tiny")).segment(chelsea, "cat, other", size=96)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "chelsea_labels.png")), ref)


def test_default_labels_and_zero_shot_note(tmp_path, run_cli):
    out_dir = tmp_path / "new"  # created: its parent exists
    code, out, err = run_cli("segment", "sample:coffee", "--variant", "rn_tiny", "--size", "64", "--out", out_dir)
    assert code == 0, err
    assert "no --labels given" in out and "['others', class]" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["coffee_labels.png", "coffee_overlay.png"]


def test_multiscale(tmp_path, run_cli, monkeypatch):
    """--multiscale runs the evaluator end to end, reporting its windows as it goes. Its 480² windows cost
    ≈2 s each for vit_tiny on two CPU cores (≈45 s for this image at the real geometry), so the geometry
    is scaled down 5× here: the same code path (scales, padding, sliding windows, flips, sums) on 96²
    windows. Progress lines go to stderr every interval (0 here) also when it is not a terminal."""
    from lsegrt import progress, segmentation
    from lsegrt.backends.torch_eager import TorchEncoder

    monkeypatch.setattr(segmentation, "BASE_SIZE", 104)
    monkeypatch.setattr(segmentation, "CROP", 96)
    monkeypatch.setattr(segmentation, "STRIDE", 64)
    monkeypatch.setattr(progress, "DEFAULT_INTERVAL", 0.0)
    calls = []
    real_call = TorchEncoder.__call__

    def counting(self, x):
        calls.append(tuple(x.shape))
        return real_call(self, x)

    monkeypatch.setattr(TorchEncoder, "__call__", counting)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "small.png")
    out_dir = tmp_path / "out"
    code, out, err = run_cli("segment", tmp_path / "small.png", "--variant", "vit_tiny", "--multiscale",
                             "--labels", "a, b, c", "--out", out_dir)
    assert code == 0, err
    assert "multiscale" in out
    windows = segmentation.multiscale_windows(48, 64)
    # every window and its flip go through the encoder (batched together), all at the window size
    assert {c[-2:] for c in calls} == {(96, 96)} and sum(c[0] for c in calls) == 2 * windows > 12
    ids = np.asarray(Image.open(out_dir / "small_labels.png"))
    assert ids.shape == (48, 64) and ids.max() < 3
    lines = err.splitlines()
    assert len(lines) == windows + 1 and all(line.startswith("multiscale windows: ") for line in lines)
    assert lines[-2].startswith(f"multiscale windows: {windows}/{windows} windows") and lines[-1].endswith("done")


def test_success_keeps_stderr_empty(tmp_path):
    """A fresh interpreter on an image file: results on stdout, nothing at all on stderr."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 96, 3)) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    proc = subprocess.run(
        [sys.executable, "-m", "lsegrt", "segment", str(tmp_path / "img.png"), "--variant", "vit_tiny",
         "--labels", "a, b", "--size", "64", "--out", str(tmp_path / "out"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "img_labels.png").exists()
    assert proc.stderr == ""
