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
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .backends.base import check_precision
from .errors import LsegError, require
from .fileio import check_output_path
from .sidecar import runtime_versions, sha256_file, write_sidecar

INPUT, OUTPUT = "image", "features"
MIN_OPSET = 14
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


def verify_onnx(path: Path, model, precision: str, sizes=((1, 64, 96), (2, 96, 64)), device="cpu") -> dict[str, Any]:
    """onnx.checker, then ONNX Runtime vs PyTorch (same precision) at sizes other than the trace size."""
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
    for b, h, w in sizes:
        x = torch.randn(b, 3, h, w, generator=gen)
        with torch.inference_mode():
            ref = module(x.to(device)).cpu()
        out = torch.from_numpy(session.run([OUTPUT], {INPUT: x.numpy()})[0])
        if out.shape != ref.shape:
            raise LsegError(f"exported ONNX gives shape {tuple(out.shape)} at {b}x3x{h}x{w}, PyTorch {tuple(ref.shape)}")
        cos = (out * ref).sum(1)
        checks.append({"shape": [b, 3, h, w], "max_abs_error": float((out - ref).abs().max()),
                       "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())})
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

    ``trace_size`` is the example input (H, W); verification then runs at other sizes. External data is
    used when the weights approach protobuf's 2 GB limit (or when asked).
    """
    from .backends.common import encoder_module

    check_precision(precision)
    require("onnx", "ONNX export")
    if opset < MIN_OPSET:
        raise LsegError(f"opset {opset} is too old: LSeg needs opset ≥ {MIN_OPSET} (17 recommended, LayerNormalization)")
    path = check_output_path(path)
    if path.suffix != ".onnx":
        raise LsegError(f"ONNX output must end in .onnx: {path}")
    h, w = trace_size
    if h % 32 or w % 32:
        raise LsegError(f"trace size {h}x{w}: H and W must be multiples of 32")
    module = encoder_module(model, precision, torch.device("cpu"))
    nbytes = sum(p.numel() * p.element_size() for p in module.parameters())
    if external_data is None:
        external_data = nbytes > 0.9 * PROTOBUF_LIMIT
    tmp = path.with_name(f".{path.stem}.tmp.onnx")
    start = time.perf_counter()
    try:
        _export(module, torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0)), tmp, opset, external_data)
        seconds = time.perf_counter() - start
        if external_data:
            # the data file name is recorded inside the graph; keep it and rename the pair together
            _finalize_external(tmp, path)
        else:
            tmp.replace(path)
    finally:
        for leftover in tmp.parent.glob(tmp.name + "*"):
            leftover.unlink()
    info: dict[str, Any] = {
        "export_seconds": round(seconds, 2),
        "trace_size": [h, w],
        "external_data": bool(external_data),
        "weights_bytes": nbytes,
        "onnx_sha256": sha256_file(path),
        "io": {"input": [INPUT, "float32", ["batch", 3, "height", "width"]],
               "output": [OUTPUT, "float32", ["batch", 512, "height/2", "width/2"]]},
        **runtime_versions(),
    }
    if verify:
        info["verification"] = verify_onnx(path, model, precision, **({"sizes": verify_sizes} if verify_sizes else {}))
    write_sidecar(path, onnx_request(model, precision, opset), info)
    return info


def _finalize_external(tmp: Path, path: Path) -> None:
    """Re-save with one data file named after the final graph; the graph file is renamed in last."""
    onnx = require("onnx", "ONNX export")
    graph = onnx.load(str(tmp))  # pulls in whatever external tensors the exporter wrote
    staged = path.with_name(f".{path.stem}.staged.onnx")
    onnx.save_model(graph, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data")
    staged.replace(path)
