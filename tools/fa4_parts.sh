#!/usr/bin/env bash
# FlashAttention-4 for the device, in two parts a call each (the carry limit is 64 MiB a call; the CuTe DSL's
# MLIR library alone is 193 MB, 50 MB as xz). Here: fetch the wheels for Python 3.12 and pack
#   .fa4a/p1.tar.xz  the DSL's _cutlass_ir library              (~50 MB)
#   .fa4b/p2.tar.xz  everything else, unpacked wheels            (~18 MB)
# On the device, call 1 (carry .fa4a) and call 2 (carry .fa4b), on the same warm machine, each begin with
#   for p in .fa4a/p1.tar.xz .fa4b/p2.tar.xz; do [ -e $p ] && { mkdir -p /tmp/fa4site; tar xJf $p -C /tmp/fa4site; }; done
# and tools/device_env.sh puts /tmp/fa4site (FA4_SITE) on PYTHONPATH once flash_attn is there. /tmp, not a folder
# of the repository: an ignored folder unpacked by one call was gone in the next (sixteenth session), /tmp stayed.
# Both part folders are ignored by git (.git/info/exclude: /.fa4a/ and /.fa4b/).
set -euo pipefail
W=$(mktemp -d)
P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
   --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 -d $W/whl"
python3 -m pip download $P flash-attn-4==4.0.0b40 nvidia-cutlass-dsl==4.8.1 nvidia-cutlass-dsl-libs-core==4.8.1 nvidia-cutlass-dsl-libs-base==4.8.1 \
  nvidia-cutlass-dsl-libs-cu13==4.8.1 apache-tvm-ffi==0.1.15.post2 torch-c-dlpack-ext==0.1.5 quack-kernels==0.6.5
mkdir -p "$W/site" .fa4a .fa4b
for w in "$W"/whl/*.whl; do unzip -q -o "$w" -d "$W/site"; done
lib=nvidia_cutlass_dsl/dsl_packages/cutlass/_mlir/_mlir_libs/_cutlass_ir.cu13.cpython-312-x86_64-linux-gnu.so
(cd "$W/site" && tar cf - "$lib") | xz -9e -T4 > .fa4a/p1.tar.xz
(cd "$W/site" && tar cf - --exclude="$(basename $lib)" .) | xz -9e -T4 > .fa4b/p2.tar.xz
rm -rf "$W"
ls -la .fa4a .fa4b
