"""Helpers of the model tests. Triton kernels run on the CPU: a script in a fresh Python under Triton's
interpreter (TRITON_INTERPRET=1 is read when triton is imported, hence the subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_interpreted(script: str) -> dict:
    """Run ``script`` under Triton's interpreter; it prints its results as JSON on its last line."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
