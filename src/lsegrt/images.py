"""Reading input images: files, folders and bundled samples, always as ``(H, W, 3) uint8`` RGB."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import LsegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SAMPLE_PREFIX = "sample:"


def _skimage_sample(name: str) -> Callable[[], np.ndarray]:
    # Resolved on call so that importing lsegrt does not import scikit-image.
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    load.__name__ = name
    load.__doc__ = f"skimage.data.{name}() as (H, W, 3) uint8 RGB."
    return load


SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage_sample("chelsea"),  # cat, 300x451
    "astronaut": _skimage_sample("astronaut"),  # person + flag, 512x512
    "coffee": _skimage_sample("coffee"),  # cup on a table, 400x600
}
DEFAULT_SAMPLE = "chelsea"


def _unreadable(path: str | os.PathLike, reason: str) -> LsegError:
    reason = " ".join(str(reason).split())  # PIL messages can span lines; ours must not
    return LsegError(f"not an image or unreadable: {path} ({reason})")


def _to_rgb(img) -> np.ndarray:
    """PIL image of any mode → ``(H, W, 3) uint8``."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit TIFF/PNG: PIL's convert("RGB") clips at 255 instead of rescaling.
        arr = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        # Going through RGBA avoids PIL's warning about palette transparency; alpha is then dropped.
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file → ``(H, W, 3) uint8`` RGB, EXIF orientation applied.

    Grayscale, RGBA (alpha dropped), palette and 16-bit images are converted to 8-bit RGB. A missing
    file, a folder, a non-image or a truncated/corrupt file raises a one-line :class:`LsegError`.
    """
    from PIL import Image, ImageOps

    p = Path(path)
    if not p.exists():
        raise _unreadable(path, "no such file")
    if p.is_dir():
        raise _unreadable(path, "is a folder")
    try:
        with Image.open(p) as img:
            # Decode fully inside the try: Image.open only reads the header, so truncation and
            # corrupt data only surface here.
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except LsegError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ... by format
        raise _unreadable(path, f"{type(exc).__name__}: {exc}") from exc


def sample_image(name: str = DEFAULT_SAMPLE) -> np.ndarray:
    """A bundled sample image (see :data:`SAMPLES`) → ``(H, W, 3) uint8`` RGB."""
    if name not in SAMPLES:
        raise LsegError(f"unknown sample image {name!r}; available: {', '.join(sorted(SAMPLES))}")
    image = np.asarray(SAMPLES[name](), dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def list_folder_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, case-insensitive), sorted by name."""
    folder = Path(folder)
    return sorted(
        f
        for f in folder.iterdir()
        # Dot-files include macOS "._x.jpg" resource forks, which carry an image suffix but no image.
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
    )


def resolve_images(paths: list[str]) -> list[tuple[str, np.ndarray]]:
    """Expand CLI image arguments → ``[(name, (H, W, 3) uint8 RGB), ...]`` in argument order.

    Each entry is an image file, a folder (its images, sorted by name, not recursive) or
    ``sample:NAME``. An empty list yields the default sample (chelsea).
    """
    if not paths:
        return [(SAMPLE_PREFIX + DEFAULT_SAMPLE, sample_image(DEFAULT_SAMPLE))]
    out: list[tuple[str, np.ndarray]] = []
    for entry in paths:
        entry = str(entry)
        if entry.startswith(SAMPLE_PREFIX):
            out.append((entry, sample_image(entry.removeprefix(SAMPLE_PREFIX))))
        elif Path(entry).is_dir():
            files = list_folder_images(entry)
            if not files:
                raise LsegError(
                    f"folder has no images: {entry} (looked for {', '.join(IMAGE_SUFFIXES)})"
                )
            out.extend((str(f), load_image(f)) for f in files)
        else:
            out.append((entry, load_image(entry)))
    return out


def as_rgb_array(image) -> np.ndarray:
    """PIL image or (H,W,3) uint8 RGB array → (H,W,3) uint8 RGB array (anything else: LsegError)."""
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image
        raise LsegError(f"expected an (H,W,3) uint8 RGB image, got an array of shape {image.shape} and "
                        f"dtype {image.dtype}")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return _to_rgb(image)
    raise LsegError(f"expected a PIL image or an (H,W,3) uint8 array, got {type(image).__name__}")
