"""Regenerate tests/data/golden_<variant>.npz (run from anywhere: python tests/data/make_goldens.py).

Seeded tiny models (seed 0) on a seeded input (torch.Generator seed 0, randn (1,3,64,96)):
  features_slice  features[0, :8, ::4, ::4]             (8, 8, 12) float32
  features_mean   per-channel mean over the 32×48 map    (512,) float32
  features_std    per-channel std (correction=0)         (512,) float32
  text_slice      encode_text(LABELS)[:, :16] (unit)     (3, 16) float32
Regenerate only for an intended numerical change, and say why in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
VARIANTS = ("vit_tiny", "rn_tiny")
LABELS = ["dog", "grass", "other"]
INPUT_SHAPE = (1, 3, 64, 96)


def golden_input() -> torch.Tensor:
    return torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))


def compute(variant: str) -> dict[str, np.ndarray]:
    import lsegrt

    model = lsegrt.random_model(variant, seed=0)
    f = model.encode_image(golden_input())
    return {
        "features_slice": f[0, :8, ::4, ::4].float().numpy(),
        "features_mean": f[0].mean(dim=(1, 2)).float().numpy(),
        "features_std": f[0].std(dim=(1, 2), correction=0).float().numpy(),
        "text_slice": model.encode_text(LABELS)[:, :16].float().numpy(),
    }


def path(variant: str) -> Path:
    return HERE / f"golden_{variant}.npz"


def main() -> int:
    torch.set_num_threads(1)
    for variant in VARIANTS:
        np.savez(path(variant), **compute(variant))
        print(f"wrote {path(variant)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
