"""Issue 9 diagnostic (GPU): how much of a call's measured GPU time is the host's, per option set.

`lsegrt bench` records a CUDA event before and after each call, no synchronize between calls, and reads
the median. For `fast` at 1024² that median (10.34–10.41 ms, eighteenth session) was 0.3 ms above the
span of one call's kernels on a timeline (tools/issue9_timeline.py, nineteenth session), where stock's was
0.1 ms above. Three ways of timing the same calls tell where the difference lies:

- ``bench``: as `lsegrt bench` (events around each call, back to back);
- ``synced``: a synchronize before each call, so each call's time includes the host's latency to its first
  kernel;
- ``queued``: a long GPU sleep enqueued first, then the calls: while the GPU sleeps the host enqueues them
  all, so the events time the GPU's work alone (no host bubbles); the host's time per call is recorded too
  (a call that blocks the host shows it there).

    source tools/device_env.sh; python3 tools/issue9_host.py vit_l16 1024 $OUT/host.json fast=true
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from issue9_runner import option_sets, run, size_of, warmed_encoder

CALLS = 40


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50": round(statistics.median(xs), 4), "min": round(xs[0], 4), "mean": round(statistics.fmean(xs), 4)}


def _timed(enc, x, mode: str) -> dict:
    stream = torch.cuda.current_stream()
    evs, host = [], []
    torch.cuda.synchronize()
    if mode == "queued":  # room for every call to be enqueued before the GPU reaches the first
        torch.cuda._sleep(int(1.98e6 * 1.5 * CALLS * 12))  # ≈ cycles at ~1.98 GHz: > CALLS × 12 ms
    t_all = time.perf_counter()
    for _ in range(CALLS):
        if mode == "synced":
            torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        a.record(stream)
        enc(x)
        b.record(stream)
        host.append((time.perf_counter() - t0) * 1e3)
        evs.append((a, b))
    host_total = (time.perf_counter() - t_all) * 1e3
    torch.cuda.synchronize()
    gpu = [a.elapsed_time(b) for a, b in evs]
    return {"gpu_ms": _stats(gpu), "host_ms": _stats(host), "host_total_ms": round(host_total, 2),
            "span_per_call_ms": round(evs[0][0].elapsed_time(evs[-1][1]) / CALLS, 4)}


def probe(model, size: tuple[int, int], opts: dict) -> dict:
    enc, x = warmed_encoder(model, size, opts, 5)
    with torch.inference_mode():
        row = {"options": opts, "size": list(size)}
        for mode in ("bench", "synced", "queued", "bench"):
            row[mode if mode not in row else mode + "_again"] = _timed(enc, x, mode)
    enc.close()
    return row


def main(variant: str, size: str, path: str, *specs: str) -> None:
    hw = size_of(size)
    run(variant, option_sets(specs), lambda model, opts: probe(model, hw, opts), path)


if __name__ == "__main__":
    main(*sys.argv[1:])
