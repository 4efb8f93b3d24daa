"""lsegrt.extract_ray on a local Ray cluster (CPU, 2 encoder actors) writes the dataset lsegrt.extract writes."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch

import lsegrt
from lsegrt.errors import LsegError

from .conftest import make_frames
from .test_video import write_video

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

pytestmark = pytest.mark.slow

N = 5 + 4
KW = dict(variant="vit_tiny", size=64, batch_size=3, dtype="fp32", recursive=True, progress=False,
          say=lambda *_: None)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """5 images of three sizes (three batch shapes) and a 4-frame video (decoded in two parts)."""
    root = tmp_path_factory.mktemp("ray")
    frames = root / "frames"
    make_frames(frames, 5)
    write_video(frames / "clip.mkv", "ffv1", "bgr0", n=4)
    return frames


@contextmanager
def one_thread():
    """Ray gives an actor with under one CPU one thread (OMP_NUM_THREADS=1); on a CPU the thread count
    changes the last bits of small reductions (the scores' einsum), so the reference uses one too."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def single(inputs, out, **kw):
    with one_thread():
        return lsegrt.extract([inputs], out, workers=0, **kw)


def _same(one, two):
    """Same frame ids, manifest entries (but the file names) and bytes of every output."""
    d1, d2 = lsegrt.open_features(one), lsegrt.open_features(two)
    assert d1.ids == d2.ids and len(d1) == N
    for fid in d1.ids:
        x, y = d1[fid], d2[fid]
        assert sorted(x) == sorted(y)
        for name in x:
            assert x[name].dtype == y[name].dtype and np.array_equal(x[name], y[name]), (fid, name)
    e1 = {e["frame_id"]: e for e in d1.frames}
    for e in d2.frames:
        assert {k: v for k, v in e.items() if k != "outputs"} == \
               {k: v for k, v in e1[e["frame_id"]].items() if k != "outputs"}
    return d2


def test_ray_equals_single_process(tmp_path, cluster, inputs):
    opts = dict(KW, labels="cat, sky, other", scores=True)
    single(inputs, tmp_path / "one", **opts)
    summary = lsegrt.extract_ray([inputs], tmp_path / "ray", concurrency=2, actor_cpus=0.5, decode_cpus=0.25,
                                 call_batches=1, **opts)
    assert (summary.written, summary.skipped) == (N, 0)
    assert set(summary.utilisation) == {"decode", "wait", "h2d", "gpu", "d2h", "write"}
    assert summary.utilisation["gpu"] > 0
    _same(tmp_path / "one", tmp_path / "ray")
    names = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert "dataset.json" in names and "summary.json" in names
    assert set(n for n in names if n.startswith("manifest")) <= {"manifest-0-of-2.jsonl", "manifest-1-of-2.jsonl"}
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["written"] == N
    assert not [p for p in (tmp_path / "ray").rglob("*") if ".tmp-" in p.name]


def test_cli_ray_resumes_a_sharded_run_with_pca(tmp_path, cluster, inputs, run_cli):
    """`lsegrt extract --ray --resume` completes a dataset half done by `--shard 0/2`, computing only
    the rest, with the PCA basis that shard fitted; the result equals one single-process run."""
    opts = dict(KW, pca=8, stride=2, pca_sample=5)
    single(inputs, tmp_path / "one", **opts)
    half = single(inputs, tmp_path / "ray", shard="0/2", **opts)
    argv = ["extract", inputs, "--out", tmp_path / "ray", "--recursive", "--variant", "vit_tiny", "--size", "64",
            "--batch-size", "3", "--dtype", "fp32", "--pca", "8", "--stride", "2", "--pca-sample", "5",
            "--no-progress", "--ray", "--ray-actors", "1"]
    code, _, err = run_cli(*argv)
    assert code == 2 and "--resume" in err and err.count("\n") == 1
    code, _, err = run_cli(*argv, "--shard", "0/2")
    assert code == 2 and "--ray places work itself" in err
    code, out, err = run_cli(*argv, "--resume")
    assert code == 0, err
    assert f"{N - half.written} frames written, 0 skipped, {half.written} done before" in out
    d = _same(tmp_path / "one", tmp_path / "ray")
    assert d.pca is not None and d.pca.k == 8


def test_ray_refuses_arrays_and_models(tmp_path, tiny_vit):
    with pytest.raises(LsegError, match="paths"):
        lsegrt.extract_ray([np.zeros((32, 32, 3), np.uint8)], tmp_path / "x", **KW)
    with pytest.raises(LsegError, match="checkpoint as a path"):
        lsegrt.extract_ray(["sample:chelsea"], tmp_path / "x", checkpoint=tiny_vit, size=64)
