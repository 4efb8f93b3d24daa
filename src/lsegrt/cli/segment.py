"""`lsegrt segment`: zero-shot segmentation with free-text labels.

Writes ``<name>_overlay.png`` (image, label colours, legend with coverage) and ``<name>_labels.png``
(indexed PNG: pixel value = label id, names in the PNG text chunk) per image, and prints each label's
pixel coverage. Labels are raw strings split on commas (no prompt template, LSEG_SPEC.md §5).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    Timer, add_backend_args, add_image_args, add_model_args, add_size_arg, check_out_dir, image_stems,
    load_images, load_model, open_encoder, say,
)

DEFAULT_LABELS = "person, animal, vehicle, building, tree, grass, sky, road, water, other"


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
    """The label list, checked before any model is loaded: non-empty, each at most 77 CLIP tokens."""
    from ..api import split_labels
    from ..model.text import tokenize

    if text is None:
        say(f"no --labels given: using a short generic list: {DEFAULT_LABELS}")
        text = DEFAULT_LABELS
    labels = split_labels(text)
    tokenize(labels)
    return labels


def coverage(label_map, n: int) -> list[float]:
    """Fraction of pixels per label id 0..n-1."""
    import numpy as np

    counts = np.bincount(label_map.ravel(), minlength=n)[:n]
    return (counts / max(label_map.size, 1)).tolist()


def run(args: argparse.Namespace) -> int:
    from ..viz import label_map_png, save_overlay

    labels = parse_labels(args.labels)
    out = check_out_dir(args.out)
    images = load_images(args)
    model = load_model(args)
    if model.config.backbone == "resnet":
        say(f"note: {model.variant} checkpoints are zero-shot models trained with ['others', class] pairs; "
            "for their intended use pass --labels 'others, <class>'")
    encoder = open_encoder(args, model)
    stems = image_stems([name for name, _ in images])
    try:
        for (name, image), stem in zip(images, stems):
            with Timer(model.device) as t:
                label_map = model.segment(image, labels, args.size, encoder=encoder, multiscale=args.multiscale)
            cov = coverage(label_map, len(labels))
            out.mkdir(exist_ok=True)
            overlay_path, labels_path = out / f"{stem}_overlay.png", out / f"{stem}_labels.png"
            save_overlay(image, label_map, labels, overlay_path, alpha=args.alpha,
                         coverage={i: c for i, c in enumerate(cov)})
            label_map_png(label_map, labels_path, labels)
            ranked = sorted(range(len(labels)), key=lambda i: (-cov[i], i))
            parts = ", ".join(f"{labels[i]} {100 * cov[i]:.1f}%" for i in ranked)
            size = "x".join(map(str, args.size)) if isinstance(args.size, tuple) else args.size
            mode = "multiscale" if args.multiscale else f"size {size}"
            say(f"{name}: {image.shape[0]}x{image.shape[1]}, {mode}, {t.ms / 1000:.2f} s: {parts}")
            say(f"  wrote {overlay_path} and {Path(labels_path).name}")
    finally:
        if encoder is not None:
            encoder.close()
    return 0
