"""Where the time of an image encoder goes: per stage, per kernel class, launches and idle gaps.

For one *candidate* (backend ``torch`` or ``compile``, a precision and backend options) at one input
shape, :func:`profile_candidate` measures

- **whole model**: latency as `lsegrt bench` measures it (CUDA events, median), and from
  ``torch.profiler`` over ``iters`` calls (each call synchronized, so each is a window of its own): kernel
  time per kernel class, kernel launches, and the idle gaps between kernels on the GPU timeline (the
  call's span from first kernel start to last kernel end, minus the time some kernel was running).
- **stage by stage** (:mod:`lsegrt.stages`): the same encoder cut into stages — patch embedding / stem,
  block groups, reassemble, decoder projections, refinenets, head, L2 norm — each run on the real
  output of the previous one, eagerly (``torch``) or compiled on its own with the candidate's options
  (``compile``; so a compiled stage-wise run cannot fuse across stage boundaries and its total is
  reported beside, not instead of, the whole-model numbers; with ``channels_last`` the maps pass from
  stage to stage channels-last, :class:`ChannelsLastMaps`). Per stage: wall time (CUDA events around
  each stage in the chained run, mean), kernel time, share, launches, gaps, counted FLOPs
  (:func:`lsegrt.flops.flops_by_stage`: the checkpoint's graph, also for a candidate whose options do
  less arithmetic for the same result, e.g. ``fold``) and TFLOP/s over kernel time. The stage rows sum to the
  stage-wise total, by construction and checked: every profiled event is attributed to exactly one
  stage (``unattributed`` counts any that were not).

Kernel classes come from kernel names (:func:`classify`): gemm, attention, conv, elementwise (Inductor's
fused Triton/C++ kernels and ATen element-wise, norm, reduction and resampling kernels), copy (memcpy,
memset, casts, layout transposes, concatenation), other. On a CPU the "kernels" are the profiler's
operator events and times are their self times (nested operators are not counted twice); Inductor's
generated C++ code has no events of its own there and counts as elementwise through the compiled
region that runs it.

Times are means over the profiled calls so that every table sums exactly; the headline latency is the
median of the CUDA-event timing, as in `lsegrt bench`. ``top_kernels`` lists the whole model's costliest
kernels by name: the row a class total hides (one badly fused kernel) shows there.
"""

from __future__ import annotations

import dataclasses
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .backends.base import Candidate
from .errors import LsegError

CLASSES = ("gemm", "attention", "conv", "elementwise", "copy", "other")
PROFILED_BACKENDS = ("torch", "compile")
# Prefix of the profiler ranges that delimit calls and stages. Not "lsegrt:": lsegrt's custom operators
# ("lsegrt::upsample2x_normalize") then read as ranges, and every kernel after one fell outside its call.
RANGE = "lsegrt-profile/"

# (class, pattern) in order; the first match wins. Inductor's names say what they are (triton_tem_ =
# template GEMM/conv, triton_poi/red/per = fused pointwise/reduction); cuDNN's SDPA kernels contain
# "sdpa" and "fprop" (hence attention before conv), its convolutions "fprop"/"dgrad"/"conv".
_RULES: list[tuple[str, re.Pattern]] = [(cls, re.compile(p, re.I)) for cls, p in (
    ("copy", r"^memcpy|^memset"),
    ("conv", r"^triton_tem.*conv"),
    ("gemm", r"^triton_tem"),
    ("elementwise", r"^triton_|^cpp_fused|compiled|cudagraph"),
    ("attention", r"flash|fmha|sdpa|attention|attn|scaled_dot_product"),
    ("copy", r"copy|nchwtonhwc|nhwctonchw|transpose|permute|aten::(to|_to_copy|clone|contiguous|cat)$"),
    ("conv", r"conv|fprop|dgrad|wgrad|winograd|implicit_convolve"),
    ("gemm", r"gemm|gemv|nvjet|cutlass|cublas|matmul|splitkreduce|xmma|wgmma|"
             r"aten::(mm|addmm|bmm|baddbmm|linear|_addmm_activation|addmv|mv)$|mkldnn::_linear"),
    ("elementwise", r"elementwise|vectorized|reduce|norm|gelu|relu|softmax|upsample|interp|pool|index|fill|"
                    r"where|aten::(add|sub|mul|div|cat|pow|sqrt|rsqrt|clamp|clamp_min|linalg_vector_norm|exp)"),
)]

MIN_TIMED = 5  # timed calls at least: the same floor as `lsegrt bench` (Timing.min_iters)
TOP_KERNELS = 12  # kernels listed per candidate (whole model, by time)


def classify(name: str) -> str:
    """Kernel (or CPU operator) name → one of :data:`CLASSES`."""
    for cls, pattern in _RULES:
        if pattern.search(name):
            return cls
    return "other"


# -- candidates ------------------------------------------------------------------------------------
def parse_candidate(text: str, defaults: dict[str, Any] | None = None) -> Candidate:
    """:func:`lsegrt.backends.base.parse_candidate` for the backends profile runs (no engine files);
    ``defaults`` (e.g. from --cuda-graph/--option) apply unless overridden."""
    from .backends.base import parse_candidate as parse

    backend = str(text).split(":", 1)[0]
    if backend not in PROFILED_BACKENDS or "@" in str(text):
        raise LsegError(f"candidate {text!r}: profile runs the PyTorch backends {', '.join(PROFILED_BACKENDS)} "
                        "without an engine file (engines such as TensorRT have their own profilers)")
    return parse(text, defaults)


# -- profiler events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    name: str
    start: float  # µs, profiler time base
    end: float
    time: float  # µs attributed to this event (kernel duration; CPU self time)
    cls: str


def _events(prof, cuda: bool) -> tuple[list[Event], list[tuple[str, float, float]]]:
    """Device events (CUDA kernels, memcpy, memset; on CPU: operators) and the lsegrt ranges."""
    from torch.autograd import DeviceType

    events, ranges = [], []
    for e in prof.events():
        name = e.name
        if name.startswith(RANGE):
            if e.device_type == DeviceType.CPU:
                ranges.append((name, e.time_range.start, e.time_range.end))
            continue
        if cuda:
            if e.device_type != DeviceType.CUDA:
                continue
            t = e.time_range.end - e.time_range.start
        else:
            if e.device_type != DeviceType.CPU or name.startswith("ProfilerStep"):
                continue
            t = e.self_cpu_time_total
        events.append(Event(name, e.time_range.start, e.time_range.end, float(t), classify(name)))
    return events, ranges


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``intervals`` (time during which at least one of them runs)."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def window_stats(events: Sequence[Event]) -> dict[str, Any]:
    """Kernel time, launches, span, busy time and gaps (µs) of the events of one window, by class too."""
    classes = {c: {"us": 0.0, "launches": 0} for c in CLASSES}
    for e in events:
        classes[e.cls]["us"] += e.time
        classes[e.cls]["launches"] += 1
    if events:
        span = max(e.end for e in events) - min(e.start for e in events)
        busy = busy_time([(e.start, e.end) for e in events])
    else:
        span = busy = 0.0
    return {"kernel_us": sum(e.time for e in events), "launches": len(events), "span_us": span, "busy_us": busy,
            "gaps_us": max(0.0, span - busy), "classes": classes}


def _attribute(events: list[Event], ranges: list[tuple[str, float, float]], prefix: str):
    """Events grouped by the range (named ``prefix``…) whose window holds their start; plus the rest."""
    wins = sorted((s, e, n) for n, s, e in ranges if n.startswith(prefix))
    starts = [w[0] for w in wins]
    groups: dict[str, list[list[Event]]] = {}
    per_window: list[list[Event]] = [[] for _ in wins]
    rest = []
    import bisect

    for ev in events:
        i = bisect.bisect_right(starts, ev.start) - 1
        if i >= 0 and ev.start <= wins[i][1]:
            per_window[i].append(ev)
        else:
            rest.append(ev)
    for (s, e, n), evs in zip(wins, per_window):
        groups.setdefault(n[len(prefix):].split("#")[0], []).append(evs)
    return groups, rest


def _mean_stats(windows: list[list[Event]]) -> dict[str, Any]:
    """Per-window stats averaged over windows (means keep sums: classes add up to the total)."""
    stats = [window_stats(w) for w in windows]
    n = max(1, len(stats))
    out = {k: sum(s[k] for s in stats) / n for k in ("kernel_us", "launches", "span_us", "busy_us", "gaps_us")}
    out["classes"] = {c: {"us": sum(s["classes"][c]["us"] for s in stats) / n,
                          "launches": sum(s["classes"][c]["launches"] for s in stats) / n} for c in CLASSES}
    return out


def top_kernels(windows: list[list[Event]], k: int = TOP_KERNELS) -> list[dict[str, Any]]:
    """The ``k`` kernels (by name) with the most time per window (mean over windows), with their class
    and launches per window: which kernels a before/after comparison moved."""
    n = max(1, len(windows))
    acc: dict[str, list] = {}
    for w in windows:
        for e in w:
            a = acc.setdefault(e.name, [0.0, 0, e.cls])
            a[0] += e.time
            a[1] += 1
    rows = sorted(acc.items(), key=lambda kv: -kv[1][0])[:k]
    return [{"kernel": name, "class": cls, "ms": us / n / 1e3, "launches": count / n}
            for name, (us, count, cls) in rows]


# -- running ---------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _activities(device: torch.device):
    from torch.profiler import ProfilerActivity

    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])


def check_candidate(cand: Candidate) -> None:
    """Refuse unknown or bad options before any work (the compile backend's are typed)."""
    if cand.backend == "compile":
        from .backends.compiled import CompileOptions

        CompileOptions.parse(cand.options)
        return
    from .backends.common import check_tf32

    unknown = sorted(set(cand.options) - {"tf32", "cuda_graph"})
    if unknown:
        raise LsegError(f"candidate {cand.label}: unknown option(s) for the torch backend: {', '.join(unknown)}; "
                        "valid: tf32, cuda_graph (accepted and ignored: eager has no graph mode)")
    check_tf32(cand.options.get("tf32"))


class ChannelsLastMaps(torch.nn.Module):
    """A stage that takes its 4-D maps channels-last (a no-op on maps that already are).

    Under ``channels_last`` Inductor computes the convolutions channels-last but returns a compiled
    graph's outputs in the layout eager PyTorch would, NCHW for NCHW inputs: compiled alone, each stage
    would convert its inputs and convert back on the way out, copies the whole model does not make. Made
    channels-last here, the maps stay so from stage to stage (as between ``overlap``'s pieces,
    :mod:`lsegrt.model.branches`).
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *state):
        return self.module(*(s.contiguous(memory_format=torch.channels_last)
                             if isinstance(s, torch.Tensor) and s.dim() == 4 else s for s in state))


def _stage_runner(model, cand: Candidate, device: torch.device, groups: int, height: int, width: int):
    """(stages, callables, call scope, CUDA graphs?) for the candidate's stage-wise run on (height, width)
    inputs."""
    from .backends.common import check_tf32, encoder_module, tf32_scope
    from .stages import encoder_stages

    if cand.backend == "compile":
        from .backends.compiled import CompileOptions, call_scope, compile_module, served_module
        from .model.vit import pos_cache_trunks

        opts = CompileOptions.parse(cand.options, model.config.backbone, device, cand.precision)
        # stage by stage each stage runs alone: the kernel switches apply, the side stream cannot; and stages are
        # compiled live (Dynamo's saved-build caching drops the identity guards that keep stages of one class apart)
        opts = dataclasses.replace(opts, overlap=False, dynamo_cache=False)
        served = served_module(model, cand.precision, device, opts)
        for trunk in pos_cache_trunks(served):  # as the backend's call does before the whole model
            trunk.cache_pos_embed(height, width)
        stages = encoder_stages(served, groups)
        # every stage between the image's and the norm's, which takes the head's output as it comes (with
        # upsample_norm, NCHW by design: a conversion there would be a copy the whole model never makes)
        modules = [ChannelsLastMaps(s.module) if opts.channels_last and 0 < i and s.kind != "norm" else s.module
                   for i, s in enumerate(stages)]
        return stages, [compile_module(m, opts) for m in modules], lambda: call_scope(opts), opts.cuda_graph
    stages = encoder_stages(encoder_module(model, cand.precision, device), groups)
    tf32 = check_tf32(cand.options.get("tf32"))
    return stages, [s.module for s in stages], lambda: tf32_scope(tf32), False


def profile_candidate(model, cand: Candidate, height: int, width: int, batch: int = 1, *,
                      device: str | torch.device = "cpu", iters: int = 10, timed_iters: int = 50,
                      groups: int = 4, top: int = TOP_KERNELS,
                      on_step: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Profile ``cand`` on ``(batch,3,height,width)`` inputs: whole model, then stage by stage; ``top``:
    how many of the whole model's kernels to list (by time)."""
    from torch.profiler import profile, record_function

    from .backends.base import Encoder, canonical_device
    from .bench import Timing, make_inputs, measure
    from .flops import flops_by_stage

    check_candidate(cand)
    device = canonical_device(device)
    cuda = device.type == "cuda"
    if iters < 1 or timed_iters < MIN_TIMED:
        raise LsegError(f"profile needs at least one profiled call and {MIN_TIMED} timed calls "
                        "(a percentile of fewer calls is not a statistic)")
    inputs = make_inputs(model, batch, height, width, device, 3)
    result: dict[str, Any] = {"candidate": cand.label, "backend": cand.backend, "precision": cand.precision,
                              "options": cand.options, "height": height, "width": width, "batch": batch,
                              "device": str(device), "timer": "cuda_events" if cuda else "perf_counter",
                              "iters_profiled": iters}
    stage_flops = flops_by_stage(model.variant, height, width, groups)

    # whole model -------------------------------------------------------------------------------
    on_step(f"{cand.label}: compiling / warming up the whole model")
    enc = Encoder.open(cand.backend, checkpoint=model, device=device, precision=cand.precision, **cand.options)
    try:
        result["encoder"] = enc.describe()
        t0 = time.perf_counter()
        with torch.inference_mode():
            enc(inputs[0])
        _sync(device)
        result["first_call_s"] = round(time.perf_counter() - t0, 3)
        on_step(f"{cand.label}: timing the whole model")
        timing = Timing(warmup_iters=3, warmup_seconds=0.0, min_seconds=60.0, min_iters=MIN_TIMED, max_iters=timed_iters,
                        copy_iters=1, rotation=3)
        measured = measure(enc, model, height, width, batch, timing)
        key = "gpu_ms" if cuda else "host_ms"
        on_step(f"{cand.label}: profiling the whole model")
        with torch.inference_mode(), profile(activities=_activities(device)) as prof:
            for i in range(iters):
                with record_function(f"{RANGE}call#{i}"):
                    enc(inputs[i % len(inputs)])
                    _sync(device)
    finally:
        enc.close()
        del enc
    events, ranges = _events(prof, cuda)
    calls, rest = _attribute(events, ranges, RANGE)
    whole = _mean_stats(calls.get("call", []))
    result["top_kernels"] = top_kernels(calls.get("call", []), top)
    flops_total = sum(stage_flops.values()) * batch
    result["whole"] = {
        "latency_ms_p50": measured[f"{key}_p50"], "latency_ms_mean": measured[f"{key}_mean"],
        "latency_iters": measured["iters"], **_ms(whole), "gflop": flops_total / 1e9,
        "tflops_per_s": _rate(flops_total, measured[f"{key}_p50"]),
    }

    # stage by stage ----------------------------------------------------------------------------
    on_step(f"{cand.label}: compiling / warming up {len(stage_flops)} stages")
    stages, runners, scope, graphs = _stage_runner(model, cand, device, groups, height, width)

    def chain(x, mark: Callable[[int], Any] | None = None, timer=None):
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        state: tuple = (x,)
        for i, run in enumerate(runners):
            ctx = mark(i) if mark is not None else nullcontext()
            with ctx:
                if timer is not None:
                    timer.start(i)
                state = run(*state)
                if timer is not None:
                    timer.stop(i)
        return state

    with torch.inference_mode(), scope():
        t0 = time.perf_counter()
        for i in range(3):  # compile, then (CUDA graphs) warm up and record
            chain(inputs[i % len(inputs)])
        _sync(device)
        result["stagewise_first_calls_s"] = round(time.perf_counter() - t0, 3)
        on_step(f"{cand.label}: timing stages")
        walls = _time_stages(chain, inputs, len(runners), timed_iters, device)
        on_step(f"{cand.label}: profiling stages")

        def mark(i):
            return _SyncedRange(f"{RANGE}stage{i:03d}#", device)

        with profile(activities=_activities(device)) as prof:
            for k in range(iters):
                chain(inputs[k % len(inputs)], mark)
    del runners, chain
    events, ranges = _events(prof, cuda)
    groups_, rest2 = _attribute(events, ranges, RANGE)
    rows = []
    for i, stage in enumerate(stages):
        stats = _mean_stats(groups_.get(f"stage{i:03d}", []))
        flops = stage_flops[stage.name] * batch
        rows.append({"stage": stage.name, "kind": stage.kind, "wall_ms": walls[i], **_ms(stats),
                     "gflop": flops / 1e9, "tflops_per_s": _rate(flops, stats["kernel_us"] / 1e3)})
    total_kernel = sum(r["kernel_ms"] for r in rows)
    for r in rows:
        r["share"] = r["kernel_ms"] / total_kernel if total_kernel > 0 else None
    result["stages"] = rows
    result["stagewise_total"] = _totals(rows, flops_total)
    result["unattributed"] = {"whole": len(rest), "stages": len(rest2)}
    result["notes"] = []
    if cuda and (whole["launches"] == 0 or result["stagewise_total"]["launches"] == 0):
        result["notes"].append("the profiler saw no kernels in some calls (CUDA-graph replays not traced by "
                               "this torch/CUPTI?): kernel columns are incomplete; latencies are unaffected")
    short = whole_span_note(result["whole"]) if cuda else None
    if short:
        result["notes"].append(short)
    if result["encoder"].get("options", {}).get("overlap"):
        result["notes"].append("overlap: stage by stage each stage runs alone, so what the side stream hides "
                               "shows only in the whole-model row")
    return result


def whole_span_note(whole: dict[str, Any]) -> str | None:
    """A note when the whole model's traced kernels span less than half of its measured latency.

    A call's kernels run from its first to its last kernel, so their span cannot be much shorter than the
    call unless kernels were missed or given to no call (as when lsegrt's operators matched the ranges'
    prefix: 54 of 318 launches per call). A launch-bound call still spans its latency, with gaps."""
    span, latency = whole.get("span_ms") or 0.0, whole.get("latency_ms_p50") or 0.0
    if latency <= 0 or span >= 0.5 * latency:
        return None
    return (f"the profiler saw kernels over {span:.3f} ms of a {latency:.3f} ms call: it missed some, so the "
            "whole-model kernel columns are incomplete; latencies and stage-by-stage rows are unaffected")


class _SyncedRange:
    """A profiler range that waits for the device before closing, so a stage's kernels fall inside it."""

    def __init__(self, name: str, device: torch.device):
        from torch.profiler import record_function

        self.rf, self.device = record_function(name), device

    def __enter__(self):
        self.rf.__enter__()

    def __exit__(self, *exc):
        _sync(self.device)
        self.rf.__exit__(*exc)


class _StageTimer:
    """CUDA events (or perf_counter on CPU) around each stage of a chained run."""

    def __init__(self, n: int, device: torch.device):
        self.n, self.cuda, self.device = n, device.type == "cuda", device
        self.pairs: list[list] = [[] for _ in range(n)]
        self.host: list[list[float]] = [[] for _ in range(n)]

    def start(self, i: int) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.pairs[i].append([ev, None])
        else:
            self._t = time.perf_counter()

    def stop(self, i: int) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.pairs[i][-1][1] = ev
        else:
            self.host[i].append((time.perf_counter() - self._t) * 1e3)

    def means(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return [sum(a.elapsed_time(b) for a, b in p) / len(p) for p in self.pairs]
        return [sum(h) / len(h) for h in self.host]


def _time_stages(chain, inputs, n: int, iters: int, device: torch.device) -> list[float]:
    for k in range(2):
        chain(inputs[k % len(inputs)])
    timer = _StageTimer(n, device)
    for k in range(iters):
        chain(inputs[k % len(inputs)], timer=timer)
    return timer.means()


def _ms(stats: dict[str, Any]) -> dict[str, Any]:
    span = stats["span_us"]
    return {"kernel_ms": stats["kernel_us"] / 1e3, "launches": stats["launches"], "span_ms": span / 1e3,
            "busy_ms": stats["busy_us"] / 1e3, "gaps_ms": stats["gaps_us"] / 1e3,
            "gap_share": stats["gaps_us"] / span if span > 0 else None,
            "classes": {c: {"ms": v["us"] / 1e3, "launches": v["launches"]} for c, v in stats["classes"].items()}}


def _rate(flops: float, ms: float | None) -> float | None:
    return flops / (ms / 1e3) / 1e12 if ms and ms > 0 and flops else None


def _totals(rows: list[dict[str, Any]], flops_total: float) -> dict[str, Any]:
    keys = ("wall_ms", "kernel_ms", "launches", "span_ms", "busy_ms", "gaps_ms", "gflop")
    out: dict[str, Any] = {k: sum(r[k] for r in rows) for k in keys}
    out["gap_share"] = out["gaps_ms"] / out["span_ms"] if out["span_ms"] > 0 else None
    out["classes"] = {c: {"ms": sum(r["classes"][c]["ms"] for r in rows),
                          "launches": sum(r["classes"][c]["launches"] for r in rows)} for c in CLASSES}
    out["tflops_per_s"] = _rate(flops_total, out["kernel_ms"])
    return out


# -- comparison and report ---------------------------------------------------------------------------
def compare_profiles(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Before/after: per stage, per kernel class and whole model, ``other`` against ``base``."""

    def pair(a, b):
        return {"before": a, "after": b, "delta": (b - a) if a is not None and b is not None else None,
                "speedup": (a / b) if a and b else None}

    stages = []
    theirs = {r["stage"]: r for r in other["stages"]}
    for r in base["stages"]:
        o = theirs.get(r["stage"])
        stages.append({"stage": r["stage"], "wall_ms": pair(r["wall_ms"], o and o["wall_ms"]),
                       "kernel_ms": pair(r["kernel_ms"], o and o["kernel_ms"]),
                       "launches": pair(r["launches"], o and o["launches"])})
    classes = {c: pair(base["whole"]["classes"][c]["ms"], other["whole"]["classes"][c]["ms"]) for c in CLASSES}
    whole = {k: pair(base["whole"][k], other["whole"][k])
             for k in ("latency_ms_p50", "kernel_ms", "launches", "gaps_ms")}
    total = {k: pair(base["stagewise_total"][k], other["stagewise_total"][k]) for k in ("wall_ms", "kernel_ms")}
    return {"before": base["candidate"], "after": other["candidate"], "whole": whole, "classes": classes,
            "stages": stages, "stagewise_total": total}


def report(results: list[dict[str, Any]], env: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    from . import __version__

    comparisons = [compare_profiles(results[0], r) for r in results[1:]] if len(results) > 1 else []
    return {"lsegrt_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "environment": env, "settings": settings, "classes": list(CLASSES), "candidates": results,
            "comparisons": comparisons,
            "notes": ["whole.latency_ms_*: CUDA events around each call (perf_counter on CPU), as lsegrt bench.",
                      "kernel_ms, launches, gaps: torch.profiler, mean over the profiled calls; each call is "
                      "synchronized, gaps = span - busy on the device timeline.",
                      "stages: each stage run (compile: compiled) on its own on the previous stage's output; "
                      "rows sum to stagewise_total; wall_ms from CUDA events around each stage.",
                      "tflops_per_s per stage: counted FLOPs (matmul/conv/attention) over the stage's kernel "
                      "time; whole model: over the median latency."]}


def write_plot(payload: dict[str, Any], path: str | Path) -> None:
    """PNG: kernel time per stage (left) and per kernel class of the whole model (right), one bar per
    candidate."""
    import numpy as np
    from matplotlib.figure import Figure

    from .fileio import atomic_path

    results = payload["candidates"]
    stages = [r["stage"] for r in results[0]["stages"]]
    n = len(results)
    height = 0.8 / n
    fig = Figure(figsize=(12, max(4.0, 0.45 * len(stages) + 1.5)), dpi=110)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(stages))
    for k, res in enumerate(results):
        by = {r["stage"]: r["kernel_ms"] for r in res["stages"]}
        ax1.barh(y + k * height, [by.get(s, 0.0) for s in stages], height, label=res["candidate"])
    ax1.set_yticks(y + height * (n - 1) / 2, stages)
    ax1.invert_yaxis()
    ax1.set_xlabel("kernel time per call, ms (stage by stage)")
    ax1.grid(True, axis="x", alpha=0.3)
    ax1.legend(fontsize="small")
    yc = np.arange(len(CLASSES))
    for k, res in enumerate(results):
        ax2.barh(yc + k * height, [res["whole"]["classes"][c]["ms"] for c in CLASSES], height,
                 label=res["candidate"])
    ax2.set_yticks(yc + height * (n - 1) / 2, list(CLASSES))
    ax2.invert_yaxis()
    ax2.set_xlabel("kernel time per call, ms (whole model)")
    ax2.grid(True, axis="x", alpha=0.3)
    first = results[0]
    fig.suptitle(f"lsegrt profile · {first['encoder'].get('model', '')} · {first['height']}x{first['width']} "
                 f"batch {first['batch']} · {payload['environment'].get('gpu') or 'cpu'}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
