"""lsegrt.extract: every output mode against the direct computation, the dataset folder rules,
sharding, arrays, skipped frames and disk-full."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch

import lsegrt
from lsegrt.errors import LsegError
from lsegrt.model.config import LOGIT_SCALE
from lsegrt.model.layers import l2_normalize

from .conftest import load, make_frames


def _run(frames, out, model, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("size", 64)
    kw.setdefault("batch_size", 3)
    return lsegrt.extract([frames], out, checkpoint=model, recursive=True, progress=False, say=lambda *_: None, **kw)


def _direct(model, frames, fid, size=64):
    path = next(p for p in frames.rglob("*") if p.is_file() and p.relative_to(frames).with_suffix("").as_posix() == fid)
    image = load(path)
    return image, model.encode_image(model.preprocess(image, size))


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("dtype, tol", [("fp32", 1e-5), ("fp16", 2e-3), ("bf16", 1e-2)])
def test_features_match_encode_image(tmp_path, frames, tiny_vit, dtype, tol):
    summary = _run(frames, tmp_path / "ds", tiny_vit, dtype=dtype)
    assert summary.written == 7 and summary.skipped == 0 and summary.exit_code == 0
    ds = lsegrt.open_features(tmp_path / "ds", framework="pt")
    assert len(ds) == 7 and ds.ids == ["a/f00", "a/f02", "a/f04", "a/f06", "b/f01", "b/f03", "b/f05"]
    want_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    for fid in ds.ids:
        _, ref = _direct(tiny_vit, frames, fid)
        got = ds[fid]["features"]
        assert got.dtype == want_dtype and got.shape == ref.shape[1:]
        assert (got.float() - ref[0]).abs().max() < tol
    config = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert config["identity"]["checkpoint_sha256"] == tiny_vit.sha256 and config["identity"]["dtype"] == str(want_dtype)[6:]
    entry = ds.frames[0]
    assert entry["source"].endswith("f00.png") and entry["original_size"] == [40, 80] and entry["input_size"] == [32, 64]
    assert not [p for p in _files(tmp_path / "ds") if ".tmp-" in p]


def test_stride_pools_and_renormalizes(tmp_path, frames, tiny_vit):
    _run(frames, tmp_path / "ds", tiny_vit, dtype="fp32", stride=3)
    ds = lsegrt.open_features(tmp_path / "ds", framework="pt")
    for fid in ("a/f00", "b/f01"):
        _, ref = _direct(tiny_vit, frames, fid)
        h, w = ref.shape[-2:]
        # ceil: the border windows average the pixels they hold
        manual = torch.stack([torch.stack([ref[0, :, i:i + 3, j:j + 3].mean((1, 2)) for j in range(0, w, 3)], -1)
                              for i in range(0, h, 3)], -2)
        got = ds[fid]["features"]
        assert got.shape == (512, -(-h // 3), -(-w // 3))
        assert torch.allclose(got, l2_normalize(manual, dim=0), atol=1e-5)
        assert torch.allclose(got.norm(dim=0), torch.ones(()), atol=1e-5)


def test_pca_fitted_on_the_run(tmp_path, frames, tiny_vit):
    summary = _run(frames, tmp_path / "ds", tiny_vit, dtype="fp32", pca=8, pca_sample=4)
    ds = lsegrt.open_features(tmp_path / "ds", framework="pt")
    basis = ds.pca
    assert basis.k == 8 and basis.frames == 4 and summary.pca_explained == pytest.approx(basis.explained_ratio, abs=1e-5)
    from lsegrt.pipeline.pca import project

    for fid in ds.ids[:3]:
        _, ref = _direct(tiny_vit, frames, fid)
        assert torch.allclose(ds[fid]["features"], project(ref, basis)[0], atol=1e-4)
    # a second dataset with the first one's basis stores the same coordinates
    _run(frames, tmp_path / "ds2", tiny_vit, dtype="fp32", pca_basis=str(tmp_path / "ds" / "pca.safetensors"))
    ds2 = lsegrt.open_features(tmp_path / "ds2", framework="pt")
    assert torch.equal(ds2.pca.components, basis.components)
    assert torch.equal(ds2["a/f02"]["features"], ds["a/f02"]["features"])


def test_labels_and_scores_match_segment(tmp_path, tiny_rn):
    frames = tmp_path / "frames"
    make_frames(frames, n=3)
    labels = "red, green, blue, other"
    # batch 1: exactly segment's computation (batched convolutions differ in the last bits)
    _run(frames, tmp_path / "ds", tiny_rn, labels=labels, scores=True, features=False, dtype="fp32", batch_size=1)
    ds = lsegrt.open_features(tmp_path / "ds")
    assert set(ds[0]) == {"labels", "scores"}
    text = tiny_rn.encode_text(labels)
    for fid in ds.ids:
        image, ref = _direct(tiny_rn, frames, fid)
        assert np.array_equal(ds[fid]["labels"], tiny_rn.segment(image, labels, 64))
        want = LOGIT_SCALE * torch.einsum("bchw,nc->bnhw", ref, text)[0]
        assert np.abs(ds[fid]["scores"] - want.numpy()).max() < 1e-4
    from PIL import Image

    with Image.open(tmp_path / "ds" / "labels" / "a" / "f00.png") as img:
        assert img.mode == "P" and json.loads(img.text["labels"]) == ["red", "green", "blue", "other"]


def test_multiscale_matches_segment(tmp_path, monkeypatch, tiny_vit):
    from lsegrt import segmentation

    # The evaluator at 2/15 of its real geometry (480² windows cost seconds each on a CPU).
    monkeypatch.setattr(segmentation, "BASE_SIZE", 70)
    monkeypatch.setattr(segmentation, "CROP", 64)
    monkeypatch.setattr(segmentation, "STRIDE", 42)
    make_frames(tmp_path / "in", n=2, nested=False)
    labels = "a, b, c"
    _run(tmp_path / "in", tmp_path / "ds", tiny_vit, labels=labels, multiscale=True, scores=True, dtype="fp32",
         batch_size=4)
    ds = lsegrt.open_features(tmp_path / "ds", framework="pt")
    assert ds.ids == ["f00", "f01"]
    for fid in ("f01",):  # 80x40: tiled scales (the reference costs as much as the run)
        image = load(next((tmp_path / "in").glob(fid + ".*")))
        want = tiny_vit.segment_logits(image, labels, multiscale=True)
        got = ds[fid]
        assert got["scores"].shape == want.shape and torch.allclose(got["scores"], want, atol=1e-3)
        agree = (got["labels"].long() == want.argmax(0)).float().mean()
        assert agree > 0.99


def test_arrays_from_python(tmp_path, tiny_vit):
    from .conftest import picture

    arrays = [picture(k, (48, 64)) for k in range(3)]
    summary = lsegrt.extract(iter(arrays), tmp_path / "ds", checkpoint=tiny_vit, size=64, dtype="fp32",
                             batch_size=2, progress=False, say=lambda *_: None)
    assert summary.written == 3
    ds = lsegrt.open_features(tmp_path / "ds", framework="pt")
    assert ds.ids == ["frame-000000", "frame-000001", "frame-000002"]
    ref = tiny_vit.encode_image(tiny_vit.preprocess(arrays[2], 64))[0]
    assert torch.allclose(ds["frame-000002"]["features"], ref, atol=1e-5)


def test_folder_rules(tmp_path, frames, tiny_vit):
    out = tmp_path / "ds"
    _run(frames, out, tiny_vit)
    # the same run again: refused without --resume; --resume finds nothing left to do
    with pytest.raises(LsegError, match="already holds this run's data .7 frames.; pass --resume"):
        _run(frames, out, tiny_vit)
    assert _run(frames, out, tiny_vit, resume=True).written == 0
    # other options: refused, naming each differing key, with or without --resume
    for resume in (False, True):
        with pytest.raises(LsegError, match=r"dtype: 'float16' → 'float32'; .*stride: 1 → 2") as exc:
            _run(frames, out, tiny_vit, dtype="fp32", stride=2, resume=resume)
        assert str(exc.value).count("\n") == 0
    # ... before any model is loaded: a checkpoint that is not there is never reached
    with pytest.raises(LsegError, match=r"other options \(dtype: 'float16' → 'float32'"):
        _run(frames, out, tmp_path / "missing.ckpt", dtype="fp32")
    # --overwrite replaces it, keeping a user's file
    (out / "my-notes.txt").write_text("mine")
    assert _run(frames, out, tiny_vit, dtype="fp32", overwrite=True).written == 7
    assert (out / "my-notes.txt").read_text() == "mine"
    # a non-empty folder that is no dataset: refused always
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    for kw in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(LsegError, match="not empty and is not an lsegrt dataset"):
            _run(frames, other, tiny_vit, **kw)
    assert _files(other) == ["x.txt"]
    # the output folder may not be (or contain) an input
    with pytest.raises(LsegError, match="is or contains the input"):
        _run(frames, frames, tiny_vit)


def test_shards_together_equal_one_run(tmp_path, frames, tiny_vit):
    one = _run(frames, tmp_path / "one", tiny_vit, dtype="fp32", labels="x, y")
    a = _run(frames, tmp_path / "two", tiny_vit, dtype="fp32", labels="x, y", shard="0/2")
    b = _run(frames, tmp_path / "two", tiny_vit, dtype="fp32", labels="x, y", shard="1/2")
    assert (a.written, b.written, one.written) == (4, 3, 7)
    d1, d2 = lsegrt.open_features(tmp_path / "one"), lsegrt.open_features(tmp_path / "two")
    assert d1.ids == d2.ids
    for fid in d1.ids:
        x, y = d1[fid], d2[fid]
        assert np.array_equal(x["features"], y["features"]) and np.array_equal(x["labels"], y["labels"])
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["written"] == 7 and len(summary["shards"]) == 2


def test_unreadable_frames_are_skipped(tmp_path, frames, tiny_vit):
    (frames / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    good = next(frames.glob("b/*.png")).read_bytes()
    (frames / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    summary = _run(frames, tmp_path / "ds", tiny_vit)
    assert (summary.written, summary.skipped, summary.exit_code) == (7, 2, 3)
    ds = lsegrt.open_features(tmp_path / "ds")
    assert len(ds) == 7 and sorted(e["frame_id"] for e in ds.skipped) == ["a/broken", "b/cut"]
    assert all("unreadable" in e["skipped"] for e in ds.skipped)
    # skipped frames count as done: a resume does not retry them
    assert _run(frames, tmp_path / "ds", tiny_vit, resume=True).skipped == 0


def test_disk_full_stops_cleanly_and_resume_completes(tmp_path, frames, tiny_vit, monkeypatch):
    from lsegrt.pipeline import write

    real = write.write_tensors
    calls = []

    def full(path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            with open(path, "wb") as f:  # a partial file, as a real ENOSPC leaves one
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(write, "write_tensors", full)
    out = tmp_path / "ds"
    with pytest.raises(LsegError, match="disk full while writing the dataset") as exc:
        _run(frames, out, tiny_vit, dtype="fp32", batch_size=2, writers=1)
    assert "--resume" in str(exc.value) and "\n" not in str(exc.value)
    files = _files(out)
    assert not [p for p in files if ".tmp-" in p]  # nothing partial visible
    done = len(lsegrt.open_features(out))
    assert 0 < done < 7
    monkeypatch.setattr(write, "write_tensors", real)
    summary = _run(frames, out, tiny_vit, dtype="fp32", batch_size=2, resume=True)
    assert summary.written == 7 - done and summary.already_done == done
    ref_dir = tmp_path / "ref"
    _run(frames, ref_dir, tiny_vit, dtype="fp32", batch_size=2)
    d, r = lsegrt.open_features(out), lsegrt.open_features(ref_dir)
    assert d.ids == r.ids and all(np.array_equal(d[i]["features"], r[i]["features"]) for i in d.ids)


def test_worker_processes_decode_the_same(tmp_path, frames, tiny_vit):
    a = _run(frames, tmp_path / "w0", tiny_vit, dtype="fp32")
    b = _run(frames, tmp_path / "w2", tiny_vit, dtype="fp32", workers=2)
    assert a.written == b.written == 7 and b.workers == 2
    d0, d2 = lsegrt.open_features(tmp_path / "w0"), lsegrt.open_features(tmp_path / "w2")
    assert all(np.array_equal(d0[i]["features"], d2[i]["features"]) for i in d0.ids)
    assert set(b.utilisation) == {"decode", "wait", "h2d", "gpu", "d2h", "write"}


def test_bad_options_fail_before_work(tmp_path, frames, tiny_vit):
    for kw, match in [({"dtype": "fp8"}, "dtype"), ({"stride": 0}, "stride"), ({"pca": 600}, "pca"),
                      ({"scores": True}, "--scores needs --labels"), ({"features": False}, "nothing to write"),
                      ({"multiscale": True}, "needs --labels"), ({"labels": " , "}, "empty label list"),
                      ({"size": (400, 400)}, "multiples of 32"), ({"nonsense": 1}, "unexpected keyword")]:
        with pytest.raises(LsegError, match=match):
            _run(frames, tmp_path / "ds", tiny_vit, **kw)
    assert not (tmp_path / "ds").exists()
