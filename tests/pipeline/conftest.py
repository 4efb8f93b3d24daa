"""Small frame folders for the pipeline tests (three aspect ratios → three input sizes at size 64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIZES = [(40, 80), (80, 40), (64, 64)]  # → inputs 32x64, 64x32, 64x64 at --size 64


def picture(k: int, hw: tuple[int, int]) -> np.ndarray:
    """A distinct smooth picture per k (features differ from frame to frame)."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * (3 + k) + 20 * k) % 256, (y * (2 + k) + 7 * k) % 256, ((x + y) * 2 + 40 * k) % 256], -1)
    return img.astype(np.uint8)


def make_frames(root: Path, n: int = 7, nested: bool = True) -> list[Path]:
    """``n`` JPEG/PNG frames under ``root`` (in sub-folders a/ and b/ when nested), sizes cycling."""
    paths = []
    for k in range(n):
        sub = root / ("a" if k % 2 == 0 else "b") if nested else root
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"f{k:02d}.{'png' if k % 3 == 0 else 'jpg'}"
        Image.fromarray(picture(k, SIZES[k % len(SIZES)])).save(path, quality=95)
        paths.append(path)
    return paths


@pytest.fixture
def frames(tmp_path) -> Path:
    root = tmp_path / "frames"
    make_frames(root)
    return root


def load(path) -> np.ndarray:
    from lsegrt.images import load_image

    return load_image(path)
