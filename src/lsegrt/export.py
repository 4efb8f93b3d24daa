"""ONNX export of the image encoder (docs/ARCHITECTURE.md §8, §10).

Graph: input ``image`` (B,3,H,W) float32 → output ``features`` (B,512,H/2,W/2) float32 unit vectors,
batch/H/W dynamic (H, W multiples of 32). ``precision`` sets the weights and compute inside the graph
(fp16/bf16 with LayerNorm and the final L2 norm in fp32); I/O stays float32 so every consumer sees the
same contract.

Exporter: opsets below 18 use the TorchScript exporter (``dynamo=False``): the dynamo exporter emits
opset 18 and its down-conversion to 17 fails on this graph (onnx version_converter, "axes input to
attribute"), while the TorchScript one exports the same dynamic graph in under a second per small model
and matches PyTorch to ≈1e-6. Opset ≥ 18 uses the dynamo exporter.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .backends.base import check_precision
from .errors import LsegError, require
from .sidecar import check_engine_output, engine_lock, publish, runtime_versions, sha256_file, staging

INPUT, OUTPUT = "image", "features"
MIN_OPSET = 14
# torch.onnx.export keeps global state (GLOBALS.in_onnx_export): two threads exporting at once fail
_EXPORTING = threading.Lock()
PROTOBUF_LIMIT = 2**31 - 1


def onnx_request(model, precision: str, opset: int) -> dict[str, Any]:
    """What an exported ONNX depends on (the sidecar's `request`)."""
    return {
        "backend": "onnx",
        "checkpoint_sha256": model.sha256,
        "checkpoint_name": model.name,
        "variant": model.variant,
        "precision": precision,
        "opset": opset,
        "torch": torch.__version__,
    }


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, external_data: bool) -> None:
    with _EXPORTING:
        _export_unlocked(module, example, path, opset, external_data)


def _export_unlocked(module: torch.nn.Module, example: torch.Tensor, path: Path, opset: int,
                     external_data: bool) -> None:
    if opset < 18:
        dynamic_axes = {INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch", 2: "height_2", 3: "width_2"}}
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
                              dynamo=False)
        return
    batch = torch.export.Dim("batch", min=1, max=1024)
    h = torch.export.Dim("h32", min=1, max=256)
    w = torch.export.Dim("w32", min=1, max=256)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes={"image": {0: batch, 2: 32 * h, 3: 32 * w}},
                                    opset_version=opset, dynamo=True, optimize=True)
        program.save(str(path), external_data=external_data)


# Parity floors of the ONNX Runtime check (mean, min of the per-pixel cosine to PyTorch at the same
# precision, on seeded random inputs): far below what a faithful export gives (fp32 ≈ 1 - 1e-7, fp16
# ≈ 1 - 1e-6 on the tiny models, mean 0.9999985 for ViT-L/16 fp16 on photos, docs/BENCHMARKS.md),
# far above what a broken one gives (a wrong graph scores ≈ 0).
PARITY = {"fp32": (0.9999, 0.999), "fp16": (0.999, 0.99)}


def verify_onnx(path: Path, model, precision: str, sizes=((1, 64, 96), (2, 96, 64)), device="cpu") -> dict[str, Any]:
    """onnx.checker, then ONNX Runtime vs PyTorch (same precision) at sizes other than the trace size.

    Raises :class:`LsegError` when the graph's output has another shape or its cosine to PyTorch falls
    below :data:`PARITY`: an export that does not reproduce the model is a failed export.
    """
    onnx = require("onnx", "ONNX verification")
    ort = require("onnxruntime", "ONNX verification")
    from .backends.common import encoder_module

    onnx.checker.check_model(str(path))
    if precision == "bf16":
        return {"checker": "ok", "onnxruntime": "skipped: ONNX Runtime's CPU kernels have no bfloat16 Conv"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    module = encoder_module(model, precision, torch.device(device))
    gen = torch.Generator().manual_seed(0)
    checks = []
    floor_mean, floor_min = PARITY[precision]
    for b, h, w in sizes:
        x = torch.randn(b, 3, h, w, generator=gen)
        with torch.inference_mode():
            ref = module(x.to(device)).cpu()
        out = torch.from_numpy(session.run([OUTPUT], {INPUT: x.numpy()})[0])
        if out.shape != ref.shape:
            raise LsegError(f"exported ONNX gives shape {tuple(out.shape)} at {b}x3x{h}x{w}, PyTorch {tuple(ref.shape)}")
        cos = (out * ref).sum(1)
        check = {"shape": [b, 3, h, w], "max_abs_error": float((out - ref).abs().max()),
                 "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}
        if not (check["cosine_mean"] >= floor_mean and check["cosine_min"] >= floor_min):
            raise LsegError(f"exported ONNX does not reproduce the model at {b}x3x{h}x{w}: cosine to PyTorch mean "
                            f"{check['cosine_mean']:.6f}, min {check['cosine_min']:.6f} (needs ≥ {floor_mean}, "
                            f"≥ {floor_min} in {precision}); nothing was written")
        checks.append(check)
    return {"checker": "ok", "onnxruntime": ort.__version__, "checks": checks}


def export_onnx(
    model,
    path: str | Path,
    *,
    precision: str = "fp32",
    opset: int = 17,
    trace_size: tuple[int, int] = (480, 480),
    external_data: bool | None = None,
    verify: bool = True,
    verify_sizes=None,
) -> dict[str, Any]:
    """Export ``model``'s image encoder to ``path`` (+ ``path.json`` sidecar); returns the sidecar info.

    ``trace_size`` is the example input (H, W); verification then runs at other sizes, on the staged
    file before it is published (a failed check leaves nothing behind). External data is used when
    the weights approach protobuf's 2 GB limit (or when asked); the data file, ``path.name + ".data"``,
    is bound to the sidecar like the graph. Writers of one path take turns; each stages its files in
    its own folder, so concurrent exports never read each other's half-written graphs.
    """
    from .backends.common import encoder_module

    check_precision(precision)
    require("onnx", "ONNX export")
    if opset < MIN_OPSET:
        raise LsegError(f"opset {opset} is too old: LSeg needs opset ≥ {MIN_OPSET} (17 recommended, LayerNormalization)")
    path = check_engine_output(path, (".onnx",), inputs=(model.file,))
    h, w = trace_size
    if h % 32 or w % 32:
        raise LsegError(f"trace size {h}x{w}: H and W must be multiples of 32")
    module = encoder_module(model, precision, torch.device("cpu"))
    nbytes = sum(p.numel() * p.element_size() for p in module.parameters())
    if external_data is None:
        external_data = nbytes > 0.9 * PROTOBUF_LIMIT
    data_name = path.name + ".data"
    with engine_lock(path), staging(path) as stage:
        staged = stage / path.name
        start = time.perf_counter()
        example = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        if external_data:
            raw = stage / "raw" / path.name
            raw.parent.mkdir()
            _export(module, example, raw, opset, True)
            _stage_external(raw, staged, data_name)  # one data file, named for the final graph
        else:
            _export(module, example, staged, opset, False)
        seconds = time.perf_counter() - start
        info: dict[str, Any] = {
            "export_seconds": round(seconds, 2),
            "trace_size": [h, w],
            "external_data": bool(external_data),
            "weights_bytes": nbytes,
            "checkpoint_file": str(model.file or model.source),
            "io": {"input": [INPUT, "float32", ["batch", 3, "height", "width"]],
                   "output": [OUTPUT, "float32", ["batch", 512, "height/2", "width/2"]]},
            **runtime_versions(),
        }
        if verify:
            info["verification"] = verify_onnx(staged, model, precision,
                                               **({"sizes": verify_sizes} if verify_sizes else {}))
        info["onnx_sha256"] = sha256_file(staged)
        data = {data_name: stage / data_name} if external_data else {}
        publish(path, staged, onnx_request(model, precision, opset), info, data_files=data,
                engine_sha256=info["onnx_sha256"])
        if not external_data:
            (path.parent / data_name).unlink(missing_ok=True)  # left by an earlier external-data export
    return info


def _stage_external(raw: Path, staged: Path, data_name: str) -> None:
    """Re-save the exporter's graph with all tensors in one data file ``data_name`` beside ``staged``."""
    onnx = require("onnx", "ONNX export")
    graph = onnx.load(str(raw))  # pulls in whatever external tensors the exporter wrote
    onnx.save_model(graph, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data_name)
