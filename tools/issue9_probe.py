"""Issue 9 probe: stock torch.compile vs faster compile options, ViT-L/16 fp16, batch 1, one GPU call.

    python tools/issue9_probe.py                      # GPU: 384² and 1024², default candidate order
    python tools/issue9_probe.py --cpu                # dry run on the CPU: vit_tiny, 64² and 96², fp32
    python tools/issue9_probe.py --candidates stock,autotune --sizes 384 --budget 200

Each candidate (a set of `compile` backend options) runs in its own worker process under a hard time
cap (``CAPS``, and never past --budget): a compile that autotunes for too long is cut off and reported
as such, and the next candidate still runs. In the worker, for each size: open the encoder (fp16, CUDA
graph, static shape), time its first call (the compile), time it like `lsegrt bench` (CUDA events around
each call, CUDA-graph replay, --iters calls after warm-up, median) and compare its features on a real
photo (skimage's chelsea, resized to the size) with fp32 eager (strict IEEE, no TF32): mean per-pixel
cosine and label agreement over 8 labels (gate: ≥ 0.9995 and ≥ 99.5 %). The worker writes its rows
after every size, so a cut-off worker keeps what it finished. When time is left at the end, stock runs
once more ("stock-again", a warm Inductor cache makes it quick): the spread between the two stock rows
is the noise floor for the speedups. ``--sdpa`` adds a micro-benchmark of the SDPA kernel families.

Writes $OUT/issue9_probe.json (rewritten after every candidate) and $OUT/issue9_workers.log (the
workers' full output: compile and autotuning logs); prints a table last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lsegrt.report import error_text  # noqa: E402  (src/ on the path first)

# name → compile options. Order = the default run order.
CANDIDATES: dict[str, dict] = {
    "stock": {},
    "freezing": {"freezing": True},
    "autotune": {"autotune": "gemm"},
    "fast": {"freezing": True, "autotune": "gemm"},
    "channels_last": {"channels_last": True},
    "cd": {"coordinate_descent": True},
    "fast+cl": {"freezing": True, "autotune": "gemm", "channels_last": True},
    "autotune-full": {"autotune": "gemm-full"},
    "overlap": {"overlap": True},
    "overlap+cl": {"overlap": True, "channels_last": True},
    "overlap+cd": {"overlap": True, "coordinate_descent": True},
    "stock-again": {},
}
# Largest expected gain first: the first probe's autotuning log showed Triton GEMM tiles 1.6-2x faster than
# cuBLAS on ViT-L/16's 577-row GEMMs at 384² (qkv, fc2), so narrowed GEMM autotuning leads.
DEFAULT_ORDER = ["stock", "autotune", "freezing", "fast", "channels_last", "cd", "stock-again"]
# Hard cap per candidate (seconds, whole worker: start, model, both sizes' compiles and timings).
CAPS = {"overlap": 120, "overlap+cl": 120, "overlap+cd": 150, "stock": 75, "stock-again": 50, "freezing": 80, "channels_last": 80, "autotune": 120, "fast": 120,
        "fast+cl": 120, "cd": 100, "autotune-full": 300}
GATE = {"mean_cosine": 0.9995, "agreement": 99.5}
LABELS = "person, animal, plant, sky, building, road, water, other"


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def write_json(path: Path, payload) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    tmp.replace(path)


# -- worker: one candidate, every size ---------------------------------------------------------------
def worker(args) -> int:
    import torch

    import lsegrt
    from lsegrt.backends.base import Encoder
    from lsegrt.bench import Timing, measure
    from lsegrt.compare import label_map, map_metrics, summarize
    from lsegrt.images import sample_image

    cpu = args.cpu
    device = torch.device("cpu" if cpu else "cuda")
    precision, variant = ("fp32", "vit_tiny" if args.variant == "vit_l16" else "rn_tiny") if cpu else ("fp16", args.variant)
    name = args.worker
    options = CANDIDATES[name]
    out_path = Path(args.worker_out)
    rows: list[dict] = []
    t0 = time.perf_counter()
    model = lsegrt.random_model(variant, seed=0, device=device)
    try:
        text = model.encode_text(LABELS)
    except Exception:  # open_clip missing: cosine only
        text = None
    photo = sample_image("chelsea")
    ref = Encoder.open("torch", checkpoint=model, device=device, precision="fp32", tf32=False)
    enc = Encoder.open("compile", checkpoint=model, device=device, precision=precision, cuda_graph=not cpu,
                       **options)
    setup_s = round(time.perf_counter() - t0, 2)
    for s in args.sizes:
        row = {"candidate": name, "options": options, "size": s, "worker_setup_s": setup_s}
        try:
            x = model.preprocess(photo, size=(s, s))
            ref_feats = ref(x)
            t = time.perf_counter()
            out = enc(x)
            if not cpu:
                torch.cuda.synchronize()
            row["compile_s"] = round(time.perf_counter() - t, 2)
            log(f"{name} @ {s}: first call (compile) {row['compile_s']} s")
            timing = Timing(warmup_iters=3, warmup_seconds=0.2, min_seconds=60, max_iters=args.iters,
                            copy_iters=1, rotation=3)
            m = measure(enc, model, s, s, 1, timing)
            key = "host_ms" if cpu else "gpu_ms"
            row.update({k: round(m[f"{key}_{k}"], 4) for k in ("p50", "mean", "std", "min", "p90")},
                       iters=m["iters"], peak_mem_mb=m.get("gpu_peak_mem_mb"))
            out = enc(x)
            if text is not None:
                fid = summarize([map_metrics(ref_feats, out, label_map(ref_feats, text), label_map(out, text))])
            else:
                none = torch.zeros(1, dtype=torch.long)
                fid = summarize([map_metrics(ref_feats, out, none, none)])
            row.update({k: fid[k] for k in ("mean_cosine", "p01_cosine", "min_cosine", "rel_l2")})
            row["agreement"] = fid["agreement"] if text is not None else None
            row["passes_gate"] = bool(fid["mean_cosine"] >= GATE["mean_cosine"] and
                                      (row["agreement"] is None or row["agreement"] >= GATE["agreement"]))
            log(f"{name} @ {s}: p50 {row['p50']:.3f} ms, cos {row['mean_cosine']:.7f}, agree {row['agreement']}")
            if not rows:
                row["describe"] = enc.describe()
        except Exception as exc:
            row["error"] = error_text(exc)
            row["traceback"] = traceback.format_exc()[-3000:]
            log(f"{name} @ {s}: FAILED {row['error']}")
        rows.append(row)
        write_json(out_path, rows)
    return 0


# -- parent: candidates in order, each in a capped worker --------------------------------------------
def env_info(cpu: bool) -> dict:
    import platform

    import torch

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "cpu_count": os.cpu_count()}
    with contextlib.suppress(Exception):
        import triton

        env["triton"] = triton.__version__
    if not cpu and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, sms=p.multi_processor_count, cc=f"{p.major}.{p.minor}",
                   cudnn=torch.backends.cudnn.version())
    return env


def graph_ms(fn, calls: int = 24, replays: int = 20):
    """(median ms per call, 4 decimals; last output) of ``calls`` calls of ``fn`` captured in one CUDA graph,
    ``replays`` replays."""
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            out = fn()
    times = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / calls)
    return round(sorted(times)[len(times) // 2], 4), out


def cudnn_plan_runner(cudnn, handle, graph, pack: dict, index: int):
    """A no-argument callable that runs plan ``index`` of a built cuDNN-frontend ``graph`` on ``pack`` (tensor
    descriptor → torch tensor) on the current stream, with a workspace of the plan's own (CUDA-graph safe)."""
    import torch

    ws = torch.empty(max(1, graph.get_workspace_size_plan_at_index(index)), device="cuda", dtype=torch.uint8)

    def run():
        cudnn.set_stream(handle, torch.cuda.current_stream().cuda_stream)
        graph.execute_plan_at_index(pack, ws, index, handle=handle)
    return run


def cudnn_shapes_main(description: str, record: str, shapes, probe_shape, table, **meta) -> int:
    """main() of the cuDNN-frontend attention probes (issue9_sdpa_plans, issue9_fp8_attention): each
    (tokens, with log-sum-exp) of ``shapes`` through ``probe_shape(cudnn, handle, tokens, stats)`` (a shape that
    raises gets its traceback as its row), ``record`` rewritten under --out after each, and ``table``'s
    rendering of it printed last. ``meta``: more fields for the record's header."""
    import torch

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    args = ap.parse_args()
    import cudnn

    handle = cudnn.create_handle()
    result = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "gpu": torch.cuda.get_device_name(),
              "torch": torch.__version__, "cudnn_backend": torch.backends.cudnn.version(),
              "cudnn_frontend": getattr(cudnn, "__version__", "?"), **meta, "shapes": []}
    try:  # the libcudnn the frontend loaded, which need not be the one PyTorch reports
        result["cudnn_frontend_backend"] = cudnn.backend_version()
    except Exception as e:
        result["cudnn_frontend_backend"] = f"? ({type(e).__name__})"
    path = Path(args.out) / record
    path.parent.mkdir(parents=True, exist_ok=True)
    for n, stats in shapes:
        t = time.time()
        try:
            row = probe_shape(cudnn, handle, n, stats)
        except Exception as e:
            row = {"tokens": n, "stats": stats, "error": traceback.format_exc()[-1500:]}
            print(f"n={n}: {type(e).__name__}: {e}", flush=True)
        row["seconds"] = round(time.time() - t, 1)
        result["shapes"].append(row)
        write_json(path, result)
    print()
    print(table(path))
    return 0


def sdpa_bench(res: dict, sizes: list[int]) -> None:
    """Each SDPA kernel family at ViT-L/16's token counts: 24 calls captured in a CUDA graph, replayed."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    families = {"default": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}
    for s in sizes:
        n = 1 + (s // 16) ** 2
        q, k, v = (torch.randn(1, 16, n, 64, device="cuda", dtype=torch.float16) for _ in range(3))
        for name, backend in families.items():
            row = {"size": s, "tokens": n, "family": name}
            try:
                with sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext():
                    ms, _ = graph_ms(lambda: F.scaled_dot_product_attention(q, k, v))
                row.update(ms=round(ms, 4), tflops=round(4 * n * n * 64 * 16 / ms / 1e9, 1))
            except Exception as exc:
                row["error"] = error_text(exc)
            res["sdpa"].append(row)


def flex_bench(res: dict) -> None:
    """FlexAttention's Triton kernel (no score_mod, no mask) against PyTorch's SDPA choice (cuDNN here) at
    ViT-L/16's token counts, batch 1 and 8: Inductor's autotuned choice and fixed tiles, 24 calls per CUDA
    graph; max |difference| to the SDPA output."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention.flex_attention import flex_attention

    tiles = [None, (64, 64, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3), (64, 32, 4, 3), (128, 128, 8, 2)]
    for batch, n in ((1, 577), (1, 1201), (1, 4097), (8, 577), (8, 1201)):
        q, k, v = (torch.randn(batch, 16, n, 64, device="cuda", dtype=torch.float16) for _ in range(3))
        flops = 4 * n * n * 64 * 16 * batch
        ref_ms, ref = graph_ms(lambda: F.scaled_dot_product_attention(q, k, v))
        res["flex"].append({"batch": batch, "tokens": n, "kernel": "sdpa", "ms": ref_ms,
                            "tflops": round(flops / ref_ms / 1e9, 1)})
        for tile in tiles:
            row = {"batch": batch, "tokens": n, "kernel": "flex", "tile": tile or "autotune"}
            try:
                torch._dynamo.reset()
                if tile is None:
                    fn = torch.compile(flex_attention, dynamic=False, mode="max-autotune-no-cudagraphs")
                    call = lambda: fn(q, k, v)  # noqa: E731
                else:
                    fn = torch.compile(flex_attention, dynamic=False)
                    opts = dict(zip(("BLOCK_M", "BLOCK_N", "num_warps", "num_stages"), tile))
                    call = lambda: fn(q, k, v, kernel_options=opts)  # noqa: E731
                t = time.perf_counter()
                call()
                torch.cuda.synchronize()
                row["compile_s"] = round(time.perf_counter() - t, 1)
                ms, out = graph_ms(call)
                row.update(ms=ms, tflops=round(flops / ms / 1e9, 1), vs_sdpa=round(ref_ms / ms, 3),
                           max_abs_diff=float((out.float() - ref.float()).abs().max()))
            except Exception as exc:
                row["error"] = error_text(exc)
            log(f"flex {row}")
            res["flex"].append(row)


def micro_bench(res: dict) -> None:
    """fc1's bias + exact GELU as two kernels vs cuBLASLt's fused GELU epilogue (tanh approximation), and
    the 16×16 patch-embedding convolution vs the same product as a GEMM: 24 calls per CUDA graph."""
    import torch
    import torch.nn.functional as F

    h = torch.float16
    for m in (577, 4097):
        x = torch.randn(m, 1024, device="cuda", dtype=h)
        w = torch.randn(4096, 1024, device="cuda", dtype=h) * 0.03
        b = torch.randn(4096, device="cuda", dtype=h) * 0.1
        split_ms, ref = graph_ms(lambda: F.gelu(F.linear(x, w, b)))
        fused_ms, fused = graph_ms(lambda: torch._addmm_activation(b, x, w.t(), use_gelu=True))
        gemm_ms, _ = graph_ms(lambda: F.linear(x, w, b))
        res["micro"].append({"op": "fc1+gelu", "rows": m, "linear_then_gelu_ms": split_ms, "linear_only_ms": gemm_ms,
                             "addmm_gelu_epilogue_ms": fused_ms,
                             "max_abs_diff": float((fused.float() - ref.float()).abs().max())})
    for s in (384, 1024):
        img = torch.randn(1, 3, s, s, device="cuda", dtype=h)
        conv = torch.nn.Conv2d(3, 1024, 16, stride=16).cuda().half()
        wmat = conv.weight.reshape(1024, -1)

        def as_gemm():
            g = s // 16
            p = img.reshape(1, 3, g, 16, g, 16).permute(0, 2, 4, 1, 3, 5).reshape(g * g, 768)
            return F.linear(p, wmat, conv.bias)

        conv_ms, ref = graph_ms(lambda: conv(img))
        gemm_ms, out = graph_ms(as_gemm)
        res["micro"].append({"op": "patch_embed", "size": s, "conv_ms": conv_ms, "gemm_ms": gemm_ms,
                             "max_abs_diff": float((out.float() - ref.flatten(2).transpose(1, 2)[0].float()).abs().max())})


# ViT-L/16's block GEMMs: name, K, N
BLOCK_GEMMS = (("qkv", 1024, 3072), ("proj", 1024, 1024), ("fc1", 1024, 4096), ("fc2", 4096, 1024))


def gemm_operands(rows: int, k: int, n: int):
    """fp16 CUDA input (rows, K), weight (N, K) scaled as a trained layer's, bias (N,) for one block GEMM."""
    import torch

    x = torch.randn(rows, k, device="cuda", dtype=torch.float16)
    w = torch.randn(n, k, device="cuda", dtype=torch.float16) * k ** -0.5
    b = torch.randn(n, device="cuda", dtype=torch.float16) * 0.1
    return x, w, b


def splitk_bench(res: dict) -> None:
    """Split-K for the block GEMMs whose tiles leave SMs idle at 577 rows (fc2: K=4096→1024, proj: 1024→1024):
    the rows' K split in S parts as one strided batched GEMM (cuBLAS, no copy), the S partial products
    summed by Inductor into the residual add that follows in the block. Each variant torch.compile'd
    (default mode), 24 calls per CUDA graph; also cuBLASLt as PyTorch's preferred BLAS for plain linear."""
    import torch
    import torch.nn.functional as F

    h = torch.float16
    for rows in (577, 4097, 8 * 577):
        for name, k, n in BLOCK_GEMMS:
            x, w, b = gemm_operands(rows, k, n)
            r = torch.randn(rows, n, device="cuda", dtype=h)
            row = {"op": f"splitk:{name}", "rows": rows, "k": k, "n": n}

            def ref_fn(x, w, b, r):
                return r + F.linear(x, w, b)

            ref_c = torch.compile(ref_fn)
            row["linear_add_ms"], ref = graph_ms(lambda: ref_c(x, w, b, r))
            for splits in (2, 4) if name in ("fc2", "proj") else ():
                ws = w.t().reshape(splits, k // splits, n)  # (S, K/S, N), a view of wᵀ

                def split_fn(x, ws, b, r, s=splits):
                    parts = torch.bmm(x.view(x.shape[0], s, -1).transpose(0, 1), ws)  # (S, rows, N)
                    return r + (parts.float().sum(0) + b).to(r.dtype)

                split_c = torch.compile(split_fn)
                ms, out = graph_ms(lambda: split_c(x, ws, b, r))
                row[f"split{splits}_ms"] = ms
                row[f"split{splits}_max_abs_diff"] = float((out.float() - ref.float()).abs().max())
            before = torch.backends.cuda.preferred_blas_library()
            try:
                torch.backends.cuda.preferred_blas_library("cublaslt")
                row["cublaslt_linear_ms"], _ = graph_ms(lambda: F.linear(x, w, b))
            finally:
                torch.backends.cuda.preferred_blas_library(before)
            row["cublas_linear_ms"], _ = graph_ms(lambda: F.linear(x, w, b))
            log("micro", row)
            res["micro"].append(row)


def cls_bench(res: dict) -> None:
    """What the class token costs: ViT-L/16's token rows are 1 + a multiple of the tile heights (577, 1201,
    4097), so the GEMMs' last row tile and the wave it starts may hold one row. Each block GEMM (bias, fp16)
    at M rows against M-1 rows, and split: the M-1 patch rows and the class row as two GEMMs writing into
    one output (in order, and with the class row on a second stream in the graph); SDPA at M and M-1
    tokens; cuBLAS with TunableOp tuning at M rows. 24 calls per CUDA graph, median of 20 replays."""
    import torch
    import torch.nn.functional as F

    dev = torch.device("cuda")
    side = torch.cuda.Stream(dev)
    for rows in (577, 1201, 4097):
        for name, k, n in BLOCK_GEMMS:
            x, w, b = gemm_operands(rows, k, n)
            y = torch.empty(rows, n, device=dev, dtype=x.dtype)
            row = {"op": f"cls:{name}", "rows": rows, "k": k, "n": n}
            row["full_ms"], ref = graph_ms(lambda: F.linear(x, w, b))
            rest = x[1:]
            row["minus1_ms"], _ = graph_ms(lambda: F.linear(rest, w, b))
            row["one_row_ms"], _ = graph_ms(lambda: F.linear(x[:1], w, b))

            def split_seq():
                torch.addmm(b, x[1:], w.t(), out=y[1:])
                torch.addmm(b, x[:1], w.t(), out=y[:1])
                return y

            def split_side():
                main = torch.cuda.current_stream(dev)
                side.wait_stream(main)
                with torch.cuda.stream(side):
                    torch.addmm(b, x[:1], w.t(), out=y[:1])
                torch.addmm(b, x[1:], w.t(), out=y[1:])
                main.wait_stream(side)
                return y

            for label, fn in (("split_seq", split_seq), ("split_side", split_side)):
                try:
                    row[f"{label}_ms"], out = graph_ms(fn)
                    row[f"{label}_max_abs_diff"] = float((out.float() - ref.float()).abs().max())
                except Exception as exc:
                    row[f"{label}_error"] = error_text(exc)
            try:
                import torch.cuda.tunable as tunable

                tunable.set_filename(f"/tmp/tunableop_{name}_{rows}.csv")
                tunable.enable(True)
                tunable.tuning_enable(True)
                tunable.set_max_tuning_duration(200)
                for _ in range(2):
                    F.linear(x, w, b)
                torch.cuda.synchronize()
                row["tunableop_ms"], out = graph_ms(lambda: F.linear(x, w, b))
                row["tunableop_max_abs_diff"] = float((out.float() - ref.float()).abs().max())
            except Exception as exc:
                row["tunableop_error"] = error_text(exc)
            finally:
                with contextlib.suppress(Exception):
                    tunable.tuning_enable(False)
                    tunable.enable(False)
            log("cls", row)
            res["micro"].append(row)
    attention_apart_bench(res)


def attention_routes_timed(row: dict, routes: dict, qkv, ref, suffix: str = "_ms") -> None:
    """Each route (packed qkv → (B, N, H·D)) torch.compile'd and replayed in a CUDA graph: ``row`` gets
    LABEL{suffix} (ms per call) and LABEL_max_abs_diff_fp32 against ``ref``, or LABEL_error."""
    import torch

    for label, fn in routes.items():
        try:
            torch._dynamo.reset()
            c = torch.compile(fn, dynamic=False, fullgraph=True)
            ms, out = graph_ms(lambda: c(qkv))
            row[f"{label}{suffix}"] = ms
            row[f"{label}_max_abs_diff_fp32"] = float((out.float() - ref).abs().max())
        except Exception as exc:
            row[f"{label}_error"] = error_text(exc)


def packed_attention_inputs(batch: int, n: int):
    """A packed fp16 (B, N, 3, 16, 64) qkv GEMM output, its q, k, v views as timm takes them, and the fp32
    math SDPA reference (B, N, H·D)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    qkv = torch.randn(batch, n, 3, 16, 64, device="cuda", dtype=torch.float16)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    with sdpa_kernel([SDPBackend.MATH]):
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2).reshape(batch, n, -1)
    return qkv, (q, k, v), ref


def timm_attention(qkv):
    """The attention as timm computes it on the packed qkv: SDPA (PyTorch's kernel choice), heads merged."""
    import torch.nn.functional as F

    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(qkv.shape[0], qkv.shape[1], -1)


def on_packed(attend, *args):
    """``attend`` (q, k, v as (B, H, N, D) views, then ``args``) as a route on the packed qkv."""
    def route(qkv):
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return attend(q, k, v, *args)
    return route


def attention_apart_bench(res: dict) -> None:
    """SDPA at N tokens against N-1 queries, N-1 keys, both; and the model's attention as timm computes it
    (SDPA on the packed qkv GEMM output, then heads merged back to (B, N, C)) against
    `lsegrt.model.attention.attend_first_key_apart` (the class token's key merged in by log-sum-exp, a
    Triton kernel) and the same route with Inductor's merge, each torch.compile'd; max |difference| to
    fp32 math SDPA."""
    import torch
    import torch.nn.functional as F

    from lsegrt.model.attention import attend_first_key_apart, merge_first_key

    for batch, n in ((1, 577), (1, 1025), (1, 1201), (1, 2305), (1, 4097), (8, 577), (8, 4097)):
        qkv, (q, kk, v), ref = packed_attention_inputs(batch, n)
        row = {"op": "cls:attention", "batch": batch, "tokens": n}
        qc, kc, vc = q.contiguous(), kk.contiguous(), v.contiguous()
        row["sdpa_ms"], _ = graph_ms(lambda: F.scaled_dot_product_attention(qc, kc, vc))
        row["sdpa_q_minus1_ms"], _ = graph_ms(lambda: F.scaled_dot_product_attention(qc[:, :, 1:], kc, vc))
        row["sdpa_kv_minus1_ms"], _ = graph_ms(lambda: F.scaled_dot_product_attention(qc, kc[:, :, 1:], vc[:, :, 1:]))
        row["sdpa_both_minus1_ms"], _ = graph_ms(
            lambda: F.scaled_dot_product_attention(qc[:, :, 1:], kc[:, :, 1:], vc[:, :, 1:]))

        def apart_torch(qkv):  # the same route with Inductor's own merge (the first version, for comparison)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            o, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(
                q, k[:, :, 1:], v[:, :, 1:], None, True, 0.0, False, False, scale=64 ** -0.5)[:2]
            return merge_first_key(q, k, v, o, lse, 64 ** -0.5)

        attention_routes_timed(row, {"timm": timm_attention, "apart": on_packed(attend_first_key_apart, 64 ** -0.5),
                                     "apart_inductor_merge": apart_torch},
                               qkv, ref, suffix="_compiled_ms")
        log("cls", row)
        res["micro"].append(row)


# FlashAttention-4 tiles (tile_m, tile_n) timed besides its own choice (192×128 for head dim 64 on Hopper);
# 192×192 is what FA3's C++ kernel picks for head dim 64, non-causal (not measured yet; a tile that does
# not compile is recorded as an error)
FLASH4_TILES = ((128, 128), (192, 128), (128, 192), (192, 192))


def flash4_bench(res: dict) -> None:
    """ViT-L/16's attention (16 heads of 64, fp16) by cuDNN (PyTorch's SDPA as timm calls it; at 4,097
    tokens also `attend_first_key_apart`) against FlashAttention-4's kernel (`flash4_attention`, whole and
    key apart), each torch.compile'd and replayed in a CUDA graph; FA4's kernel alone at each of
    :data:`FLASH4_TILES`; max |difference| to fp32 math SDPA; the first FA4 call's seconds (its JIT compile)."""
    import torch

    from lsegrt.model.attention import attend_first_key_apart, flash4_attention

    try:
        from flash_attn.cute.interface import _flash_attn_fwd
    except Exception as exc:
        res["micro"].append({"op": "flash4", "error": error_text(exc)})
        log("flash4: not importable", exc)
        return
    scale = 64 ** -0.5
    for batch, n in ((1, 4097), (1, 577), (1, 1201), (8, 577)):
        qkv, (q, kk, v), ref = packed_attention_inputs(batch, n)
        row = {"op": "flash4", "batch": batch, "tokens": n}
        cudnn_apart = on_packed(attend_first_key_apart, scale)
        fa4, fa4_apart = on_packed(flash4_attention, scale, False), on_packed(flash4_attention, scale, True)

        t = time.perf_counter()
        fa4(qkv)
        torch.cuda.synchronize()
        row["fa4_first_call_s"] = round(time.perf_counter() - t, 2)
        routes = {"cudnn": timm_attention, "fa4": fa4}
        if n % 128 == 1:
            routes.update(cudnn_apart=cudnn_apart, fa4_apart=fa4_apart)
        attention_routes_timed(row, routes, qkv, ref)
        qs, ks, vs = (t.transpose(1, 2) for t in (q, kk, v))  # (B, N, H, D) views of the packed qkv
        for tile in FLASH4_TILES:
            key = f"fa4_kernel_{tile[0]}x{tile[1]}"
            try:
                ms, out = graph_ms(lambda: _flash_attn_fwd(qs, ks, vs, softmax_scale=scale, tile_mn=tile)[0])
                row[f"{key}_ms"] = ms
                row[f"{key}_max_abs_diff_fp32"] = float((out.reshape(batch, n, -1).float() - ref).abs().max())
            except Exception as exc:
                row[f"{key}_error"] = error_text(exc)
        flops = 4 * batch * 16 * n * n * 64
        row["tflops"] = {k[:-3]: round(flops / (v * 1e9), 1) for k, v in row.items()
                         if k.endswith("_ms") and isinstance(v, float) and v > 0}
        log("flash4", row)
        res["micro"].append(row)
        torch.cuda.empty_cache()


# quack's (quack-kernels, FA4's dependency) SM90 GEMM configs timed against cuBLAS: (tile_m, tile_n, pingpong,
# cluster_m, cluster_n); None = quack's own choice for the call (nvMatmulHeuristics, else its default)
QUACK_CONFIGS = (None, (256, 128, False, 2, 1), (256, 128, False, 1, 2), (256, 192, False, 2, 1),
                 (128, 256, False, 2, 1), (128, 192, True, 2, 1), (128, 128, True, 2, 1), (192, 128, True, 2, 1))


def quack_bench(res: dict, budget_s: float = 240.0) -> None:
    """ViT-L/16's block GEMMs (fp16, bias) by cuBLAS as the model runs them (F.linear; fc1 with cuBLASLt's
    bias + tanh-GELU epilogue, as `gelu_epilogue`) against quack's CuTe-DSL GEMMs at each of
    :data:`QUACK_CONFIGS` (fc1 with its tanh-GELU epilogue; proj and fc2 also with the residual add in the
    epilogue, D = x·Wᵀ + b + r); 24 calls per CUDA graph, median of 20 replays; max |difference| to cuBLAS.
    Rows 4,097 first (1024²), then 577 and 1,201, until ``budget_s``."""
    import torch
    import torch.nn.functional as F

    from lsegrt.model.quack_gemm import gemm_config

    try:
        from quack.gemm_interface import gemm_act, gemm_tuned
    except Exception as exc:
        res["micro"].append({"op": "quack", "error": error_text(exc)})
        log("quack: not importable", exc)
        return
    start = time.perf_counter()

    def cfg(c):
        return None if c is None else gemm_config(c)

    for rows in (4097, 577, 1201):
        for name, k, n in BLOCK_GEMMS:
            if time.perf_counter() - start > budget_s:
                res["micro"].append({"op": "quack", "skipped": f"budget {budget_s:.0f} s", "rows": rows, "gemm": name})
                continue
            x, w, b = gemm_operands(rows, k, n)
            r = torch.randn(rows, n, device="cuda", dtype=torch.float16)
            wt = w.t()  # (K, N) view, as quack takes B
            row = {"op": "quack", "gemm": name, "rows": rows, "k": k, "n": n}
            if name == "fc1":
                row["cublas_ms"], ref = graph_ms(lambda: torch._addmm_activation(b, x, wt, use_gelu=True))
            else:
                row["cublas_ms"], ref = graph_ms(lambda: F.linear(x, w, b))
            ref_add = (ref.float() + r.float()) if name in ("proj", "fc2") else None
            for c in QUACK_CONFIGS:
                key = "quack_default" if c is None else "quack_" + "x".join(map(str, c[:2])) + (
                    "_pp" if c[2] else "_coop") + f"_c{c[3]}{c[4]}"
                try:
                    t = time.perf_counter()
                    out = torch.empty(rows, n, device="cuda", dtype=torch.float16)
                    if name == "fc1":
                        def run(c=c, out=out):
                            return gemm_act(x, wt, bias=b, activation="gelu_tanh_approx", postact_out=out,
                                            store_preact=False, tuned=False, config=cfg(c))[1]
                    else:
                        def run(c=c, out=out):
                            gemm_tuned.fn(x, wt, out, bias=b, config=cfg(c))
                            return out
                    run()
                    torch.cuda.synchronize()
                    row[f"{key}_first_call_s"] = round(time.perf_counter() - t, 2)
                    row[f"{key}_ms"], got = graph_ms(run)
                    row[f"{key}_max_abs_diff"] = float((got.float() - ref.float()).abs().max())
                    if ref_add is not None:
                        out2 = torch.empty_like(out)

                        def run_add(c=c, out2=out2):
                            gemm_tuned.fn(x, wt, out2, C=r, bias=b, config=cfg(c))
                            return out2
                        row[f"{key}_add_ms"], got = graph_ms(run_add)
                        row[f"{key}_add_max_abs_diff"] = float((got.float() - ref_add).abs().max())
                except Exception as exc:
                    row[f"{key}_error"] = error_text(exc)
            flops = 2 * rows * k * n
            row["tflops"] = {kk[:-3]: round(flops / (v * 1e9), 1) for kk, v in row.items()
                             if kk.endswith("_ms") and isinstance(v, float) and v > 0}
            log("quack", row)
            res["micro"].append(row)
            torch.cuda.empty_cache()


# (output pixels per program, warps, streaming store) for the finish kernel, besides its default (TILE)
FINISH_TILES = ((8, 2, False), (8, 4, False), (16, 2, False), (16, 4, True), (16, 8, False), (32, 8, False))


def finish_tile_key(tile) -> str:
    """The record key of the finish kernel with ``tile``, e.g. kernel_cl_64x8_cs."""
    block_x, warps, stream = tile
    return f"kernel_cl_{block_x}x{warps}" + ("_cs" if stream else "")


def finish_bench(res: dict) -> None:
    """The encoder's last step at 384² and 1024² (refinenet1's mixed map, 256 channels at H/4, channels
    last as `fast` makes it): Inductor's version as `fold` compiles it (×2 upsampling, merged 1×1 head, L2
    norm) against the head before the upsampling and `lsegrt.model.upsample_norm`'s Triton kernel, on the
    convolution's channels-last output or a matmul's NCHW output, and the kernel with other tiles
    (:data:`FINISH_TILES`: pixels per program, warps, streaming store); max |difference| to the fp32 reference.
    (The record of 2026-12-03 also has a two-pass kernel over channel chunks, measured at commit e0c5ac2
    and slower everywhere.)"""
    import torch
    import torch.nn.functional as F

    from lsegrt.model.layers import l2_normalize
    from lsegrt.model.upsample_norm import _triton, reference

    h16 = torch.float16
    g = torch.Generator(device="cuda").manual_seed(0)
    w = (torch.randn(512, 256, 1, 1, device="cuda", generator=g) / 16).to(h16)
    bias = (torch.randn(512, device="cuda", generator=g) / 4).to(h16)
    for size in (384, 1024):
        s = size // 4
        x = torch.randn(1, 256, s, s, device="cuda", generator=g).to(h16).to(memory_format=torch.channels_last)
        ref = reference(F.conv2d(x.float(), w.float()), bias)
        calls = 24 if size <= 384 else 4  # each call's output is new memory of the graph (537 MB at 1024²)

        def old(x):
            up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
            return l2_normalize(F.conv2d(up, w, bias), dim=1)

        torch._dynamo.reset()
        old_c = torch.compile(old, dynamic=False, fullgraph=True, options={"force_layout_optimization": True})
        conv = lambda: F.conv2d(x, w)  # noqa: E731
        mm = lambda: torch.matmul(w.view(512, 256), x.flatten(2)).view(1, 512, s, s)  # noqa: E731
        y_cl, y_nchw = conv(), mm()
        variants = {
            "inductor_fold": lambda: old_c(x),
            "conv_cl": conv, "mm_nchw": mm,
            "kernel_cl": lambda: _triton(y_cl, bias),
            "kernel_nchw": lambda: _triton(y_nchw, bias),
            "conv_cl+kernel": lambda: _triton(conv(), bias),
            "mm_nchw+kernel": lambda: _triton(mm(), bias),
            **{finish_tile_key(t): (lambda t=t: _triton(y_cl, bias, t)) for t in FINISH_TILES},
        }
        row = {"op": "finish", "size": size, "map": [256, s, s], "out_mb": round(512 * 4 * s * s * 4 / 1e6, 1)}
        for name, fn in variants.items():
            try:
                ms, out = graph_ms(fn, calls)
                row[f"{name}_ms"] = ms
                if out.shape == ref.shape:
                    row[f"{name}_max_abs_diff_fp32"] = float((out.float() - ref).abs().max())
            except Exception as exc:
                row[f"{name}_error"] = error_text(exc)
            torch.cuda.empty_cache()
        log("finish", row)
        res["micro"].append(row)


def summarize_runs(res: dict) -> list[dict]:
    rows = [r for r in res["runs"]]
    stock = {r["size"]: r["p50"] for r in rows if r["candidate"] == "stock" and "p50" in r}
    out = []
    for r in rows:
        sp = round(stock[r["size"]] / r["p50"], 3) if "p50" in r and r["size"] in stock else None
        out.append({k: r.get(k) for k in ("candidate", "size", "compile_s", "p50", "std", "mean_cosine",
                                          "agreement", "passes_gate", "error")} | {"speedup_vs_stock": sp})
    return out


def table(res: dict, cpu: bool) -> None:
    unit = "host ms" if cpu else "GPU ms"
    print(f"\nissue9 probe · {res['variant']} {res['precision']} batch 1 · {res['env'].get('gpu', 'cpu')} · "
          f"torch {res['env']['torch']} · {res['elapsed_s']:.0f} s")
    print(f"{'candidate':<14}{'size':>6}{'compile s':>11}{unit + ' p50':>12}{'std':>8}{'speedup':>9}"
          f"{'mean cos':>12}{'agree %':>9}  gate")
    f = lambda v, fmt: "—" if v is None else format(v, fmt)  # noqa: E731
    for r in res["summary"]:
        if r.get("error"):
            print(f"{r['candidate']:<14}{r['size']:>6}  {r['error']}")
            continue
        print(f"{r['candidate']:<14}{r['size']:>6}{f(r['compile_s'], '.1f'):>11}{f(r['p50'], '.3f'):>12}"
              f"{f(r['std'], '.3f'):>8}{f(r['speedup_vs_stock'], '.3f'):>9}{f(r['mean_cosine'], '.7f'):>12}"
              f"{f(r['agreement'], '.2f'):>9}  {'pass' if r['passes_gate'] else 'FAIL'}")
    for s in res["skipped"]:
        print(f"skipped {s['candidate']}: {s['reason']}")
    for row in res.get("micro", []):
        print("micro", row)
    for row in res["sdpa"]:
        print(f"sdpa {row['family']:<9} {row['tokens']:>5} tokens: "
              + (f"{row['ms']:.4f} ms/layer, {row['tflops']} TFLOP/s" if "ms" in row else row["error"]))


def parent(args, names: list[str]) -> int:
    out = Path(os.environ.get("OUT") or args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    res = {"argv": sys.argv[1:], "variant": args.variant,
           "precision": "fp32" if args.cpu else "fp16", "batch": 1, "cuda_graph": not args.cpu, "gate": GATE,
           "labels": LABELS, "caps": {n: CAPS[n] for n in names}, "budget_s": args.budget, "env": env_info(args.cpu),
           "sdpa": [], "flex": [], "micro": [], "runs": [], "skipped": [], "errors": []}
    json_path, log_path = out / "issue9_probe.json", out / "issue9_workers.log"

    def save():
        res["elapsed_s"] = round(time.perf_counter() - start, 1)
        res["summary"] = summarize_runs(res)
        write_json(json_path, res)

    # the micro-benchmarks asked for (GPU only), in this order, each saved as it ends
    micro = ((args.sdpa, lambda: sdpa_bench(res, args.sizes)), (args.flex, lambda: flex_bench(res)),
             (args.micro, lambda: micro_bench(res)), (args.splitk, lambda: splitk_bench(res)),
             (args.cls, lambda: cls_bench(res)), (args.finish, lambda: finish_bench(res)),
             (args.flash4, lambda: flash4_bench(res)), (args.quack, lambda: quack_bench(res)))
    for wanted, bench in micro:
        if wanted and not args.cpu:
            bench()
            save()
    with open(log_path, "a") as wlog:
        for name in names:
            left = args.budget - (time.perf_counter() - start)
            cap = min(CAPS[name] * (3 if args.cpu else 1), left)  # a CPU compiles vit_tiny slowly
            if cap < 30:
                res["skipped"].append({"candidate": name, "reason": f"budget: {left:.0f} s left of {args.budget:.0f}"})
                log(f"skip {name}: budget")
                continue
            rows_path = out / f".worker_{name}.json"
            rows_path.unlink(missing_ok=True)
            cmd = [sys.executable, __file__, "--worker", name, "--worker-out", str(rows_path), "--iters",
                   str(args.iters), "--sizes", *map(str, args.sizes), "--variant", args.variant] + (["--cpu"] if args.cpu else [])
            log(f"{name}: worker started (cap {cap:.0f} s) options {CANDIDATES[name]}")
            wlog.write(f"\n===== {name} {time.strftime('%H:%M:%S')} options {CANDIDATES[name]}\n")
            wlog.flush()
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=wlog, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=cap)
                status = f"exit {rc}"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and its compile subprocesses
                proc.wait()
                status = f"killed at its {cap:.0f} s cap"
            wall = round(time.perf_counter() - t0, 1)
            rows = json.loads(rows_path.read_text()) if rows_path.exists() else []
            rows_path.unlink(missing_ok=True)
            done = {r["size"] for r in rows}
            for s in args.sizes:
                if s not in done:
                    rows.append({"candidate": name, "options": CANDIDATES[name], "size": s,
                                 "error": f"not measured: worker {status} after {wall} s"})
            for r in rows:
                r["worker_wall_s"], r["worker_status"] = wall, status
            res["runs"].extend(rows)
            log(f"{name}: {status} after {wall} s; " + ", ".join(
                f"{r['size']}: {r['p50']:.3f} ms" if "p50" in r else f"{r['size']}: {r.get('error')}" for r in rows))
            save()
    save()
    table(res, args.cpu)
    print(f"wrote {json_path}, {log_path}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="dry run on the CPU: vit_tiny, fp32, 64 and 96, few calls")
    p.add_argument("--sizes", type=int, nargs="+", help="square sides (default 384 1024; CPU: 64 96)")
    p.add_argument("--candidates", help=f"comma-separated, in order (default: {','.join(DEFAULT_ORDER)}; "
                                        f"known: {','.join(CANDIDATES)})")
    p.add_argument("--budget", type=float, default=500, help="seconds for all workers (default 500)")
    p.add_argument("--iters", type=int, default=60, help="timed calls per measurement (default 60)")
    p.add_argument("--sdpa", action="store_true", help="also time the SDPA kernel families")
    p.add_argument("--flex", action="store_true", help="also time FlexAttention's Triton kernel against SDPA")
    p.add_argument("--micro", action="store_true", help="also time fc1+GELU fusion and the patch GEMM")
    p.add_argument("--splitk", action="store_true", help="also time split-K variants of the block GEMMs")
    p.add_argument("--cls", action="store_true", help="also time the block GEMMs and SDPA at M and M-1 rows (the class token)")
    p.add_argument("--finish", action="store_true", help="also time the last step's kernels (upsampling, head, L2 norm)")
    p.add_argument("--flash4", action="store_true", help="also time FlashAttention-4's kernel against cuDNN's attention")
    p.add_argument("--quack", action="store_true", help="also time quack's CuTe-DSL GEMMs against cuBLAS (block GEMMs)")
    p.add_argument("--variant", default="vit_l16", help="vit_l16 or rn101 (CPU: their tiny variants)")
    p.add_argument("--out", default="out", help="output folder when $OUT is not set")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.sizes = args.sizes or ([64, 96] if args.cpu else [384, 1024])
    if args.cpu:
        args.iters = min(args.iters, 5)
    if args.worker:
        return worker(args)
    names = args.candidates.split(",") if args.candidates else list(DEFAULT_ORDER)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            p.error("no CUDA GPU visible; use --cpu for a dry run")
    return parent(args, names)


if __name__ == "__main__":
    sys.exit(main())
