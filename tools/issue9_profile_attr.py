"""Issue 9 diagnostic (GPU): why `lsegrt profile` attributes only part of `fast`'s whole-model kernels.

`lsegrt profile` gives each kernel to the call whose profiler range (CPU time, closed after a device
synchronize) holds the kernel's start. For `fast` on an H100 most kernels fell outside every range
(docs/BENCHMARKS.md, eighth session). Per option set, this runs the same loop (10 calls, each in a
range, between two marker kernels) and reports, for the CUDA events: how many fall inside a range by their GPU start, how many by
the CPU time of the runtime call that launched them (Kineto's linked correlation id), where the others
lie relative to the ranges, and on which streams.

    source tools/device_env.sh; python3 tools/issue9_profile_attr.py rn101 384 $OUT/attr.json
"""

from __future__ import annotations

import bisect
import statistics
import sys
from collections import Counter

import torch
from issue9_runner import run, warmed_encoder
from torch.profiler import ProfilerActivity, profile, record_function

OPTION_SETS = ({}, {"fast": True}, {"fast": True, "upsample_norm": False}, {"fast": True, "overlap": False})


def _prev(starts: list[float], t: float) -> int | None:
    """The last range that starts at or before t."""
    i = bisect.bisect_right(starts, t) - 1
    return i if i >= 0 else None


def _window(starts: list[float], wins: list[tuple[float, float]], t: float) -> int | None:
    """The range that holds t."""
    i = _prev(starts, t)
    return i if i is not None and t <= wins[i][1] else None


def _offset(wins: list[tuple[float, float]], t: float) -> float:
    """ms from t to the nearest range edge (negative: before the range that follows it)."""
    best = min(wins, key=lambda w: min(abs(t - w[0]), abs(t - w[1])))
    return (t - best[0] if abs(t - best[0]) < abs(t - best[1]) else t - best[1]) / 1e3


def probe(model, size: int, opts: dict, calls: int = 10) -> dict:
    enc, x = warmed_encoder(model, (size, size), opts, 3)
    with torch.inference_mode():
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for i in range(calls):
                with record_function(f"lsegrt:call#{i}"):
                    torch.cuda._sleep(1000)  # markers on the GPU timeline: the call's work lies between them
                    enc(x)
                    torch.cuda.synchronize()
                    torch.cuda._sleep(1000)
                    torch.cuda.synchronize()
    enc.close()
    kin = prof.profiler.kineto_results.events()
    us = lambda e, k: getattr(e, f"{k}_ns")() / 1e3  # noqa: E731
    CPU, CUDA = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA
    wins = sorted((us(e, "start"), us(e, "end")) for e in kin
                  if e.name().startswith("lsegrt:call#") and e.device_type() == CPU)
    starts = [w[0] for w in wins]
    cpu = {e.correlation_id(): e for e in kin if e.device_type() == CPU}
    dev = [e for e in kin if e.device_type() == CUDA and not e.name().startswith("lsegrt:")]
    spins = sorted(us(e, "start") for e in dev if "spin" in e.name())
    # between the markers: the i-th call's work lies between spins[2i] and spins[2i+1]
    pairs = [(spins[k], spins[k + 1]) for k in range(0, len(spins) - 1, 2)]
    dev = [e for e in dev if "spin" not in e.name()]
    between = sum(any(a < us(e, "start") < b for a, b in pairs) for e in dev)
    by_start = [_window(starts, wins, us(e, "start")) is not None for e in dev]
    prev = [_prev(starts, us(e, "start")) for e in dev]
    late = [us(e, "start") - wins[i][1] for e, i, ok in zip(dev, prev, by_start) if not ok and i is not None]
    launches = [cpu.get(e.linked_correlation_id()) for e in dev]
    by_launch = [lc is not None and _window(starts, wins, us(lc, "start")) is not None for lc in launches]
    out = [e for e, ok in zip(dev, by_start) if not ok]
    offsets = [_offset(wins, us(e, "start")) for e in out]
    return {
        "options": opts, "size": size, "calls": calls, "device_events": len(dev),
        "in_range_by_start": sum(by_start), "in_range_by_launch": sum(by_launch),
        "launcher_found": sum(lc is not None for lc in launches),
        "markers": len(spins), "between_markers": between,
        "out_after_their_range_end_ms": {"n": len(late), "min": min(late), "max": max(late)} if late else None,
        "gpu_annotations": sum(e.device_type() == CUDA and e.name().startswith("lsegrt:") for e in kin),
        "out_offsets_ms": {"min": min(offsets), "median": statistics.median(offsets), "max": max(offsets)}
        if offsets else None,
        "out_before_first_range": sum(us(e, "start") < wins[0][0] for e in out),
        "out_after_last_range": sum(us(e, "start") > wins[-1][1] for e in out),
        "launchers_of_out": Counter(lc.name() if lc is not None else "(none)"
                                    for lc, ok in zip(launches, by_start) if not ok).most_common(6),
        "streams": {"in": Counter(e.device_resource_id() for e, ok in zip(dev, by_start) if ok).most_common(4),
                    "out": Counter(e.device_resource_id() for e in out).most_common(4)},
        "out_names": Counter(e.name()[:60] for e in out).most_common(5),
        "ranges_ms": [round((w[1] - w[0]) / 1e3, 3) for w in wins],
        "gaps_between_ranges_ms": [round((b[0] - a[1]) / 1e3, 3) for a, b in zip(wins, wins[1:])],
    }


def main(variant: str, size: int, path: str) -> None:
    run(variant, list(OPTION_SETS), lambda model, opts: probe(model, size, opts), path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
