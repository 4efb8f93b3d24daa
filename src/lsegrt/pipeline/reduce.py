"""Reduce stage (on the device): encoder output → what is stored per frame.

From ``(B, 512, H/2, W/2)`` float32 unit vectors:

- ``features``: ``--stride k`` average-pools k×k pixels and re-normalizes each pooled vector to unit
  length (LSeg features are compared with text by cosine, and an average of unit vectors is shorter
  than one, by an amount that depends on how much the pixels disagree); ``--pca K`` then projects onto
  the run's basis (:mod:`lsegrt.pipeline.pca`, K channels); finally cast to ``--dtype``.
- ``scores``: per-label logits ``14.2857·⟨pixel, text⟩`` at feature resolution, ``(N, H/2, W/2)``
  (average-pooled by ``--stride``), in ``--dtype``: ``logits`` before the ×2 upsampling.
- ``labels``: per-pixel label ids at the frame's original size, exactly what ``segment`` computes
  (``logits`` → ``resize_logits`` → argmax), uint8.

Labels and scores use the encoder's full-resolution features, whatever ``--stride``/``--pca`` say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..model.config import LOGIT_SCALE
from ..model.layers import l2_normalize
from ..segmentation import logits, resize_logits
from .pca import PcaBasis, project

MAX_LABELS = 256  # label maps are 8-bit indexed PNGs


@dataclass
class ReduceSpec:
    """What to compute per frame; ``text`` (N, 512) unit vectors on the device when labels/scores."""

    features: bool = True
    dtype: torch.dtype = torch.float16
    stride: int = 1
    pca: PcaBasis | None = None
    text: torch.Tensor | None = None
    labels: bool = False
    scores: bool = False


def pool(features: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, C, h, w) unit vectors → (B, C, ⌈h/k⌉, ⌈w/k⌉) averages of k×k pixels, re-normalized to unit
    length (border windows average the pixels they hold)."""
    if stride == 1:
        return features
    pooled = F.avg_pool2d(features, stride, stride, ceil_mode=True, count_include_pad=False)
    return l2_normalize(pooled, dim=1)


def stored_features(features: torch.Tensor, spec: ReduceSpec) -> torch.Tensor:
    """(B, 512, h, w) float32 → pooled, projected features (float32, before the cast)."""
    f = pool(features, spec.stride)
    return project(f, spec.pca) if spec.pca is not None else f


def scores(features: torch.Tensor, text: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """(B, 512, h, w) · (N, 512) → (B, N, ⌈h/k⌉, ⌈w/k⌉) float32 logits at feature resolution."""
    out = LOGIT_SCALE * torch.einsum("bchw,nc->bnhw", features.float(), text.float())
    if stride > 1:
        out = F.avg_pool2d(out, stride, stride, ceil_mode=True, count_include_pad=False)
    return out


def label_map(features: torch.Tensor, text: torch.Tensor, hw0: tuple[int, int]) -> torch.Tensor:
    """(1, 512, h, w) → (h0, w0) uint8 label ids: ``segment``'s computation for one frame."""
    return resize_logits(logits(features, text), hw0)[0].argmax(0).to(torch.uint8)


def per_frame(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to each frame of ``x`` (B, ...) on its own, results concatenated.

    A batched einsum is one GEMM over every frame's pixels, and its last bits depend on how many frames
    share it and where each sits. Run per frame, a frame's result depends on that frame alone, so runs
    that batch differently (shards, torchrun, Ray, a resume) store the same bytes."""
    return torch.cat([fn(x[i:i + 1]) for i in range(x.shape[0])])


@torch.inference_mode()
def reduce_batch(features: torch.Tensor, n: int, hw0s: list[tuple[int, int]], spec: ReduceSpec
                 ) -> dict[str, Any]:
    """Encoder output of a (padded) batch → per-output arrays for its first ``n`` frames:
    ``features``/``scores`` as (n, ...) tensors, ``labels`` as a list of (h0, w0) uint8 tensors."""
    out: dict[str, Any] = {}
    real = features[:n]
    if spec.features:
        out["features"] = (per_frame(lambda f: stored_features(f, spec), real) if spec.pca is not None
                           else stored_features(real, spec)).to(spec.dtype)
    if spec.scores:
        out["scores"] = per_frame(lambda f: scores(f, spec.text, spec.stride), real).to(spec.dtype)
    if spec.labels:
        out["labels"] = [label_map(real[i:i + 1], spec.text, hw0s[i]) for i in range(n)]
    return out


@torch.inference_mode()
def reduce_logits(frame_logits: torch.Tensor, spec: ReduceSpec) -> dict[str, Any]:
    """Multi-scale logits (1, N, h0, w0) of one frame → ``labels`` [(h0, w0) uint8] and/or ``scores``
    (1, N, h0, w0) in ``--dtype`` (the evaluator works on logits at the original size)."""
    out: dict[str, Any] = {}
    if spec.scores:
        out["scores"] = frame_logits.to(spec.dtype)
    if spec.labels:
        out["labels"] = [frame_logits[0].argmax(0).to(torch.uint8)]
    return out
