# Common start of the tools/*.sh device scripts; they `source` it from the repository root.
# Sets OUT (default ./out) and creates it; installs the wheels carried in .whl (open_clip_torch, ftfy,
# wcwidth: fetched by shared/tools/device_wheels.sh) into /tmp/site when present, exiting the calling
# script if that fails; puts src/ first on PYTHONPATH, unbuffers Python and points LSEGRT_CACHE at /tmp.
# WHEEL_PIP_OPTS: extra pip options for that install (the issue 9 scripts pass --no-compile).
OUT=${OUT:-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps ${WHEEL_PIP_OPTS:-} --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 LSEGRT_CACHE=${LSEGRT_CACHE:-/tmp/lsegrt-cache}
