"""`lsegrt compare`: how faithful is a backend/precision to the fp32 eager reference, on real images?

Both sides get the same preprocessed tensor. Per image × size and pooled over all of them: per-pixel
cosine (mean, 0.1th percentile, min), relative L2 ‖a−b‖/‖a‖, max |a−b|, and label agreement (% of pixels
with the same argmax over --labels, both sides using the same text features). Default thresholds by
precision: fp32 mean cosine ≥ 0.99999; fp16/bf16 mean ≥ 0.999, p0.1 ≥ 0.99, agreement ≥ 99 %. Any failing
pair makes the exit code 1 (for CI).

  lsegrt compare --candidate onnxruntime:fp32 --candidate torch:fp16
  lsegrt compare --candidate tensorrt:fp16@lseg_fp16.engine --checkpoint demo_e200.ckpt photos/
  lsegrt compare --candidate compile:fp16 --candidate compile:fp16:fast=true --cuda-graph   # per-side options
  lsegrt compare --checkpoints a.ckpt b.ckpt c.ckpt        # cross-checkpoint similarity, same variant

Writes DIR/compare.json and PNGs per pair (first image × size, or all with --all-pictures): the
cosine-error heat-map, both feature maps in one PCA-RGB basis, and both label maps.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import (
    add_cuda_graph_arg, add_device_arg, add_option_arg, backend_options, check_out_dir, resolve_device, say, size_type,
)


def add_parser(subparsers) -> None:
    from ..compare import DEFAULT_LABELS, DEFAULT_SIZES, REFERENCE
    from ..model.config import VARIANTS

    p = subparsers.add_parser("compare", help="fidelity of backends/precisions (or checkpoints) vs a reference",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files, folders or sample:NAME (default: sample:chelsea sample:astronaut sample:coffee)")
    p.add_argument("--candidate", action="append", metavar="BACKEND[:PREC][:KEY=VALUE,...][@ENGINE]",
                   help="encoder to check, e.g. onnxruntime:fp32, torch:fp16, compile:fp16:fast=true, "
                        "tensorrt:fp16@x.engine (repeatable; its options add to --option)")
    p.add_argument("--reference", default=REFERENCE.label, metavar="BACKEND[:PREC][:KEY=VALUE,...][@ENGINE]",
                   help=f"what candidates are compared with (default: {REFERENCE.label}, eager, strict fp32: "
                        "no TF32 in matmuls or cuDNN convolutions)")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="checkpoint file or random:VARIANT[:seedK] (default: random weights of --variant)")
    p.add_argument("--variant", choices=list(VARIANTS), default=None, help="random default's architecture (vit_l16)")
    p.add_argument("--checkpoints", nargs="+", metavar="CKPT",
                   help="cross-checkpoint mode: similarity between these checkpoints (same variant)")
    p.add_argument("--size", action="append", type=size_type, metavar="S|HxW",
                   help=f"long side S or exact HxW (repeatable; default: {' '.join(map(str, DEFAULT_SIZES))})")
    p.add_argument("--labels", default=DEFAULT_LABELS,
                   help=f"labels for the agreement check (default: {DEFAULT_LABELS!r})")
    p.add_argument("--min-cosine", type=float, metavar="X", help="override the mean-cosine threshold")
    p.add_argument("--min-p01", type=float, metavar="X", help="override the 0.1th-percentile cosine threshold")
    p.add_argument("--min-agreement", type=float, metavar="PCT", help="override the label-agreement threshold (%%)")
    add_device_arg(p)
    add_cuda_graph_arg(p)
    add_option_arg(p)
    p.add_argument("--out", default="lsegrt-compare", metavar="DIR",
                   help="folder for compare.json and pictures (default: ./lsegrt-compare)")
    p.add_argument("--all-pictures", action="store_true", help="pictures for every image × size, not only the first")
    p.set_defaults(func=run)


def _images(args):
    from ..compare import DEFAULT_IMAGES
    from ..images import resolve_images

    return resolve_images(list(args.images or DEFAULT_IMAGES))


def _model(spec: str | None, variant: str | None, device: str):
    from ..api import DEFAULT_VARIANT, check_model_spec, load_or_random

    if spec:
        check_model_spec(spec)
    return load_or_random(spec, variant or DEFAULT_VARIANT, device, say=say)


def _f(v: Any, fmt: str) -> str:
    return "—" if v is None else fmt.format(v)


def _metric_cells(m: dict[str, Any]) -> list[str]:
    return [_f(m["mean_cosine"], "{:.7f}"), _f(m["p01_cosine"], "{:.6f}"), _f(m["min_cosine"], "{:.6f}"),
            _f(m["rel_l2"], "{:.2e}"), _f(m["max_abs"], "{:.2e}"), _f(m["agreement"], "{:.3f}")]


def backends_table(report: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"lsegrt compare · {report['model']['name']} · reference {report['reference']['side']}",
                  header_style="bold")
    for col in ("candidate", "image", "input", "mean cos", "p0.1 cos", "min cos", "rel L2", "max |Δ|", "agree %",
                "result"):
        table.add_column(col, justify="left" if col in ("candidate", "image", "result") else "right")
    for pair in report["pairs"]:
        for item in pair["items"]:
            style = None if item["passed"] else "red"
            table.add_row(pair["candidate"], item["image"], item["input"], *_metric_cells(item),
                          "pass" if item["passed"] else "FAIL: " + "; ".join(item["failures"]), style=style)
        agg = pair["aggregate"]
        cells = _metric_cells(agg) if agg else [""] * 6
        result = "PASS" if pair["passed"] else "FAIL: " + "; ".join(pair["failures"] or ["an image failed"])
        table.add_row(pair["candidate"], "[b]all[/b]", "", *cells, result,
                      style="bold green" if pair["passed"] else "bold red", end_section=True)
    return table


def checkpoints_table(report: dict[str, Any]):
    from rich.table import Table

    table = Table(title="lsegrt compare · checkpoints (eager fp32, all images × sizes pooled)", header_style="bold")
    for col in ("a", "b", "mean cos", "p0.1 cos", "min cos", "rel L2", "max |Δ|", "agree %"):
        table.add_column(col, justify="left" if col in ("a", "b") else "right")
    for pair in report["pairs"]:
        table.add_row(pair["a"], pair["b"], *_metric_cells(pair))
    return table


def _check_thresholds(args: argparse.Namespace) -> None:
    import math

    from ..errors import LsegError

    for flag, value, top in (("--min-cosine", args.min_cosine, 1.0), ("--min-p01", args.min_p01, 1.0),
                             ("--min-agreement", args.min_agreement, 100.0)):
        if value is not None and not (math.isfinite(value) and -top <= value <= top):
            raise LsegError(f"{flag} {value}: must be a number between {-top:g} and {top:g}")


def run(args: argparse.Namespace) -> int:
    from .. import compare
    from ..environment import measurement_environment
    from ..errors import LsegError
    from ..fileio import refuse_overwriting_inputs
    from ..progress import Progress
    from ..report import console

    _check_thresholds(args)
    out = check_out_dir(args.out)
    device = resolve_device(args.device)
    con = console()
    images = _images(args)
    sizes = list(dict.fromkeys(args.size or compare.DEFAULT_SIZES))
    candidates = [compare.parse_side(c) for c in args.candidate or []]
    reference = compare.parse_side(args.reference)
    inputs = [name for name, _ in images if not name.startswith("sample:")]
    inputs += [*(args.checkpoints or []), args.checkpoint, reference.engine, *(c.engine for c in candidates)]
    refuse_overwriting_inputs([Path(out) / "compare.json"], inputs)
    steps = len(images) * len(sizes)
    if args.checkpoints:
        if args.candidate or args.checkpoint:
            raise LsegError("--checkpoints compares checkpoints with each other; drop --candidate/--checkpoint")
        if len(args.checkpoints) < 2:
            raise LsegError("--checkpoints needs at least two checkpoints")
        for spec in args.checkpoints:
            from ..api import check_model_spec

            check_model_spec(spec)
        models = []
        for spec in args.checkpoints:  # one at a time: a variant mismatch fails before loading the rest
            models.append(_model(spec, None, device))
            compare.check_same_variant(models)
        with Progress("comparing checkpoints", total=steps, unit="image sizes") as bar:
            report = compare.compare_checkpoints(models, images, sizes, args.labels, out, args.all_pictures,
                                                 on_step=lambda s: bar.advance(description=f"comparing checkpoints: {s}"),
                                                 inputs=inputs)
        con.print(checkpoints_table(report))
    else:
        if not candidates:
            raise LsegError("nothing to compare: pass --candidate BACKEND[:PREC] (e.g. onnxruntime:fp32) "
                            "or --checkpoints A B")
        model = _model(args.checkpoint, args.variant, device)
        overrides = {"min_cosine": args.min_cosine, "min_p01": args.min_p01, "min_agreement": args.min_agreement}
        options = backend_options(args)
        with Progress("comparing", total=steps, unit="image sizes") as bar:
            report = compare.compare(model, candidates, images, sizes, args.labels, reference, overrides, out,
                                     args.all_pictures, options, on_step=lambda s: bar.advance(description=f"comparing: {s}"),
                                     inputs=inputs)
        con.print(backends_table(report))
    path = compare.write_report(report, Path(out) / "compare.json", measurement_environment(device))
    if report["mode"] == "checkpoints":
        pictures = report["pictures"]
    else:
        pictures = [p for pair in report["pairs"] for p in pair["pictures"]]
    con.print(f"wrote {path} and {len(pictures)} pictures in {out}", soft_wrap=True)
    if not report["passed"]:
        failed = [p["candidate"] for p in report["pairs"] if not p["passed"]]
        con.print(f"[red]FAILED: {', '.join(failed)}[/red]")
        if report.get("stopped"):
            con.print(f"[red]{report['stopped']}: the images after it were not compared[/red]", soft_wrap=True)
        return 1
    return 0
