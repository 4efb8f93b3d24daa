"""Fidelity of one encoder against another on real images (docs/ARCHITECTURE.md §10: per-pixel, not
whole-map).

Both sides get the *same* preprocessed tensor. Per image × size, over the ``(512, h, w)`` feature maps:

- per-pixel cosine ``⟨a,b⟩/(‖a‖‖b‖)`` in float64 (mean, 0.1th percentile, min). Nothing is clamped: a
  value above 1 would be a bug in the metric, and for unit vectors ``cos = 1 − ‖a−b‖²/2`` per pixel;
- relative L2 ``‖a−b‖/‖a‖`` over the whole map (a = reference) and the max absolute difference;
- label agreement: % of pixels whose argmax over the logits (:func:`lsegrt.segmentation.logits`, the
  same text features for both sides) is the same.

A pair passes when every image × size and the aggregate (all pixels pooled) meet the thresholds; NaN
never passes. Cross-checkpoint mode compares the eager fp32 features of several checkpoints of one variant
(each with its own text tower) without thresholds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .backends.base import Candidate, parse_candidate
from .errors import LsegError
from .report import error_text

DEFAULT_LABELS = "person, animal, plant, sky, building, road, water, other"
DEFAULT_IMAGES = ("sample:chelsea", "sample:astronaut", "sample:coffee")
DEFAULT_SIZES = (480,)
# fp32 only asks for a mean cosine; half precisions also bound the worst pixels and the labels.
THRESHOLDS: dict[str, dict[str, float | None]] = {
    "fp32": {"min_cosine": 0.99999, "min_p01": None, "min_agreement": None},
    "fp16": {"min_cosine": 0.999, "min_p01": 0.99, "min_agreement": 99.0},
    "bf16": {"min_cosine": 0.999, "min_p01": 0.99, "min_agreement": 99.0},
}
_CHUNK = 1 << 23  # elements per float64 slice: bounds the metric's extra memory (~64 MB per tensor)


# One side of a comparison: ``backend[:precision][:KEY=VALUE,...][@engine]`` (the verbs' shared candidate).
Side = Candidate
# The default reference: eager fp32, strict. PyTorch's own default lets cuDNN run fp32 convolutions in
# TF32 (a 10-bit mantissa, as fp16's), which would make the reference as coarse as what it checks.
REFERENCE = Side("torch", "fp32", {"tf32": False})  # label torch:fp32:tf32=false


def parse_side(text: str) -> Side:
    """``"onnxruntime"``, ``"torch:fp16"``, ``"compile:fp16:fast=true"``, ``"tensorrt:fp16@model.engine"``
    → :class:`Side`; the options are checked against the backend's own (one-line error otherwise)."""
    return parse_candidate(text)


def side_label(side: Any) -> str:
    if isinstance(side, Side):
        return side.label
    engine = side.describe().get("engine")
    return f"{side.name}:{side.precision}" + (f"@{Path(engine).name}" if engine else "")


def thresholds_for(precisions: Sequence[str], overrides: dict[str, float | None] | None = None) -> dict:
    """Defaults of the least precise side (any fp16/bf16 → the half-precision set), then ``overrides``
    (keys ``min_cosine``, ``min_p01``, ``min_agreement``; None keeps the default)."""
    half = [p for p in precisions if p != "fp32"]
    out = dict(THRESHOLDS[half[0] if half else "fp32"])
    out.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return out


# -- metrics ---------------------------------------------------------------------------------------
def label_map(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """(1,512,h,w) features · (N,512) text → (2h,2w) int64 label ids (argmax of the upsampled logits)."""
    from .segmentation import logits

    return logits(features, text)[0].argmax(0)


def map_metrics(a: torch.Tensor, b: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor) -> dict:
    """Reference ``a`` vs ``b``, both (1,C,h,w) → sums for pooling plus the (h,w) float64 cosine map."""
    if a.shape != b.shape:
        raise LsegError(f"feature shapes differ: reference {tuple(a.shape)}, candidate {tuple(b.shape)}")
    _, c, h, w = a.shape
    rows = max(1, _CHUNK // max(1, c * w))
    cos, sq_diff, sq_ref, max_abs = [], 0.0, 0.0, 0.0
    for r0 in range(0, h, rows):
        x = a[0, :, r0:r0 + rows].double()
        y = b[0, :, r0:r0 + rows].to(x.device).double()
        d = x - y
        cos.append((x * y).sum(0) / (x.norm(dim=0) * y.norm(dim=0)))
        sq_diff += float((d * d).sum())
        sq_ref += float((x * x).sum())
        max_abs = max(max_abs, float(d.abs().max()))
    cos_map = torch.cat(cos).cpu().numpy()
    agree = int((labels_a == labels_b.to(labels_a.device)).sum())
    return {"cos_map": cos_map, "sq_diff": sq_diff, "sq_ref": sq_ref, "max_abs": max_abs,
            "agree": agree, "label_pixels": labels_a.numel()}


def summarize(parts: Sequence[dict]) -> dict[str, float]:
    """Pool :func:`map_metrics` results (one or many image × size) into the reported numbers."""
    cos = np.concatenate([p["cos_map"].ravel() for p in parts])
    sq_ref = sum(p["sq_ref"] for p in parts)
    return {
        "mean_cosine": float(cos.mean()),
        "p01_cosine": float(np.percentile(cos, 0.1)),
        "min_cosine": float(cos.min()),
        "rel_l2": float(np.sqrt(sum(p["sq_diff"] for p in parts)) / np.sqrt(sq_ref)) if sq_ref > 0 else float("nan"),
        "max_abs": float(max(p["max_abs"] for p in parts)),
        "agreement": 100.0 * sum(p["agree"] for p in parts) / sum(p["label_pixels"] for p in parts),
        "pixels": int(cos.size),
    }


def failures(metrics: dict[str, float], th: dict[str, float | None]) -> list[str]:
    """Threshold violations as readable strings; NaN always fails (``not v >= t``)."""
    checks = (("mean_cosine", "min_cosine", "mean cosine", "{:.7f}"),
              ("p01_cosine", "min_p01", "p0.1 cosine", "{:.6f}"),
              ("agreement", "min_agreement", "label agreement %", "{:.3f}"))
    out = []
    for key, tkey, name, fmt in checks:
        if th.get(tkey) is not None and not metrics[key] >= th[tkey]:
            out.append(f"{name} {fmt.format(metrics[key])} < {th[tkey]}")
    return out


# -- pictures --------------------------------------------------------------------------------------
def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-") or "x"


def _nearest(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(h,w,3) uint8 → (H,W,3), nearest: side_by_side's bilinear resize would blur small maps and blend ids."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.NEAREST))


def _label_rgb(labels: torch.Tensor | np.ndarray, n: int, hw: tuple[int, int]) -> np.ndarray:
    """(h,w) label ids → (H,W,3) uint8 palette colours at ``hw``."""
    from .viz import palette

    ids = labels.cpu().numpy() if hasattr(labels, "cpu") else np.asarray(labels)
    return _nearest(palette(max(n, 1))[ids], hw)


def pair_pictures(out_dir: Path, stem: str, image: np.ndarray, ref: dict, cand: dict, names: tuple[str, str],
                  n_labels: int, inputs: Sequence[Any] = ()) -> list[str]:
    """Cosine-error heat-map, PCA-RGB in one basis, label maps (+ where they differ) → file names in ``out_dir``.

    None of them may replace one of ``inputs`` (files the run reads).
    """
    from .fileio import refuse_overwriting_inputs
    from .viz import heatmap, pca_rgb, save_png, side_by_side

    err = 1.0 - cand["cos_map"]
    paths = [out_dir / f"{stem}_cos_error.png", out_dir / f"{stem}_pca.png", out_dir / f"{stem}_labels.png"]
    refuse_overwriting_inputs(paths, inputs)
    save_png(heatmap(err, f"{names[1]} vs {names[0]}\n1 − cos (max {np.nanmax(err):.2e})", vmin=0.0), paths[0])
    hw = image.shape[:2]
    rgb_ref, basis = pca_rgb(ref["features"][0])
    rgb_cand, _ = pca_rgb(cand["features"][0], basis)
    save_png(side_by_side([_nearest(rgb_ref, hw), _nearest(rgb_cand, hw)],
                          [f"{names[0]} (PCA)", f"{names[1]} (same basis)"]), paths[1])
    differ = (ref["labels"] != cand["labels"]).cpu().numpy()
    panels = [image, _label_rgb(ref["labels"], n_labels, hw), _label_rgb(cand["labels"], n_labels, hw),
              _label_rgb(differ.astype(np.int64), 2, hw)]  # palette(2): blue = same, orange = differs
    save_png(side_by_side(panels, ["image", names[0], names[1], f"labels differ: {100 * differ.mean():.2f}%"]),
             paths[2])
    return [p.name for p in paths]


# -- the comparisons -------------------------------------------------------------------------------
def _open(side: Any, model, device, options: dict[str, Any], sweep: list[str]):
    from .backends.base import Encoder, options_for

    if not isinstance(side, Side):
        return side, False
    enc = Encoder.open(side.backend, checkpoint=model, engine=side.engine, device=device,
                       precision=side.precision, **{**options_for(side.backend, options, sweep), **side.options})
    return enc, True


def compare(
    model, candidates: Sequence[Side | Any], images: Sequence[tuple[str, np.ndarray]],
    sizes: Sequence[int | tuple[int, int]] = DEFAULT_SIZES, labels: str | Sequence[str] = DEFAULT_LABELS,
    reference: Side | Any = REFERENCE, overrides: dict[str, float | None] | None = None,
    out_dir: str | Path | None = None, all_pictures: bool = False, options: dict[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None, inputs: Sequence[Any] = (),
) -> dict[str, Any]:
    """Reference vs each candidate over ``images`` × ``sizes`` → report dict (``passed`` overall).

    Sides are :class:`Side` specs (opened on ``model.device`` for ``model``) or open Encoders.
    Pictures go to ``out_dir`` (first image × size per pair, or all with ``all_pictures``), never over one
    of ``inputs``; the report lists their file names, relative to ``out_dir`` (where ``compare.json`` goes
    too). ``on_step("image HxW")`` is called after each image × size. A candidate that fails fails its pair
    only; if the reference fails (a CUDA error a candidate caused is sticky and may surface there), the run
    stops and the report keeps what finished, with ``stopped`` saying where (``passed`` false).
    """
    from .api import split_labels

    sweep = [s.backend for s in (reference, *candidates) if isinstance(s, Side)]
    if sweep:  # each side gets the options its backend declares; a bad one stops before any work
        from .backends.base import options_for

        options_for(sweep[0], options, sweep)
    names = split_labels(labels) if isinstance(labels, str) else list(labels)
    text = model.encode_text(names)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    ref_enc, ref_owned = _open(reference, model, model.device, options or {}, sweep)
    ref_name, ref_described = side_label(reference), ref_enc.describe()
    pairs: list[dict[str, Any]] = []
    opened: list[tuple[Any, bool] | None] = []
    for cand in candidates:
        prec = cand.precision
        pair = {"candidate": side_label(cand), "precision": prec, "encoder": {}, "error": None, "items": [],
                "pictures": [], "thresholds": thresholds_for([ref_enc.precision, prec], overrides)}
        try:
            enc, owned = _open(cand, model, model.device, options or {}, sweep)
            pair["encoder"] = enc.describe()
            opened.append((enc, owned))
        except Exception as exc:
            pair["error"] = error_text(exc)
            opened.append(None)
        pairs.append(pair)
    parts: list[list[dict]] = [[] for _ in pairs]
    first = True
    stopped = None  # why the run ended early: the reference failed, e.g. on a CUDA error a candidate left behind
    try:
        for image_name, image in images:
            if stopped:
                break
            for size in sizes:
                x = model.preprocess(image, size)
                hw = f"{x.shape[-2]}x{x.shape[-1]}"
                with torch.inference_mode():
                    try:
                        ref = {"features": ref_enc(x)}
                        ref["labels"] = label_map(ref["features"], text)
                    except Exception as exc:
                        # a CUDA error is sticky: nothing after it runs, but what finished is reported
                        stopped = f"stopped at {image_name} {hw}: reference {ref_name}: {error_text(exc)}"
                        break
                    for pair, slot, acc in zip(pairs, opened, parts):
                        if slot is None or pair["error"]:
                            continue
                        try:
                            feats = slot[0](x)
                            cand = {"features": feats, "labels": label_map(feats, text)}
                            m = map_metrics(ref["features"], feats, ref["labels"], cand["labels"])
                        except Exception as exc:
                            pair["error"] = f"{image_name} {hw}: {error_text(exc)}"
                            continue
                        acc.append(m)
                        item = {"image": image_name, "size": size if isinstance(size, int) else list(size),
                                "input": hw, **summarize([m])}
                        item["failures"] = failures(item, pair["thresholds"])
                        item["passed"] = not item["failures"]
                        pair["items"].append(item)
                        if out is not None and (first or all_pictures):
                            cand["cos_map"] = m["cos_map"]
                            stem = f"{slug(pair['candidate'])}_vs_{slug(ref_name)}_{slug(Path(image_name).stem)}_{hw}"
                            pair["pictures"] += pair_pictures(out, stem, image, ref, cand,
                                                              (ref_name, pair["candidate"]), len(names), inputs)
                first = False
                if on_step:
                    on_step(f"{image_name} {hw}")
    finally:
        owned = [slot[0] for slot in opened if slot is not None and slot[1]] + ([ref_enc] if ref_owned else [])
        for enc in owned:
            try:
                enc.close()
            except Exception:
                if not stopped:  # after a stop the device may refuse even a release; the stop is the error
                    raise
    for pair, acc in zip(pairs, parts):
        if stopped and not pair["error"]:
            pair["error"] = stopped
        pair["aggregate"] = summarize(acc) if acc else None
        agg_fail = failures(pair["aggregate"], pair["thresholds"]) if acc else []
        pair["failures"] = ([pair["error"]] if pair["error"] else []) + agg_fail
        pair["passed"] = bool(acc) and not pair["error"] and not agg_fail and all(i["passed"] for i in pair["items"])
    return {"mode": "backends", "reference": {"side": ref_name, "encoder": ref_described},
            **_common(model, names, images, sizes), "pairs": pairs, "stopped": stopped,
            "passed": all(p["passed"] for p in pairs) and not stopped}


def _common(model, names, images, sizes) -> dict[str, Any]:
    return {"model": {"name": model.name, "variant": model.variant, "source": model.source},
            "labels": list(names), "images": [{"name": n, "height": int(a.shape[0]), "width": int(a.shape[1])}
                                              for n, a in images],
            "sizes": [s if isinstance(s, int) else list(s) for s in sizes]}


def check_same_variant(models: Sequence[Any]) -> None:
    variants = {m.variant for m in models}
    if len(variants) > 1:
        listing = ", ".join(f"{m.name} is {m.variant}" for m in models)
        raise LsegError(f"cross-checkpoint comparison needs one variant, but {listing}; compare checkpoints of "
                        "the same architecture")


def compare_checkpoints(
    models: Sequence[Any], images: Sequence[tuple[str, np.ndarray]],
    sizes: Sequence[int | tuple[int, int]] = DEFAULT_SIZES,
    labels: str | Sequence[str] = DEFAULT_LABELS, out_dir: str | Path | None = None, all_pictures: bool = False,
    on_step: Callable[[str], None] | None = None, inputs: Sequence[Any] = (),
) -> dict[str, Any]:
    """Eager fp32 features of each checkpoint (same variant) pairwise → similarity report (no thresholds).

    Labels of each checkpoint come from its own text tower, i.e. what segmenting with it would give.
    Pictures never replace one of ``inputs``; ``on_step("image HxW")`` is called after each image × size.
    """
    from .api import split_labels
    from .fileio import refuse_overwriting_inputs
    from .viz import pca_rgb, save_png, side_by_side

    if len(models) < 2:
        raise LsegError("cross-checkpoint mode needs at least two checkpoints")
    check_same_variant(models)
    names = split_labels(labels) if isinstance(labels, str) else list(labels)
    ids = [m.name if [n.name for n in models].count(m.name) == 1 else f"{m.name}#{i}" for i, m in enumerate(models)]
    texts = [m.encode_text(names) for m in models]
    n = len(models)
    parts: dict[tuple[int, int], list[dict]] = {(i, j): [] for i in range(n) for j in range(i + 1, n)}
    pictures: list[str] = []
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    first = True
    for image_name, image in images:
        for size in sizes:
            x = models[0].preprocess(image, size)  # one variant → one normalization, one tensor for all
            hw = f"{x.shape[-2]}x{x.shape[-1]}"
            with torch.inference_mode():
                feats = [m.encode_image(x.to(m.device)) for m in models]
                labs = [label_map(f, t) for f, t in zip(feats, texts)]
            for (i, j), acc in parts.items():
                acc.append(map_metrics(feats[i], feats[j], labs[i], labs[j]))
            if out is not None and (first or all_pictures):
                stem = f"checkpoints_{slug(Path(image_name).stem)}_{hw}"
                refuse_overwriting_inputs([out / f"{stem}_pca.png", out / f"{stem}_labels.png"], inputs)
                rgb0, basis = pca_rgb(feats[0][0])
                rgbs = [rgb0] + [pca_rgb(f[0], basis)[0] for f in feats[1:]]
                panels = [_nearest(rgb, image.shape[:2]) for rgb in rgbs]
                save_png(side_by_side(panels, [f"{k} (PCA)" for k in ids]), out / f"{stem}_pca.png")
                save_png(side_by_side([image] + [_label_rgb(lb, len(names), image.shape[:2]) for lb in labs],
                                      ["image"] + ids),
                         out / f"{stem}_labels.png")
                pictures += [f"{stem}_pca.png", f"{stem}_labels.png"]
            first = False
            if on_step:
                on_step(f"{image_name} {hw}")
    pairs = [{"a": ids[i], "b": ids[j], **summarize(acc)} for (i, j), acc in parts.items()]
    return {"mode": "checkpoints", "checkpoints": [{"id": k, "source": m.source} for k, m in zip(ids, models)],
            **_common(models[0], names, images, sizes), "pairs": pairs, "pictures": pictures, "passed": True}


def write_report(report: dict[str, Any], path: str | Path, env: dict[str, Any]) -> Path:
    """``compare.json``: the report plus environment, lsegrt version and time."""
    from .report import stamp, write_json

    return write_json(path, {**stamp(), "environment": env, **report})
