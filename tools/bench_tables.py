"""Render the Markdown tables and PNG plots of docs/BENCHMARKS.md from `lsegrt bench`/`compare` JSON.

    python tools/bench_tables.py docs/measurements > /tmp/tables.md

One table per JSON file (each file is one run), and per variant one latency plot
(``latency_<variant>_b<batch>.png``: every backend / precision measured at the square default sizes).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from lsegrt.viz import latency_plot


def ok_records(path: Path) -> list[dict]:
    return [r for r in json.loads(path.read_text())["records"] if r["status"] == "ok"]


def bench_table(path: Path) -> str:
    """One run's records. Runs of `lsegrt bench --candidate` (records whose candidate names options or an
    engine) get a candidate column instead of backend/precision, and the speedup over the first."""
    data = json.loads(path.read_text())
    opts = data["settings"].get("options") or {}
    records = data["records"]
    named = any(r.get("candidate", f"{r['backend']}:{r['precision']}") != f"{r['backend']}:{r['precision']}"
                for r in records)
    head = "| candidate |" if named else "| backend | precision |"
    tail = " × first |" if named else ""
    out = [f"`{path.name}` · {data['created']} · options {json.dumps(opts) if opts else 'none'}", "",
           f"{head} size | batch | GPU p50 ms | mean ± std ms | p99 ms | img/s | H2D ms | D2H ms | peak MB | TFLOP/s | "
           f"% fp16 peak |{tail}",
           "|---" * 13 + "|"]  # 13 columns either way
    for r in records:
        who = f"| {r['candidate']} |" if named else f"| {r['backend']} | {r['precision']} |"
        if r["status"] != "ok":
            out.append(f"{who} {r['size']} | {r['batch']} | failed: {r['error']} |" + " |" * (9 if named else 8))
            continue
        speed = f" {r['speedup_vs_first']:.3f}× |" if named and r.get("speedup_vs_first") else (" |" if named else "")
        out.append(f"{who} {r['size']} | {r['batch']} | {r['gpu_ms_p50']:.2f} | "
                   f"{r['gpu_ms_mean']:.2f} ± {r['gpu_ms_std']:.2f} | {r['gpu_ms_p99']:.2f} | {r['images_per_s']:.1f} | "
                   f"{r['h2d_ms']:.2f} | {r['d2h_ms']:.2f} | {r['gpu_peak_mem_mb']:,.0f} | {r['tflops_per_s']:.1f} | "
                   f"{r['pct_fp16_peak']:.1f} |{speed}")
    return "\n".join(out)


def speedup_table(stock: Path, candidate: Path) -> str:
    """Two runs of one call (stock, then the candidate), matched by size and batch: p50s and the ratio."""
    def by_key(path):
        return {(str(r["size"]), r["batch"]): r for r in ok_records(path)}

    base, cand = by_key(stock), by_key(candidate)
    opts = json.loads(candidate.read_text())["settings"].get("options") or {}
    out = [f"`{stock.name}` vs `{candidate.name}` (options {json.dumps(opts)})", "",
           "| variant | size | batch | stock p50 ms | candidate p50 ms | speedup | stock img/s | candidate img/s |",
           "|---|---|---|---|---|---|---|---|"]
    for key, b in base.items():
        if key not in cand:
            continue
        c = cand[key]
        out.append(f"| {b['variant']} | {b['size']} | {b['batch']} | {b['gpu_ms_p50']:.3f} | {c['gpu_ms_p50']:.3f} | "
                   f"{b['gpu_ms_p50'] / c['gpu_ms_p50']:.3f}× | {b['images_per_s']:.1f} | {c['images_per_s']:.1f} |")
    return "\n".join(out)


def compare_table(path: Path) -> str:
    data = json.loads(path.read_text())
    out = [f"`{path.name}` · {data['created']} · reference {data['reference']['side']}", "",
           "| candidate | image | size | mean cos | p0.1 cos | min cos | rel. L2 | max abs | label agr. % | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for pair in data["pairs"]:
        for r in pair["items"] + [{**pair["aggregate"], "image": "all", "input": "", "passed": pair["passed"]}]:
            out.append(f"| {pair['candidate']} | {r['image']} | {r['input']} | {r['mean_cosine']:.7f} | "
                       f"{r['p01_cosine']:.6f} | {r['min_cosine']:.6f} | {r['rel_l2']:.2e} | {r['max_abs']:.2e} | "
                       f"{r['agreement']:.3f} | {'pass' if r['passed'] else 'FAIL'} |")
    return "\n".join(out)


def profile_tables(path: Path, top: int = 8) -> str:
    """An `lsegrt profile` run with several candidates: each before/after comparison stage by stage
    (kernel ms from the profiler; wall ms from CUDA events), the whole model per kernel class, and each
    candidate's most expensive kernels."""
    data = json.loads(path.read_text())
    cands = data["candidates"]
    s = data["settings"]
    out = [f"`{path.name}` · {data['created']} · {s['variant']} {s['height']}x{s['width']} batch {s['batch']}"]

    def num(v, digits=3):
        return "—" if v is None else f"{v:.{digits}f}"

    for cmp in data["comparisons"]:
        out += ["", f"before `{cmp['before']}` → after `{cmp['after']}`", "",
                "| stage | wall before | wall after | kernel before | kernel after | Δ kernel ms | speedup |",
                "|---|---|---|---|---|---|---|"]
        for row in cmp["stages"] + [{"stage": "**stage-wise total**", **cmp["stagewise_total"]}]:
            w, k = row["wall_ms"], row["kernel_ms"]
            sp = f"{k['speedup']:.2f}×" if k["speedup"] else "—"
            out.append(f"| {row['stage']} | {num(w['before'])} | {num(w['after'])} | {num(k['before'])} | "
                       f"{num(k['after'])} | {num(k['delta'])} | {sp} |")
        w = cmp["whole"]
        out.append(f"| **whole model** (latency p50) | {num(w['latency_ms_p50']['before'])} | "
                   f"{num(w['latency_ms_p50']['after'])} | {num(w['kernel_ms']['before'])} | "
                   f"{num(w['kernel_ms']['after'])} | {num(w['kernel_ms']['delta'])} | "
                   f"{w['latency_ms_p50']['speedup']:.2f}× (latency) |")
    out += ["", "Whole model, kernel time per class, ms (launches):", "",
            "| class | " + " | ".join(f"`{c['candidate']}`" for c in cands) + " |",
            "|---" * (len(cands) + 1) + "|"]
    for cls in data["classes"]:
        out.append(f"| {cls} | " + " | ".join(
            f"{c['whole']['classes'][cls]['ms']:.3f} ({c['whole']['classes'][cls]['launches']:.0f})" for c in cands) + " |")
    out.append("| **total** | " + " | ".join(f"{c['whole']['kernel_ms']:.3f} ({c['whole']['launches']:.0f})"
                                             for c in cands) + " |")
    out.append("| latency p50 | " + " | ".join(f"{c['whole']['latency_ms_p50']:.3f}" for c in cands) + " |")
    for c in cands:
        if not c.get("top_kernels"):
            continue
        out += ["", f"`{c['candidate']}`, whole model, the {top} kernels with the most time per call:", "",
                "| kernel | class | ms / call | launches |", "|---|---|---|---|"]
        for k in c["top_kernels"][:top]:
            out.append(f"| `{k['kernel'][:80]}` | {k['class']} | {k['ms']:.3f} | {k['launches']:.0f} |")
    return "\n".join(out)


def _us(r: dict, key: str) -> str:
    """A probe record's milliseconds as µs with one decimal, "—" where the record lacks it."""
    return f"{1e3 * r[key]:.1f}" if key in r else "—"


def _gemm_table(rows: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    """Markdown rows of per-GEMM probe records: name (K→N), rows, then each (header, record key) in µs."""
    out = ["| GEMM (K→N) | rows | " + " | ".join(h for h, _ in columns) + " |", "|---" * (2 + len(columns)) + "|"]
    for r in rows:
        out.append(f"| {r['op'].split(':')[1]} ({r['k']}→{r['n']}) | {r['rows']} | "
                   + " | ".join(_us(r, key) for _, key in columns) + " |")
    return out


def splitk_table(path: Path) -> str:
    """tools/issue9_probe.py --splitk: each block GEMM with the residual add after it, as one GEMM and
    (fc2, proj) split in K as a batched GEMM whose partial products the add sums; µs per call."""
    rows = [r for r in json.loads(path.read_text())["micro"] if r["op"].startswith("splitk:")]
    columns = [("linear + add µs", "linear_add_ms"), ("split 2 µs", "split2_ms"), ("split 4 µs", "split4_ms"),
               ("linear alone (cuBLAS) µs", "cublas_linear_ms"), ("linear alone (cuBLASLt) µs", "cublaslt_linear_ms")]
    return "\n".join([f"`{path.name}`", "", *_gemm_table(rows, columns)])


def cls_tables(path: Path) -> str:
    """tools/issue9_probe.py --cls: the block GEMMs at M and M-1 rows and split into the M-1 patch rows and
    the class row; attention at N tokens against N-1 queries / keys, and the model's attention as timm
    computes it against the class token's key apart (Triton merge; Inductor's merge); µs per call."""
    micro = json.loads(path.read_text())["micro"]
    gemms = [r for r in micro if r["op"].startswith("cls:") and r["op"] not in ("cls:attention", "cls:sdpa")]
    attn = [r for r in micro if r["op"] == "cls:attention"]
    columns = [("all rows µs", "full_ms"), ("one row less µs", "minus1_ms"), ("1 row µs", "one_row_ms"),
               ("split, one stream µs", "split_seq_ms"), ("split, class row on a second stream µs", "split_side_ms"),
               ("TunableOp µs", "tunableop_ms")]
    out = [f"`{path.name}`", "", *_gemm_table(gemms, columns)]
    out += ["", "| batch × tokens N | SDPA µs | N-1 queries µs | N-1 keys µs | both µs | timm's attention, compiled µs | "
            "class key apart (Triton merge) µs | class key apart (Inductor merge) µs | apart vs timm | "
            "max abs diff vs fp32: timm / apart |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in attn:
        ratio = r["timm_compiled_ms"] / r["apart_compiled_ms"] if "apart_compiled_ms" in r else None
        out.append(f"| {r['batch']} × {r['tokens']} | {_us(r, 'sdpa_ms')} | {_us(r, 'sdpa_q_minus1_ms')} | "
                   f"{_us(r, 'sdpa_kv_minus1_ms')} | {_us(r, 'sdpa_both_minus1_ms')} | {_us(r, 'timm_compiled_ms')} | "
                   f"{_us(r, 'apart_compiled_ms')} | {_us(r, 'apart_inductor_merge_compiled_ms')} | "
                   f"{'—' if ratio is None else f'{ratio:.3f}×'} | {r.get('timm_max_abs_diff_fp32', 0):.1e} / "
                   f"{r.get('apart_max_abs_diff_fp32', 0):.1e} |")
    return "\n".join(out)


FINISH = (("inductor_fold", "Inductor, as `fold` compiles it: ×2 upsampling, merged head, L2 norm"),
          ("conv_cl+kernel", "`upsample_norm`: merged head (no bias) at H/4, then the Triton kernel"),
          ("conv_cl", "· the convolution alone (channels-last output)"),
          ("kernel_cl", "· the kernel alone, on that output"),
          ("mm_nchw+kernel", "head as a matmul (NCHW output), then the kernel"),
          ("kernel_nchw", "· the kernel alone, on a NCHW input"),
          ("chunked_cl", "two-pass kernel over 32-channel chunks, 128 pixels (channels-last input)"),
          ("chunked_nchw", "· the same on a NCHW input"),
          ("chunked_nchw_x64", "· 64 pixels, NCHW input"),
          ("chunked_nchw_x256_w8", "· 256 pixels, 8 warps, NCHW input"),
          ("mm_nchw+chunked", "matmul, then the two-pass kernel"))


def finish_table(path: Path) -> str:
    """tools/issue9_probe.py --finish: the encoder's last step (×2 upsampling, head, L2 norm) from
    refinenet1's mixed map, each variant in µs per call at 384² and 1024²; max |difference| to fp32."""
    rows = [r for r in json.loads(path.read_text())["micro"] if r["op"] == "finish"]
    out = [f"`{path.name}`", "", "| variant | " + " | ".join(f"{r['size']}² µs" for r in rows)
           + " | " + " | ".join(f"max abs diff {r['size']}²" for r in rows) + " |", "|---" * (1 + 2 * len(rows)) + "|"]
    tiles = sorted({m.groups() for r in rows for k in r if (m := re.fullmatch(r"kernel_cl_(\d+)x(\d+)(_cs)?_ms", k))},
                   key=lambda t: (int(t[0]), int(t[1]), bool(t[2])))
    labels = list(FINISH) + [(f"kernel_cl_{x}x{w}{cs or ''}", f"· the kernel alone, {x} pixels per program, {w} warps"
                              + (", streaming store" if cs else "")) for x, w, cs in tiles]
    for key, label in labels:
        diffs = [f"{r[key + '_max_abs_diff_fp32']:.1e}" if key + "_max_abs_diff_fp32" in r else "—" for r in rows]
        out.append(f"| {label} | " + " | ".join(_us(r, key + "_ms") for r in rows) + " | " + " | ".join(diffs) + " |")
    return "\n".join(out)


FLASH4 = (("cudnn", "cuDNN (SDPA as timm calls it)"), ("cudnn_apart", "cuDNN, class key apart (`cls_key_apart`)"),
          ("fa4", "FA4 (`flash4`)"), ("fa4_apart", "FA4, class key apart (`flash4` + `cls_key_apart`)"))


def flash4_table(path: Path) -> str:
    """tools/issue9_probe.py --flash4: ViT-L/16's attention (16 heads of 64, fp16) by cuDNN and by
    FlashAttention-4, each compiled and replayed in a CUDA graph, and FA4's kernel alone per tile; µs per call,
    TFLOP/s (4·B·16·N²·64 FLOP), max |difference| to fp32 math SDPA."""
    rows = [r for r in json.loads(path.read_text())["micro"] if r["op"] == "flash4" and "error" not in r]
    tiles = sorted({m.group(1) for r in rows for k in r if (m := re.fullmatch(r"fa4_kernel_(\d+x\d+)_ms", k))},
                   key=lambda t: tuple(map(int, t.split("x"))))
    labels = list(FLASH4) + [(f"fa4_kernel_{t}", f"· FA4's kernel alone, tile {t.replace('x', ' × ')}") for t in tiles]
    out = [f"`{path.name}`", "", "| route | " + " | ".join(f"{r['batch']} × {r['tokens']} µs (TFLOP/s)" for r in rows)
           + " | max abs diff |", "|---" * (2 + len(rows)) + "|"]
    for key, label in labels:
        cells = [f"{1e3 * r[key + '_ms']:.1f} ({r['tflops'][key]:.0f})" if key + "_ms" in r else "—" for r in rows]
        diffs = [r[key + "_max_abs_diff_fp32"] for r in rows if key + "_max_abs_diff_fp32" in r]
        out.append(f"| {label} | " + " | ".join(cells) + f" | ≤ {max(diffs):.1e} |")
    return "\n".join(out)


def _quack_tile(key: str) -> str:
    """A quack tile key of tools/issue9_probe.py (e.g. 192x128_pp_c21) in words: 192 × 128 ping-pong, cluster 2×1."""
    m, n, kind, cm, cn = re.fullmatch(r"(\d+)x(\d+)_(pp|coop)_c(\d)(\d)", key).groups()
    return f"{m} × {n} {'ping-pong' if kind == 'pp' else 'cooperative'}, cluster {cm}×{cn}"


def quack_table(path: Path) -> str:
    """tools/issue9_probe.py --quack: ViT-L/16's block GEMMs (fp16, bias) by cuBLAS as the model runs them
    against quack's CuTe-DSL GEMMs (its own choice and each timed tile), 24 calls per CUDA graph; µs per call
    (TFLOP/s), the fastest quack tile, and for proj / fc2 the fastest with the residual add in the epilogue."""
    rows = [r for r in json.loads(path.read_text())["micro"] if r["op"] == "quack" and "cublas_ms" in r]
    out = [f"`{path.name}`", "", "| GEMM (K→N) | rows | cuBLAS µs (TFLOP/s) | quack's choice µs | fastest quack tile "
           "| its µs (TFLOP/s) | cuBLAS / fastest quack | fastest with the residual add µs | quack failed |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tiles = {k[len("quack_"):-3]: v for k, v in r.items()
                 if k.startswith("quack_") and k.endswith("_ms") and not k.endswith("_add_ms") and k != "quack_default_ms"}
        adds = [v for k, v in r.items() if k.endswith("_add_ms")]
        failed = sum(k.endswith("_error") for k in r)
        us = lambda key: f"{1e3 * r[key + '_ms']:.1f} ({r['tflops'][key]:.0f})"  # noqa: E731
        if tiles:
            best = min(tiles, key=tiles.get)
            cells = [f"{1e3 * r['quack_default_ms']:.1f}" if "quack_default_ms" in r else "—",
                     _quack_tile(best),
                     us(f"quack_{best}"), f"{r['cublas_ms'] / tiles[best]:.3f}×"]
        else:
            cells = ["—", "—", "—", "—"]
        cells += [f"{1e3 * min(adds):.1f}" if adds else "—", f"{failed} of {failed + len(tiles) + ('quack_default_ms' in r)}"
                  if failed else "—"]
        out.append(f"| {r['gemm']} ({r['k']}→{r['n']}) | {r['rows']} | {us('cublas')} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def flex_table(path: Path) -> str:
    """tools/issue9_probe.py --flex: FlexAttention's Triton kernel (Inductor's autotuned choice and fixed
    tiles) against PyTorch's SDPA choice at ViT-L/16's token counts; µs per call."""
    rows = json.loads(path.read_text())["flex"]
    shapes = sorted({(r["batch"], r["tokens"]) for r in rows}, key=lambda s: (s[0], s[1]))
    tiles = []
    for r in rows:
        if r["kernel"] == "flex" and str(r["tile"]) not in tiles:
            tiles.append(str(r["tile"]))
    name = lambda t: "autotuned" if t == "autotune" else "(" + ", ".join(t.strip("[]").split(", ")) + ")"  # noqa: E731
    out = [f"`{path.name}`", "",
           "| batch × tokens | SDPA (cuDNN) µs | " + " | ".join(f"flex {name(t)} µs" for t in tiles) + " | best flex vs SDPA |",
           "|---" * (3 + len(tiles)) + "|"]
    for b, n in shapes:
        (sdpa,) = [r for r in rows if (r["batch"], r["tokens"]) == (b, n) and r["kernel"] == "sdpa"]
        flex = {str(r["tile"]): r for r in rows if (r["batch"], r["tokens"]) == (b, n) and r["kernel"] == "flex"}
        cells = [f"{1e3 * flex[t]['ms']:.1f}" if "ms" in flex.get(t, {}) else "—" for t in tiles]
        best = min(r["ms"] for r in flex.values() if "ms" in r)
        out.append(f"| {b} × {n} | {1e3 * sdpa['ms']:.1f} | " + " | ".join(cells) + f" | {sdpa['ms'] / best:.3f}× |")
    return "\n".join(out)


def sdpa_plans_table(path: Path, top: int = 3) -> str:
    """tools/issue9_sdpa_plans.py: per token count, PyTorch's cuDNN attention against every cuDNN execution
    plan that built (heuristics' plans and knob variants), µs per call; the ``top`` fastest plans named."""
    data = json.loads(path.read_text())
    out = [f"`{path.name}` · {data['gpu']} · cuDNN {data['cudnn_backend']}, frontend {data['cudnn_frontend']}", "",
           "| tokens | log-sum-exp | PyTorch µs | plans timed | heuristics' first plan | its µs | fastest plans (µs) "
           "| PyTorch / fastest |", "|---|---|---|---|---|---|---|---|"]
    for row in data["shapes"]:
        timed = sorted((p for p in row.get("plans", []) if "us" in p and p["max_abs_diff_vs_torch"] < 1e-2),
                       key=lambda p: p["us"])
        first = next((p for p in row.get("plans", []) if p.get("heuristic_rank") == 0
                      and p["implementation"] == "AUTO"), None)
        best = ", ".join(f"`{p['implementation']} {p['name']}` {p['us']:.1f}" for p in timed[:top]) or "—"
        ratio = f"{row['torch_us'] / timed[0]['us']:.3f}×" if timed else "—"
        out.append(f"| {row['tokens']} | {'yes' if row['stats'] else 'no'} | {row.get('torch_us', float('nan')):.1f} | "
                   f"{len(timed)} | `{first['name'] if first else '—'}` | "
                   f"{first['us'] if first and 'us' in first else float('nan'):.1f} | {best} | {ratio} |")
    return "\n".join(out)


def fp8_attention_table(path: Path) -> str:
    """tools/issue9_fp8_attention.py: per token count, PyTorch's fp16 cuDNN attention against the fastest plan
    of cuDNN's fp8 attention (per output type), the casts to e4m3 it needs, and the errors against fp32."""
    data = json.loads(path.read_text())
    out = [f"`{path.name}` · {data['gpu']} · torch {data['torch']}, cuDNN {data['cudnn_backend']}, "
           f"frontend {data['cudnn_frontend']}", "",
           "| tokens | log-sum-exp | fp16 µs | fp16 rel. RMS error | fp8 output | fastest fp8 plan | its µs "
           "| fp16 / fp8 | fp8 rel. RMS error | cast to e4m3 µs (scale from max / given) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for row in data["shapes"]:
        for output in ("fp16", "e4m3"):
            variants = [v for v in row.get("variants", []) if v["output"] == output]
            plans = [(v, p) for v in variants for p in v["plans"] if "us" in p]
            cast = f"{row.get('quantize_dynamic_us', float('nan')):.1f} / {row.get('quantize_static_us', float('nan')):.1f}"
            head = (f"| {row['tokens']} | {'yes' if row['stats'] else 'no'} | {row['torch_fp16_us']:.1f} | "
                    f"{row['torch_fp16_error']['rel_rms']:.1e} | {output} | ")
            if not plans:
                err = next((v.get("error", "") for v in variants if v.get("error")), "no plan ran")
                out.append(head + f"not built: {err.split(':')[0]}: {err.split(':', 1)[-1].strip()[:100]} | | | | {cast} |")
                continue
            v, p = min(plans, key=lambda vp: vp[1]["us"])
            out.append(head + f"`{p['name']}` ({v['layout']}) | {p['us']:.1f} | {row['torch_fp16_us'] / p['us']:.3f}× | "
                       f"{p['error']['rel_rms']:.1e} | {cast} |")
    return "\n".join(out)


def layout_table(path: Path) -> str:
    """tools/issue9_layout.py: the memory format of the map the finish and the upsample_norm kernel get."""
    def fmt(layout):
        if not layout:
            return "—"
        return f"{'channels-last' if layout['channels_last'] else 'NCHW'} {tuple(layout['shape'])}"

    out = [f"`{path.name}`", "",
           "| variant | size | options | map into the finish | map into the kernel | output strides | p50 ms (rough) |",
           "|---|---|---|---|---|---|---|"]
    for r in json.loads(path.read_text()):
        opts = ",".join(f"{k}={str(v).lower()}" for k, v in r["options"].items())
        kernel = fmt(r["kernel_input"][0]) if r["kernel_input"] else "—"
        out.append(f"| {r['variant']} | {r['size']} | {opts} | {fmt(r['static_map'])} | {kernel} | "
                   f"{tuple(r['out_stride'])} | {r['p50_ms']:.2f} |")
    return "\n".join(out)


def first_inference_table(path: Path) -> str:
    """tools/issue9_gpu.sh first:V: each fresh process's steps, seconds since it started, in the order the
    processes ran (Python's bytecode cache is written by the first process that imports a module)."""
    data = json.loads(path.read_text())
    order = data.get("modes") or ("saved", "again", "text", "profiled", "cold")  # the order they ran in
    runs = [(k, data[k]) for k in order if data.get(k)]
    label = {"saved": "saved build", "again": "saved build, again",
             "text": "saved build, text tower built at load", "text2": "saved build, text tower built at load, again",
             "profiled": "saved build, under cProfile",
             "cold": "no build (compiles)"}
    # since the twenty-second session: the traced code a process installed from the build (Dynamo's caching
    # precompile), the graphs it traced itself (AOTAutograd's count), its median call afterwards
    more = any("time_ms" in r for _, r in runs)
    out = [f"`{path.name}`", "",
           "| process | imports | model loaded | `Encoder.open` | first output | open → output | model → output |"
           + (" traced code from the build | graphs traced | p50 ms after |" if more else ""),
           "|---|---|---|---|---|---|---|" + ("---|---|---|" if more else "")]
    for k, r in runs:
        t = r["seconds_since_process_start"]
        row = (f"| {label[k]} | {t['imports_s']:.2f} | {t['model_s']:.2f} | {t['open_s']:.2f} | "
               f"**{t['first_call_s']:.2f}** | {t['first_call_s'] - t['open_s']:.2f} | "
               f"{t['first_call_s'] - t['model_s']:.2f} |")
        if more:
            counters = r.get("counters", {})
            row += (f" {counters.get('dynamo_cache', {}).get('dynamo_cache_hit', 0)} |"
                    f" {counters.get('aot_autograd', {}).get('total', 0)} |"
                    f" {r['time_ms']['median']:.2f} |" if "time_ms" in r else " – |")
        out.append(row)
    return "\n".join(out)


def variant_plots(folder: Path, files: list[Path]) -> list[Path]:
    """Per variant and batch: GPU p50 vs square size, one line per backend/precision (static-shape
    headline runs and the 480x640 extras are tables only)."""
    by_variant: dict[str, list[dict]] = {}
    for path in files:
        if "static" in path.stem or "issue9" in path.stem:  # issue 9's candidate runs are tables of their own
            continue
        for r in ok_records(path):
            if r["height"] == r["width"]:
                label = r["backend"] + (" +graph" if r.get("cuda_graph") else "")
                by_variant.setdefault(r["variant"], []).append({**r, "size": r["height"], "backend": label})
    written = []
    for variant, rows in sorted(by_variant.items()):
        for batch in sorted({r["batch"] for r in rows}):
            path = folder / f"latency_{variant}_b{batch}.png"
            latency_plot([r for r in rows if r["batch"] == batch], path, y="gpu_ms_p50",
                         group=("backend", "precision"),
                         title=f"{variant}, batch {batch}: GPU p50 latency per call (H100, CUDA events)")
            written.append(path)
    return written


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    benches = sorted(folder.glob("bench_*.json"))
    for path in benches:
        print(f"\n#### {path.stem}\n\n{bench_table(path)}")
    for path in sorted(folder.glob("compare_*.json")):
        print(f"\n#### {path.stem}\n\n{compare_table(path)}")
    for path in sorted(folder.glob("issue9_splitk_*.json")):
        print(f"\n#### {path.stem}\n\n{splitk_table(path)}")
    for path in sorted(folder.glob("profile_*.json")):
        if json.loads(path.read_text()).get("comparisons"):
            print(f"\n#### {path.stem}\n\n{profile_tables(path)}")
    for path in variant_plots(folder, benches):
        print(f"\nwrote {path}", file=sys.stderr)
