"""`lsegrt profile`: where an encoder's time goes, per stage and per kernel class, and before/after.

For each --candidate (BACKEND[:PRECISION][:KEY=VALUE,...], backend torch or compile): the whole model's
latency (CUDA events, median, as `lsegrt bench`), then torch.profiler over --iters calls: kernel time
per class (gemm, attention, conv, elementwise, copy, other), kernel launches and idle gaps between
kernels on the GPU timeline; then the encoder stage by stage (patch embedding / stem, block groups,
reassemble, decoder projections, refinenets, head, L2 norm), each stage run on the real output of the
previous one (compile: each stage compiled on its own with the same options, so its total is shown
beside the whole-model numbers), with counted FLOPs and TFLOP/s per stage. With two or more
candidates the first is the baseline and each other one is compared with it.

  lsegrt profile --variant vit_l16 --size 384 --candidate compile:fp16 --candidate compile:fp16:autotune=gemm --cuda-graph
  lsegrt profile --candidate torch:fp16 --candidate compile:fp16:freezing=true,cuda_graph=true --size 480x640

Writes DIR/profile.json and DIR/profile.png (kernel time per stage and per class, one bar per candidate).
On a CPU the "kernels" are operator events (self time) and the latency is wall time.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import (add_model_args, add_option_arg, backend_options, check_out_dir, exact_size_type, load_model,
                     say)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("profile", help="per-stage and per-kernel-class GPU time, launches, gaps; before/after",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    g = p.add_argument_group("what to profile")
    g.add_argument("--candidate", action="append", metavar="BACKEND[:PREC][:K=V,...]",
                   help="torch or compile, precision, options (repeatable; the first is the baseline; "
                        "default: compile:fp16 on a GPU, torch:fp32 on a CPU)")
    g.add_argument("--size", type=exact_size_type, default=None, metavar="S|HxW",
                   help="input side S (square) or exact HxW, multiples of 32 (default: 384; CPU: 64)")
    g.add_argument("--batch", type=int, default=1, metavar="B", help="batch size (default: 1)")
    g.add_argument("--groups", type=int, default=4, metavar="N", help="ViT block groups (default: 4)")
    g.add_argument("--top", type=int, default=12, metavar="N",
                   help="whole-model kernels listed per candidate, by time (default: 12)")
    g.add_argument("--cuda-graph", action="store_true", help="cuda_graph=true for every candidate (compile)")
    add_option_arg(g)
    m = p.add_argument_group("measurement")
    m.add_argument("--iters", type=int, default=10, metavar="N", help="profiled calls (default: 10)")
    m.add_argument("--timed-iters", type=int, default=50, metavar="N",
                   help="calls timed with CUDA events, whole model and stages (default: 50)")
    p.add_argument("--out", default="lsegrt-profile", metavar="DIR",
                   help="folder for profile.json and profile.png (default: ./lsegrt-profile)")
    p.set_defaults(func=run)


def _f(v: Any, digits: int = 3) -> str:
    """A table cell as :func:`lsegrt.report.cell` writes it, with 3 decimals unless told otherwise."""
    from ..report import cell

    return cell(v, digits)


def stage_table(res: dict[str, Any]):
    from rich.table import Table

    ms = "GPU" if res["timer"] == "cuda_events" else "host"
    table = Table(title=f"{res['candidate']} · {res['height']}x{res['width']} batch {res['batch']} · stage by stage",
                  header_style="bold")
    for col in ("stage", f"wall ms ({ms})", "kernel ms", "share", "launches", "gaps ms", "GFLOP", "TFLOP/s"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    for r in res["stages"]:
        table.add_row(r["stage"], _f(r["wall_ms"]), _f(r["kernel_ms"]), _f(100 * r["share"], 1) + " %"
                      if r["share"] is not None else "—", _f(r["launches"], 1), _f(r["gaps_ms"]),
                      _f(r["gflop"], 2), _f(r["tflops_per_s"], 1))
    t = res["stagewise_total"]
    table.add_row("[b]stage-wise total[/b]", _f(t["wall_ms"]), _f(t["kernel_ms"]), "100 %", _f(t["launches"], 1),
                  _f(t["gaps_ms"]), _f(t["gflop"], 2), _f(t["tflops_per_s"], 1), end_section=True)
    w = res["whole"]
    table.add_row("[b]whole model[/b] (p50)", _f(w["latency_ms_p50"]), _f(w["kernel_ms"]), "", _f(w["launches"], 1),
                  _f(w["gaps_ms"]), _f(w["gflop"], 2), _f(w["tflops_per_s"], 1))
    return table


def class_table(results: list[dict[str, Any]]):
    from rich.table import Table

    from ..profile import CLASSES

    table = Table(title="whole model · kernel time per class, ms (launches)", header_style="bold")
    table.add_column("class")
    for res in results:
        table.add_column(res["candidate"], justify="right")
    for c in CLASSES:
        table.add_row(c, *[f"{_f(r['whole']['classes'][c]['ms'])} ({_f(r['whole']['classes'][c]['launches'], 0)})"
                           for r in results])
    table.add_row("[b]total[/b]", *[f"{_f(r['whole']['kernel_ms'])} ({_f(r['whole']['launches'], 0)})"
                                    for r in results], end_section=True)
    table.add_row("idle gaps", *[f"{_f(r['whole']['gaps_ms'])} ({_f(100 * (r['whole']['gap_share'] or 0), 1)} % "
                                 "of span)" for r in results])
    table.add_row("latency p50", *[_f(r["whole"]["latency_ms_p50"]) for r in results])
    return table


def comparison_table(cmp: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"before {cmp['before']} → after {cmp['after']}", header_style="bold")
    for col in ("", "wall before", "wall after", "kernel before", "kernel after", "Δ kernel ms", "speedup"):
        table.add_column(col, justify="left" if not col else "right", no_wrap=True)
    for s in cmp["stages"]:
        k = s["kernel_ms"]
        table.add_row(s["stage"], _f(s["wall_ms"]["before"]), _f(s["wall_ms"]["after"]), _f(k["before"]),
                      _f(k["after"]), _f(k["delta"]), _f(k["speedup"], 2) + "×" if k["speedup"] else "—")
    t = cmp["stagewise_total"]
    table.add_row("[b]stage-wise total[/b]", _f(t["wall_ms"]["before"]), _f(t["wall_ms"]["after"]),
                  _f(t["kernel_ms"]["before"]), _f(t["kernel_ms"]["after"]), _f(t["kernel_ms"]["delta"]),
                  _f(t["kernel_ms"]["speedup"], 2) + "×" if t["kernel_ms"]["speedup"] else "—", end_section=True)
    w = cmp["whole"]
    table.add_row("[b]whole model[/b]", _f(w["latency_ms_p50"]["before"]), _f(w["latency_ms_p50"]["after"]),
                  _f(w["kernel_ms"]["before"]), _f(w["kernel_ms"]["after"]), _f(w["kernel_ms"]["delta"]),
                  (_f(w["latency_ms_p50"]["speedup"], 2) + "× (latency)") if w["latency_ms_p50"]["speedup"] else "—")
    return table


def kernel_table(res: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"{res['candidate']} · whole model · top kernels by time", header_style="bold")
    for col in ("kernel", "class", "ms / call", "launches"):
        table.add_column(col, justify="left" if col in ("kernel", "class") else "right", overflow="fold")
    for k in res.get("top_kernels", []):
        table.add_row(k["kernel"][:90], k["class"], _f(k["ms"]), _f(k["launches"], 1))
    return table


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from .. import profile
    from ..bench import environment
    from ..errors import LsegError
    from ..fileio import write_text
    from ..report import clean, console
    from .bench import environment_line
    from .common import resolve_device

    out = check_out_dir(args.out)
    device = resolve_device(args.device)
    from ..profile import MIN_TIMED

    if args.batch < 1 or args.iters < 1 or args.groups < 1 or args.top < 1:
        raise LsegError("--batch, --iters, --groups and --top must be at least 1")
    if args.timed_iters < MIN_TIMED:
        raise LsegError(f"--timed-iters {args.timed_iters}: at least {MIN_TIMED} (a percentile of fewer calls is not a statistic)")
    h, w = args.size or ((384, 384) if device.startswith("cuda") else (64, 64))
    defaults = backend_options(args)
    specs = args.candidate or (["compile:fp16"] if device.startswith("cuda") else ["torch:fp32"])
    candidates = [profile.parse_candidate(s, defaults) for s in specs]
    for cand in candidates:
        profile.check_candidate(cand)
    model = load_model(args)
    con = console()
    env = environment(device)
    con.print(environment_line(env))
    results = []
    with con.status("profiling") as status:
        for cand in candidates:
            results.append(profile.profile_candidate(
                model, cand, h, w, args.batch, device=device, iters=args.iters, timed_iters=args.timed_iters,
                groups=args.groups, top=args.top, on_step=lambda s: status.update(f"profiling: {s}")))
            if cand.backend == "compile":
                torch._dynamo.reset()  # the next candidate's stages start from a clean compile cache
    settings = {"model": model.source, "variant": model.variant, "height": h, "width": w, "batch": args.batch,
                "device": device, "candidates": [c.label for c in candidates], "iters": args.iters,
                "timed_iters": args.timed_iters, "groups": args.groups, "top": args.top}
    payload = clean(profile.report(results, env, settings))
    Path(out).mkdir(parents=True, exist_ok=True)
    json_path = write_text(Path(out) / "profile.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
    png_path = Path(out) / "profile.png"
    profile.write_plot(payload, png_path)
    for res in results:
        con.print(stage_table(res))
    con.print(class_table(results))
    for res in results:
        con.print(kernel_table(res))
    for cmp in payload["comparisons"]:
        con.print(comparison_table(cmp))
    for res in results:
        for note in res["notes"]:
            con.print(f"[yellow]{res['candidate']}: {note}[/yellow]")
    say(f"wrote {json_path}, {png_path}")
    return 0
