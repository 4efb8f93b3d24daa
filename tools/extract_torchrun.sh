#!/usr/bin/env bash
# Multi-GPU scaling of `lsegrt extract` under torchrun (issue 8): see tools/extract_torchrun.py.
# Run from the repository root on the 2-GPU machine (nvidia-h200-x2); wheels carried in .whl are
# installed as in tools/gpu_run.sh. Result: $OUT/extract_torchrun.json (one file).
#
#   bash tools/extract_torchrun.sh                                  # labels + PCA-64 stride 2, 2,000 frames
#   bash tools/extract_torchrun.sh --modes labels                   # one mode (if one call must be shorter)
#   EXTRACT_TORCHRUN_CPU=1 OUT=/tmp/xt bash tools/extract_torchrun.sh   # CPU dry run (vit_tiny, 2 processes)
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 LSEGRT_CACHE=${LSEGRT_CACHE:-/tmp/lsegrt-cache}
CPU=()
[ "${EXTRACT_TORCHRUN_CPU:-0}" = 1 ] && CPU=(--cpu)
exec python3 tools/extract_torchrun.py --out "$OUT" "${CPU[@]}" "$@"
