"""One-shot GPU probe: does lsegrt import and run on the device image, and what do compiles cost?

    python tools/device_probe.py [compile] [aoti] [tf32]      (default: compile aoti)

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


def probe_compile() -> None:
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


def probe_aoti() -> None:
    """AOTInductor on this image: build a tiny package per device and load it in a child process.

    On the device's torch 2.11 image loading has been seen to segfault (return code -11), so each load
    runs in its own process and the return code is the evidence.
    """
    for dev in ("cuda", "cpu"):
        code = (
            "import torch, lsegrt; from lsegrt.backends.aoti import build_aoti;"
            f"m=lsegrt.random_model('vit_tiny', device='{dev}'); build_aoti(m, '/tmp/t_{dev}.pt2', device='{dev}');"
            f"print('built', flush=True); r=torch._inductor.aoti_load_package('/tmp/t_{dev}.pt2');"
            f"print('loaded', flush=True); print(r(torch.randn(1,3,64,64,device='{dev}')).shape)"
        )
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        res[f"aoti_tiny_{dev}"] = {"returncode": p.returncode, "seconds": round(time.perf_counter() - t, 1),
                                   "stdout": p.stdout[-500:], "stderr": p.stderr[-1500:]}
        print(dev, "returncode", p.returncode, p.stdout.strip().replace("\n", " | "), flush=True)


def probe_tf32() -> None:
    """How far does PyTorch's default fp32 (cuDNN convolutions in TF32) move the features?

    Per variant, on the bundled chelsea photo at 384: eager fp32 with TF32 convolutions (PyTorch's
    default) and compile fp32 (static shape) with and without, against eager fp32 with TF32 off
    everywhere; plus the eager latencies of both settings.
    """
    from skimage import data

    def rel(a, b):
        return {"rel_l2": float((a - b).norm() / b.norm()), "mean_cos": float((a * b).sum(1).mean()),
                "min_cos": float((a * b).sum(1).min())}

    res["cudnn_allow_tf32_default"] = torch.backends.cudnn.allow_tf32
    res["matmul_allow_tf32_default"] = torch.backends.cuda.matmul.allow_tf32
    for variant in ("vit_l16", "rn101"):
        model = lsegrt.random_model(variant, device="cuda")
        x = model.preprocess(data.chelsea(), size=384).cuda()
        eager = Encoder.open("torch", checkpoint=model, device="cuda", precision="fp32")
        compiled = Encoder.open("compile", checkpoint=model, device="cuda", precision="fp32")
        out = {}
        for tf32 in (False, True):
            torch.backends.cudnn.allow_tf32 = tf32
            out[f"eager_tf32{tf32}"] = eager(x)
            out[f"compile_tf32{tf32}"] = compiled(x)
            res[f"{variant}_eager_tf32{tf32}_ms"] = timed(eager, x, 20)
        torch.backends.cudnn.allow_tf32 = True
        ref = out["eager_tf32False"]
        for name, y in out.items():
            res[f"{variant}_{name}_vs_strict_eager"] = rel(y, ref)
        res[f"{variant}_compile_tf32True_vs_eager_tf32True"] = rel(out["compile_tf32True"], out["eager_tf32True"])
        print(json.dumps({k: v for k, v in res.items() if k.startswith(variant)}, indent=1), flush=True)
        del model, eager, compiled, out
        torch.cuda.empty_cache()


if __name__ == "__main__":
    what = [a.lstrip("-") for a in sys.argv[1:]] or ["compile", "aoti"]
    if "aoti-only" in what:  # the older spelling
        what = ["aoti"]
    for name in what:
        {"compile": probe_compile, "aoti": probe_aoti, "tf32": probe_tf32}[name]()
    print(json.dumps(res, indent=1))
    with open(os.path.join(OUT, "probe_" + "_".join(what) + ".json"), "w") as f:
        json.dump(res, f, indent=1)
