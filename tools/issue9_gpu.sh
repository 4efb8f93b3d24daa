#!/usr/bin/env bash
# Issue 9 measurements for docs/BENCHMARKS.md on the lent GPU: stock torch.compile, and when CAND holds
# compile options (e.g. CAND="--option fast=true") stock vs those options in the same call; fp16,
# CUDA graph, static shapes. Phases run in the order given; pick them so one call stays inside the
# 10-minute limit (estimates for ViT-L/16 on an H200 in brackets; RN101 compiles faster):
#
#   bench:V          lsegrt bench --candidate stock [--candidate CAND], batch 1 and 8, 384 / 480x640 / 1024
#                    (one table, "× first" = speedup over stock)                         [~3 min per set]
#   ablate:V         stock, fast, and fast with each of its options undone in turn (fast,X=false, or
#                    shape_padding=true), then CAND's
#                    option sets, batch 1, at BENCH_SIZES: which options still pay, on this GPU
#                                                                         [ViT-L/16: ~20 s per candidate and size]
#   compare:V        lsegrt compare --candidate stock [--candidate CAND] vs fp32 eager, bundled photos, 384 + 480x640
#   profile:V:S      lsegrt profile stock [vs CAND] at S (S = 384 or 1024); PROFILE_TOP=N kernels listed
#                    per candidate (default 12)                                         [~1 min per set]
#   flex             FlexAttention's Triton kernel vs SDPA, ViT-L/16 token counts (issue9_probe.py --flex) [~2 min]
#   sdpaplans        every cuDNN execution plan for ViT-L/16's attention vs PyTorch's (issue9_sdpa_plans.py;
#                    needs the nvidia-cudnn-frontend wheel in .whl)                      [~1.5 min]
#   fp8attn          the attention in FP8: cuDNN's fp8 SDPA (every plan, output fp16 or e4m3) and the e4m3
#                    casts it needs, vs PyTorch's fp16 kernel (issue9_fp8_attention.py; cuDNN frontend wheel)
#                                                                                        [~2 min]
#   splitk           split-K micro-benchmark of the block GEMMs (issue9_probe.py --splitk)  [~1.5 min]
#   cls              block GEMMs and SDPA at M and M-1 rows: what the class token's row costs (--cls) [~2 min]
#   flash4           FlashAttention-4's kernel (flash-attn-4) vs cuDNN's attention at ViT-L/16's token counts
#                    (issue9_probe.py --flash4; FA4 importable: tools/fa4_parts.sh, FA4_SITE)      [~1 min]
#   quack            quack's CuTe-DSL GEMMs (quack-kernels, with FA4) vs cuBLAS at ViT-L/16's block GEMMs, several
#                    tiles, fc1 with its GELU epilogue, proj/fc2 also with the residual add (issue9_probe.py --quack)
#                                                                                        [~3 min]
#   finish           the last step (×2 upsampling, head, L2 norm): Inductor's vs lsegrt's Triton kernels (--finish)
#   code:V:S         Inductor's generated code (TORCH_COMPILE_DEBUG's output_code.py of every graph, caches
#                    off) for CAND's first option set (or stock) at S×S, batch 1: code9_V_S.tar.gz, to read
#                    which kernels a piece runs and why (copies, layouts; tools/inductor_kernels.py counts
#                    each graph's launches and copy kernels, printed here)                  [~1 min]
#   first:V          lsegrt build --backend compile (CAND or stock, 1x384x384), then time to first inference
#                    in a fresh process with an empty Inductor cache from the saved build, and (FIRST_COLD=1)
#                    without it; FIRST_CKPT=1: from a synthetic checkpoint file in the official layout
#                    instead of random weights (what a user with a real checkpoint does); FIRST_FRESH_TRITON=1:
#                    each process with an empty Triton cache as well (a machine new to the build); also writes
#                    first9_V_profile.txt (cProfile of a third saved-build run: load, first call); Python bytecode
#                    cached under /tmp/pyc unless FIRST_NO_PYC=1; FIRST_TIME_ITERS=N: each process then times
#                    N more calls (median ms: a saved build's speed against the cold compile's) [~1 min; +40 s cold]
#
# The profile phases share the build's Inductor cache (/tmp/ind9_main), so after first:V the
# whole-model compile at 384 is a cache hit; the saved-build and cold runs get empty caches of their own.
#
#   bash tools/issue9_gpu.sh bench:vit_l16                      # one call
#   bash tools/issue9_gpu.sh compare:vit_l16 first:vit_l16      # another
# Outputs (≤ 8 files per call) straight under $OUT: bench_issue9_V.json,
# compare_issue9_V.json, profile9_V_S.json (+ .png), first9_V.json. The .whl wheels (open_clip
# etc., as for tools/gpu_run.sh) are installed when present. CPU dry run:
#   GPU_RUN_CPU=1 OUT=/tmp/g bash tools/issue9_gpu.sh bench:vit_tiny profile:vit_tiny:64 first:vit_tiny
set -uo pipefail
WHEEL_PIP_OPTS=--no-compile
source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh"  # OUT, .whl wheels, PYTHONPATH, LSEGRT_CACHE
PY=${PYTHON:-python3}
L="$PY -m lsegrt"
CAND=${CAND:-}
T="--min-seconds 1 --max-iters 100 --warmup-seconds 0.3"
SIZES=${BENCH_SIZES:-"--size 384 --size 480x640 --size 1024"}; BATCHES=${BENCH_BATCHES:-"--batch 1 --batch 8"}
CG="--cuda-graph"; DEV=""; PREC="fp16"; FID=${COMPARE_SIZES:-"--size 384 --size 480x640"}; SHAPE="1x384x384"; FSIZE=384
if [ "${GPU_RUN_CPU:-0}" = 1 ]; then  # same commands, CPU-sized
  SIZES="--size 64 --size 64x96"; CG=""; DEV="--device cpu"; PREC="fp32"; FID="--size 64"; SHAPE="1x64x64"
  FSIZE=64; T="--min-seconds 0.1 --max-iters 5 --warmup-seconds 0"
fi
# stock compile first (the baseline of every table), then each of CAND's ';'-separated option sets as one
# candidate spec (KEY=VALUE,...), e.g. CAND="--option fast=true;--option fast=true --option fold=true"
CANDS=(--candidate "compile:$PREC")
IFS=';' read -ra CAND_SETS <<< "$CAND"
for opts in "${CAND_SETS[@]}"; do
  opts=$(echo "$opts" | sed -e 's/--option //g' -e 's/^ *//' -e 's/ *$//' -e 's/ /,/g')
  [ -n "$opts" ] && CANDS+=(--candidate "compile:$PREC:$opts")
done
FIRST_CAND=${CAND%%;*}  # a saved build (first:V) is of one option set: the first
quiet() { grep -v -e pow_by_natural -e Warning -e warnings.warn -e "^[WE][0-9]" -e AUTOTUNE -e triton_mm -e " ms [0-9.]*% "; }
stamp() { echo "=== $(date -u +%T) $*"; }
for phase in "$@"; do
  IFS=: read -r name v s <<< "$phase"
  stamp "$phase"
  case $name in
    bench)  # one table: stock first, then CAND as its own candidate ("× first" = speedup over stock)
      timeout "${PHASE_TIMEOUT:-400}" $L bench --variant "$v" "${CANDS[@]}" $BATCHES \
        $CG $SIZES $T $DEV --out "/tmp/b9_$v" 2>&1 | quiet | tail -16
      cp "/tmp/b9_$v/bench.json" "$OUT/bench_issue9_$v.json" ;;
    ablate)  # stock, fast, and fast with each of its options undone in turn, at BENCH_SIZES, batch 1 (one table)
      ABL=(--candidate "compile:$PREC" --candidate "compile:$PREC:fast=true")
      for o in $($PY -c "from lsegrt.backends.compiled import FAST
print(' '.join(f'{k}={str(not v).lower()}' for k, v in FAST.items()))"); do
        ABL+=(--candidate "compile:$PREC:fast=true,$o")
      done
      ABL+=("${CANDS[@]:2}")  # CAND's option sets after them, e.g. CAND="--option fast=true --option pdl=true"
      timeout "${PHASE_TIMEOUT:-560}" $L bench --variant "$v" "${ABL[@]}" --batch 1 \
        $CG $SIZES $T $DEV --out "/tmp/a9_$v" 2>&1 | quiet | tail -24
      cp "/tmp/a9_$v/bench.json" "$OUT/ablate_issue9_$v.json" ;;
    compare)  # stock and CAND against one fp32 eager reference, one table
      timeout "${PHASE_TIMEOUT:-300}" $L compare --variant "$v" "${CANDS[@]}" $FID $CG $DEV \
        --out "/tmp/c9_$v" 2>&1 | quiet | tail -12
      cp "/tmp/c9_$v/compare.json" "$OUT/compare_issue9_$v.json" ;;
    profile)  # --cuda-graph applies to every candidate
      TORCHINDUCTOR_CACHE_DIR=/tmp/ind9_main timeout "${PHASE_TIMEOUT:-400}" $L profile --variant "$v" --size "$s" $DEV \
        "${CANDS[@]}" $CG --top "${PROFILE_TOP:-12}" --out "/tmp/p9_${v}_$s" 2>&1 | quiet | tail -60
      cp "/tmp/p9_${v}_$s/profile.json" "$OUT/profile9_${v}_$s.json"
      cp "/tmp/p9_${v}_$s/profile.png" "$OUT/profile9_${v}_$s.png" ;;
    first)
      rm -rf /tmp/ind9_cold /tmp/ind9_saved /tmp/ind9_again /tmp/ind9_profiled /tmp/first9; mkdir -p /tmp/first9
      # Python's bytecode cached, as on a user's machine (the device image sets PYTHONDONTWRITEBYTECODE, and
      # without a cache each process compiled ~1,500 modules: 4.5 s, eleventh session); FIRST_NO_PYC=1: not
      if [ "${FIRST_NO_PYC:-0}" != 1 ]; then
        unset PYTHONDONTWRITEBYTECODE; export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/pyc}
      fi
      SRC="--variant $v"  # random weights; FIRST_CKPT=1: a synthetic checkpoint file in the official layout
      if [ "${FIRST_CKPT:-0}" = 1 ]; then
        $PY -c "import sys; from lsegrt.synthetic import official_state_dict as o, save_lightning_checkpoint as s; s(sys.argv[2], o(sys.argv[1]))" \
          "$v" "/tmp/first9/$v.ckpt" && SRC="--checkpoint /tmp/first9/$v.ckpt" && ls -la /tmp/first9/$v.ckpt
      fi
      TORCHINDUCTOR_CACHE_DIR=/tmp/ind9_main timeout 400 $L build --backend compile $SRC --precision $PREC \
        $CG $FIRST_CAND --shape $SHAPE $DEV --out "/tmp/first9/$v.compiled" 2>&1 | quiet | tail -4
      # saved: the first process on this machine to import the stack (Python may have no bytecode cached
      # yet); again: the same in a new process (as any later run); profiled: again, under cProfile.
      # Each gets an empty Inductor cache of its own.
      # FIRST_TEXT=1 adds text: again, with the text tower built at load (imports open_clip), an A/B.
      # FIRST_TEXT=2: text twice (the first may be the first process to import open_clip on the machine)
      modes="saved again profiled"; [ "${FIRST_TEXT:-0}" = 1 ] && modes="saved again text profiled"
      [ "${FIRST_TEXT:-0}" = 2 ] && modes="saved text again text2 profiled"
      [ "${FIRST_COLD:-0}" = 1 ] && modes="$modes cold"
      for mode in cold saved again text text2 profiled; do echo '{}' > /tmp/first9/$mode.json; done
      for mode in $modes; do
        eng="--engine /tmp/first9/$v.compiled"; cand=$FIRST_CAND
        # cold: a live compile (dynamo_cache is for saved builds only)
        [ $mode = cold ] && eng="" && cand=${FIRST_CAND//--option dynamo_cache=true/}
        prof=""; [ $mode = profiled ] && prof="--profile $OUT/first9_${v}_profile.txt"
        [ ${mode%2} = text ] && prof="--text-tower"
        dev=${DEV#--device }; dev=${dev:-cuda}
        # FIRST_FRESH_TRITON=1: an empty Triton cache too, as on a machine that never ran the kernels
        # (lsegrt's own Triton kernels are not in the saved build; Inductor's are)
        tc=""; [ "${FIRST_FRESH_TRITON:-0}" = 1 ] && tc="TRITON_CACHE_DIR=/tmp/ind9_$mode/triton"
        # FlashAttention-4's kernel cache empty as well: its kernels come from the build's zip, or are compiled
        env $tc FLASH_ATTENTION_CUTE_DSL_CACHE_DIR=/tmp/ind9_$mode/fa4 TORCHINDUCTOR_CACHE_DIR=/tmp/ind9_$mode timeout 400 $PY tools/issue9_first_inference.py $SRC \
          --precision $PREC $CG $cand --size $FSIZE --device "$dev" $eng --json "/tmp/first9/$mode.json" $prof \
          --time-iters ${FIRST_TIME_ITERS:-0} 2>&1 | tail -1
      done
      $PY -c "import json,sys; n=('cold','saved','again','text','text2','profiled','build_sidecar'); d={k: json.load(open(f)) for k, f in zip(n, sys.argv[1:8])}; d['modes']=sys.argv[9].split(); open(sys.argv[8],'w').write(json.dumps(d, indent=1))" \
        /tmp/first9/cold.json /tmp/first9/saved.json /tmp/first9/again.json /tmp/first9/text.json \
        /tmp/first9/text2.json /tmp/first9/profiled.json "/tmp/first9/$v.compiled.json" "$OUT/first9_$v.json" "$modes" ;;
    code)  # one bench row with Inductor's debug output on and its caches off, only the generated code kept
      spec="compile:$PREC"; [ ${#CANDS[@]} -gt 2 ] && spec="${CANDS[3]}"  # CANDS: --candidate stock --candidate first
      rm -rf /tmp/code9 && mkdir -p /tmp/code9
      (cd /tmp/code9 && TORCH_COMPILE_DEBUG=1 TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 timeout "${PHASE_TIMEOUT:-300}" \
        $L bench --variant "$v" --candidate "$spec" --size "$s" --batch 1 $CG $T $DEV --out /tmp/code9/bench \
        2>&1 | quiet | tail -4)
      find /tmp/code9 -name output_code.py | sed 's|^/tmp/code9/||' > /tmp/code9/files.txt
      echo "$(wc -l < /tmp/code9/files.txt) graphs' output_code.py for $spec at ${s}x$s"
      tar czf "$OUT/code9_${v}_$s.tar.gz" -C /tmp/code9 files.txt $(cat /tmp/code9/files.txt)
      $PY tools/inductor_kernels.py "$OUT/code9_${v}_$s.tar.gz" ;;  # launches and copy kernels per graph
    flex)  # FlexAttention's Triton kernel vs SDPA (tools/issue9_probe.py --flex; no model candidates)
      OUT=/tmp/fx9 timeout "${PHASE_TIMEOUT:-300}" $PY tools/issue9_probe.py --flex --candidates stock --budget 0 \
        --out /tmp/fx9 2>&1 | grep "flex" | tail -40
      cp /tmp/fx9/issue9_probe.json "$OUT/issue9_flex.json" ;;
    sdpaplans)  # every cuDNN plan for the attention vs the one PyTorch runs (tools/issue9_sdpa_plans.py)
      timeout "${PHASE_TIMEOUT:-240}" $PY tools/issue9_sdpa_plans.py --out /tmp/sp9 2>&1 | cut -c1-150 | tail -80
      [ -s /tmp/sp9/issue9_sdpa_plans.json ] && cp /tmp/sp9/issue9_sdpa_plans.json "$OUT/" ;;
    fp8attn)  # the attention in FP8: cuDNN's fp8 SDPA vs PyTorch's fp16 kernel (tools/issue9_fp8_attention.py)
      timeout "${PHASE_TIMEOUT:-300}" $PY tools/issue9_fp8_attention.py --out /tmp/f89 2>&1 | cut -c1-170 | tail -60
      [ -s /tmp/f89/issue9_fp8_attention.json ] && cp /tmp/f89/issue9_fp8_attention.json "$OUT/" ;;
    splitk)  # micro-benchmark of split-K block GEMMs (tools/issue9_probe.py --splitk; no model candidates)
      OUT=/tmp/sk9 timeout "${PHASE_TIMEOUT:-300}" $PY tools/issue9_probe.py --splitk --candidates stock --budget 0 \
        --out /tmp/sk9 2>&1 | grep "micro" | tail -20
      cp /tmp/sk9/issue9_probe.json "$OUT/issue9_splitk.json" ;;
    cls)  # the class token's row: GEMMs / SDPA at M and M-1 rows, split GEMMs (tools/issue9_probe.py --cls)
      OUT=/tmp/cl9 timeout "${PHASE_TIMEOUT:-300}" $PY tools/issue9_probe.py --cls --candidates stock --budget 0 \
        --out /tmp/cl9 2>&1 | grep "cls" | tail -40
      cp /tmp/cl9/issue9_probe.json "$OUT/issue9_cls.json" ;;
    flash4)  # FlashAttention-4's kernel vs cuDNN's attention (tools/issue9_probe.py --flash4; FA4 on PYTHONPATH)
      OUT=/tmp/fa9 timeout "${PHASE_TIMEOUT:-300}" $PY tools/issue9_probe.py --flash4 --candidates stock --budget 0 \
        --out /tmp/fa9 2>&1 | grep "flash4" | tail -10
      cp /tmp/fa9/issue9_probe.json "$OUT/issue9_flash4.json" ;;
    quack)  # quack's CuTe-DSL GEMMs vs cuBLAS at the block GEMMs (tools/issue9_probe.py --quack; FA4_SITE has quack)
      OUT=/tmp/qk9 timeout "${PHASE_TIMEOUT:-400}" $PY tools/issue9_probe.py --quack --candidates stock --budget 0 \
        --out /tmp/qk9 2>&1 | grep -e "quack" -e Error | tail -16
      cp /tmp/qk9/issue9_probe.json "$OUT/issue9_quack.json" ;;
    finish)  # the last step's kernels: upsampling, head, L2 norm (tools/issue9_probe.py --finish)
      OUT=/tmp/fi9 timeout "${PHASE_TIMEOUT:-300}" $PY tools/issue9_probe.py --finish --candidates stock --budget 0 \
        --out /tmp/fi9 2>&1 | grep "finish" | tail -10
      cp /tmp/fi9/issue9_probe.json "$OUT/issue9_finish.json" ;;
    *) echo "unknown phase $phase"; exit 2 ;;
  esac
done
stamp done
ls -la "$OUT"
