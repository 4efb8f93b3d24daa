"""`lsegrt wordfree`: which words does an image contain? No label list: CLIP's whole vocabulary.

Every pixel gets its nearest word among ~32k whole words of CLIP's BPE vocabulary; words covering at
least --min-coverage of the pixels (at most --top) are kept, every pixel is relabelled with its nearest
kept word, and ``<name>_wordfree.png`` (overlay with a legend) is written per image (images sharing a
name get ``x-2``, ...; no output replaces an input). The vocabulary's text embeddings are computed once
per checkpoint, with progress (minutes on a CPU), and cached (under LSEGRT_CACHE).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    Timer, add_backend_args, add_image_args, add_model_args, add_size_arg, check_out_dir, image_stems,
    input_files, load_images, load_model, open_encoder, say,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "wordfree", help="find the words an image contains, without a label list → table and overlay PNG",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_image_args(p)
    add_size_arg(p, default=384)
    p.add_argument("--min-coverage", type=float, default=0.01, metavar="FRACTION",
                   help="keep words labelling at least this fraction of pixels (default: 0.01)")
    p.add_argument("--top", type=int, default=15, metavar="N", help="keep at most N words (default: 15)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="DIR", help="folder for <name>_wordfree.png (default: current folder)")
    where.add_argument("--output", metavar="PNG", help="overlay file name (a single image only)")
    p.add_argument("--json", metavar="PATH", help="also write the words and coverages as JSON")
    add_model_args(p)
    add_backend_args(p)
    p.set_defaults(func=run)


def _overlay_paths(args: argparse.Namespace, names: list[str]) -> list[Path]:
    from ..errors import LsegError
    from ..fileio import check_output_path

    if args.output:
        if len(names) != 1:
            raise LsegError(f"--output names one file but {len(names)} images were given; use --out DIR")
        return [check_output_path(args.output, suffixes=(".png",), what="--output")]
    out = check_out_dir(args.out or ".")
    return [out / f"{stem}_wordfree.png" for stem in image_stems(names)]


def _table(name: str, result, min_coverage: float):
    from rich.table import Table

    h, w = result.embedding_hw
    table = Table(title=f"{name}: {len(result.words)} words ≥ {100 * min_coverage:g}% of pixels "
                        f"(vocabulary {result.vocabulary_size:,}, argmax at {h}×{w})")
    table.add_column("#", justify="right")
    table.add_column("word")
    table.add_column("pixels %", justify="right")
    table.add_column("argmax %", justify="right")
    table.add_column("cosine", justify="right")
    for k, (word, cov, raw, cos) in enumerate(
        zip(result.words, result.coverage, result.argmax_coverage, result.mean_cosine), start=1
    ):
        table.add_row(str(k), word, f"{100 * cov:.1f}", f"{100 * raw:.1f}", f"{cos:.3f}")
    return table


def run(args: argparse.Namespace) -> int:
    import math

    from rich.console import Console

    from ..errors import LsegError
    from ..fileio import check_output_path, refuse_overwriting_inputs
    from ..report import write_json
    from ..viz import save_overlay
    from ..vocab import vocab_embeddings, whole_words
    from ..wordfree import wordfree

    if not (math.isfinite(args.min_coverage) and 0.0 <= args.min_coverage <= 1.0):
        raise LsegError(f"--min-coverage {args.min_coverage}: must be a fraction between 0 and 1, e.g. 0.01")
    if args.top < 1:
        raise LsegError(f"--top {args.top}: must be at least 1")
    # Images and every output place are checked before the model loads, so a typo costs nothing.
    if args.json:
        check_output_path(args.json, suffixes=(".json",), what="--json")
    images = load_images(args)
    paths = _overlay_paths(args, [name for name, _ in images])
    outputs = paths + ([Path(args.json)] if args.json else [])
    if len({p.resolve() for p in outputs}) != len(outputs):
        raise LsegError(f"--json {args.json} is also the overlay file; choose another name")
    refuse_overwriting_inputs(outputs, input_files(args, images))

    model = load_model(args)
    words = whole_words()
    with Timer(model.device) as t:
        vocab_embeddings(model, words)  # fills the cache once for all images, with progress on stderr
    say(f"vocabulary: {len(words):,} words embedded in {t.ms / 1000:.2f} s (cached per checkpoint)")

    console = Console(soft_wrap=True)
    report = []
    with open_encoder(args, model) as encoder:
        for (name, image), path in zip(images, paths):
            with Timer(model.device) as t:
                result = wordfree(model, image, args.size, words=words, min_coverage=args.min_coverage,
                                  encoder=encoder, top=args.top, progress=False)
            path.parent.mkdir(exist_ok=True)
            save_overlay(image, result.labels, result.words, path, coverage=result.coverage_by_word())
            console.print(_table(name, result, args.min_coverage))
            say(f"{name}: {image.shape[0]}x{image.shape[1]}, {t.ms / 1000:.2f} s; wrote {path}")
            report.append({"image": name, "overlay": str(path), **result.to_dict()})
        backend = encoder.describe()

    if args.json:
        payload = {
            "model": {"source": model.source, "variant": model.variant, "sha256": model.sha256},
            "encoder": backend,
            "size": list(args.size) if isinstance(args.size, tuple) else args.size,
            "min_coverage": args.min_coverage,
            "top": args.top,
            "images": report,
        }
        write_json(args.json, payload)
        say(f"wrote {args.json}")
    return 0
