#!/usr/bin/env bash
# GPU benchmark of `lsegrt extract` (issue 8): see tools/extract_bench.py for what it measures.
# Run from the repository root on the lent GPU machine; wheels carried in .whl are installed as in
# tools/gpu_run.sh. Results: $OUT/extract_bench.json and $OUT/extract_bench.log (2 files).
#
#   bash tools/extract_bench.sh                       # all modes, ~2,000 frames (fits one 10-minute call)
#   bash tools/extract_bench.sh --modes labels,ceiling  # a subset
#   EXTRACT_BENCH_CPU=1 OUT=/tmp/xb bash tools/extract_bench.sh   # CPU dry run (vit_tiny, 20 frames)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh"  # OUT, .whl wheels, PYTHONPATH, LSEGRT_CACHE
CPU=()
[ "${EXTRACT_BENCH_CPU:-0}" = 1 ] && CPU=(--cpu)
exec python3 tools/extract_bench.py --out "$OUT" "${CPU[@]}" "$@"
