"""Latency/throughput sweeps of image encoders: models × backends × precisions × sizes × batches.

Method (LSEG_SPEC.md §10 lists what an earlier benchmark got wrong):

- Inputs are random normalized images (uniform pixels through the model's mean/std), ``rotation``
  distinct tensors created on the device before timing and used in turn: never zeros, never one
  constant tensor. Outputs stay on the device.
- Warm-up: ``warmup_iters`` calls and at least ``warmup_seconds``, synchronizing after each call.
- Timed loop: until ``min_seconds`` have passed or ``max_iters`` calls are done, whichever comes
  first (always at least one call). On CUDA, one pair of CUDA events is recorded on the current stream
  around each call and read after a single synchronize at the end (``gpu_ms_*``); ``host_ms_*`` is the
  perf_counter time of each call as seen by the caller, i.e. the launch for asynchronous backends. On
  the CPU the call is synchronous: ``host_ms_*`` is the latency and the ``gpu_*`` columns are null.
- Host→device copy of a pinned input and device→host copy of the features into pinned memory are
  timed separately with events (``h2d_*``, ``d2h_*``) and never folded into the latency.
- ``gpu_peak_mem_mb`` is ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``: it
  sees PyTorch's caching allocator only (weights, inputs, activations of torch/compile/aoti), not
  memory that TensorRT or onnxruntime allocate themselves.
- FLOPs come from :mod:`lsegrt.flops` (eager fp32 encoder, counted once per variant and shape).

Every record has every field of :data:`FIELDS` (null where it does not apply or the run failed).
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .errors import LsegError

DEFAULT_SIZES = (256, 320, 384, 480, 640, 768, 1024)
# Backends that can run a prebuilt file given with --engine (compile: a saved build, loaded before it
# compiles the checkpoint); the others run the checkpoint itself.
ENGINE_BACKENDS = ("aoti", "onnxruntime", "tensorrt", "compile")
STATS = ("mean", "std", "min", "p50", "p90", "p99")

# Field → type, in CSV column order. "?" marks fields that may be null.
FIELDS: dict[str, str] = {
    "model": "str", "checkpoint": "str?", "variant": "str", "backend": "str", "precision": "str",
    "size": "int|str",  # side of a square input, else "HxW"
    "height": "int", "width": "int", "batch": "int", "device": "str",
    "status": "str",  # "ok" or "error"
    "error": "str?", "timer": "str",  # "cuda_events" or "perf_counter"
    "cuda_graph": "bool",  # as reported by the backend's describe()
    "warmup_iters": "int?", "iters": "int?",
    **{f"gpu_ms_{s}": "float?" for s in STATS},
    **{f"host_ms_{s}": "float?" for s in STATS},
    "images_per_s": "float?",  # batch / p50 latency (GPU time on CUDA, host time on CPU)
    "images_per_s_sustained": "float?",  # batch · iters / span of the whole timed loop
    "h2d_ms": "float?", "d2h_ms": "float?", "h2d_gbps": "float?", "d2h_gbps": "float?",
    "input_mb": "float", "output_mb": "float",
    "gpu_peak_mem_mb": "float?",
    "gflops": "float?",  # per call, whole batch
    "tflops_per_s": "float?",  # gflops / p50 latency
    "pct_fp16_peak": "float?",  # of the GPU's dense fp16/bf16 tensor-core peak; null if GPU unknown
    "notes": "str?",  # anything a reader must know about this row (e.g. a copy that could not be timed)
    "encoder": "dict",  # the backend's describe(); a JSON string in the CSV
}

# Written into bench.json so that nobody reads a column for more than it is.
CAVEATS = [
    "gpu_ms_*: CUDA events on the current stream around each call; a backend that runs on its own stream "
    "must join it (onnxruntime synchronizes, so its GPU time is its wall time).",
    "host_ms_*: perf_counter around each call; on CUDA this is the launch time for asynchronous backends.",
    "h2d/d2h: pinned-memory copies timed separately; never part of the latency.",
    "gpu_peak_mem_mb: torch.cuda.max_memory_allocated, PyTorch's allocator only; TensorRT and onnxruntime "
    "allocations are not seen.",
    "gflops: eager fp32 image encoder, FlopCounterMode on the meta device (matmul/conv/attention; 1 MAC = 2 FLOP).",
    "pct_fp16_peak: achieved TFLOP/s over the GPU's dense fp16/bf16 tensor-core peak, whatever the precision.",
]


@dataclass(frozen=True)
class Timing:
    """How long to warm up and measure each configuration."""

    warmup_iters: int = 3
    warmup_seconds: float = 0.5
    min_seconds: float = 2.0
    max_iters: int = 100
    copy_iters: int = 10
    rotation: int = 3


# -- models and sizes ------------------------------------------------------------------------------
def model_from_spec(spec: Any, device: str | torch.device = "cpu"):
    """A checkpoint path, ``random:VARIANT[:seedK]`` or an :class:`LSegModel` → an LSegModel on ``device``."""
    from .api import LSegModel, load, random_model

    if isinstance(spec, LSegModel):
        return spec if spec.device == torch.device(device) else spec.to(device)
    text = str(spec)
    if text.startswith("random:"):
        parts = text.split(":")
        seed = parts[2].removeprefix("seed") if len(parts) > 2 else "0"
        if len(parts) > 3 or not seed.isdigit():
            raise LsegError(f"bad model spec {text!r}: expected random:VARIANT or random:VARIANT:seedK")
        return random_model(parts[1], int(seed), device)
    return load(text, device)


def check_model_specs(specs: Sequence[Any]) -> None:
    """Fail before any long run when a checkpoint path does not exist."""
    for spec in specs:
        if isinstance(spec, (str, os.PathLike)) and not str(spec).startswith("random:"):
            if not Path(spec).is_file():
                raise LsegError(f"checkpoint not found: {spec}")


def square_sizes(texts: Sequence[str | int]) -> list[tuple[int, int]]:
    """CLI sizes → exact ``(H, W)``: ``"384"`` means 384×384, ``"480x640"`` is H×W; multiples of 32."""
    from .sizes import check_exact_size, parse_size

    out = []
    for text in texts:
        size = parse_size(str(text))
        out.append(check_exact_size((size, size) if isinstance(size, int) else size))
    return list(dict.fromkeys(out))


def size_label(h: int, w: int) -> int | str:
    return h if h == w else f"{h}x{w}"


# -- environment -----------------------------------------------------------------------------------
def environment(device: str | torch.device) -> dict[str, Any]:
    """What the numbers were measured on: `lsegrt info`'s data (OS, CPU, GPUs, driver, CUDA, package
    versions) plus the device used, its dense peak and the settings that change fp32 speed."""
    from .cli.info import collect  # one collector for `info`, `bench` and `compare`
    from .flops import gpu_peak, gpu_peak_key
    from .sidecar import gpu_info

    device = torch.device(device)
    gpu = gpu_info(str(device))["gpu"] if device.type == "cuda" else None
    return {
        "device": str(device),
        "gpu": gpu,
        **collect(),
        "torch_threads": torch.get_num_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "peak_tflops_key": gpu_peak_key(gpu),
        "peak_tflops": gpu_peak(gpu),
    }


# -- one configuration -----------------------------------------------------------------------------
def _stats(prefix: str, values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    return {f"{prefix}_mean": float(v.mean()), f"{prefix}_std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            f"{prefix}_min": float(v.min()), f"{prefix}_p50": float(p50), f"{prefix}_p90": float(p90),
            f"{prefix}_p99": float(p99)}


def make_inputs(model, batch: int, h: int, w: int, device: torch.device, count: int, seed: int = 0):
    """``count`` distinct (batch,3,h,w) float32 normalized random images on ``device``."""
    gen = torch.Generator(device=device).manual_seed(seed)
    mean = torch.tensor(model.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, device=device).view(1, 3, 1, 1)
    return [(torch.rand(batch, 3, h, w, device=device, generator=gen) - mean) / std for _ in range(max(1, count))]


def _warm_up(encoder, inputs, timing: Timing, sync: Callable[[], None]) -> int:
    n, start = 0, time.perf_counter()
    while n < timing.warmup_iters or time.perf_counter() - start < timing.warmup_seconds:
        encoder(inputs[n % len(inputs)])
        sync()  # so that the warm-up time is real work, not a queue of launches
        n += 1
    return n


def _time_cuda(encoder, inputs, timing: Timing) -> tuple[dict[str, Any], torch.Tensor]:
    stream = torch.cuda.current_stream()
    starts: list[torch.cuda.Event] = []
    ends: list[torch.cuda.Event] = []
    host: list[float] = []
    out = None
    begin = time.perf_counter()
    while not host or (len(host) < timing.max_iters and time.perf_counter() - begin < timing.min_seconds):
        x = inputs[len(host) % len(inputs)]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record(stream)
        out = encoder(x)
        end.record(stream)
        host.append((time.perf_counter() - t0) * 1e3)
        starts.append(start)
        ends.append(end)
    torch.cuda.synchronize()
    gpu = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    span_ms = starts[0].elapsed_time(ends[-1])
    return {"iters": len(host), **_stats("gpu_ms", gpu), **_stats("host_ms", host), "_span_ms": span_ms}, out


def _time_cpu(encoder, inputs, timing: Timing) -> tuple[dict[str, Any], torch.Tensor]:
    host: list[float] = []
    out = None
    begin = time.perf_counter()
    while not host or (len(host) < timing.max_iters and time.perf_counter() - begin < timing.min_seconds):
        x = inputs[len(host) % len(inputs)]
        t0 = time.perf_counter()
        out = encoder(x)
        host.append((time.perf_counter() - t0) * 1e3)
    span_ms = (time.perf_counter() - begin) * 1e3
    return {"iters": len(host), **_stats("host_ms", host), "_span_ms": span_ms}, out


def _time_copies(x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median ms of a pinned→device copy of ``x``'s shape and a device→pinned copy of ``y``."""
    pinned_in = x.cpu().pin_memory()
    dev_in = torch.empty_like(x)
    pinned_out = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
    stream = torch.cuda.current_stream()
    result = {}
    for name, dst, src in (("h2d", dev_in, pinned_in), ("d2h", pinned_out, y)):
        dst.copy_(src, non_blocking=True)  # untimed first copy (pinned-page mapping, allocator)
        pairs = []
        for _ in range(max(1, repeats)):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            dst.copy_(src, non_blocking=True)
            end.record(stream)
            pairs.append((start, end))
        torch.cuda.synchronize()
        ms = float(np.median([s.elapsed_time(e) for s, e in pairs]))
        result[f"{name}_ms"] = ms
        result[f"{name}_gbps"] = src.numel() * src.element_size() / (ms / 1e3) / 1e9 if ms > 0 else None
    return result


def measure(encoder, model, h: int, w: int, batch: int, timing: Timing = Timing()) -> dict[str, Any]:
    """Time ``encoder`` on (batch,3,h,w) inputs on ``encoder.device`` → the measured fields of a record."""
    device = encoder.device
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    with torch.inference_mode():
        inputs = make_inputs(model, batch, h, w, device, timing.rotation)
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats(device)
        warm = _warm_up(encoder, inputs, timing, sync)
        if cuda:
            with torch.cuda.device(device):
                timed, out = _time_cuda(encoder, inputs, timing)
            timed["gpu_peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            try:
                with torch.cuda.device(device):
                    timed.update(_time_copies(inputs[0], out, timing.copy_iters))
            except Exception as exc:  # e.g. no room for a pinned copy of a huge output: keep the timing
                timed["notes"] = f"copies not timed ({error_text(exc)})"
        else:
            timed, out = _time_cpu(encoder, inputs, timing)
    expected = (batch, 512, h // 2, w // 2)
    if tuple(out.shape) != expected:
        raise LsegError(f"{encoder.name} returned {tuple(out.shape)}, expected {expected}")
    span = timed.pop("_span_ms")
    p50 = timed["gpu_ms_p50"] if cuda else timed["host_ms_p50"]
    return {**timed, "warmup_iters": warm, "timer": "cuda_events" if cuda else "perf_counter",
            "images_per_s": batch / (p50 / 1e3) if p50 > 0 else None,
            "images_per_s_sustained": batch * timed["iters"] / (span / 1e3) if span > 0 else None}


# -- the sweep -------------------------------------------------------------------------------------
def empty_record(model, backend: str, precision: str, h: int, w: int, batch: int, device) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(FIELDS)
    rec.update(
        model=model.name, checkpoint=str(model.file) if model.file else None, variant=model.variant,
        backend=backend, precision=precision, size=size_label(h, w), height=h, width=w, batch=batch,
        device=str(device), status="error", cuda_graph=False, encoder={},
        timer="cuda_events" if torch.device(device).type == "cuda" else "perf_counter",
        input_mb=batch * 3 * h * w * 4 / 2**20, output_mb=batch * 512 * (h // 2) * (w // 2) * 4 / 2**20,
    )
    return rec


def error_text(exc: BaseException) -> str:
    """One line for a failed configuration: the LsegError message, or the exception type and first line."""
    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if not isinstance(exc, LsegError) else first


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _add_flops(rec: dict[str, Any], env_peak: dict[str, float] | None) -> None:
    from .flops import encoder_flops

    try:
        flops = encoder_flops(rec["variant"], rec["height"], rec["width"], rec["batch"])
    except Exception:  # a counter failure must not cost the timing result
        return
    rec["gflops"] = flops / 1e9
    p50 = rec["gpu_ms_p50"] if rec["gpu_ms_p50"] is not None else rec["host_ms_p50"]
    if p50:
        rec["tflops_per_s"] = flops / (p50 / 1e3) / 1e12
        if env_peak and rec["timer"] == "cuda_events":
            rec["pct_fp16_peak"] = 100.0 * rec["tflops_per_s"] / env_peak["fp16"]


def count_configs(models, backends, precisions, sizes, batches) -> int:
    return len(models) * len(backends) * len(precisions) * len(sizes) * len(batches)


def sweep(
    models: Sequence[Any], backends: Sequence[str], precisions: Sequence[str],
    sizes: Sequence[tuple[int, int]], batches: Sequence[int], device: str | torch.device = "cpu",
    engine: str | None = None, options: dict[str, Any] | None = None, timing: Timing = Timing(),
    peak: dict[str, float] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record per configuration, in order; failures are records with ``status="error"``.

    ``models``: paths, ``random:VARIANT[:seedK]`` specs or LSegModels, loaded one at a time.
    ``options`` go to every :meth:`Encoder.open` that declares them (e.g. ``cuda_graph=True``; see
    :func:`lsegrt.backends.base.options_for`).
    """
    from .backends.base import Encoder, check_precision, options_for

    device = torch.device(device)
    for p in precisions:
        check_precision(p)
    for b in batches:
        if int(b) < 1:
            raise LsegError(f"batch size {b}: must be at least 1")
    check_model_specs(models)
    per_backend = {b: options_for(b, options, backends) for b in backends}
    for spec in models:
        model = model_from_spec(spec, device)
        for backend in backends:
            for precision in precisions:
                encoder, open_error = None, None
                try:
                    encoder = Encoder.open(backend, checkpoint=model, device=device, precision=precision,
                                           engine=engine if backend in ENGINE_BACKENDS else None,
                                           **per_backend[backend])
                    described = encoder.describe()
                except Exception as exc:
                    open_error, described = error_text(exc), {}
                for h, w in sizes:
                    for batch in batches:
                        rec = empty_record(model, backend, precision, h, w, int(batch), device)
                        rec["encoder"] = described
                        # what runs, as the backend tells it (describe() first, else its attribute)
                        rec["cuda_graph"] = bool(described.get("cuda_graph", getattr(encoder, "cuda_graph", False)))
                        if (options or {}).get("cuda_graph") and not rec["cuda_graph"]:
                            rec["notes"] = f"cuda_graph requested; the {backend} backend does not report using one"
                        if open_error:
                            rec["error"] = open_error
                        else:
                            try:
                                measured = measure(encoder, model, h, w, int(batch), timing)
                                notes = [rec["notes"], measured.pop("notes", None)]
                                rec.update(measured, notes="; ".join(n for n in notes if n) or None)
                                rec["status"] = "ok"
                                _add_flops(rec, peak)
                            except Exception as exc:
                                rec["error"] = error_text(exc)
                            _free(device)
                        yield rec
                if encoder is not None:
                    encoder.close()
                del encoder
                _free(device)
        del model
        _free(device)


# -- outputs ---------------------------------------------------------------------------------------
def report(records: list[dict[str, Any]], env: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    from . import __version__

    return {"lsegrt_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "environment": env, "settings": settings, "caveats": CAVEATS, "fields": FIELDS, "records": records}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(payload: dict[str, Any]) -> str:
    """Strict JSON (NaN/inf become null), keys in insertion order."""
    return json.dumps(_clean(payload), indent=2, allow_nan=False, default=str) + "\n"


def latency_column(records: Sequence[dict[str, Any]]) -> str:
    """``gpu_ms_p50`` when any record has GPU times, else ``host_ms_p50`` (CPU runs)."""
    return "gpu_ms_p50" if any(r.get("gpu_ms_p50") is not None for r in records) else "host_ms_p50"


def write_outputs(payload: dict[str, Any], out_dir: str | os.PathLike, plot: bool = True) -> dict[str, Path | None]:
    """Write bench.json, bench.csv and bench.png (skipped when no configuration succeeded, or when
    ``plot`` is False: the CLI rewrites json/csv after every configuration so an interrupted sweep keeps
    what it measured) into ``out_dir``."""
    import csv
    import io

    from .fileio import write_text
    from .viz import latency_plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = payload["records"]
    paths: dict[str, Path | None] = {"json": write_text(out / "bench.json", to_json(payload))}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
    writer.writeheader()
    for rec in _clean(records):
        writer.writerow({k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in rec.items()})
    paths["csv"] = write_text(out / "bench.csv", buf.getvalue())
    ok = [r for r in records if r["status"] == "ok"]
    paths["png"] = None
    if ok and plot:
        mixed = any(r["height"] != r["width"] for r in ok)
        rows = [{**r, "size": f"{r['height']}x{r['width']}" if mixed else r["height"]} for r in ok]
        group = ("backend", "precision", "batch")
        if len({r["model"] for r in ok}) > 1:
            group = ("model",) + group
        y = latency_column(ok)
        title = f"{payload['environment'].get('gpu') or payload['environment'].get('cpu')}: {y}"
        latency_plot(rows, out / "bench.png", x="size", y=y, group=group, logy=True, title=title)
        paths["png"] = out / "bench.png"
    return paths

