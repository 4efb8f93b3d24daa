#!/usr/bin/env bash
# The GPU measurements behind docs/BENCHMARKS.md and the issue notes. Run from the repository root on
# the lent GPU machine (device image: torch 2.11 + the carried wheels open_clip_torch/ftfy/wcwidth):
#   bash tools/gpu_run.sh start     # runs everything below in the background (setsid), logs to $RESULTS
#   bash tools/gpu_run.sh wait N    # waits up to N s for it, then packs $RESULTS into $OUT/results.tgz
# Steps per variant (ViT-L/16, then RN101):
#   1. bench sweep: eager torch and torch.compile (dynamic shapes: one compile serves every size and
#      batch; a CUDA graph per shape), fp32 and fp16, batch 1 and 8, all default sizes;
#   2. headline: static-shape compile (one compile per size, as a fixed-size deployment would), fp16 +
#      CUDA graph, batch 1, at 384 and 1024;
#   3. fidelity: compare vs fp32 eager on the bundled photos at 384 and 480x640.
set -uo pipefail
RESULTS=${RESULTS:-/tmp/lsegrt-gpu}
OUT=${OUT:-out}
setup() {
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src:${PYTHONPATH:-}
  export PYTHONUNBUFFERED=1 LSEGRT_CACHE=/tmp/lsegrt-cache
}
variant_steps() {
  local v=$1 L="python3 -m lsegrt"
  echo "=== $v bench $(date +%T)"
  $L bench --variant $v --backend torch --backend compile --precision fp32 --precision fp16 \
    --batch 1 --batch 8 --cuda-graph --option dynamic=true --out "$RESULTS/bench_$v"
  echo "=== $v headline $(date +%T)"
  $L bench --variant $v --backend compile --precision fp16 --size 384 --size 1024 --cuda-graph \
    --out "$RESULTS/headline_$v"
  echo "=== $v compare $(date +%T)"
  $L compare --variant $v --candidate torch:fp16 --candidate torch:bf16 --candidate compile:fp32 \
    --candidate compile:fp16 --size 384 --size 480x640 --cuda-graph --option dynamic=true \
    --out "$RESULTS/compare_$v"
  echo "=== $v done $(date +%T)"
}
case ${1:?start or wait} in
  start)
    setup
    mkdir -p "$RESULTS"
    python3 -m lsegrt info --json > "$RESULTS/info.json"
    setsid nohup bash -c "$(declare -f variant_steps); export RESULTS=$RESULTS; \
      variant_steps vit_l16; variant_steps rn101; touch $RESULTS/DONE" \
      > "$RESULTS/log.txt" 2>&1 < /dev/null &
    echo "started in the background; log: $RESULTS/log.txt"
    ;;
  wait)
    limit=${2:-560}
    for ((i = 0; i < limit; i += 10)); do [ -e "$RESULTS/DONE" ] && break; sleep 10; done
    grep -v -e pow_by_natural -e Warning -e warnings.warn "$RESULTS/log.txt" | tail -c 9000
    mkdir -p "$OUT"
    tar -C "$RESULTS" -czf "$OUT/results.tgz" .
    ls -la "$OUT"
    [ -e "$RESULTS/DONE" ] && echo ALL-DONE || echo STILL-RUNNING
    ;;
esac
