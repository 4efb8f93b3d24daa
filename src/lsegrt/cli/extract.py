"""`lsegrt extract`: many frames → one dataset folder of features, label maps and/or scores.

Inputs are image or video files, folders (--recursive, --glob), @LIST files of paths (or --list) and
sample:NAME. Outputs go to one folder (--out): dataset.json (the run's options, checkpoint sha256,
preprocessing, layout), manifest-*.jsonl (one line per frame), data/*.safetensors (features/scores,
one file per batch) and labels/<frame id>.png; read it back with lsegrt.open_features(DIR).

The fast GPU path: --backend compile --precision fp16 --cuda-graph (one compile per input size and
batch size; compiled kernels are cached in lsegrt's cache folder, so the second run starts quickly).

A killed run continues with --resume (finished frames are never recomputed). Exit codes: 0 done,
2 error (bad input, disk full: --resume continues), 3 done but some frames were unreadable (listed
in the manifest with the reason).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_backend_args, add_model_args, add_size_arg, backend_options, say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "extract", help="many frames → a dataset folder (features fp16, PCA, label maps, scores), resumable",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image/video files, folders, @LIST (a text file of paths) or sample:NAME")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder (new, empty, or this run's)")
    src = p.add_argument_group("sources")
    src.add_argument("--list", action="append", default=[], metavar="FILE",
                     help="a text file of paths, one per line (relative to the file's folder); repeatable")
    src.add_argument("--recursive", action="store_true", help="include sub-folders of folder inputs")
    src.add_argument("--glob", metavar="PATTERN",
                     help="only files of folder inputs matching PATTERN (relative path), e.g. '*.jpg', 'cam0/*.png'")
    src.add_argument("--video-stride", type=int, default=1, metavar="K", help="every K-th video frame (default 1)")
    src.add_argument("--video-fps", type=float, metavar="F", help="video frames at F per second (instead of a stride)")
    outg = p.add_argument_group("outputs")
    outg.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16",
                      help="stored float type of features/scores (default fp16)")
    outg.add_argument("--stride", type=int, default=1, metavar="K",
                      help="average-pool features K×K (re-normalized to unit length; default 1: H/2 x W/2)")
    outg.add_argument("--pca", type=int, metavar="K", help="store K PCA coordinates per pixel instead of 512")
    outg.add_argument("--pca-sample", type=int, default=64, metavar="N",
                      help="frames (spread over the run) the PCA basis is fitted on (default 64)")
    outg.add_argument("--pca-basis", metavar="FILE", help="use this basis (pca.safetensors of another dataset)")
    outg.add_argument("--labels", metavar="'A, B, C'", help="also store label maps (PNG at the original size)")
    outg.add_argument("--scores", action="store_true", help="also store per-label logits (needs --labels)")
    outg.add_argument("--no-features", action="store_true", help="store no features (with --labels)")
    outg.add_argument("--multiscale", action="store_true",
                      help="label maps from the official multi-scale + flip evaluator (slow; ignores --size)")
    add_size_arg(p)
    run = p.add_argument_group("run")
    run.add_argument("--batch-size", type=int, default=8, help="frames per encoder call (default 8)")
    run.add_argument("--workers", type=int, help="decode processes (default min(8, CPUs))")
    run.add_argument("--writers", type=int, default=4, help="writer threads (default 4)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run (same options)")
    run.add_argument("--overwrite", action="store_true", help="replace the dataset already in --out")
    run.add_argument("--shard", metavar="I/N",
                     help="do shard I of N (default: torchrun's RANK/WORLD_SIZE, else all)")
    run.add_argument("--json", metavar="FILE", help="also write the run summary to FILE")
    ray = p.add_argument_group("Ray (pip install 'lsegrt[ray]')")
    ray.add_argument("--ray", action="store_true",
                     help="run on a Ray cluster: decode tasks + a pool of encoder actors, same dataset folder")
    ray.add_argument("--ray-address", metavar="ADDR", help="cluster to join (default: RAY_ADDRESS, else a local one)")
    ray.add_argument("--ray-actors", type=int, metavar="N",
                     help="encoder actors (default: the cluster's GPUs ÷ --ray-gpus, 1 without GPUs)")
    ray.add_argument("--ray-gpus", type=float, metavar="G",
                     help="GPUs per actor (default 1 when the cluster has GPUs, else 0: CPU actors)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar/lines")
    add_model_args(p)
    add_backend_args(p)
    p.set_defaults(func=run_extract)


def run_extract(args: argparse.Namespace) -> int:
    from ..errors import LsegError
    from ..pipeline.run import describe_summary, extract

    inputs = list(args.inputs) + [f"@{f}" for f in args.list]
    if not inputs:
        raise LsegError("no inputs: give image/video files, folders, @LIST or sample:NAME")
    if args.json:
        from ..fileio import check_output_path

        check_output_path(args.json)
    device = None if args.device in (None, "", "auto") else args.device
    common = dict(checkpoint=args.checkpoint, variant=args.variant, resume=args.resume, overwrite=args.overwrite,
                  glob=args.glob, recursive=args.recursive, progress=not args.no_progress, say=say,
                  size=args.size, batch_size=args.batch_size, writers=args.writers,
                  backend=args.backend, precision=args.precision, engine=args.engine,
                  backend_options=backend_options(args), dtype=args.dtype, stride=args.stride, pca=args.pca,
                  pca_sample=args.pca_sample, pca_basis=args.pca_basis, labels=args.labels, scores=args.scores,
                  features=False if args.no_features else None, multiscale=args.multiscale,
                  video_stride=args.video_stride, video_fps=args.video_fps)
    if args.ray:
        from ..pipeline.ray_extract import extract_ray

        if args.shard or device or args.workers is not None:
            raise LsegError("--ray places work itself: drop --shard, --device and --workers "
                            "(use --ray-actors / --ray-gpus)")
        summary = extract_ray(inputs, args.out, concurrency=args.ray_actors, num_gpus=args.ray_gpus,
                              address=args.ray_address, **common)
    else:
        summary = extract(inputs, args.out, device=device, shard=args.shard, workers=args.workers, **common)
    for line in describe_summary(summary):
        say(line)
    if args.json:
        from ..fileio import write_text

        write_text(args.json, json.dumps(summary.to_dict(), indent=2) + "\n")
    say(f"wrote {Path(args.out)}" + (f"; {summary.skipped} unreadable frames listed in the manifest (exit 3)"
                                    if summary.skipped else ""))
    return summary.exit_code
