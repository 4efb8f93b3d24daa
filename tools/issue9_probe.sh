#!/usr/bin/env bash
# Issue 9 probe on the lent GPU (one call, ≤ 9 minutes): stock torch.compile vs faster compile options,
# ViT-L/16 fp16 batch 1 at 384² and 1024², timing + fidelity; writes $OUT/issue9_probe.json.
# Run from the repository root; .whl (open_clip_torch, ftfy, wcwidth: tools/gpu_run.sh's wheels) is
# installed when present so label agreement can be measured. Extra arguments go to the probe, e.g.
#   bash tools/issue9_probe.sh --candidates stock,fast --sizes 384
# CPU dry run: OUT=/tmp/p bash tools/issue9_probe.sh --cpu
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 LSEGRT_CACHE=${LSEGRT_CACHE:-/tmp/lsegrt-cache}
PY=${PYTHON:-python3}
timeout 560 "$PY" tools/issue9_probe.py --budget 470 "$@" 2>&1 | tee "$OUT/issue9_probe.log" \
  | grep -v -e pow_by_natural -e Warning -e warnings.warn -e "^W[0-9]"
