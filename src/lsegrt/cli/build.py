"""`lsegrt build --backend tensorrt|aoti|compile`: deployable engines with a JSON sidecar each.

tensorrt: from `--onnx FILE` (an `lsegrt export` output) or from the checkpoint (exported on the
way, in the requested precision). Works with the full `tensorrt` package or TensorRT-RTX; the
latter builds on a machine without a GPU (its runtime refuses Hopper, SM 9.0).
aoti: torch.export with dynamic batch and H, W = 32·k, compiled into a `.pt2` AOTInductor package for
`--device` and `--precision`; reloads without recompiling (tied to the torch version that built it).
compile: torch.compile of the checkpoint for each `--shape` with the given `--option`s (e.g. freezing=true)
and `--cuda-graph`, saving what compilation and autotuning produced (torch.compiler.save_cache_artifacts;
on a CPU also the C++ kernel libraries, FILE.cpp-kernels.zip); `--backend compile --engine FILE` in a new
process then reaches its first inference without recompiling or re-autotuning. Tied to the checkpoint,
precision, options, torch/Triton versions and GPU.

An existing output whose sidecar records the same request is kept (say `--force` to rebuild); one
built for anything else is rebuilt, and the sidecar says exactly what it was built from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_model_args, add_option_arg, backend_options, load_model, say


def _shape(text: str) -> tuple[int, int, int]:
    try:
        b, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected BxHxW, e.g. 1x480x480") from None
    return b, h, w


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("build", help="build a TensorRT engine or an AOTInductor package",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["tensorrt", "aoti", "compile"], required=True)
    add_model_args(p)
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp16")
    p.add_argument("--out", metavar="FILE", help="engine path (default: a deterministic name in the cache)")
    p.add_argument("--force", action="store_true", help="rebuild even if the sidecar matches")
    trt = p.add_argument_group("tensorrt")
    trt.add_argument("--onnx", metavar="FILE.onnx", help="build from this export instead of the checkpoint")
    trt.add_argument("--min", type=_shape, default=(1, 256, 256), metavar="BxHxW", help="profile min (1x256x256)")
    trt.add_argument("--opt", type=_shape, default=(1, 480, 480), metavar="BxHxW", help="profile opt (1x480x480)")
    trt.add_argument("--max", type=_shape, default=(1, 1024, 1024), metavar="BxHxW", help="profile max (1x1024x1024)")
    trt.add_argument("--workspace", type=int, metavar="MiB", help="builder scratch-memory cap in MiB")
    trt.add_argument("--opt-level", type=int, choices=range(6), help="builder optimization level (default 3)")
    trt.add_argument("--timing-cache", metavar="FILE", help="load and save the builder's timing cache")
    trt.add_argument("--sparse-weights", action="store_true", help="2:4 sparse kernels (LSeg is dense: no gain)")
    trt.add_argument("--debug", action="store_true", help="sync after every layer (slows inference)")
    trt.add_argument("--weak-typing", action="store_true",
                     help="fp32 ONNX + FP16/BF16 builder flags (full tensorrt 10.x only)")
    trt.add_argument("--tf32", action="store_true", help="allow TF32 in fp32 layers")
    trt.add_argument("--compute-capability", metavar="CC",
                     help="TensorRT-RTX targets, e.g. 8.9 or 8.6,8.9, or 'current' (default: portable)")
    aoti = p.add_argument_group("aoti")
    aoti.add_argument("--max-batch", type=int, default=64, help="largest batch (default 64)")
    aoti.add_argument("--max-side", type=int, default=2048, help="largest H or W, multiple of 32 (default 2048)")
    comp = p.add_argument_group("compile")
    comp.add_argument("--shape", type=_shape, action="append", metavar="BxHxW",
                      help="input shape to compile for (repeatable; default 1x384x384)")
    comp.add_argument("--cuda-graph", action="store_true", help="compile for CUDA-graph replay (reduce-overhead)")
    add_option_arg(comp)
    p.set_defaults(func=run)


def _reusable(out: Path, request: dict, force: bool) -> bool:
    from ..errors import LsegError
    from ..sidecar import check_sidecar

    if force or not out.exists():
        return False
    try:
        check_sidecar(out, request)
    except LsegError as exc:
        say(f"rebuilding {out.name}: {exc}")
        return False
    say(f"{out} is up to date for this request (sidecar and contents match); use --force to rebuild")
    return True


def _out_path(args, request: dict, suffixes: tuple[str, ...]) -> Path:
    """``--out`` (checked: writable, not a folder, not an input), or the cache's name for ``request``."""
    from ..sidecar import cache_dir, check_engine_output, engine_name

    if not args.out:
        out = cache_dir() / "engines" / engine_name(request, suffixes[0])
        out.parent.mkdir(parents=True, exist_ok=True)
        return out
    from ..backends.compiled_libraries import KINDS

    data = tuple(k.suffix for k in KINDS) if args.backend == "compile" else ()  # the builds' native libraries
    return check_engine_output(args.out, suffixes, inputs=(args.onnx, args.checkpoint), data_suffixes=data)


def _build_options(args):
    from ..backends import tensorrt_build as trt

    if args.workspace is not None and args.workspace < 1:
        from ..errors import LsegError

        raise LsegError(f"--workspace {args.workspace}: expected a positive number of MiB")
    return trt.BuildOptions(
        precision=args.precision, min_shape=args.min, opt_shape=args.opt, max_shape=args.max,
        workspace=args.workspace * 2**20 if args.workspace else None, optimization_level=args.opt_level,
        timing_cache=args.timing_cache, sparse_weights=args.sparse_weights, debug=args.debug,
        weak_typing=args.weak_typing, tf32=args.tf32, compute_capability=args.compute_capability,
    )


def _build_tensorrt(args, options, model) -> Path:
    from ..backends import tensorrt_build as trt

    onnx = Path(args.onnx) if args.onnx else trt._cached_onnx(model, "fp32" if args.weak_typing else args.precision)
    request = trt.request_for(onnx, options, model=model, device=args.device)  # refuses a mismatched pair
    out = _out_path(args, request, trt.SUFFIXES)
    if not _reusable(out, request, args.force):
        say(f"building {out.name} from {onnx.name} ({args.precision}, profile {args.min}…{args.max})")
        info = trt.build_engine(onnx, out, options, request=request, model=model)
        say(f"  built in {info['build_seconds']:.1f} s, {info['engine_bytes'] / 1e6:,.1f} MB "
            f"({info['backend_flavor']} {info['backend_version']})")
    return out


def _build_aoti(args, model) -> Path:
    import torch

    from ..backends.aoti import aoti_request, build_aoti

    device = torch.device(args.device)
    request = aoti_request(model, args.precision, device, args.max_batch, args.max_side)
    out = _out_path(args, request, (".pt2",))
    if not _reusable(out, request, args.force):
        say(f"compiling {out.name} for {device} ({args.precision}); this takes a few minutes for full-size models")
        info = build_aoti(model, out, precision=args.precision, device=device,
                          max_batch=args.max_batch, max_side=args.max_side)
        say(f"  built in {info['build_seconds']:.1f} s, {info['package_bytes'] / 1e6:,.1f} MB")
    return out


def _build_compile(args, model) -> Path:
    import torch

    from ..backends.compiled import CompileOptions, build_compiled, build_request, saved_build_intact

    device = torch.device(args.device)
    options = backend_options(args)
    opts = CompileOptions.parse(options, model.config.backbone, device, args.precision, saved=True)
    shapes = [list(s) for s in dict.fromkeys(args.shape or [(1, 384, 384)])]
    request = build_request(model, args.precision, device, opts, shapes)
    out = _out_path(args, request, (".compiled",))
    force = args.force
    if out.exists() and not force and not saved_build_intact(out):
        say(f"rebuilding {out.name}: its bytes are not the ones its sidecar records")
        force = True
    if not _reusable(out, request, force):
        say(f"compiling {out.name} for {device} ({args.precision}, shapes {', '.join('x'.join(map(str, s)) for s in shapes)}, "
            f"options {opts.record()}); a full-size model takes minutes")
        info = build_compiled(model, out, precision=args.precision, device=device, shapes=shapes, options=options,
                              request=request)
        say(f"  built in {info['build_seconds']:.1f} s, {info['artifact_bytes'] / 1e6:,.1f} MB "
            f"({', '.join(f'{k} {v}' for k, v in info['artifacts'].items() if v)})")
    return out


def _checkpoint_only(path: str):
    """What a TensorRT build from ``--onnx`` needs of ``--checkpoint``: its weights identity (read once
    per file version, no network built) and its file, to check the ONNX was exported from it."""
    from types import SimpleNamespace

    from ..model.checkpoint import checkpoint_identity

    return SimpleNamespace(sha256=checkpoint_identity(path), file=Path(path), source=path, name=Path(path).stem)


def run(args: argparse.Namespace) -> int:
    from ..errors import LsegError
    from .common import resolve_device

    if args.backend != "compile" and (args.shape or args.option or args.cuda_graph):
        raise LsegError("--shape, --option and --cuda-graph are for --backend compile")
    try:
        if args.backend in ("aoti", "compile") and args.onnx:
            raise LsegError(f"--onnx is for --backend tensorrt; {args.backend} compiles from the checkpoint")
        if args.backend == "compile":
            args.device = resolve_device(args.device)
            if args.out:
                _out_path(args, {}, (".compiled",))  # refuse a bad output before the model is loaded
            out = _build_compile(args, load_model(args))
        elif args.backend == "aoti":
            from ..backends.aoti import check_limits

            check_limits(args.max_batch, args.max_side)
            args.device = resolve_device(args.device)
            if args.out:
                _out_path(args, {}, (".pt2",))  # refuse a bad output before the model is loaded
            out = _build_aoti(args, load_model(args))
        else:
            from ..backends.tensorrt_build import SUFFIXES, import_tensorrt

            import_tensorrt()
            options = _build_options(args)
            if args.out:
                _out_path(args, {}, SUFFIXES)  # refuse a bad output before any export or build
            args.device = "cpu" if args.device == "auto" else args.device
            if args.onnx:
                if not Path(args.onnx).is_file():
                    raise LsegError(f"ONNX file not found: {args.onnx}")
                if args.variant and not args.checkpoint:
                    raise LsegError("--variant picks the random default's architecture; with --onnx the graph "
                                    "fixes it (add --checkpoint to check the ONNX was exported from it)")
                model = _checkpoint_only(args.checkpoint) if args.checkpoint else None
            else:
                model = load_model(argparse.Namespace(**{**vars(args), "device": "cpu"}))  # export runs on the CPU
            out = _build_tensorrt(args, options, model)
    except OSError as exc:  # read-only folder, disk full, ...: the user's to fix, in one line
        where = f" {exc.filename}" if exc.filename else ""
        raise LsegError(f"cannot build{where}: {exc.strerror or exc}") from None
    say(f"engine: {out}\nsidecar: {out}.json")
    return 0
