"""Pictures of results: label maps, overlays with a legend, PCA of embeddings, heatmaps, latency plots.

Everything renders off-screen (matplotlib's Agg canvas, never pyplot, so no global figure state) and
every file is written as PNG through :func:`lsegrt.fileio.atomic_path`.
"""

from __future__ import annotations

import colorsys
import json
import math
import numbers
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import LsegError
from .fileio import atomic_path

# Tableau-10 then the light Tableau-20 tones: distinct, colour-blind-friendlier than random hues.
_BASE_COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
]
_GOLDEN = (math.sqrt(5) - 1) / 2


def palette(n: int) -> np.ndarray:
    """``n`` distinct deterministic colours → ``(n, 3) uint8``; colour ``i`` never depends on ``n``."""
    colours = list(_BASE_COLOURS[:n])
    for i in range(len(colours), n):
        # Golden-ratio hue steps never repeat and stay far from recent hues; saturation/value cycle
        # so that nearby hues on different rounds still differ.
        k = i - len(_BASE_COLOURS)
        hue = (0.11 + k * _GOLDEN) % 1.0
        sat = (0.85, 0.55, 0.95)[k % 3]
        val = (0.90, 0.75, 0.60)[(k // 3) % 3]
        colours.append(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, val)))
    return np.asarray(colours, dtype=np.uint8).reshape(n, 3)


def save_png(image: Image.Image | np.ndarray, path: str | os.PathLike, pnginfo=None) -> None:
    """Write a PIL image or an ``(H, W, 3) uint8`` array as PNG, atomically."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=pnginfo)


def label_map_image(labels: np.ndarray, names: Sequence[str]):
    """``(H, W)`` int label ids → ``(indexed PIL image, PngInfo)``: pixel value = label id, colours from
    :func:`palette`, ``names`` in the PNG text chunk ``labels`` (JSON). Shared by ``segment`` and
    ``extract --labels``."""
    from PIL import PngImagePlugin

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise LsegError(f"label map must be (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= max(len(names), 1)):
        raise LsegError(
            f"label ids span {labels.min()}..{labels.max()} but there are {len(names)} names"
        )
    if len(names) > 256:
        raise LsegError(f"an indexed PNG holds at most 256 labels, got {len(names)}")
    img = Image.fromarray(labels.astype(np.uint8, copy=False))  # "L"; putpalette turns it into "P"
    img.putpalette(palette(max(len(names), 1)).ravel().tolist())
    info = PngImagePlugin.PngInfo()
    info.add_text("labels", json.dumps(list(names)))
    return img, info


def label_map_png(labels: np.ndarray, path: str | os.PathLike, names: Sequence[str]) -> None:
    """Write ``(H, W)`` int label ids as an indexed (mode "P") PNG (see :func:`label_map_image`)."""
    img, info = label_map_image(labels, names)
    save_png(img, path, pnginfo=info)


@lru_cache(maxsize=16)
def font(size: int = 16) -> ImageFont.ImageFont:
    """A scalable font of ``size`` px: Pillow's bundled one, else matplotlib's DejaVu Sans."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        import matplotlib

        ttf = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
        try:
            return ImageFont.truetype(ttf, size)
        except OSError:
            return ImageFont.load_default()


def _text_size(f: ImageFont.ImageFont, text: str) -> tuple[int, int]:
    """(width, height) in px of ``text``; note PIL's (W, H) order here."""
    left, top, right, bottom = f.getbbox(text)
    return right - left, bottom - top


def _fit_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if labels.shape == hw:
        return labels
    # Labels are often computed at model resolution; nearest keeps them as valid ids.
    img = Image.fromarray(labels.astype(np.int32))  # mode "I"
    return np.asarray(img.resize((hw[1], hw[0]), Image.NEAREST), dtype=np.int64)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` int labels → ``(H, W)`` bool, True where a pixel's right or lower neighbour differs."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    alpha: float = 0.5,
    coverage: dict | None = None,
) -> Image.Image:
    """Blend ``(H, W, 3) uint8`` with label colours, draw boundaries, add a legend on the right.

    ``labels`` is ``(h, w)`` int ids into ``names`` (resized nearest to ``(H, W)`` if different).
    ``coverage`` maps name or id → fraction in 0..1; by default it is measured from ``labels``.
    Returns an RGB image of width ``W + legend`` and height ``max(H, legend)``; legend rows are the
    present labels, largest coverage first.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise LsegError(f"overlay needs an (H, W, 3) image, got shape {image.shape}")
    h, w = image.shape[:2]
    labels = _fit_labels(np.asarray(labels), (h, w))
    n = len(names)
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise LsegError(f"label ids span {labels.min()}..{labels.max()} but there are {n} names")
    colours = palette(n)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours[labels].astype(np.float32)
    blended = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    blended[boundaries(labels)] = 255

    counts = np.bincount(labels.ravel(), minlength=n)
    present = [i for i in range(n) if counts[i] > 0]
    frac = {i: counts[i] / max(labels.size, 1) for i in present}
    if coverage:
        for i in present:
            frac[i] = float(coverage.get(names[i], coverage.get(i, frac[i])))
    present.sort(key=lambda i: (-frac[i], i))

    size = max(14, min(28, h // 22))  # readable at 100 % zoom for 300..600 px tall images
    f = font(size)
    pad, row = size // 2, int(size * 1.5)
    texts = [f"{names[i]}  {100 * frac[i]:.1f}%" for i in present]
    text_w = max((_text_size(f, t)[0] for t in texts), default=0)
    panel_w = pad + size + pad + text_w + 2 * pad
    panel_h = pad + row * len(present) + pad
    canvas = Image.new("RGB", (w + panel_w, max(h, panel_h)), (255, 255, 255))
    canvas.paste(Image.fromarray(blended), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, (i, text) in enumerate(zip(present, texts)):
        y = pad + k * row
        x = w + pad
        draw.rectangle([x, y, x + size, y + size], fill=tuple(int(c) for c in colours[i]),
                       outline=(0, 0, 0))
        draw.text((x + size + pad, y + size // 2), text, fill=(0, 0, 0), font=f, anchor="lm")
    return canvas


def save_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike,
    alpha: float = 0.5,
    coverage: dict | None = None,
) -> None:
    """:func:`overlay` written to ``path`` as PNG."""
    save_png(overlay(image, labels, names, alpha=alpha, coverage=coverage), path)


@dataclass(frozen=True)
class PcaBasis:
    """A fixed PCA colour space: ``mean (C,)``, ``components (C, 3)``, per-axis ``lo``/``hi (3,)``."""

    mean: np.ndarray
    components: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def pca_rgb(features: Any, basis: PcaBasis | None = None) -> tuple[np.ndarray, PcaBasis]:
    """``(C, H, W)`` float array/tensor → ``((H, W, 3) uint8, basis)``: first 3 principal components.

    Each component is scaled from its 1st..99th percentile to 0..255. Pass the returned ``basis``
    to render another feature map (e.g. another backend's) in the same colour space.
    """
    if hasattr(features, "detach"):
        features = features.detach().float().cpu().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 3:
        raise LsegError(f"pca_rgb needs (C, H, W) features, got shape {x.shape}")
    c, h, w = x.shape
    x = x.reshape(c, h * w).T
    if basis is None:
        mean = x.mean(axis=0)
        xc = x - mean
        # Eigen-decomposition of the C x C covariance: cheap for 512 channels, unlike an SVD of
        # the (H*W, C) matrix.
        cov = xc.T @ xc / max(len(xc) - 1, 1)
        vals, vecs = np.linalg.eigh(cov)
        comps = vecs[:, np.argsort(vals)[::-1][:3]]
        if comps.shape[1] < 3:
            comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))
        # Eigenvector signs are arbitrary; fix them so the same input always gives the same colours.
        signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(3)])
        comps = comps * np.where(signs == 0, 1, signs)
        proj = xc @ comps
        lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
        basis = PcaBasis(mean, comps, lo, hi)
    elif basis.mean.shape != (c,):
        raise LsegError(f"PCA basis is for {basis.mean.shape[0]} channels, features have {c}")
    proj = (x - basis.mean) @ basis.components
    scaled = (proj - basis.lo) / np.maximum(basis.hi - basis.lo, 1e-12)
    rgb = np.clip(scaled * 255 + 0.5, 0, 255).astype(np.uint8).reshape(h, w, 3)
    return rgb, basis


def side_by_side(
    images: Sequence[np.ndarray | Image.Image], titles: Sequence[str], height: int | None = None
) -> Image.Image:
    """Panels ``(H_i, W_i, 3) uint8`` next to each other, each resized to a common height
    (default: the tallest) keeping aspect, with its title above. Returns an RGB PIL image."""
    if len(images) != len(titles):
        raise LsegError(f"side_by_side got {len(images)} images but {len(titles)} titles")
    if not images:
        raise LsegError("side_by_side needs at least one image")
    panels = [
        (im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im))).convert("RGB")
        for im in images
    ]
    target_h = height or max(p.height for p in panels)
    panels = [
        p if p.height == target_h
        else p.resize((max(1, round(p.width * target_h / p.height)), target_h), Image.BILINEAR)
        for p in panels
    ]
    size = max(14, min(28, target_h // 20))
    f = font(size)
    gap, title_h = size // 2, int(size * 1.6)
    width = sum(p.width for p in panels) + gap * (len(panels) + 1)
    canvas = Image.new("RGB", (width, title_h + target_h + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = gap
    for p, title in zip(panels, titles):
        canvas.paste(p, (x, title_h))
        draw.text((x + p.width // 2, title_h // 2), title, fill=(0, 0, 0), font=f, anchor="mm")
        x += p.width + gap
    return canvas


def _render(fig) -> Image.Image:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3].copy())


def heatmap(
    values: Any, title: str = "", vmin: float | None = None, vmax: float | None = None,
    cmap: str = "magma",
) -> Image.Image:
    """``(H, W)`` float array/tensor → RGB PIL image of the map with a colour bar and title."""
    from matplotlib.figure import Figure

    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise LsegError(f"heatmap needs (H, W) values, got shape {values.shape}")
    h, w = values.shape
    # Roughly native resolution, clamped so tiny maps stay legible and huge ones stay small.
    fig_w = min(12.0, max(4.0, w / 100 + 1.2))
    fig = Figure(figsize=(fig_w, fig_w * h / w * 0.9 + 0.6), dpi=100)
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    fig.tight_layout()
    return _render(fig)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _x_order(values: list) -> list:
    def key(v):
        if _is_number(v):
            return (0, float(v), "")
        parts = str(v).lower().replace("×", "x").split("x")
        try:
            return (0, float(np.prod([float(p) for p in parts])), str(v))  # "HxW" by pixel count
        except ValueError:
            return (1, 0.0, str(v))

    return sorted(dict.fromkeys(values), key=key)


def latency_plot(
    rows: Sequence[dict],
    path: str | os.PathLike,
    x: str = "size",
    y: str = "gpu_ms_p50",
    group: Sequence[str] = ("backend", "precision", "batch"),
    logy: bool = True,
    title: str = "",
) -> None:
    """Benchmark rows (plain dicts) → PNG line plot of ``y`` against ``x``, one line per ``group``.

    Rows whose ``y`` is missing/None/NaN (failed runs) are skipped. Numeric ``x`` is plotted on a
    numeric axis; other values (e.g. ``"480x640"``) as ordered categories (by pixel count).
    """
    from matplotlib.figure import Figure

    def ok(r):
        v = r.get(y)
        return x in r and _is_number(v) and math.isfinite(v)

    rows = [r for r in rows if ok(r)]
    if not rows:
        raise LsegError(f"latency plot: no rows with both {x!r} and a finite {y!r}")
    xs = _x_order([r[x] for r in rows])
    numeric = all(_is_number(v) for v in xs)
    pos = {v: (v if numeric else i) for i, v in enumerate(xs)}
    lines: dict[tuple, list[tuple]] = {}
    for r in rows:
        lines.setdefault(tuple(r.get(g) for g in group), []).append((pos[r[x]], r[y]))

    fig = Figure(figsize=(8, 5), dpi=110)
    ax = fig.add_subplot()
    for gkey in sorted(lines, key=lambda k: tuple(str(v) for v in k)):
        pts = sorted(lines[gkey])
        label = " / ".join(str(v) for v in gkey if v is not None) or "all"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    if logy:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        # Latencies usually span less than two decades; 1-2-5 ticks in plain numbers stay readable
        # where default 10^k labels would leave only one or two labelled ticks.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())  # else a range under a decade labels minors as 3×10⁰
    if not numeric:
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=" / ".join(group), fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
