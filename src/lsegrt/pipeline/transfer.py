"""Device→host copies: asynchronous, on their own stream, into reused pinned buffers.

Each batch's outputs are copied into one flat pinned buffer (views carved at 64-byte offsets), on a
side stream that waits for the compute stream through an event; a CUDA event marks the copies done,
and the writer thread waits for that event, never the main thread. Buffers come from a pool with a
byte budget: when writing falls behind, the main thread blocks here, which is the backpressure that
keeps host memory bounded whatever the number of frames.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from .timing import Span

_ALIGN = 64


def _pow2(n: int) -> int:
    # PyTorch's pinned allocator rounds up to powers of two; sizing blocks the same way keeps the
    # pool's accounting equal to the memory actually pinned.
    return 1 << max(20, (n - 1).bit_length())


class PinnedPool:
    """Flat pinned uint8 buffers, reused; at most ``budget`` bytes allocated (one oversize buffer is
    allowed when nothing else is held, so any batch fits)."""

    def __init__(self, budget: int, pin: bool = True):
        self.budget, self.pin = budget, pin
        self.free: list[torch.Tensor] = []
        self.total = 0
        self.cond = threading.Condition()

    def acquire(self, nbytes: int) -> torch.Tensor:
        size = _pow2(nbytes)
        with self.cond:
            while True:
                fits = [b for b in self.free if b.numel() >= size]
                if fits:
                    buf = min(fits, key=lambda b: b.numel())
                    self.free.remove(buf)
                    return buf
                if self.total + size <= self.budget or self.total == 0:
                    self.total += size
                    return torch.empty(size, dtype=torch.uint8, pin_memory=self.pin)
                if self.free:  # free buffers too small for this batch: give their memory back
                    self.total -= self.free.pop(0).numel()
                    continue
                self.cond.wait()

    def release(self, buf: torch.Tensor) -> None:
        with self.cond:
            self.free.append(buf)
            self.cond.notify_all()


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class Downloader:
    """``download(arrays)`` → host views of every output tensor, the buffer, a done event, a span."""

    def __init__(self, device: torch.device, pool: PinnedPool):
        self.device = device
        self.pool = pool
        self.stream = torch.cuda.Stream(device)

    def download(self, arrays: dict[str, Any], after: torch.cuda.Stream):
        tensors = [t for v in arrays.values() for t in (v if isinstance(v, list) else [v])]
        total = sum(-(-_nbytes(t) // _ALIGN) * _ALIGN for t in tensors)
        buf = self.pool.acquire(total)
        off = 0
        host: dict[str, Any] = {}
        with torch.cuda.stream(self.stream):
            self.stream.wait_stream(after)
            span = Span(self.stream)
            for name, value in arrays.items():
                views = []
                for t in value if isinstance(value, list) else [value]:
                    n = _nbytes(t)
                    view = buf[off:off + n].view(t.dtype).view(t.shape)
                    view.copy_(t, non_blocking=True)
                    t.record_stream(self.stream)  # not reused by the compute stream before the copy
                    views.append(view)
                    off += -(-n // _ALIGN) * _ALIGN
                host[name] = views if isinstance(value, list) else views[0]
            span.stop()
            done = torch.cuda.Event()
            done.record(self.stream)
        return host, buf, done, span
