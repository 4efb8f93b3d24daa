#!/usr/bin/env bash
# The GPU measurements behind docs/BENCHMARKS.md and the issue notes. Each phase fits one 10-minute
# device call. Run from the repository root on the lent GPU machine (device image: torch 2.11 + the
# carried wheels open_clip_torch/ftfy/wcwidth in .whl):
#   bash tools/gpu_run.sh              eager sweeps of both variants + fp16/bf16 fidelity (done 2026-11-22)
#   bash tools/gpu_run.sh compile V    torch.compile sweep of variant V (vit_l16 | rn101), fp16 then fp32;
#                                      batch 1 and 8 are two compiles each (torch specializes size-1 dims),
#                                      ≈95 s per compile for ViT-L/16 on an H100
#   bash tools/gpu_run.sh fidelity V   compare compile fp32/fp16 (+ eager fp16) vs fp32 eager, 384 and 480x640
# Each step has its own time limit; bench rewrites its JSON after every configuration, so a step cut
# short still returns what it measured. Results (JSON only: at most 8 files come back) go to $OUT.
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 LSEGRT_CACHE=/tmp/lsegrt-cache
L="python3 -m lsegrt"
T="--min-seconds 1 --max-iters 100 --warmup-seconds 0.3"
quiet() { grep -v -e pow_by_natural -e Warning -e warnings.warn; }
$L info --json > "$OUT/info.json"
case ${1:-eager} in
  compile)
    for p in fp16 fp32; do
      timeout 280 $L bench --variant $2 --backend compile --precision $p --batch 1 --batch 8 --cuda-graph \
        --option dynamic=true $T --out /tmp/k_$p 2>&1 | quiet | tail -18
      cp /tmp/k_$p/bench.json "$OUT/bench_compile_${p}_$2.json"
    done
    exit 0 ;;
  fidelity)
    timeout 560 $L compare --variant $2 --candidate torch:fp16 --candidate compile:fp16 --candidate compile:fp32 \
      --size 384 --size 480x640 --cuda-graph --option dynamic=true --out /tmp/f_$2 2>&1 | quiet | tail -24
    cp /tmp/f_$2/compare.json "$OUT/compare_compile_$2.json"
    exit 0 ;;
esac
for v in vit_l16 rn101; do
  # Eager torch fp32/fp16, all default sizes, batch 1 and 8.
  timeout 120 $L bench --variant $v --backend torch --precision fp32 --precision fp16 \
    --batch 1 --batch 8 $T --out /tmp/b_$v 2>&1 | quiet | tail -32
  cp /tmp/b_$v/bench.json "$OUT/bench_torch_$v.json"
  # torch.compile fp16 with dynamic shapes (one compile serves every size and batch) and a CUDA graph
  # per shape.
  timeout 130 $L bench --variant $v --backend compile --precision fp16 --batch 1 --batch 8 --cuda-graph \
    --option dynamic=true $T --out /tmp/k_$v 2>&1 | quiet | tail -18
  cp /tmp/k_$v/bench.json "$OUT/bench_compile_$v.json"
done
for v in vit_l16 rn101; do
  timeout 50 $L compare --variant $v --candidate torch:fp16 --candidate torch:bf16 \
    --size 384 --size 480x640 --out /tmp/c_$v 2>&1 | quiet | tail -14
  cp /tmp/c_$v/compare.json "$OUT/compare_$v.json"
done
tar -C /tmp -czf "$OUT/pictures.tgz" c_vit_l16 c_rn101 2>/dev/null
ls -la "$OUT"
