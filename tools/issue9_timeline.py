"""Issue 9 diagnostic (GPU): one call's kernels on a timeline, per stream — where `fast`'s time goes.

`lsegrt profile` sums kernel time per stage and class; with `overlap` two streams run at once, so sums do
not say what is on the critical path, where the GPU idles, or what runs after the backbone's last block.
Per option set this times 5 calls (each between two marker kernels, as tools/issue9_profile_attr.py), takes
the call of median span and records its kernels in launch order: name, stream, start and duration (µs
from the call's first kernel). Summary per call: span, union of busy time (any stream), idle time, time
with two streams busy at once, each stream's busy time, and the tail (from the end of the last attention
kernel to the end of the call) with its kernels.

    source tools/device_env.sh; python3 tools/issue9_timeline.py vit_l16 1024 $OUT/timeline.json fast=true
"""

from __future__ import annotations

import statistics
import sys

import torch
from issue9_runner import option_sets, run, size_of, warmed_encoder
from torch.profiler import ProfilerActivity, profile

from lsegrt.profile import busy_time, classify

CALLS = 5


def _overlapped(iv_by_stream: dict[int, list[tuple[float, float]]]) -> float:
    """µs during which kernels of two or more streams run at once."""
    edges = sorted((t, d) for iv in iv_by_stream.values() for s, e in iv for t, d in ((s, 1), (e, -1)))
    total, depth, last = 0.0, 0, None
    for t, d in edges:
        if depth >= 2 and last is not None:
            total += t - last
        depth += d
        last = t
    return total


def summarize(kernels: list[dict]) -> dict:
    by_stream: dict[int, list[tuple[float, float]]] = {}
    for k in kernels:
        by_stream.setdefault(k["stream"], []).append((k["t0"], k["t0"] + k["dur"]))
    span = max(k["t0"] + k["dur"] for k in kernels)
    busy = busy_time([iv for ivs in by_stream.values() for iv in ivs])
    attn = [k for k in kernels if k["class"] == "attention"]
    tail_from = max(k["t0"] + k["dur"] for k in attn) if attn else None
    tail = [k for k in kernels if tail_from is not None and k["t0"] + k["dur"] > tail_from]
    return {
        "span_us": round(span, 1), "busy_us": round(busy, 1), "idle_us": round(span - busy, 1),
        "two_streams_us": round(_overlapped(by_stream), 1), "launches": len(kernels),
        "streams": {str(s): {"launches": len(iv), "busy_us": round(busy_time(iv), 1)} for s, iv in by_stream.items()},
        "tail_us": round(span - tail_from, 1) if tail_from is not None else None,
        "tail_busy_us": round(busy_time([(max(k["t0"], tail_from), k["t0"] + k["dur"]) for k in tail]), 1)
        if tail else None,
        "tail_kernels": len(tail),
    }


def timeline(model, size: tuple[int, int], opts: dict) -> dict:
    enc, x = warmed_encoder(model, size, opts, 4)
    with torch.inference_mode():
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(CALLS):
                torch.cuda._sleep(2000)  # markers: each call's kernels lie between two of them
                enc(x)
                torch.cuda._sleep(2000)
                torch.cuda.synchronize()
    enc.close()
    dev = sorted((e for e in prof.profiler.kineto_results.events()
                  if e.device_type() == torch.autograd.DeviceType.CUDA), key=lambda e: e.start_ns())
    calls, cur, inside = [], [], False
    for e in dev:
        if "spin" in e.name():
            if inside:
                calls.append(cur)
                cur = []
            inside = not inside
            continue
        if inside:
            cur.append(e)
    rows = []
    for evs in calls:
        t0 = evs[0].start_ns()
        rows.append([{"name": e.name()[:90], "class": classify(e.name()), "stream": e.device_resource_id(),
                      "t0": round((e.start_ns() - t0) / 1e3, 2), "dur": round(e.duration_ns() / 1e3, 2)}
                     for e in evs])
    spans = [summarize(r)["span_us"] for r in rows]
    med = sorted(range(len(rows)), key=lambda i: spans[i])[len(rows) // 2]
    return {"options": opts, "size": list(size), "spans_us": spans, "median_span_us": statistics.median(spans),
            "summary": summarize(rows[med]), "kernels": rows[med]}


def main(variant: str, size: str, path: str, *specs: str) -> None:
    hw = size_of(size)
    run(variant, option_sets(specs), lambda model, opts: timeline(model, hw, opts), path,
        shown=lambda row: {"options": row["options"], "spans_us": row["spans_us"], **row["summary"]}, indent=0)


if __name__ == "__main__":
    main(*sys.argv[1:])
