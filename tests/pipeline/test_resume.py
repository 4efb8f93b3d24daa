"""kill -9 in the middle of a run, then --resume: the dataset equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

import lsegrt

from .conftest import make_frames

# The real CLI in a fresh interpreter, with every data file held open for a moment before it is
# renamed, so that the kill lands while a batch is being written.
SLOW_CLI = """
import sys, time
from lsegrt.pipeline import write
real = write.write_tensors
def slow(*a, **k):
    n = real(*a, **k)
    time.sleep(0.15)
    return n
write.write_tensors = slow
from lsegrt.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_then_resume_equals_uninterrupted(tmp_path):
    make_frames(tmp_path / "in", n=24)
    args = ["extract", str(tmp_path / "in"), "--recursive", "--variant", "vit_tiny", "--size", "64", "--dtype",
            "fp32", "--batch-size", "2", "--workers", "0", "--writers", "1", "--labels", "x, y", "--no-progress"]
    out = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = out / "manifest-0-of-1.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.stat().st_size > 0:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    before = len(lsegrt.open_features(out))
    assert 0 < before < 24  # killed mid-run

    from lsegrt.cli import main

    assert main(args + ["--out", str(out), "--resume"]) == 0
    assert main(args + ["--out", str(tmp_path / "ref")]) == 0
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    ids = [e["frame_id"] for e in lines]
    assert len(ids) == len(set(ids)) == 24  # nothing missing, nothing twice
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    referenced = {e["outputs"]["features"]["file"] for e in lines}
    assert {f"data/{p.name}" for p in (out / "data").iterdir()} == referenced  # no orphan data file
    got, ref = lsegrt.open_features(out), lsegrt.open_features(tmp_path / "ref")
    assert got.ids == ref.ids
    for fid in ref.ids:
        a, b = got[fid], ref[fid]
        assert np.array_equal(a["features"], b["features"]) and np.array_equal(a["labels"], b["labels"])
