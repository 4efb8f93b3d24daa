"""How long each stage was busy, measured without stalling the pipeline.

On a CUDA device a :class:`Span` is a pair of CUDA events on the stage's stream: recording them
costs nothing on the host, and the elapsed time is read later, by a writer thread that already
waited for the batch. On the CPU a span is plain wall-clock time.
"""

from __future__ import annotations

import threading
import time

import torch


class Span:
    """Busy time of one stage for one batch: ``Span(stream)`` … ``.stop()`` … ``.seconds()``."""

    def __init__(self, stream: "torch.cuda.Stream | None" = None):
        self.stream = stream
        if stream is not None:
            self._a = torch.cuda.Event(enable_timing=True)
            self._b = torch.cuda.Event(enable_timing=True)
            self._a.record(stream)
        else:
            self._t0 = time.perf_counter()
            self._t1 = self._t0

    def stop(self) -> "Span":
        if self.stream is not None:
            self._b.record(self.stream)
        else:
            self._t1 = time.perf_counter()
        return self

    def seconds(self) -> float:
        """Elapsed seconds (CUDA: only once the stream passed ``stop``; callers wait for the batch)."""
        if self.stream is not None:
            return self._a.elapsed_time(self._b) / 1000.0
        return self._t1 - self._t0


STAGES = ("decode", "wait", "h2d", "gpu", "d2h", "write")
STAGE_HELP = {
    "decode": "decode workers busy (share of workers × wall time)",
    "wait": "main thread waiting for decoded frames",
    "h2d": "host→device copies + normalization",
    "gpu": "encoder + post-processing on the device",
    "d2h": "device→host copies",
    "write": "writer threads busy (share of threads × wall time)",
}


class StageTimes:
    """Busy seconds per stage, added from any thread; :meth:`utilisation` divides by capacity × wall."""

    def __init__(self, capacity: dict[str, int] | None = None):
        self.busy = dict.fromkeys(STAGES, 0.0)
        self.capacity = {s: 1 for s in STAGES} | (capacity or {})
        self.lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self.lock:
            self.busy[stage] += seconds

    def utilisation(self, wall: float) -> dict[str, float]:
        with self.lock:
            return {s: round(min(1.0, b / (max(wall, 1e-9) * max(self.capacity[s], 1))), 3)
                    for s, b in self.busy.items()}
