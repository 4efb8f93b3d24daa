"""`lsegrt encode`: images → per-pixel LSeg embeddings on disk.

Each image is saved as ``(1, 512, H/2, W/2) float32`` unit vectors (the encoder's output for one
image): ``--out X.npy`` (one image), ``--out X.safetensors`` (one key per image name, metadata: size,
variant, checkpoint, input sizes) or ``--out DIR`` (``DIR/<name>.npy`` per image).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import (
    Timer, add_backend_args, add_image_args, add_model_args, add_size_arg, check_out_dir, image_stems,
    load_images, load_model, open_encoder, say,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "encode", help="images → (1,512,H/2,W/2) embeddings (.npy, .safetensors or a folder)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_image_args(p)
    p.add_argument("--out", required=True, metavar="FILE.npy|FILE.safetensors|DIR",
                   help="where to write: .npy (one image), .safetensors (keys = image names) or a folder")
    add_size_arg(p)
    add_model_args(p)
    add_backend_args(p)
    p.set_defaults(func=run)


def _out_kind(out: str, n_images: int) -> str:
    from ..errors import LsegError
    from ..fileio import check_output_path

    path = Path(out)
    if path.suffix == ".npy":
        if n_images != 1:
            raise LsegError(f"{n_images} images but --out {out} holds one array; "
                            "use --out FILE.safetensors or --out DIR")
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


def run(args: argparse.Namespace) -> int:
    import numpy as np

    images = load_images(args)
    kind = _out_kind(args.out, len(images))
    model = load_model(args)
    encoder = open_encoder(args, model)
    encode = encoder if encoder is not None else model.encode_image
    what = (encoder.describe()["backend"] if encoder else "torch") + f" {args.precision} {model.device}"
    stems = image_stems([name for name, _ in images])
    out = Path(args.out)
    features: dict[str, np.ndarray] = {}
    inputs: dict[str, list[int]] = {}
    try:
        for (name, image), stem in zip(images, stems):
            x = model.preprocess(image, args.size)
            with Timer(model.device) as t:
                f = encode(x)
            array = f.float().cpu().numpy()
            inputs[stem] = list(x.shape[-2:])
            say(f"{name}: {image.shape[0]}x{image.shape[1]} → input {x.shape[-2]}x{x.shape[-1]} → features "
                f"{'x'.join(map(str, array.shape))} float32 in {t.ms:.1f} ms ({model.variant}, {what})")
            if kind == "dir":
                out.mkdir(exist_ok=True)
                _save_npy(out / f"{stem}.npy", array)
            else:
                features[stem] = array
    finally:
        if encoder is not None:
            encoder.close()
    if kind == "npy":
        _save_npy(out, features[stems[0]])
    elif kind == "safetensors":
        from safetensors.numpy import save_file

        from ..fileio import atomic_path

        metadata = {
            "size": _fmt_size(args.size),
            "variant": model.variant,
            "checkpoint": model.source,
            "inputs": json.dumps(inputs),
            "layout": "(1,512,H/2,W/2) float32 unit vectors per image",
        }
        with atomic_path(out) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in features.items()}, str(tmp), metadata=metadata)
    say(f"wrote {out}" + (f" ({len(images)} files)" if kind == "dir" else ""))
    return 0
