"""`lsegrt encode`: images → per-pixel LSeg embeddings on disk.

Each image is saved as ``(1, 512, H/2, W/2) float32`` unit vectors (the encoder's output for one
image): ``--out X.npy`` (one image), ``--out X.safetensors`` (one key per frame id, metadata: size,
variant, checkpoint, input sizes) or ``--out DIR`` (``DIR/<frame id>.npy`` per image). Frame ids are
paths relative to the deepest folder holding every input, without suffix: ``a/x.jpg`` and
``b/x.jpg`` give ``a/x`` and ``b/x``. Frames stream through the same stages as ``lsegrt extract`` (its
compact, resumable dataset format is the one to use for many frames); none is held in memory beyond
its batch.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .common import (
    add_backend_args, add_image_args, add_model_args, add_size_arg, check_out_dir, load_model, open_encoder, say,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "encode", help="images → (1,512,H/2,W/2) embeddings (.npy, .safetensors or a folder)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_image_args(p)
    p.add_argument("--out", required=True, metavar="FILE.npy|FILE.safetensors|DIR",
                   help="where to write: .npy (one image), .safetensors (keys = frame ids) or a folder")
    add_size_arg(p)
    p.add_argument("--batch-size", type=int, default=1, help="images per encoder call (default 1)")
    p.add_argument("--workers", type=int, default=0, help="decode processes (default 0: in this process)")
    add_model_args(p)
    add_backend_args(p)
    p.set_defaults(func=run)


def _out_kind(out: str) -> str:
    """Validate --out before any work: its suffix and its folder."""
    from ..errors import LsegError
    from ..fileio import check_output_path

    path = Path(out)
    if path.suffix == ".npy":
        check_output_path(path)
        return "npy"
    if path.suffix == ".safetensors":
        check_output_path(path)
        return "safetensors"
    if path.suffix and not path.is_dir():
        raise LsegError(f"--out {out}: expected FILE.npy, FILE.safetensors or a folder")
    check_out_dir(path)
    return "dir"


def _save_npy(path: Path, array) -> None:
    import numpy as np

    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _fmt_size(size) -> str:
    return f"{size[0]}x{size[1]}" if isinstance(size, tuple) else str(size)


def _check_not_inputs(targets: list[Path], units) -> None:
    from ..errors import LsegError

    inputs = {os.path.abspath(u.path) for u in units if u.kind != "sample"}
    for t in targets:
        if os.path.abspath(t) in inputs:
            raise LsegError(f"output {t} would replace an input; choose another --out")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import LsegError
    from ..pipeline.sources import resolve_inputs
    from ..pipeline.stream import feature_stream

    kind = _out_kind(args.out)
    out = Path(args.out)
    if args.batch_size < 1 or args.workers < 0:
        raise LsegError("--batch-size must be >= 1 and --workers >= 0")
    units = resolve_inputs(list(args.images or []) or ["sample:chelsea"], exclude=out if kind == "dir" else None)
    if kind == "npy" and (len(units) != 1 or units[0].kind == "video"):
        raise LsegError(f"{len(units)} images but --out {args.out} holds one array; "
                        "use --out FILE.safetensors or --out DIR")
    ids = [u.frame_id for u in units]
    if kind == "dir":
        _check_not_inputs([out / f"{i}.npy" for i in ids], units)
    else:
        _check_not_inputs([out], units)
    model = load_model(args)
    encoder = open_encoder(args, model)
    described = encoder.describe()
    what = f"{described['backend']} {described['precision']} {model.device}"
    sink = None
    written = 0
    inputs: dict[str, list[int]] = {}
    try:
        if kind == "safetensors":
            from ..pipeline.tensorfile import StreamingTensorFile

            sink = StreamingTensorFile(out)
        for rec, feats, seconds in feature_stream(units, encoder, model.device, model.mean, model.std, args.size,
                                                  batch_size=args.batch_size, workers=args.workers):
            if feats is None:
                raise LsegError(rec["skipped"])
            array = feats.numpy()
            fid = rec["frame_id"]
            inputs[fid] = list(rec["hw"])
            name = rec["source"] if rec["index"] is None else f"{rec['source']}#{rec['index']}"
            say(f"{name}: {rec['hw0'][0]}x{rec['hw0'][1]} → input {rec['hw'][0]}x{rec['hw'][1]} → features "
                f"{'x'.join(map(str, array.shape))} float32 in {1000 * seconds:.1f} ms ({model.variant}, {what})")
            if kind == "dir":
                target = out / f"{fid}.npy"
                target.parent.mkdir(parents=True, exist_ok=True)
                _save_npy(target, array)
            elif kind == "npy":
                _save_npy(out, array)
            else:
                sink.add(fid, np.ascontiguousarray(array))
            written += 1
        if sink is not None:
            from ..fileio import atomic_path

            metadata = {
                "size": _fmt_size(args.size),
                "variant": model.variant,
                "checkpoint": model.source,
                "inputs": json.dumps(inputs),
                "layout": "(1,512,H/2,W/2) float32 unit vectors per image",
            }
            with atomic_path(out) as tmp:
                sink.finish(tmp, metadata)
            sink = None
    finally:
        if sink is not None:
            sink.discard()
        encoder.close()
    say(f"wrote {out}" + (f" ({written} files)" if kind == "dir" else ""))
    return 0
