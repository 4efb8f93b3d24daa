"""Latency/throughput sweeps of image encoders: models × backends × precisions × sizes × batches.

Method (docs/ARCHITECTURE.md §10 lists what an earlier benchmark got wrong):

- Inputs are random normalized images (uniform pixels through the model's mean/std), ``rotation``
  distinct tensors created on the device before timing and used in turn: never zeros, never one
  constant tensor. Outputs stay on the device.
- Warm-up: ``warmup_iters`` calls and at least ``warmup_seconds``, synchronizing after each call.
- Timed loop: at least ``min_iters`` calls (default 5: no percentile from one sample), then until
  ``min_seconds`` have passed or ``max_iters`` calls are done, whichever comes first; the count is
  every record's ``iters``. On CUDA, one pair of CUDA events is recorded on the current stream
  around each call and read after a single synchronize at the end (``gpu_ms_*``); ``host_ms_*`` is the
  perf_counter time of each call as seen by the caller, i.e. the launch for asynchronous backends. On
  the CPU the call is synchronous: ``host_ms_*`` is the latency and the ``gpu_*`` columns are null.
- Host→device copy of a pinned input and device→host copy of the features into pinned memory are
  timed separately with events (``h2d_*``, ``d2h_*``) and never folded into the latency.
- ``gpu_peak_mem_mb`` is ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``: it
  sees PyTorch's caching allocator only (weights, inputs, activations of torch/compile/aoti), not
  memory that TensorRT or onnxruntime allocate themselves.
- FLOPs come from :mod:`lsegrt.flops` (eager fp32 encoder, counted once per variant and shape).

Each configuration is one :class:`BenchRecord`; :data:`FIELDS` names its fields and their JSON types
(null where a field does not apply or the run failed).
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .environment import measurement_environment as environment  # noqa: F401  (bench.environment: older name)
from .errors import LsegError
from .report import error_text

DEFAULT_SIZES = (256, 320, 384, 480, 640, 768, 1024)
# Backends that can run a prebuilt file given with --engine (compile: a saved build, loaded before it
# compiles the checkpoint); the others run the checkpoint itself.
ENGINE_BACKENDS = ("aoti", "onnxruntime", "tensorrt", "compile")
STATS = ("mean", "std", "min", "p50", "p90", "p99")



@dataclass(frozen=True)
class Stats:
    """Summary of per-call times in milliseconds (written as ``<prefix>_<stat>`` columns)."""

    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stats":
        v = np.asarray(values, dtype=np.float64)
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        return cls(mean=float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else 0.0, min=float(v.min()),
                   p50=float(p50), p90=float(p90), p99=float(p99))

    def columns(self, prefix: str) -> dict[str, float]:
        """``{"<prefix>_mean": ..., ..., "<prefix>_p99": ...}``: the flat form of records and :func:`measure`."""
        return {f"{prefix}_{s}": getattr(self, s) for s in STATS}

    @classmethod
    def take(cls, flat: dict[str, Any], prefix: str) -> "Stats | None":
        """Remove ``<prefix>_*`` from ``flat`` and return them as Stats (None when absent)."""
        if f"{prefix}_p50" not in flat:
            return None
        return cls(**{s: flat.pop(f"{prefix}_{s}") for s in STATS})


@dataclass
class BenchRecord:
    """One configuration of a sweep: what ran, how it was timed and what came out. Fields are in CSV
    column order (each :class:`Stats` as six ``gpu_ms_*``/``host_ms_*`` columns); None where a field does
    not apply (GPU columns on the CPU) or the run failed."""

    model: str
    checkpoint: str | None
    variant: str
    backend: str
    precision: str
    candidate: str  # backend:precision[:options][@engine], as bench --candidate names it
    size: int | str  # side of a square input, else "HxW"
    height: int
    width: int
    batch: int
    device: str
    status: str = "error"  # "ok" or "error"
    error: str | None = None
    timer: str = "perf_counter"  # "cuda_events" or "perf_counter"
    cuda_graph: bool = False  # as reported by the backend's describe()
    warmup_iters: int | None = None
    iters: int | None = None  # timed calls behind every statistic of this record
    gpu_ms: Stats | None = None  # CUDA events around each call (GPU time)
    host_ms: Stats | None = None  # perf_counter around each call (the latency on the CPU)
    images_per_s: float | None = None  # batch / p50 latency (GPU time on CUDA, host time on CPU)
    images_per_s_sustained: float | None = None  # batch · iters / span of the whole timed loop
    speedup_vs_first: float | None = None  # first candidate's p50 / this p50, same model, size and batch
    h2d_ms: float | None = None
    d2h_ms: float | None = None
    h2d_gbps: float | None = None
    d2h_gbps: float | None = None
    input_mb: float = 0.0
    output_mb: float = 0.0
    gpu_peak_mem_mb: float | None = None
    gflops: float | None = None  # per call, whole batch
    tflops_per_s: float | None = None  # gflops / p50 latency
    pct_fp16_peak: float | None = None  # of the GPU's dense fp16/bf16 tensor-core peak; null if GPU unknown
    notes: str | None = None  # anything a reader must know about this row (e.g. a copy that could not be timed)
    encoder: dict = field(default_factory=dict)  # the backend's describe(); a JSON string in the CSV

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def latency_ms(self) -> float | None:
        """p50 latency: GPU time on CUDA, host time on the CPU."""
        stats = self.gpu_ms or self.host_ms
        return stats.p50 if stats else None

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready: the keys of :data:`FIELDS`, in order."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _STATS_FIELDS:
                out.update(value.columns(f.name) if value else {f"{f.name}_{s}": None for s in STATS})
            else:
                out[f.name] = dict(value) if isinstance(value, dict) else value
        return out


_STATS_FIELDS = ("gpu_ms", "host_ms")


def _json_type(annotation: str) -> str:
    """'int | str' → 'int|str', 'float | None' → 'float?' (the schema written into bench.json)."""
    parts = [p.strip() for p in annotation.split("|")]
    nullable = "None" in parts
    return "|".join(p for p in parts if p != "None") + ("?" if nullable else "")


# Field → JSON type, in CSV column order ("?": may be null); written into bench.json for its readers.
FIELDS: dict[str, str] = {}
for _f in fields(BenchRecord):
    if _f.name in _STATS_FIELDS:
        FIELDS.update({f"{_f.name}_{s}": "float?" for s in STATS})
    else:
        FIELDS[_f.name] = _json_type(str(_f.type))
del _f

# Written into bench.json so that nobody reads a column for more than it is.
CAVEATS = [
    "gpu_ms_*: CUDA events on the current stream around each call; a backend that runs on its own stream "
    "must join it (onnxruntime synchronizes, so its GPU time is its wall time).",
    "host_ms_*: perf_counter around each call; on CUDA this is the launch time for asynchronous backends.",
    "iters: timed calls behind every statistic of a record (at least settings.timing.min_iters); with fewer "
    "than 100 calls p99 is interpolated between the slowest calls.",
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
    warmup_seconds: float = 0.5  # and at least this long: compilers and autotuners settle in time, not calls
    min_seconds: float = 2.0
    min_iters: int = 5  # whatever min_seconds says: a percentile of one call is that call
    max_iters: int = 100
    copy_iters: int = 10  # host↔device copies, timed apart from the latency
    rotation: int = 3  # distinct inputs used in turn, so no cache sees one constant tensor

    def __post_init__(self) -> None:
        if self.min_iters < 2:
            raise LsegError(f"min iters {self.min_iters}: must be at least 2 (a percentile of one call is that "
                            "call); the default is 5")
        if self.max_iters < self.min_iters:
            raise LsegError(f"max iters {self.max_iters}: must be at least min iters ({self.min_iters})")
        if self.warmup_iters < 0:
            raise LsegError(f"warm-up iters {self.warmup_iters}: must be 0 or more")
        if not math.isfinite(self.warmup_seconds):
            raise LsegError(f"warm-up seconds {self.warmup_seconds}: must be a finite number of seconds")
        if math.isnan(self.min_seconds):
            raise LsegError("min seconds nan: must be a number of seconds ('inf' for exactly --max-iters calls)")

    def more(self, done: int, began: float) -> bool:
        """Time another call? ``done`` calls so far, the timed loop began at perf_counter ``began``."""
        if done < self.min_iters:
            return True
        return done < self.max_iters and time.perf_counter() - began < self.min_seconds


# -- models and sizes ------------------------------------------------------------------------------
def check_model_specs(specs: Sequence[Any]) -> None:
    """Fail before any long run when a model spec is malformed or a checkpoint file does not exist."""
    from .api import check_model_spec

    for spec in specs:
        if isinstance(spec, (str, os.PathLike)):
            check_model_spec(spec)


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


# -- one configuration -----------------------------------------------------------------------------
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
    while timing.more(len(host), begin):
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
    return {"iters": len(host), **Stats.of(gpu).columns("gpu_ms"), **Stats.of(host).columns("host_ms"),
            "_span_ms": span_ms}, out


def _time_cpu(encoder, inputs, timing: Timing) -> tuple[dict[str, Any], torch.Tensor]:
    host: list[float] = []
    out = None
    begin = time.perf_counter()
    while timing.more(len(host), begin):
        x = inputs[len(host) % len(inputs)]
        t0 = time.perf_counter()
        out = encoder(x)
        host.append((time.perf_counter() - t0) * 1e3)
    span_ms = (time.perf_counter() - begin) * 1e3
    return {"iters": len(host), **Stats.of(host).columns("host_ms"), "_span_ms": span_ms}, out


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
    """Time ``encoder`` on (batch,3,h,w) inputs on ``encoder.device`` → the measured fields of a record,
    flat (``iters``, ``host_ms_p50``, ``gpu_ms_p50``, ... as in :data:`FIELDS`)."""
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
def empty_record(model, backend: str, precision: str, h: int, w: int, batch: int, device,
                 candidate: str | None = None) -> BenchRecord:
    return BenchRecord(
        model=model.name, checkpoint=str(model.file) if model.file else None, variant=model.variant,
        backend=backend, precision=precision, candidate=candidate or f"{backend}:{precision}",
        size=size_label(h, w), height=h, width=w, batch=batch,
        device=str(device), timer="cuda_events" if torch.device(device).type == "cuda" else "perf_counter",
        input_mb=batch * 3 * h * w * 4 / 2**20, output_mb=batch * 512 * (h // 2) * (w // 2) * 4 / 2**20,
    )


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _add_flops(rec: BenchRecord, env_peak: dict[str, float] | None) -> None:
    from .flops import encoder_flops

    try:
        flops = encoder_flops(rec.variant, rec.height, rec.width, rec.batch)
    except Exception:  # a counter failure must not cost the timing result
        return
    rec.gflops = flops / 1e9
    p50 = rec.latency_ms
    if p50:
        rec.tflops_per_s = flops / (p50 / 1e3) / 1e12
        if env_peak and rec.timer == "cuda_events":
            rec.pct_fp16_peak = 100.0 * rec.tflops_per_s / env_peak["fp16"]


def count_configs(models, backends, precisions, sizes, batches, candidates=None) -> int:
    runs = len(candidates) if candidates else len(backends) * len(precisions)
    return len(models) * runs * len(sizes) * len(batches)


def sweep(
    models: Sequence[Any], backends: Sequence[str], precisions: Sequence[str],
    sizes: Sequence[tuple[int, int]], batches: Sequence[int], device: str | torch.device = "cpu",
    engine: str | None = None, options: dict[str, Any] | None = None, timing: Timing = Timing(),
    peak: dict[str, float] | None = None, candidates: Sequence[Any] | None = None,
) -> Iterator[BenchRecord]:
    """Yield one :class:`BenchRecord` per configuration, in order; failures have ``status="error"``.

    ``models``: paths, ``random:VARIANT[:seedK]`` specs or LSegModels, loaded one at a time.
    What runs: ``backends`` × ``precisions``, or instead ``candidates``
    (:class:`lsegrt.backends.base.Candidate`, each with its own options and engine), in order.
    ``options`` go to every :meth:`Encoder.open` that declares them (e.g. ``cuda_graph=True``; see
    :func:`lsegrt.backends.base.options_for`); a candidate's own options override them. Each record's
    ``speedup_vs_first`` compares it with the first run at the same model, size and batch.
    """
    from .api import model_from_spec
    from .backends.base import Candidate, Encoder, check_precision, options_for

    device = torch.device(device)
    runs = list(candidates) if candidates else [Candidate(b, check_precision(p)) for b in backends for p in precisions]
    for b in batches:
        if int(b) < 1:
            raise LsegError(f"batch size {b}: must be at least 1")
    check_model_specs(models)
    names = [r.backend for r in runs]
    per_backend = {b: options_for(b, options, names) for b in names}
    first: dict[tuple, float] = {}
    for spec in models:
        model = model_from_spec(spec, device)
        for index, run in enumerate(runs):
            backend, precision = run.backend, run.precision
            encoder, open_error = None, None
            try:
                encoder = Encoder.open(backend, checkpoint=model, device=device, precision=precision,
                                       engine=run.engine or (engine if backend in ENGINE_BACKENDS else None),
                                       **{**per_backend[backend], **run.options})
                described = encoder.describe()
            except Exception as exc:
                open_error, described = error_text(exc), {}
            for h, w in sizes:
                for batch in batches:
                    rec = empty_record(model, backend, precision, h, w, int(batch), device, run.label)
                    rec.encoder = described
                    # what runs, as the backend tells it (describe() first, else its attribute)
                    rec.cuda_graph = bool(described.get("cuda_graph", getattr(encoder, "cuda_graph", False)))
                    if {**(options or {}), **run.options}.get("cuda_graph") and not rec.cuda_graph:
                        rec.notes = f"cuda_graph requested; the {backend} backend does not report using one"
                    if open_error:
                        rec.error = open_error
                    else:
                        try:
                            measured = measure(encoder, model, h, w, int(batch), timing)
                            rec.gpu_ms, rec.host_ms = Stats.take(measured, "gpu_ms"), Stats.take(measured, "host_ms")
                            notes = "; ".join(n for n in (rec.notes, measured.pop("notes", None)) if n) or None
                            for key, value in measured.items():
                                setattr(rec, key, value)
                            rec.notes, rec.status = notes, "ok"
                            _add_flops(rec, peak)
                            slot = (spec if isinstance(spec, str) else id(spec), h, w, int(batch))
                            if index == 0:
                                first[slot] = rec.latency_ms
                            if first.get(slot):
                                rec.speedup_vs_first = first[slot] / rec.latency_ms
                        except Exception as exc:
                            rec.error = error_text(exc)
                        _free(device)
                    yield rec
            if encoder is not None:
                encoder.close()
            del encoder
            _free(device)
        del model
        _free(device)


# -- outputs ---------------------------------------------------------------------------------------
def report(records: Sequence[BenchRecord], env: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """bench.json's content: stamp, environment, settings, caveats, the field schema and the records."""
    from .report import stamp

    return {**stamp(), "environment": env, "settings": settings, "caveats": CAVEATS, "fields": FIELDS,
            "records": [r.to_dict() for r in records]}


def latency_column(records: Sequence[BenchRecord]) -> str:
    """``gpu_ms_p50`` when any record has GPU times, else ``host_ms_p50`` (CPU runs)."""
    return "gpu_ms_p50" if any(r.gpu_ms is not None for r in records) else "host_ms_p50"


OUTPUT_NAMES = ("bench.json", "bench.csv", "bench.png")


def write_outputs(records: Sequence[BenchRecord], env: dict[str, Any], settings: dict[str, Any],
                  out_dir: str | os.PathLike, plot: bool = True) -> dict[str, Path | None]:
    """Write bench.json, bench.csv and bench.png (skipped when no configuration succeeded, or when
    ``plot`` is False: the CLI rewrites json/csv after every configuration so an interrupted sweep keeps
    what it measured) into ``out_dir``."""
    from .report import write_csv, write_json
    from .viz import latency_plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path | None] = {"json": write_json(out / "bench.json", report(records, env, settings))}
    paths["csv"] = write_csv(out / "bench.csv", [r.to_dict() for r in records], list(FIELDS))
    ok = [r for r in records if r.ok]
    paths["png"] = None
    if ok and plot:
        mixed = any(r.height != r.width for r in ok)
        rows = [{**r.to_dict(), "size": f"{r.height}x{r.width}" if mixed else r.height} for r in ok]
        group = ("candidate", "batch")
        if len({r.model for r in ok}) > 1:
            group = ("model",) + group
        y = latency_column(ok)
        title = f"{env.get('gpu') or env.get('cpu')}: {y}"
        latency_plot(rows, out / "bench.png", x="size", y=y, group=group, logy=True, title=title)
        paths["png"] = out / "bench.png"
    return paths
