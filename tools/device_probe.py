"""One-shot GPU probe: does lsegrt import and run on the device image, and what do compiles cost?

Run on the lent GPU machine (see docs/BENCHMARKS.md for how). Prints a short table; writes JSON to $OUT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch

import lsegrt
from lsegrt.backends.base import Encoder

OUT = os.environ.get("OUT", ".")
res: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}


def timed(fn, x, iters=50):
    for _ in range(5):
        fn(x)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(iters):
        fn(x)
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / iters


t = time.perf_counter()
model = lsegrt.random_model("vit_l16", device="cuda")
res["random_vit_l16_s"] = time.perf_counter() - t
x = torch.randn(1, 3, 384, 384, device="cuda")
ref = model.encode_image(x)
for prec in ("fp32", "fp16"):
    enc = Encoder.open("torch", checkpoint=model, device="cuda", precision=prec)
    y = enc(x)
    res[f"eager_{prec}_384_ms"] = timed(enc, x)
    res[f"eager_{prec}_cos"] = float((y * ref).sum(1).mean())
for dyn in (False, True):
    t = time.perf_counter()
    enc = Encoder.open("compile", checkpoint=model, device="cuda", precision="fp16", cuda_graph=True, dynamic=dyn)
    y = enc(x)
    res[f"compile_cg_fp16_dyn{dyn}_compile_s"] = time.perf_counter() - t
    res[f"compile_cg_fp16_dyn{dyn}_384_ms"] = timed(enc, x)
    res[f"compile_cg_fp16_dyn{dyn}_cos"] = float((y * ref).sum(1).mean())
    if dyn:
        x2 = torch.randn(1, 3, 1024, 1024, device="cuda")
        t = time.perf_counter()
        enc(x2)
        res["compile_dyn_new_shape_s"] = time.perf_counter() - t
        res["compile_cg_fp16_dyn_1024_ms"] = timed(enc, x2, 20)
    print(json.dumps(res), flush=True)
# AOTInductor on this image: build a tiny package and load it in a child (it has been seen to segfault).
code = (
    "import torch, lsegrt; from lsegrt.backends.aoti import build_aoti, AOTIEncoder;"
    "m=lsegrt.random_model('vit_tiny', device='cuda'); build_aoti(m, '/tmp/t.pt2', device='cuda');"
    "print('built', flush=True); r=torch._inductor.aoti_load_package('/tmp/t.pt2'); print('loaded', flush=True);"
    "print(r(torch.randn(1,3,64,64,device='cuda')).shape)"
)
p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
res["aoti_tiny_cuda"] = {"returncode": p.returncode, "stdout": p.stdout[-500:], "stderr": p.stderr[-1500:]}
print(json.dumps(res, indent=1))
with open(os.path.join(OUT, "probe.json"), "w") as f:
    json.dump(res, f, indent=1)
