"""`lsegrt export`: the image encoder → ONNX (dynamic batch/H/W), verified against PyTorch.

Graph: `image` (B,3,H,W) float32 → `features` (B,512,H/2,W/2) float32 unit vectors. `--precision fp16`
stores fp16 weights and computes in fp16 inside the graph, with LayerNorm and the final L2 norm in
fp32; I/O stays float32. After export: onnx.checker, then ONNX Runtime vs PyTorch at sizes other
than the trace size; the errors are printed and stored in the JSON sidecar next to the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_model_args, load_model, say, size_type


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="image encoder → ONNX (dynamic shapes, verified)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--out", metavar="FILE.onnx", help="output (default: <checkpoint>_<precision>.onnx here)")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, ≥ 14 (default 17)")
    p.add_argument("--trace-size", type=size_type, default=(480, 480), metavar="HxW",
                   help="example input size for tracing (default 480x480); verification uses other sizes")
    p.add_argument("--external-data", action="store_true",
                   help="store weights in FILE.onnx.data (automatic near protobuf's 2 GB limit)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime parity check")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import LsegError
    from ..export import export_onnx

    if isinstance(args.trace_size, int):
        raise LsegError("--trace-size takes an exact HxW, e.g. 480x480")
    args.device = "cpu"  # export traces on the CPU: deterministic and needs no GPU
    if args.out:  # refuse a bad output before the model is loaded
        from ..sidecar import check_engine_output

        check_engine_output(args.out, (".onnx",), inputs=(args.checkpoint,))
    model = load_model(args)
    out = Path(args.out or f"{model.name}_{args.precision}.onnx")
    say(f"exporting {model.variant} ({model.source}) in {args.precision}, opset {args.opset} → {out}")
    try:
        info = export_onnx(model, out, precision=args.precision, opset=args.opset, trace_size=args.trace_size,
                           external_data=args.external_data or None, verify=not args.no_verify)
    except OSError as exc:  # disk full, permissions changed mid-export: the user's to fix, in one line
        where = f" {exc.filename}" if exc.filename else ""
        raise LsegError(f"cannot export{where}: {exc.strerror or exc}") from None
    say(f"  exported in {info['export_seconds']:.1f} s, {info['weights_bytes'] / 1e6:,.1f} MB of weights"
        f"{' (external data)' if info['external_data'] else ''}, sha256 {info['onnx_sha256'][:16]}…")
    ver = info.get("verification")
    if ver:
        say(f"  onnx.checker: {ver['checker']}; ONNX Runtime: {ver['onnxruntime']}")
        for c in ver.get("checks", []):
            b, _, h, w = c["shape"]
            say(f"  {b}x3x{h}x{w}: max |error| {c['max_abs_error']:.2e}, cosine mean {c['cosine_mean']:.7f}, "
                f"min {c['cosine_min']:.7f}")
    say(f"  sidecar: {out}.json")
    return 0
