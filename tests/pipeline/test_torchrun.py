"""Two processes under torchrun on a CPU write one dataset equal to a single process's."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

import lsegrt

from .conftest import make_frames


def test_torchrun_two_processes_equal_one(tmp_path, tiny_vit):
    make_frames(tmp_path / "in", n=6)
    common = ["--recursive", "--variant", "vit_tiny", "--size", "64", "--dtype", "fp32", "--batch-size", "2",
              "--workers", "0", "--labels", "x, y", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "0",
         "-m", "lsegrt", "extract", str(tmp_path / "in"), "--out", str(tmp_path / "two"), *common],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "two").glob("manifest-*")) == ["manifest-0-of-2.jsonl",
                                                                             "manifest-1-of-2.jsonl"]
    lsegrt.extract([tmp_path / "in"], tmp_path / "one", checkpoint=tiny_vit, recursive=True, size=64, dtype="fp32",
                   batch_size=2, workers=0, labels="x, y", progress=False, say=lambda *_: None)
    one, two = lsegrt.open_features(tmp_path / "one"), lsegrt.open_features(tmp_path / "two")
    assert two.ids == one.ids and len(one) == 6
    for fid in one.ids:
        assert np.array_equal(one[fid]["features"], two[fid]["features"])
        assert np.array_equal(one[fid]["labels"], two[fid]["labels"])
