"""PCA of per-pixel features: fit on the device, project, reconstruct, project text.

A basis holds the feature mean ``μ`` (C,), ``K`` orthonormal components ``P`` (K, C) ordered by
explained variance, and those variances. Features are stored as ``y = P (f − μ)`` (K channels per
pixel). Since ``reconstruct(y) = Pᵀ y + μ``, a text embedding ``t`` is compared with stored features as
``⟨reconstruct(y), t⟩ = ⟨y, P t⟩ + ⟨μ, t⟩``: :func:`project_text` returns ``(P t, ⟨μ, t⟩)``, so that
per-pixel logits never need the 512-d features back. With ``K = C`` the round trip is exact.

The fit accumulates the mean and the scatter matrix of every pixel of the sample frames in float64
(Chan's pairwise update, one frame at a time, so memory is one frame's pixels), then takes the
eigenvectors of the C×C covariance with ``torch.linalg.eigh``. Each component's sign is fixed (its
largest entry positive) so that the same data always gives the same basis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LsegError

BASIS_FORMAT = "lsegrt-pca"


@dataclass
class PcaBasis:
    """``mean`` (C,), ``components`` (K, C) orthonormal rows, ``explained_variance`` (K,), all float32."""

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor
    total_variance: float
    pixels: int = 0
    frames: int = 0

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    def to(self, device: torch.device | str) -> "PcaBasis":
        return PcaBasis(self.mean.to(device), self.components.to(device), self.explained_variance.to(device),
                        self.total_variance, self.pixels, self.frames)

    def truncate(self, k: int) -> "PcaBasis":
        if not 1 <= k <= self.k:
            raise LsegError(f"--pca {k}: the basis has {self.k} components; choose 1..{self.k}")
        return PcaBasis(self.mean, self.components[:k], self.explained_variance[:k], self.total_variance,
                        self.pixels, self.frames)

    @property
    def explained_ratio(self) -> float:
        return float(self.explained_variance.sum()) / max(self.total_variance, 1e-30)

    def save(self, path: str | os.PathLike) -> None:
        """As safetensors (tensors ``mean``, ``components``, ``explained_variance``), written atomically."""
        from safetensors.torch import save_file

        from ..fileio import atomic_path

        tensors = {"mean": self.mean, "components": self.components, "explained_variance": self.explained_variance}
        meta = {"format": BASIS_FORMAT, "total_variance": repr(self.total_variance), "pixels": str(self.pixels),
                "frames": str(self.frames)}
        with atomic_path(path) as tmp:
            save_file({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


def load_basis(path: str | os.PathLike) -> PcaBasis:
    """Read a basis written by :meth:`PcaBasis.save` (or any safetensors with the same three tensors)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise LsegError(f"PCA basis not found: {path}")
    try:
        with safe_open(str(p), framework="pt") as f:
            keys = set(f.keys())
            missing = {"mean", "components", "explained_variance"} - keys
            if missing:
                raise LsegError(f"PCA basis {p.name}: missing tensors {', '.join(sorted(missing))}")
            mean, comps, var = (f.get_tensor(k).float() for k in ("mean", "components", "explained_variance"))
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise LsegError(f"PCA basis {p.name} is not a readable safetensors file ({exc})") from None
    if mean.ndim != 1 or comps.ndim != 2 or comps.shape[1] != mean.shape[0] or var.shape != (comps.shape[0],):
        raise LsegError(f"PCA basis {p.name}: expected mean (C,), components (K,C), explained_variance (K,); "
                        f"got {tuple(mean.shape)}, {tuple(comps.shape)}, {tuple(var.shape)}")
    if not all(torch.isfinite(t).all() for t in (mean, comps, var)):
        raise LsegError(f"PCA basis {p.name} holds non-finite values")
    try:
        total = float(meta.get("total_variance", float(var.sum())))
    except ValueError:
        total = float(var.sum())
    return PcaBasis(mean, comps, var, total, int(meta.get("pixels", 0) or 0), int(meta.get("frames", 0) or 0))


class Covariance:
    """Running mean and scatter of per-pixel feature vectors, in float64 on the features' device."""

    def __init__(self, dim: int, device: torch.device | str):
        self.n = 0
        self.frames = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.scatter = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    @torch.inference_mode()
    def add(self, features: torch.Tensor) -> None:
        """(B, C, h, w) features of B frames (every pixel is a sample)."""
        for f in features:
            x = f.reshape(f.shape[0], -1).T.double()  # (h·w, C)
            m = x.shape[0]
            mean_b = x.mean(0)
            c = x - mean_b
            delta = mean_b - self.mean
            total = self.n + m
            self.scatter += c.T @ c + torch.outer(delta, delta) * (self.n * m / total)
            self.mean += delta * (m / total)
            self.n = total
            self.frames += 1

    def fit(self, k: int) -> PcaBasis:
        if self.n < 2:
            raise LsegError("PCA needs at least one sample frame; raise --pca-sample")
        cov = self.scatter / self.n
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(0), evecs.flip(1)
        comps = evecs.T[:k]
        # Fix each component's sign: its largest-magnitude entry is positive.
        idx = comps.abs().argmax(1)
        signs = torch.sign(comps.gather(1, idx[:, None]))
        comps = comps * signs
        return PcaBasis(self.mean.float(), comps.float().contiguous(), evals[:k].clamp_min(0).float(),
                        float(evals.clamp_min(0).sum()), self.n, self.frames)


def _as_torch(x: Any) -> tuple[torch.Tensor, bool]:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)), True
    return x, False


def project(features: torch.Tensor, basis: PcaBasis) -> torch.Tensor:
    """(B, C, h, w) features → (B, K, h, w) float32 coordinates ``P (f − μ)``."""
    f = features.float()
    return torch.einsum("bchw,kc->bkhw", f - basis.mean.view(1, -1, 1, 1), basis.components)


def reconstruct(reduced: Any, basis: PcaBasis) -> Any:
    """(…, K, h, w) stored coordinates (numpy or torch, any float dtype) → (…, C, h, w) float32
    ``Pᵀ y + μ``: the features back, up to the variance the K components leave out."""
    y, was_np = _as_torch(reduced)
    comps, mean = basis.components.to(y.device), basis.mean.to(y.device)
    out = torch.einsum("...khw,kc->...chw", y.float(), comps) + mean.view(-1, 1, 1)
    return out.numpy() if was_np else out


def project_text(text: Any, basis: PcaBasis) -> tuple[Any, Any]:
    """(N, C) text embeddings → ``(weights (N, K), bias (N,))`` with
    ``⟨reconstruct(y), t⟩ = y · weights + bias`` at every pixel (numpy in, numpy out)."""
    t, was_np = _as_torch(text)
    comps, mean = basis.components.to(t.device), basis.mean.to(t.device)
    weights, bias = t.float() @ comps.T, t.float() @ mean
    return (weights.numpy(), bias.numpy()) if was_np else (weights, bias)
