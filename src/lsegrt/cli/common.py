"""Argument groups and helpers shared by the CLI verbs (Polygraphy style: each verb declares the groups
it uses). These names are stable; other verbs import them.

Argument groups (each adds to ``parser`` and returns nothing):
    add_image_args(parser)            positional IMAGE... → ``args.images`` (files, folders, sample:NAME;
                                      none = the bundled sample chelsea)
    add_model_args(parser)            --checkpoint CKPT, --variant V, --device D → ``args.checkpoint``,
                                      ``args.variant`` (None unless given), ``args.device`` ("auto")
    add_backend_args(parser)          --backend B, --engine FILE, --precision P, --cuda-graph, --option K=V →
                                      ``args.backend``, ``args.engine``, ``args.precision``, ``args.cuda_graph``,
                                      ``args.option``
    add_option_arg(group)             --option KEY=VALUE (repeatable) → ``args.option``
    add_device_arg(group)             --device D → ``args.device`` ("auto")
    add_cuda_graph_arg(group)         --cuda-graph → ``args.cuda_graph``
    add_size_arg(parser, default)     --size S|HxW → ``args.size``: int long side or (H, W), via
                                      :func:`lsegrt.sizes.parse_size` (a bad size is an argparse error)

Helpers:
    size_type(text)                   argparse ``type=`` wrapper of ``parse_size``
    exact_size_type(text)             argparse ``type=`` for an exact input size: "384" → (384, 384),
                                      "480x640" → (480, 640), multiples of 32 (``bench.square_sizes``)
    resolve_device(text) -> str       "auto" → "cuda" if a GPU is visible else "cpu"; anything but the CPU
                                      or a present CUDA GPU is a one-line error
    load_model(args) -> LSegModel     --checkpoint (a file or random:VARIANT[:seedK]; variant checked
                                      against --variant) or the random default of --variant, announced
    backend_options(args) -> dict     --cuda-graph/--option as Encoder.open keyword arguments
    open_encoder(args, model)         ``lsegrt.Encoder.open(...)`` for --backend/--precision/...: eager
                                      torch fp32 by default, always an Encoder (close it when done)
    load_images(args)                 ``[(name, (H,W,3) uint8)]`` from ``args.images``
    input_files(args, images)         the input files of a run (images, checkpoint, engine), which no
                                      output may replace (:func:`lsegrt.fileio.refuse_overwriting_inputs`)
    image_stems(names) -> list[str]   file-name stems for outputs, unique even across folders and case
                                      ("x", "x-2", ...)
    check_out_dir(path) -> Path       an existing writable folder, or one whose parent exists (created later)
    synchronize(device)               wait for the device (for timing)
    say(*parts)                       informational line on stdout (errors go to stderr via main)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

DEVICE_HELP = "cpu, cuda, cuda:N or auto (default: auto = cuda if available)"  # = lsegrt.devices.DEVICE_HELP


def say(*parts: Any) -> None:
    """One informational line on stdout (stderr is kept for the one-line error)."""
    print(*parts, flush=True)


# -- argument groups ---------------------------------------------------------------------------------
def add_image_args(parser: argparse.ArgumentParser) -> None:
    """Positional IMAGE... → ``args.images``."""
    parser.add_argument(
        "images", nargs="*", metavar="IMAGE",
        help="image files, folders (their images) or sample:NAME (chelsea, astronaut, coffee); "
             "default: sample:chelsea",
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Group "model": --checkpoint, --variant, --device."""
    from ..model.config import VARIANTS

    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="CKPT",
                       help="official .ckpt, plain .pt state_dict, converted .safetensors, or random:VARIANT[:seedK] "
                            "(default: random weights of --variant, for trying things out)")
    group.add_argument("--variant", choices=list(VARIANTS), default=None,
                       help="architecture of the random default when no --checkpoint is given "
                            "(default: vit_l16); with --checkpoint it must match the file")
    add_device_arg(group)


def add_device_arg(group) -> None:
    """--device D → ``args.device`` ("auto" unless given)."""
    group.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_cuda_graph_arg(group) -> None:
    """--cuda-graph → ``args.cuda_graph``."""
    group.add_argument("--cuda-graph", action="store_true",
                       help="replay the encoder as a CUDA graph (backends that support it)")


def add_backend_args(parser: argparse.ArgumentParser, default_backend: str = "torch") -> None:
    """Group "backend": --backend, --engine, --precision, --cuda-graph."""
    from ..backends.base import PRECISIONS, REGISTRY

    group = parser.add_argument_group("backend")
    group.add_argument("--backend", choices=list(REGISTRY), default=default_backend,
                       help=f"encoder backend (default: {default_backend})")
    group.add_argument("--engine", metavar="FILE",
                       help="a built engine/export with its JSON sidecar (default: build into the cache)")
    group.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                       help="compute precision; I/O stays float32 (default: fp32)")
    add_cuda_graph_arg(group)
    add_option_arg(group)


def add_option_arg(group) -> None:
    group.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="backend option passed to Encoder.open, e.g. dynamic=true (compile: one "
                            "compile for all shapes), mode=max-autotune, tf32=false (torch/compile: strict "
                            "IEEE fp32; unset follows PyTorch, whose cuDNN convolutions use TF32) (repeatable)")


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--cuda-graph`` and ``--option KEY=VALUE`` as keyword arguments for :meth:`Encoder.open`."""
    from ..backends.base import option_value
    from ..errors import LsegError

    options: dict[str, Any] = {"cuda_graph": True} if getattr(args, "cuda_graph", False) else {}
    for item in getattr(args, "option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LsegError(f"--option {item!r}: expected KEY=VALUE, e.g. dynamic=true")
        options[key.strip().replace("-", "_")] = option_value(value.strip())
    return options


def size_type(text: str):
    """``--size`` parser: '480' → 480 (long side), '480x640' → (480, 640); a bad size is a usage error."""
    from ..errors import LsegError
    from ..sizes import parse_size

    try:
        return parse_size(text)
    except LsegError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def exact_size_type(text: str) -> tuple[int, int]:
    """Exact input size: "384" is 384x384, "480x640" is HxW; multiples of 32 (a bad size is a usage error)."""
    from ..bench import square_sizes
    from ..errors import LsegError

    try:
        return square_sizes([text])[0]
    except LsegError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_size_arg(parser: argparse.ArgumentParser, default: Any = 480, required: bool = False) -> None:
    """--size S|HxW → ``args.size`` (int long side or (H, W)); ``default`` unless ``required``."""
    parser.add_argument(
        "--size", type=size_type, default=None if required else default, required=required, metavar="S|HxW",
        help="model input: long side S (aspect kept, sides rounded to multiples of 32) or exact HxW "
             f"(multiples of 32){'' if required else f'; default: {default}'}",
    )


# -- helpers -----------------------------------------------------------------------------------------
def resolve_device(text: str | None) -> str:
    """'auto'/None → 'cuda' if a GPU is visible else 'cpu'; the CPU or a present CUDA GPU, else a one-line
    error (see :func:`lsegrt.devices.check_device`)."""
    from ..devices import check_device

    return str(check_device(text))


def load_model(args: argparse.Namespace):
    """The model for ``args``: ``--checkpoint`` (a file or ``random:VARIANT[:seedK]``) if given, refusing
    a contradicting ``--variant``, else the random default of ``--variant``, announced in one line."""
    from ..api import DEFAULT_VARIANT, check_model_spec, load_or_random
    from ..errors import LsegError

    device = resolve_device(getattr(args, "device", None))
    variant = getattr(args, "variant", None)
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint:
        check_model_spec(checkpoint)
    model = load_or_random(checkpoint, variant or DEFAULT_VARIANT, device, say=say)
    if checkpoint and variant and model.variant != variant:
        raise LsegError(f"{Path(checkpoint).name} is a {model.variant} checkpoint, not --variant {variant}; "
                        "drop --variant (it is detected from the file)")
    return model


def open_encoder(args: argparse.Namespace, model) -> Any:
    """An open :class:`lsegrt.Encoder` for ``--backend``/``--precision``/``--engine``/options serving
    ``model`` on its device: eager PyTorch fp32 unless asked otherwise. Close it when done."""
    from ..backends.base import Encoder

    return Encoder.open(getattr(args, "backend", "torch"), checkpoint=model, engine=getattr(args, "engine", None),
                        device=model.device, precision=getattr(args, "precision", "fp32"), **backend_options(args))


def load_images(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """``args.images`` → ``[(name, (H,W,3) uint8 RGB)]`` (the sample chelsea when empty)."""
    from ..images import resolve_images

    return resolve_images(list(getattr(args, "images", None) or []))


def input_files(args: argparse.Namespace, images: list[tuple[str, Any]] = ()) -> list[str]:
    """The files a run reads: image files (not ``sample:``), ``--checkpoint`` and ``--engine``."""
    from ..images import SAMPLE_PREFIX

    files = [name for name, _ in images if not name.startswith(SAMPLE_PREFIX)]
    for attr in ("checkpoint", "engine", "onnx"):
        value = getattr(args, attr, None)
        files += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
    return files


def image_stems(names: list[str]) -> list[str]:
    """'sample:chelsea' → 'chelsea', 'a/b/x.jpg' → 'x'; a repeat becomes 'x-2', 'x-3', ... so that no two
    outputs share a name, even when an input is itself called 'x-2', and also on case-insensitive file
    systems ('X.jpg' and 'x.png' get 'X' and 'x-2')."""
    out: list[str] = []
    taken: set[str] = set()
    for name in names:
        stem = name.split(":", 1)[1] if name.startswith("sample:") else Path(name).stem
        stem = stem or "image"
        candidate, k = stem, 1
        while candidate.casefold() in taken:
            k += 1
            candidate = f"{stem}-{k}"
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def check_out_dir(path: str | os.PathLike) -> Path:
    """An output folder: existing and writable, or new with an existing writable parent (created when the
    first file is written). Anything else is a one-line error before any work is done."""
    from ..fileio import check_output_dir

    return check_output_dir(path)


def synchronize(device: Any) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on CPU), so wall-clock timings are honest."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """``with Timer(device) as t: ...`` → ``t.ms`` (device synchronized before and after)."""

    def __init__(self, device: Any = "cpu"):
        self.device = device
        self.ms = 0.0

    def __enter__(self) -> "Timer":
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.ms = 1000 * (time.perf_counter() - self._t0)
