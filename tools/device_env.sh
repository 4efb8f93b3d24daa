# Common start of the tools/*.sh device scripts; they `source` it from the repository root.
# Sets OUT (default ./out) and creates it; installs the wheels carried in .whl (open_clip_torch, ftfy,
# wcwidth: fetched by shared/tools/device_wheels.sh; nvidia-cudnn-frontend, optional) into /tmp/site when
# present, exiting the calling script if a required one fails; puts src/ first on PYTHONPATH, unbuffers
# Python and points LSEGRT_CACHE at /tmp.
# WHEEL_PIP_OPTS: extra pip options for that install (the issue 9 scripts pass --no-compile).
OUT=${OUT:-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  # the cuDNN frontend (tools/issue9_sdpa_plans.py, the attention_plans option) is optional: its wheel is
  # platform-specific, and the rest must not depend on it installing
  required=$(ls .whl/*.whl | grep -v nvidia_cudnn_frontend)
  if [ -n "$required" ]; then
    python3 -m pip install -q --no-index --no-deps ${WHEEL_PIP_OPTS:-} --target /tmp/site $required || exit 1
  fi
  for w in .whl/nvidia_cudnn_frontend*.whl; do
    [ -e "$w" ] && { python3 -m pip install -q --no-index --no-deps --target /tmp/site "$w" || echo "optional: $w not installed"; }
  done
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 LSEGRT_CACHE=${LSEGRT_CACHE:-/tmp/lsegrt-cache}
# FlashAttention-4 (the flash4 option, issue9_probe.py --flash4): its wheels (flash-attn-4, nvidia-cutlass-dsl
# and its libs, quack-kernels, apache-tvm-ffi) unpacked into FA4_SITE, which is too large for one call's carry:
# tools/fa4_parts.sh packs it in two parts that two calls on one warm machine unpack there
FA4_SITE=${FA4_SITE:-/tmp/fa4site}
if [ -d "$FA4_SITE/flash_attn" ]; then
  export PYTHONPATH=$PYTHONPATH:$FA4_SITE:$FA4_SITE/nvidia_cutlass_dsl/dsl_packages
fi
