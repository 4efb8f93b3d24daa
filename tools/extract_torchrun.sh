#!/usr/bin/env bash
# Multi-GPU scaling of `lsegrt extract` under torchrun (issue 8): see tools/extract_torchrun.py.
# Run from the repository root on the 2-GPU machine (nvidia-h200-x2); wheels carried in .whl are
# installed as in tools/gpu_run.sh. Result: $OUT/extract_torchrun.json (one file).
#
#   bash tools/extract_torchrun.sh                                  # labels + PCA-64 stride 2, 2,000 frames
#   bash tools/extract_torchrun.sh --modes labels                   # one mode (if one call must be shorter)
#   EXTRACT_TORCHRUN_CPU=1 OUT=/tmp/xt bash tools/extract_torchrun.sh   # CPU dry run (vit_tiny, 2 processes)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh"  # OUT, .whl wheels, PYTHONPATH, LSEGRT_CACHE
CPU=()
[ "${EXTRACT_TORCHRUN_CPU:-0}" = 1 ] && CPU=(--cpu)
exec python3 tools/extract_torchrun.py --out "$OUT" "${CPU[@]}" "$@"
