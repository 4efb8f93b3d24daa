"""`lsegrt bench`: latency and throughput of image encoders over models × backends × precisions × sizes × batches.

Instead of --backend × --precision, --candidate names each encoder with its own options, e.g. stock
torch.compile against lsegrt's fast path in one run, with a "× first" column (first candidate's p50 ÷
this p50, same model, size and batch):

  lsegrt bench --candidate compile:fp16 --candidate compile:fp16:fast=true --cuda-graph --size 384 --size 1024

Each configuration is warmed up, then timed with CUDA events on the current stream (GPU) or perf_counter
around the synchronous call (CPU): at least --min-iters calls (default 5; never a percentile of one
call), then until --min-seconds have passed or --max-iters calls are done. The "n" column is the count. Host→device
and device→host copies (pinned memory) are timed separately and never added to the latency. Peak memory is
PyTorch's allocator only: it does not see what TensorRT or ONNX Runtime allocate themselves.

Writes DIR/bench.json (environment + one record per configuration), DIR/bench.csv (same records, flat)
and DIR/bench.png (latency vs input size, log scale). A failing configuration (out of memory, backend
missing) is recorded with its error and the sweep goes on; the exit code is 1 only if all of them failed.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import (add_cuda_graph_arg, add_device_arg, add_option_arg, backend_options, exact_size_type,
                     resolve_device, say)


def add_parser(subparsers) -> None:
    from ..backends.base import PRECISIONS, REGISTRY
    from ..bench import DEFAULT_SIZES, Timing
    from ..model.config import VARIANTS

    t = Timing()
    p = subparsers.add_parser("bench", help="latency/throughput sweep → table, bench.json/.csv/.png",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to run (each option repeatable; the sweep is their product)")
    g.add_argument("--checkpoint", action="append", metavar="CKPT",
                   help="checkpoint file, or random:VARIANT[:seedK] (default: random vit_l16 weights)")
    g.add_argument("--variant", action="append", choices=list(VARIANTS),
                   help="random weights of this architecture (timings do not depend on the weights)")
    g.add_argument("--backend", action="append", choices=list(REGISTRY), help="default: torch")
    g.add_argument("--precision", action="append", choices=list(PRECISIONS), help="default: fp32")
    g.add_argument("--candidate", action="append", metavar="BACKEND[:PREC][:KEY=VALUE,...][@ENGINE]",
                   help="instead of --backend/--precision: one encoder with its own options, e.g. "
                        "compile:fp16:fast=true (repeatable, run in order; the first is the baseline)")
    g.add_argument("--size", action="append", type=exact_size_type, metavar="S|HxW",
                   help=f"square side S or exact HxW, multiples of 32 (default: {' '.join(map(str, DEFAULT_SIZES))})")
    g.add_argument("--batch", action="append", type=int, metavar="B", help="batch size (default: 1)")
    add_device_arg(g)
    g.add_argument("--engine", metavar="FILE",
                   help="prebuilt engine for the engine backends (aoti, onnxruntime, tensorrt; compile: a "
                        "saved build from `lsegrt build --backend compile`)")
    add_cuda_graph_arg(g)
    add_option_arg(g)
    m = p.add_argument_group("measurement")
    m.add_argument("--warmup-iters", type=int, default=t.warmup_iters, metavar="N",
                   help=f"warm-up calls before timing (default: {t.warmup_iters})")
    m.add_argument("--warmup-seconds", type=float, default=t.warmup_seconds, metavar="S",
                   help=f"... and at least this long (default: {t.warmup_seconds})")
    m.add_argument("--min-seconds", type=float, default=t.min_seconds, metavar="S",
                   help=f"stop timing after S seconds ... (default: {t.min_seconds}; 'inf' for exactly --iters)")
    m.add_argument("--min-iters", type=int, default=t.min_iters, metavar="N",
                   help=f"timed calls at least, whatever --min-seconds says (default: {t.min_iters}; at least 2)")
    m.add_argument("--max-iters", "--iters", dest="max_iters", type=int, default=t.max_iters, metavar="N",
                   help=f"... or after N calls, whichever comes first (default: {t.max_iters})")
    p.add_argument("--out", default="lsegrt-bench", metavar="DIR",
                   help="folder for bench.json, bench.csv, bench.png (default: ./lsegrt-bench)")
    p.set_defaults(func=run)


def _models(args: argparse.Namespace) -> list[str]:
    models = list(args.checkpoint or []) + [f"random:{v}" for v in args.variant or []]
    if not models:
        say("no --checkpoint given: benchmarking the embedded default, random vit_l16 weights "
            "(same architecture and speed as a real checkpoint; pass --checkpoint or --variant to choose)")
        models = ["random:vit_l16"]
    return models


def environment_line(env: dict[str, Any]) -> str:
    pk = env.get("packages", {})
    backends = ", ".join(f"{k} {v}" for k, v in pk.items() if k in ("onnxruntime", "tensorrt", "tensorrt_rtx")
                         and v != "not installed")
    gpu = f"GPU {env['gpu']} (driver {env.get('nvidia_driver')}, CUDA {env.get('cuda')})" if env.get("gpu") \
        else "device cpu"
    return (f"{gpu} · torch {pk.get('torch')}{' · ' + backends if backends else ''} · "
            f"CPU {env.get('cpu')} ({env.get('torch_threads')} torch threads)")


def results_table(records: list, title: str):
    """Rich table of :class:`lsegrt.bench.BenchRecord` rows (failed ones with their error)."""
    from rich.table import Table

    from ..bench import latency_column
    from ..report import cell as _fmt

    gpu = latency_column(records) == "gpu_ms_p50"
    prefix = "gpu_ms" if gpu else "host_ms"
    several = len({r.model for r in records}) > 1
    runs = len({r.candidate for r in records}) > 1
    named = any(r.candidate != f"{r.backend}:{r.precision}" for r in records)  # options or engines in the name
    table = Table(title=title, header_style="bold")
    cols = (["model"] if several else []) + (["candidate"] if named else ["backend", "prec"]) + [
        "size", "batch", "n", f"{'GPU' if gpu else 'host'} p50 ms", "mean ± std", "p90", "p99", "img/s"]
    if runs:
        cols += ["× first"]
    if gpu:
        cols += ["H2D ms", "D2H ms", "peak MiB", "TFLOP/s", "% fp16 peak"]
    else:
        cols += ["TFLOP/s"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("model", "candidate", "backend", "prec") else "right", no_wrap=True)
    table.add_column("notes", overflow="fold")
    for r in records:
        row = ([r.model] if several else []) + ([r.candidate] if named else [r.backend, r.precision]) + [
            str(r.size), str(r.batch)]
        if not r.ok:
            row += [""] * (len(cols) - len(row))
            table.add_row(*row, f"[red]{r.error}[/red]")
            continue
        st = getattr(r, prefix) or r.host_ms
        row += [str(r.iters), _fmt(st.p50), f"{_fmt(st.mean)} ± {_fmt(st.std)}", _fmt(st.p90), _fmt(st.p99),
                _fmt(r.images_per_s, 1)]
        if runs:
            row += [f"{r.speedup_vs_first:.3f}×" if r.speedup_vs_first else ""]
        if gpu:
            row += [_fmt(r.h2d_ms), _fmt(r.d2h_ms), _fmt(r.gpu_peak_mem_mb, 0),
                    _fmt(r.tflops_per_s, 1), _fmt(r.pct_fp16_peak, 1)]
        else:
            row += [_fmt(r.tflops_per_s, 3)]
        table.add_row(*row, r.notes or "")
    return table


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .. import bench
    from ..environment import measurement_environment
    from ..errors import LsegError
    from ..fileio import refuse_overwriting_inputs
    from ..progress import Progress
    from ..report import console
    from .common import check_out_dir

    out_dir = check_out_dir(args.out)
    candidates = None
    if args.candidate:
        from ..backends.base import parse_candidate

        if args.backend or args.precision:
            raise LsegError("--candidate names backend and precision itself: drop --backend/--precision")
        candidates = [parse_candidate(c) for c in dict.fromkeys(args.candidate)]
    refuse_overwriting_inputs([out_dir / name for name in bench.OUTPUT_NAMES],
                              [*(args.checkpoint or []), args.engine, *(c.engine for c in candidates or [])])
    device = resolve_device(args.device)
    if args.max_iters < 1:
        raise LsegError(f"--max-iters {args.max_iters}: must be at least 1")
    timing = bench.Timing(warmup_iters=args.warmup_iters, warmup_seconds=args.warmup_seconds,
                          min_seconds=args.min_seconds, min_iters=args.min_iters, max_iters=args.max_iters)
    models = _models(args)
    bench.check_model_specs(models)
    backends = list(dict.fromkeys(args.backend or ["torch"]))
    precisions = list(dict.fromkeys(args.precision or ["fp32"]))
    sizes = list(dict.fromkeys(args.size or bench.square_sizes(bench.DEFAULT_SIZES)))
    batches = list(dict.fromkeys(args.batch or [1]))
    for b in batches:
        if b < 1:
            raise LsegError(f"--batch {b}: must be at least 1")
    options = backend_options(args)

    con = console()
    env = measurement_environment(device)
    con.print(environment_line(env))
    total = bench.count_configs(models, backends, precisions, sizes, batches, candidates)
    settings = {"models": [str(m) for m in models], "backends": backends, "precisions": precisions,
                "candidates": [c.label for c in candidates] if candidates else None,
                "sizes": [list(s) for s in sizes], "batches": batches, "device": device, "engine": args.engine,
                "options": options, "timing": asdict(timing)}
    records = []
    with Progress("benchmarking", total=total, unit="configurations") as progress:
        for rec in bench.sweep(models, backends, precisions, sizes, batches, device, engine=args.engine,
                               options=options, timing=timing, peak=env.get("peak_tflops"), candidates=candidates):
            records.append(rec)
            # an interrupted sweep keeps what it measured
            bench.write_outputs(records, env, {**settings, "partial": True}, out_dir, plot=False)
            progress.advance(description=f"benchmarking ({rec.candidate} {rec.height}x{rec.width} b{rec.batch} done)")
    paths = bench.write_outputs(records, env, settings, out_dir)
    con.print(results_table(records, f"lsegrt bench · {device}"))
    written = ", ".join(str(p) for p in paths.values() if p)
    con.print(f"wrote {written}", soft_wrap=True)
    failed = sum(not r.ok for r in records)
    if failed == len(records):
        con.print(f"[red]all {failed} configurations failed[/red]")
        return 1
    if failed:
        con.print(f"[yellow]{failed} of {len(records)} configurations failed (see the table)[/yellow]")
    return 0
