#!/usr/bin/env bash
# Issue 9 probe on the lent GPU (one call): stock torch.compile vs faster compile options, ViT-L/16 fp16
# batch 1 at 384² and 1024², timing + fidelity, each candidate in its own capped worker process; writes
# $OUT/issue9_probe.json, $OUT/issue9_workers.log (compile/autotune output) and $OUT/issue9_probe.log.
# Run from the repository root; .whl (open_clip_torch, ftfy, wcwidth: tools/gpu_run.sh's wheels) is
# installed when present so label agreement can be measured. Arguments go to the probe, e.g.
#   bash tools/issue9_probe.sh --budget 330 --candidates stock,autotune,freezing,fast
# CPU dry run: OUT=/tmp/p bash tools/issue9_probe.sh --cpu --candidates stock,fast
set -uo pipefail
WHEEL_PIP_OPTS=--no-compile
source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh"  # OUT, .whl wheels, PYTHONPATH, LSEGRT_CACHE
PY=${PYTHON:-python3}
timeout "${PROBE_TIMEOUT:-570}" "$PY" tools/issue9_probe.py "$@" 2>&1 | tee "$OUT/issue9_probe.log"
