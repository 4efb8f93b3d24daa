"""`lsegrt segment`: zero-shot segmentation with free-text labels.

Writes ``<name>_overlay.png`` (image, label colours, legend with coverage) and ``<name>_labels.png``
(indexed PNG: pixel value = label id, names in the PNG text chunk) per image, and prints each label's
pixel coverage. Labels are raw strings split on commas (no prompt template, docs/ARCHITECTURE.md §5).
Several images that share a name (``a/x.jpg b/x.jpg``) get ``x_*`` and ``x-2_*``; no output replaces an
input. ``--multiscale`` reports its windows as it goes (it takes minutes per image on a CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    Timer, add_backend_args, add_image_args, add_model_args, add_size_arg, check_out_dir, image_stems,
    input_files, load_images, load_model, open_encoder, say,
)

DEFAULT_LABELS = "person, animal, vehicle, building, tree, grass, sky, road, water, other"
MAX_LABELS = 256


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "segment", help="segment images with free-text labels → overlay and label-map PNGs",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_image_args(p)
    p.add_argument("--labels", metavar="'A, B, C'",
                   help=f"comma-separated labels (default: a short generic list: {DEFAULT_LABELS})")
    add_size_arg(p)
    p.add_argument("--multiscale", action="store_true",
                   help="the official evaluator: 6 scales × 480² windows × flips, summed (slow; ignores --size)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: current folder)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the label colours (default 0.5)")
    add_model_args(p)
    add_backend_args(p)
    p.set_defaults(func=run)


def parse_labels(text: str | None) -> list[str]:
    """The label list, checked before any model is loaded: non-empty, at most 256 labels (the indexed
    label-map PNG holds one byte per pixel), each at most 77 CLIP tokens."""
    from ..api import split_labels
    from ..errors import LsegError
    from ..model.text import tokenize

    if text is None:
        say(f"no --labels given: using a short generic list: {DEFAULT_LABELS}")
        text = DEFAULT_LABELS
    labels = split_labels(text)
    if len(labels) > MAX_LABELS:
        raise LsegError(f"{len(labels)} labels: the label-map PNG holds at most {MAX_LABELS} (one byte per pixel)")
    tokenize(labels)
    return labels


def coverage(label_map, n: int) -> list[float]:
    """Fraction of pixels per label id 0..n-1."""
    import numpy as np

    counts = np.bincount(label_map.ravel(), minlength=n)[:n]
    return (counts / max(label_map.size, 1)).tolist()


def run(args: argparse.Namespace) -> int:
    import math

    from ..errors import LsegError
    from ..fileio import refuse_overwriting_inputs
    from ..viz import label_map_png, save_overlay

    labels = parse_labels(args.labels)
    if not (math.isfinite(args.alpha) and 0.0 <= args.alpha <= 1.0):
        raise LsegError(f"--alpha {args.alpha}: must be an opacity between 0 and 1, e.g. 0.5")
    out = check_out_dir(args.out)
    images = load_images(args)
    stems = image_stems([name for name, _ in images])
    paths = [(out / f"{stem}_overlay.png", out / f"{stem}_labels.png") for stem in stems]
    refuse_overwriting_inputs([p for pair in paths for p in pair], input_files(args, images))
    model = load_model(args)
    if model.config.backbone == "resnet":
        say(f"note: {model.variant} checkpoints are zero-shot models trained with ['others', class] pairs; "
            "for their intended use pass --labels 'others, <class>'")
    size = "x".join(map(str, args.size)) if isinstance(args.size, tuple) else args.size
    mode = "multiscale" if args.multiscale else f"size {size}"
    written = []
    with open_encoder(args, model) as encoder:
        for (name, image), (overlay_path, labels_path) in zip(images, paths):
            with Timer(model.device) as t:
                label_map = model.segment(image, labels, args.size, encoder=encoder, multiscale=args.multiscale)
            cov = coverage(label_map, len(labels))
            out.mkdir(exist_ok=True)
            save_overlay(image, label_map, labels, overlay_path, alpha=args.alpha,
                         coverage={i: c for i, c in enumerate(cov)})
            label_map_png(label_map, labels_path, labels)
            written += [overlay_path, labels_path]
            ranked = sorted(range(len(labels)), key=lambda i: (-cov[i], i))
            parts = ", ".join(f"{labels[i]} {100 * cov[i]:.1f}%" for i in ranked)
            say(f"{name}: {image.shape[0]}x{image.shape[1]}, {mode}, {t.ms / 1000:.2f} s: {parts}")
            say(f"  wrote {overlay_path} and {Path(labels_path).name}")
    say(f"wrote {len(set(written))} files in {out}")
    return 0
