"""Issue 9 probe: stock torch.compile vs faster compile options, ViT-L/16 fp16, batch 1, one GPU call.

    python tools/issue9_probe.py                      # GPU: 384² and 1024², default candidate order
    python tools/issue9_probe.py --cpu                # dry run on the CPU: vit_tiny, 64² and 96², fp32
    python tools/issue9_probe.py --candidates stock,fast,freezing --sizes 384 --budget 300

For each candidate (a set of `compile` backend options, in order of expected gain) and size: open the
encoder (fp16, CUDA graph, static shape), time its first call (the compile), time it like `lsegrt bench`
(CUDA events around each call, CUDA-graph replay, ≥ 50 calls after warm-up, median), and compare its
features on a real photo (skimage's chelsea, resized to the size) with fp32 eager (strict IEEE, no
TF32): mean per-pixel cosine and label agreement over 8 labels (gate: ≥ 0.9995 and ≥ 99.5 %). Every
encoder stays alive; when all are compiled, a second timing round measures them again interleaved,
so drift between the first and last compile does not decide the comparison (both rounds are kept).
Candidates that would not fit the time budget are skipped and say so. Before the candidates, a
micro-benchmark times each SDPA kernel family (cuDNN, flash, efficient) at the model's token counts;
the ``fast+sdpa`` candidate uses the fastest one when it is not PyTorch's own choice.

Writes $OUT/issue9_probe.json (rewritten after every step, so a cut-short run keeps what it measured)
and prints a table last.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import lsegrt  # noqa: E402
from lsegrt.backends.base import Encoder  # noqa: E402

# name → compile options, in order of expected gain; "fast+sdpa" is filled in from the micro-benchmark
CANDIDATES: dict[str, dict] = {
    "stock": {},
    "fast": {"preset": "fast"},
    "freezing": {"freezing": True},
    "fast+cd": {"preset": "fast", "coordinate_descent": True},
    "fast+sdpa": {"preset": "fast"},
    "fast+cl": {"preset": "fast", "channels_last": True},
    "autotune": {"autotune": "gemm"},
}
# A candidate's compile time relative to stock's, for the budget check before it starts.
COST = {"stock": 1.0, "freezing": 1.2}
GATE = {"mean_cosine": 0.9995, "agreement": 99.5}
LABELS = "person, animal, plant, sky, building, road, water, other"


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


class Probe:
    def __init__(self, args):
        self.args = args
        self.cpu = args.cpu
        self.device = torch.device("cpu" if self.cpu else "cuda")
        self.precision = "fp32" if self.cpu else "fp16"
        self.variant = "vit_tiny" if self.cpu else "vit_l16"
        self.start = time.perf_counter()
        self.out = Path(os.environ.get("OUT") or args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.res: dict = {"argv": sys.argv[1:], "variant": self.variant, "precision": self.precision,
                          "batch": 1, "cuda_graph": not self.cpu, "gate": GATE, "labels": LABELS,
                          "env": self.env(), "sdpa": [], "runs": [], "retime": [], "skipped": [], "errors": []}
        self.encoders: dict[str, Encoder] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def env(self) -> dict:
        import platform

        import triton  # noqa: F401  (Inductor needs it; its version goes in the record)

        env = {"torch": torch.__version__, "cuda": torch.version.cuda, "triton": sys.modules["triton"].__version__,
               "python": platform.python_version(), "cpu_count": os.cpu_count(), "lsegrt": lsegrt.__version__}
        if torch.cuda.is_available() and not self.cpu:
            p = torch.cuda.get_device_properties(0)
            env.update(gpu=p.name, sms=p.multi_processor_count, cc=f"{p.major}.{p.minor}",
                       cudnn=torch.backends.cudnn.version())
        return env

    def save(self) -> None:
        self.res["elapsed_s"] = round(self.elapsed(), 1)
        path = self.out / "issue9_probe.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.res, indent=1, default=str) + "\n")
        tmp.replace(path)

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> None:
        from lsegrt.compare import label_map
        from lsegrt.images import sample_image

        t = time.perf_counter()
        self.model = lsegrt.random_model(self.variant, seed=0, device=self.device)
        self.res["model_s"] = round(time.perf_counter() - t, 2)
        photo = sample_image("chelsea")
        self.photos = {s: self.model.preprocess(photo, size=(s, s)) for s in self.args.sizes}
        try:
            self.text = self.model.encode_text(LABELS)
        except Exception as exc:  # open_clip missing: cosine only
            self.text = None
            self.res["errors"].append(f"text tower unavailable, no label agreement: {exc}")
        ref = Encoder.open("torch", checkpoint=self.model, device=self.device, precision="fp32", tf32=False)
        self.refs = {}
        for s, x in self.photos.items():
            feats = ref(x)
            labels = label_map(feats, self.text) if self.text is not None else None
            self.refs[s] = (feats, labels)
        ref.close()
        self.res["setup_s"] = round(self.elapsed(), 1)
        log(f"setup done in {self.elapsed():.1f} s ({self.variant}, {self.res['env'].get('gpu', 'cpu')})")

    # -- SDPA kernels ---------------------------------------------------------------------------
    def sdpa_bench(self) -> str | None:
        """Time each SDPA kernel family at the model's token counts; return the fastest at the largest
        size when it beats PyTorch's default choice by ≥ 3 %, else None."""
        if self.cpu:
            return None
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel

        cfg = self.model.config
        heads, dim = cfg.num_heads, cfg.embed_dim // cfg.num_heads
        families = {"default": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                    "efficient": SDPBackend.EFFICIENT_ATTENTION}
        best_at_largest = {}
        for s in self.args.sizes:
            n = 1 + (s // 16) ** 2
            q, k, v = (torch.randn(1, heads, n, dim, device="cuda", dtype=torch.float16) for _ in range(3))
            flops = 4 * n * n * dim * heads
            for name, backend in families.items():
                row = {"size": s, "tokens": n, "family": name}
                try:
                    ctx = sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext()
                    with ctx:
                        for _ in range(3):
                            F.scaled_dot_product_attention(q, k, v)
                        torch.cuda.synchronize()
                        graph = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(graph):
                            for _ in range(cfg.depth):
                                F.scaled_dot_product_attention(q, k, v)
                    graph.replay()
                    times = []
                    for _ in range(20):
                        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        a.record()
                        graph.replay()
                        b.record()
                        torch.cuda.synchronize()
                        times.append(a.elapsed_time(b) / cfg.depth)
                    ms = sorted(times)[len(times) // 2]
                    row.update(ms=round(ms, 4), tflops=round(flops / ms / 1e9, 1))
                    del graph
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                self.res["sdpa"].append(row)
                if s == max(self.args.sizes) and "ms" in row:
                    best_at_largest[name] = row["ms"]
        self.save()
        log("sdpa:", ", ".join(f"{r['family']}@{r['tokens']}={r.get('ms', r.get('error'))}" for r in self.res["sdpa"]))
        default = best_at_largest.pop("default", None)
        if not best_at_largest or default is None:
            return None
        name, ms = min(best_at_largest.items(), key=lambda kv: kv[1])
        return name if ms < 0.97 * default else None

    # -- candidates -----------------------------------------------------------------------------
    def estimate(self, name: str) -> float:
        stock = [r["compile_s"] for r in self.res["runs"] if r["candidate"] == "stock" and "compile_s" in r]
        base = max(stock) if stock else (15.0 if self.cpu else 45.0)
        same = [r["compile_s"] for r in self.res["runs"] if r["candidate"] == name and "compile_s" in r]
        if same:
            return max(same) + 10
        factor = COST.get(name, 3.0 if "fast" in name or "autotune" in name else 1.5)
        return base * factor + 10

    def run_candidate(self, name: str, options: dict) -> None:
        from lsegrt.bench import Timing, measure
        from lsegrt.compare import label_map, map_metrics, summarize

        enc = None
        for s in self.args.sizes:
            need = self.estimate(name)
            if self.elapsed() + need > self.args.budget:
                self.res["skipped"].append({"candidate": name, "size": s, "reason":
                                            f"budget: {self.elapsed():.0f} s used, ~{need:.0f} s needed, "
                                            f"{self.args.budget:.0f} s allowed"})
                log(f"skip {name} @ {s}: budget")
                continue
            row = {"candidate": name, "options": options, "size": s}
            try:
                if enc is None:
                    enc = Encoder.open("compile", checkpoint=self.model, device=self.device,
                                       precision=self.precision, cuda_graph=not self.cpu, **options)
                    row["describe"] = enc.describe()
                x = self.photos[s]
                t = time.perf_counter()
                out = enc(x)
                if not self.cpu:
                    torch.cuda.synchronize()
                row["compile_s"] = round(time.perf_counter() - t, 2)
                log(f"{name} @ {s}: first call (compile) {row['compile_s']} s")
                timing = Timing(warmup_iters=3, warmup_seconds=0.2, min_seconds=60, max_iters=self.args.iters,
                                copy_iters=2, rotation=3)
                m = measure(enc, self.model, s, s, 1, timing)
                key = "gpu_ms" if not self.cpu else "host_ms"
                row.update({k: round(m[f"{key}_{k}"], 4) for k in ("p50", "mean", "std", "min", "p90")},
                           iters=m["iters"], peak_mem_mb=m.get("gpu_peak_mem_mb"))
                out = enc(x)
                ref_feats, ref_labels = self.refs[s]
                if self.text is not None:
                    fid = summarize([map_metrics(ref_feats, out, ref_labels, label_map(out, self.text))])
                else:  # no text tower: cosine only (agreement recorded as None)
                    none = torch.zeros(1, dtype=torch.long)
                    fid = summarize([map_metrics(ref_feats, out, none, none)])
                row.update({k: fid[k] for k in ("mean_cosine", "p01_cosine", "min_cosine", "rel_l2")})
                row["agreement"] = fid["agreement"] if self.text is not None else None
                row["passes_gate"] = bool(fid["mean_cosine"] >= GATE["mean_cosine"] and
                                          (row["agreement"] is None or row["agreement"] >= GATE["agreement"]))
                log(f"{name} @ {s}: p50 {row['p50']:.3f} ms, cos {row['mean_cosine']:.6f}, "
                    f"agree {row['agreement']}")
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
                row["traceback"] = traceback.format_exc()[-3000:]
                log(f"{name} @ {s}: FAILED {row['error']}")
            self.res["runs"].append(row)
            self.save()
        if enc is not None:
            self.encoders[name] = enc
        gc.collect()

    def retime(self) -> None:
        """Second round: every compiled candidate again, interleaved per size (no compiles left)."""
        from lsegrt.bench import Timing, measure

        key = "gpu_ms" if not self.cpu else "host_ms"
        ok = {(r["candidate"], r["size"]) for r in self.res["runs"] if "p50" in r}
        for s in self.args.sizes:
            for name, enc in self.encoders.items():
                if (name, s) not in ok or self.elapsed() > self.args.budget + 20:
                    continue
                try:
                    timing = Timing(warmup_iters=3, warmup_seconds=0.2, min_seconds=60, max_iters=self.args.iters,
                                    copy_iters=1, rotation=3)
                    m = measure(enc, self.model, s, s, 1, timing)
                    self.res["retime"].append({"candidate": name, "size": s, "p50": round(m[f"{key}_p50"], 4),
                                               "mean": round(m[f"{key}_mean"], 4), "iters": m["iters"]})
                except Exception as exc:
                    self.res["retime"].append({"candidate": name, "size": s, "error": f"{type(exc).__name__}: {exc}"[:300]})
            self.save()

    # -- report ---------------------------------------------------------------------------------
    def summary(self) -> list[dict]:
        retimed = {(r["candidate"], r["size"]): r["p50"] for r in self.res["retime"] if "p50" in r}
        rows = []
        for r in self.res["runs"]:
            if "p50" not in r:
                rows.append({**r, "best_p50": None})
                continue
            both = [r["p50"]] + ([retimed[(r["candidate"], r["size"])]] if (r["candidate"], r["size"]) in retimed else [])
            rows.append({**r, "p50_round2": retimed.get((r["candidate"], r["size"])), "best_p50": min(both)})
        stock = {r["size"]: r["best_p50"] for r in rows if r["candidate"] == "stock" and r.get("best_p50")}
        for r in rows:
            r["speedup_vs_stock"] = round(stock[r["size"]] / r["best_p50"], 3) \
                if r.get("best_p50") and r["size"] in stock else None
        self.res["summary"] = [{k: r.get(k) for k in ("candidate", "size", "compile_s", "p50", "p50_round2",
                                                        "best_p50", "speedup_vs_stock", "mean_cosine",
                                                        "agreement", "passes_gate", "error")} for r in rows]
        self.save()
        return self.res["summary"]

    def table(self) -> None:
        unit = "GPU ms" if not self.cpu else "host ms"
        print(f"\nissue9 probe · {self.variant} {self.precision} batch 1 · {self.res['env'].get('gpu', 'cpu')} · "
              f"torch {torch.__version__} · {self.elapsed():.0f} s")
        print(f"{'candidate':<11}{'size':>6}{'compile s':>11}{unit + ' r1':>13}{'r2':>9}{'speedup':>9}"
              f"{'mean cos':>11}{'agree %':>9}  gate")
        for r in self.summary():
            if r.get("error"):
                print(f"{r['candidate']:<11}{r['size']:>6}  ERROR {r['error']}")
                continue
            f = lambda v, fmt: "—" if v is None else format(v, fmt)  # noqa: E731
            print(f"{r['candidate']:<11}{r['size']:>6}{f(r['compile_s'], '.1f'):>11}{f(r['p50'], '.3f'):>13}"
                  f"{f(r['p50_round2'], '.3f'):>9}{f(r['speedup_vs_stock'], '.3f'):>9}"
                  f"{f(r['mean_cosine'], '.6f'):>11}{f(r['agreement'], '.2f'):>9}  "
                  f"{'pass' if r['passes_gate'] else 'FAIL'}")
        for s in self.res["skipped"]:
            print(f"skipped {s['candidate']} @ {s['size']}: {s['reason']}")
        for row in self.res["sdpa"]:
            print(f"sdpa {row['family']:<9} {row['tokens']:>5} tokens: "
                  + (f"{row['ms']:.4f} ms/layer, {row['tflops']} TFLOP/s" if "ms" in row else row["error"]))
        print(f"wrote {self.out / 'issue9_probe.json'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="dry run on the CPU: vit_tiny, fp32, 64 and 96, few calls")
    p.add_argument("--sizes", type=int, nargs="+", help="square sides (default 384 1024; CPU: 64 96)")
    p.add_argument("--candidates", help=f"comma-separated, in order (default: {','.join(CANDIDATES)})")
    p.add_argument("--budget", type=float, default=500, help="seconds; later candidates are skipped (default 500)")
    p.add_argument("--iters", type=int, default=60, help="timed calls per measurement (default 60)")
    p.add_argument("--out", default="out", help="output folder when $OUT is not set")
    args = p.parse_args()
    args.sizes = args.sizes or ([64, 96] if args.cpu else [384, 1024])
    if args.cpu:
        args.iters = min(args.iters, 3)
    names = args.candidates.split(",") if args.candidates else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    if not args.cpu and not torch.cuda.is_available():
        p.error("no CUDA GPU visible; use --cpu for a dry run")
    # every encoder stays alive for the second timing round: room for that many compiled graphs
    for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, max(getattr(torch._dynamo.config, knob), 256))
    probe = Probe(args)
    try:
        probe.setup()
        best = probe.sdpa_bench()
        if "fast+sdpa" in names:
            if best is None:
                probe.res["skipped"].append({"candidate": "fast+sdpa", "size": None,
                                             "reason": "no SDPA family beat PyTorch's choice by ≥ 3 %"})
                names.remove("fast+sdpa")
            else:
                CANDIDATES["fast+sdpa"] = {"preset": "fast", "sdpa": best}
        for name in names:
            probe.run_candidate(name, CANDIDATES[name])
        probe.retime()
    except Exception as exc:
        probe.res["errors"].append(traceback.format_exc()[-3000:])
        log(f"probe failed: {type(exc).__name__}: {exc}")
    probe.table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
