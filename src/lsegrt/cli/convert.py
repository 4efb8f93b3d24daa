"""`lsegrt convert CKPT OUT.safetensors`: official checkpoint → inference-only safetensors.

Validates strictly, keeps the used tensors with their stored dtypes (fp16 CLIP stays fp16), drops the
optimizer state, Lightning extras and unused families. The output loads to bit-identical outputs.
"""

from __future__ import annotations

import argparse

from .common import say


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="official .ckpt → inference-only .safetensors (strictly validated)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="official Lightning .ckpt (or a .pt / .safetensors state_dict)")
    p.add_argument("out", metavar="OUT.safetensors", help="output file (must end in .safetensors)")
    p.set_defaults(func=run)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def run(args: argparse.Namespace) -> int:
    from ..convert import convert_checkpoint
    from ..fileio import refuse_overwriting_inputs

    refuse_overwriting_inputs([args.out], [args.checkpoint])
    info = convert_checkpoint(args.checkpoint, args.out)
    dtypes = ", ".join(f"{n} {d}" for d, n in sorted(info["dtypes"].items()))
    families = ", ".join(f"{k} {n}" for k, n in info["dropped_families"].items()) or "none"
    say(f"{args.checkpoint} ({info['variant']}) → {args.out}")
    say(f"  kept    {info['kept']} keys, {info['kept_elements']:,} elements ({dtypes})")
    say(f"  dropped {info['dropped']} unused keys ({families}), optimizer state and Lightning extras")
    say(f"  size    {_mb(info['src_bytes'])} → {_mb(info['dst_bytes'])} in {info['seconds']:.2f} s")
    return 0
