#!/usr/bin/env bash
# The GPU measurements behind docs/BENCHMARKS.md and the issue notes. Run from the repository root on the
# lent GPU machine (device image: torch 2.11 + the wheels open_clip_torch/ftfy/wcwidth carried in .whl,
# fetched by shared/tools/device_wheels.sh). Phases run in the order given; pick them so that one call
# stays inside the 10-minute command limit:
#
#   bash tools/gpu_run.sh eager                  eager sweeps of both variants + torch fp16/bf16 fidelity
#   bash tools/gpu_run.sh compile:V:P            torch.compile sweep of variant V (vit_l16 | rn101), precision P
#                                                (fp16 | fp32), batch 1 and 8, default sizes + 480x640
#   bash tools/gpu_run.sh eager640               eager fp32/fp16 of both variants at 480x640, batch 1 and 8
#   bash tools/gpu_run.sh fidelity:V             compare torch:fp16, compile:fp16, compile:fp32 vs fp32 eager
#                                                at 384 and 480x640
#   bash tools/gpu_run.sh static:V               compile fp16 + CUDA graph, static shapes (one compile per shape),
#                                                batch 1 at 384 and 1024: the latency headline
#   bash tools/gpu_run.sh autotune:V             the same at 384 with Inductor's max-autotune (GEMM autotuning)
#   bash tools/gpu_run.sh aoti                   does an AOTInductor package load on this image? (tiny model)
#   bash tools/gpu_run.sh tf32                   how far TF32 convolutions (PyTorch's fp32 default) move the features
#
# Every bench/compare writes straight under $OUT, so a phase cut short by its time limit (or the call by
# the command limit) still returns what it measured: bench rewrites its JSON after every configuration.
# At most 8 files come back per call: bench writes json+csv+png (3 files), compare only its JSON here.
# In docs/measurements, $OUT/compile_P_V/bench.json is kept as bench_compile_P_V.json and
# $OUT/static_V/bench.json as bench_compile_static_V.json; the other names are kept as they are.
#
# Compile notes: `--option dynamic=true` compiles once for symbolic H/W, but torch specializes size-1
# dimensions, so batch 1 and batch 8 are two compiles (≈95 s each for ViT-L/16 on an H100). 480x640 comes
# first so that H and W get separate symbols: a square first shape would make dynamo "duck-size" H == W
# and recompile at the first non-square input.
#
# For a dry run on a CPU: GPU_RUN_CPU=1 OUT=/tmp/gr bash tools/gpu_run.sh compile:vit_tiny:fp32 ...
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh"  # OUT, .whl wheels, PYTHONPATH, LSEGRT_CACHE
L="python3 -m lsegrt"
T="--min-seconds 1 --max-iters 100 --warmup-seconds 0.3"
SIZES="--size 480x640 --size 256 --size 320 --size 384 --size 480 --size 640 --size 768 --size 1024"
CG="--cuda-graph"
FID_SIZES="--size 384 --size 480x640"
if [ "${GPU_RUN_CPU:-0}" = 1 ]; then  # same commands, CPU-sized
  SIZES="--size 64x96 --size 64"; CG=""; T="--min-seconds 0.1 --min-iters 3 --max-iters 3 --warmup-seconds 0"
  FID_SIZES="--size 64 --size 64x96"
fi
quiet() { grep -v -e pow_by_natural -e Warning -e warnings.warn; }
stamp() { echo "=== $(date -u +%T) $*"; }
[ -f "$OUT/info.json" ] || $L info --json > "$OUT/info.json"

for phase in "${@:-eager}"; do
  IFS=: read -r name v p <<< "$phase"
  stamp "$phase"
  case $name in
    compile)
      timeout "${PHASE_TIMEOUT:-290}" $L bench --variant "$v" --backend compile --precision "$p" --batch 1 --batch 8 \
        $CG --option dynamic=true $SIZES $T --out "$OUT/compile_${p}_$v" 2>&1 | quiet | tail -24 ;;
    static)
      timeout "${PHASE_TIMEOUT:-200}" $L bench --variant "$v" --backend compile --precision fp16 --batch 1 $CG \
        --size 384 --size 1024 $T --out "$OUT/static_$v" 2>&1 | quiet | tail -8 ;;
    autotune)
      timeout "${PHASE_TIMEOUT:-300}" $L bench --variant "$v" --backend compile --precision fp16 --batch 1 $CG \
        --option mode=max-autotune --size 384 $T --out "$OUT/autotune_$v" 2>&1 | quiet | tail -8 ;;
    eager640)
      for v in vit_l16 rn101; do
        timeout 90 $L bench --variant $v --backend torch --precision fp32 --precision fp16 --batch 1 --batch 8 \
          --size 480x640 $T --out "/tmp/e640_$v" 2>&1 | quiet | tail -8
        cp "/tmp/e640_$v/bench.json" "$OUT/bench_torch480x640_$v.json"
      done ;;
    fidelity)
      timeout "${PHASE_TIMEOUT:-300}" $L compare --variant "$v" --candidate torch:fp16 --candidate compile:fp16 \
        --candidate compile:fp32 $FID_SIZES $CG --option dynamic=true --out "/tmp/f_$v" 2>&1 | quiet | tail -24
      cp "/tmp/f_$v/compare.json" "$OUT/compare_compile_$v.json" ;;
    aoti)
      timeout 200 python3 tools/device_probe.py aoti 2>&1 | tail -12 ;;
    tf32)
      timeout 300 python3 tools/device_probe.py tf32 2>&1 | grep -v Warning | tail -60 ;;
    eager)
      for v in vit_l16 rn101; do
        timeout 120 $L bench --variant $v --backend torch --precision fp32 --precision fp16 \
          --batch 1 --batch 8 $T --out /tmp/b_$v 2>&1 | quiet | tail -32
        cp /tmp/b_$v/bench.json "$OUT/bench_torch_$v.json"
      done
      for v in vit_l16 rn101; do
        timeout 50 $L compare --variant $v --candidate torch:fp16 --candidate torch:bf16 \
          --size 384 --size 480x640 --out /tmp/c_$v 2>&1 | quiet | tail -14
        cp /tmp/c_$v/compare.json "$OUT/compare_$v.json"
      done ;;
    *) echo "unknown phase $phase"; exit 2 ;;
  esac
done
stamp done
ls -la "$OUT"
