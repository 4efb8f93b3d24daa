"""lsegrt.extract_ray on a local Ray cluster (CPU, 2 encoder actors) writes the dataset lsegrt.extract writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lsegrt
from lsegrt.errors import LsegError

from .conftest import make_frames
from .test_video import write_video

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

pytestmark = pytest.mark.slow

KW = dict(variant="vit_tiny", size=64, batch_size=3, dtype="fp32", recursive=True, progress=False,
          say=lambda *_: None)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """7 images of three sizes (three batch shapes) and a 9-frame video, spread over both actors."""
    root = tmp_path_factory.mktemp("ray")
    frames = root / "frames"
    make_frames(frames, 7)
    write_video(frames / "clip.mkv", "ffv1", "bgr0", n=9)
    return frames


def _same(one, two, score_tol=0.0):
    d1, d2 = lsegrt.open_features(one), lsegrt.open_features(two)
    assert d1.ids == d2.ids and len(d1) == 7 + 9
    for fid in d1.ids:
        x, y = d1[fid], d2[fid]
        assert sorted(x) == sorted(y)
        for name in x:
            if name == "scores":
                # Per-label logits are one einsum over the whole batch: their last bit depends on which
                # frames share a batch, which differs between any two runs that batch differently.
                np.testing.assert_allclose(x[name], y[name], rtol=0, atol=score_tol)
            else:
                assert np.array_equal(x[name], y[name]), (fid, name)
    e1 = {e["frame_id"]: e for e in d1.frames}
    for e in d2.frames:
        assert {k: v for k, v in e.items() if k != "outputs"} == \
               {k: v for k, v in e1[e["frame_id"]].items() if k != "outputs"}
    return d2


def test_ray_equals_single_process(tmp_path, cluster, inputs):
    opts = dict(KW, labels="cat, sky, other", scores=True)
    lsegrt.extract([inputs], tmp_path / "one", workers=0, **opts)
    summary = lsegrt.extract_ray([inputs], tmp_path / "ray", concurrency=2, actor_cpus=0.5, decode_cpus=0.25,
                                 **opts)
    assert (summary.written, summary.skipped) == (16, 0)
    _same(tmp_path / "one", tmp_path / "ray", score_tol=1e-5)
    names = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert "dataset.json" in names and "summary.json" in names
    assert set(n for n in names if n.startswith("manifest")) <= {"manifest-0-of-2.jsonl", "manifest-1-of-2.jsonl"}
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["written"] == 16
    assert not [p for p in (tmp_path / "ray").rglob("*") if ".tmp-" in p.name]


def test_ray_pca_and_resume(tmp_path, cluster, inputs):
    """PCA fitted by actor slot 0 on the run's own sample equals the single-process basis; a Ray run
    resumes a dataset half done by `--shard 0/2` and only computes the rest."""
    opts = dict(KW, pca=8, stride=2, pca_sample=5)
    lsegrt.extract([inputs], tmp_path / "one", workers=0, **opts)
    half = lsegrt.extract([inputs], tmp_path / "ray", workers=0, shard="0/2", **opts)
    with pytest.raises(LsegError, match="--resume"):
        lsegrt.extract_ray([inputs], tmp_path / "ray", concurrency=2, actor_cpus=0.5, decode_cpus=0.25, **opts)
    rest = lsegrt.extract_ray([inputs], tmp_path / "ray", concurrency=2, actor_cpus=0.5, decode_cpus=0.25,
                              resume=True, **opts)
    assert half.written + rest.written == 16 and rest.already_done == half.written
    d = _same(tmp_path / "one", tmp_path / "ray")
    assert d.pca is not None and d.pca.k == 8


def test_ray_refuses_arrays_and_models(tmp_path, tiny_vit):
    with pytest.raises(LsegError, match="paths"):
        lsegrt.extract_ray([np.zeros((32, 32, 3), np.uint8)], tmp_path / "x", **KW)
    with pytest.raises(LsegError, match="checkpoint as a path"):
        lsegrt.extract_ray(["sample:chelsea"], tmp_path / "x", checkpoint=tiny_vit, size=64)
