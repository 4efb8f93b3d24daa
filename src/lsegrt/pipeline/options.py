"""The options of an extraction run: validated once, before any work, and turned into the run's
identity (what ``--resume`` must match) and the output layout recorded in ``dataset.json``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import LsegError
from .sources import Shard

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
RESIZE_RULE = ("torch.nn.functional.interpolate bilinear, align_corners=False, antialias=True, float32, "
               "then (x/255 - mean)/std")


@dataclass
class ExtractOptions:
    """Everything that shapes a run. See :func:`lsegrt.extract` for the meaning of each field."""

    size: Any = 480
    batch_size: int = 8
    workers: int | None = None
    writers: int = 4
    dtype: str = "fp16"
    stride: int = 1
    pca: int | None = None
    pca_sample: int = 64
    pca_basis: str | None = None
    labels: list[str] | None = None
    scores: bool = False
    features: bool | None = None
    multiscale: bool = False
    video_stride: int = 1
    video_fps: float | None = None
    backend: str = "torch"
    precision: str = "fp32"
    engine: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    pinned_budget: int = 3 << 30

    def validate(self) -> "ExtractOptions":
        from ..backends.base import check_precision

        if self.dtype not in DTYPES:
            raise LsegError(f"dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        check_precision(self.precision)
        for name in ("batch_size", "stride", "pca_sample", "writers", "video_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LsegError(f"{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise LsegError(f"workers must be a whole number >= 0, got {self.workers!r}")
        if self.video_fps is not None:
            if not (isinstance(self.video_fps, (int, float)) and math.isfinite(self.video_fps) and self.video_fps > 0):
                raise LsegError(f"video fps must be a positive number, got {self.video_fps!r}")
            if self.video_stride != 1:
                raise LsegError("give a video frame stride or a target fps, not both")
        if isinstance(self.labels, str):
            from ..api import split_labels

            self.labels = split_labels(self.labels)
        if self.labels is not None:
            from ..model.text import tokenize
            from .reduce import MAX_LABELS

            if not self.labels:
                raise LsegError("empty label list: pass labels like 'dog, grass, other'")
            if len(self.labels) > MAX_LABELS:
                raise LsegError(f"{len(self.labels)} labels: label maps hold at most {MAX_LABELS}")
            tokenize(self.labels)
        if self.scores and self.labels is None:
            raise LsegError("--scores needs --labels (scores are per label)")
        if self.features is None:
            self.features = not self.multiscale
        if self.multiscale:
            if self.features:
                raise LsegError("--multiscale computes labels/scores (the evaluator works on logits); "
                                "features cannot be stored with it")
            if self.labels is None:
                raise LsegError("--multiscale needs --labels")
            if self.stride != 1 or self.pca or self.pca_basis:
                raise LsegError("--multiscale does not combine with --stride or --pca")
        if self.pca_basis is not None and not os.path.isfile(self.pca_basis):
            raise LsegError(f"PCA basis not found: {self.pca_basis}")
        if self.pca is not None:
            if isinstance(self.pca, bool) or not isinstance(self.pca, int) or not 1 <= self.pca <= 512:
                raise LsegError(f"--pca {self.pca!r}: choose a number of components in 1..512")
        if (self.pca or self.pca_basis) and not self.features:
            raise LsegError("--pca reduces features; it cannot be combined with --no-features")
        if not (self.features or self.labels):
            raise LsegError("nothing to write: --no-features needs --labels (and optionally --scores)")
        if not self.multiscale:
            from ..sizes import parse_size, target_size

            if isinstance(self.size, str):
                self.size = parse_size(self.size)
            target_size((480, 640), self.size)  # validates an int or an (H, W)
        return self

    @property
    def uses_pca(self) -> bool:
        return bool(self.pca or self.pca_basis)

    def size_text(self) -> str:
        if self.multiscale:
            return "original (multi-scale evaluator)"
        s = self.size
        return f"{s[0]}x{s[1]}" if isinstance(s, (tuple, list)) else str(s)

    def identity(self, model, pca_basis_sha256: str | None) -> dict[str, Any]:
        """Every input that changes what is stored: compared key by key by ``--resume``."""
        return {
            **self.options_identity(),
            "checkpoint_sha256": model.sha256,
            "variant": model.variant,
            "mean": list(model.mean),
            "std": list(model.std),
            "pca_basis_sha256": pca_basis_sha256,
        }

    def options_identity(self) -> dict[str, Any]:
        """The part of :meth:`identity` known before the model is loaded (checked first, so a refused
        resume costs no model load)."""
        from .. import __version__
        from .store import FORMAT_VERSION

        return {
            "format_version": FORMAT_VERSION,
            "lsegrt_version": __version__,
            "backend": self.backend,
            "precision": self.precision,
            "backend_options": {k: v for k, v in sorted(self.backend_options.items())},
            "size": self.size_text(),
            "resize": RESIZE_RULE,
            "features": bool(self.features),
            "dtype": DTYPES[self.dtype],
            "stride": self.stride,
            "pca": self.pca,
            "pca_sample": self.pca_sample if self.uses_pca and not self.pca_basis else None,
            "labels": self.labels,
            "scores": self.scores,
            "multiscale": self.multiscale,
            "video_stride": self.video_stride,
            "video_fps": self.video_fps,
        }

    def layout(self, k: int | None) -> dict[str, Any]:
        """Shape and dtype of each stored array (H, W: input size; H0, W0: original size)."""
        dtype = DTYPES[self.dtype]
        s = self.stride
        res = "(H/2, W/2)" if s == 1 else f"(ceil(H/2/{s}), ceil(W/2/{s}))"
        out: dict[str, Any] = {}
        if self.features:
            c = k or 512
            out["features"] = {"shape": f"({c}, *{res})", "dtype": dtype, "channels": c, "pca": bool(k),
                               "unit_length": not k, "stride": s}
        if self.scores:
            n = len(self.labels or [])
            out["scores"] = {"shape": f"({n}, H0, W0)" if self.multiscale else f"({n}, *{res})", "dtype": dtype,
                             "meaning": "14.2857 * cosine(pixel, label) logits"}
        if self.labels:
            out["labels"] = {"shape": "(H0, W0)", "dtype": "uint8", "file": "labels/<frame id>.png",
                             "names": self.labels}
        return out

    def bytes_per_frame(self, hw: tuple[int, int], hw0: tuple[int, int], k: int | None) -> dict[str, int]:
        """Bytes stored per frame and output for a frame of original size ``hw0`` and input ``hw``
        (labels: uncompressed size, an upper bound for the PNG)."""
        item = {"fp16": 2, "bf16": 2, "fp32": 4}[self.dtype]
        h, w = -(-hw[0] // (2 * self.stride)), -(-hw[1] // (2 * self.stride))
        out = {}
        if self.features:
            out["features"] = (k or 512) * h * w * item
        if self.scores:
            n = len(self.labels or [])
            out["scores"] = n * (hw0[0] * hw0[1] if self.multiscale else h * w) * item
        if self.labels:
            out["labels"] = hw0[0] * hw0[1]
        return out


def shard_from(shard: Any = None) -> tuple[Shard, int | None]:
    """``--shard i/n`` (or a (rank, world) pair), else torchrun's RANK/WORLD_SIZE → (Shard, LOCAL_RANK)."""
    env = os.environ
    local = int(env["LOCAL_RANK"]) if "LOCAL_RANK" in env and env["LOCAL_RANK"].isdigit() else None
    if shard is None:
        world = env.get("WORLD_SIZE", "")
        if world.isdigit() and int(world) > 1:
            return Shard(int(env.get("RANK", "0")), int(world)), local
        return Shard(), None
    if isinstance(shard, Shard):
        return shard, local
    if isinstance(shard, str):
        rank, sep, world = shard.partition("/")
        if not sep or not rank.strip().isdigit() or not world.strip().isdigit():
            raise LsegError(f"--shard {shard!r}: expected RANK/WORLD like 0/4")
        shard = (int(rank), int(world))
    rank, world = shard
    if world < 1 or not 0 <= rank < world:
        raise LsegError(f"--shard {rank}/{world}: need 0 <= rank < world")
    return Shard(rank, world), local
