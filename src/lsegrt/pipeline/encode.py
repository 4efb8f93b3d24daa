"""Encode stage: host→device copy on its own CUDA stream, normalization on the device, the encoder.

Frames arrive in pinned memory (the DataLoader pins them); each is copied with ``non_blocking=True``
on a side stream into its slot of one ``(B, 3, H, W)`` float32 batch, normalized there, and the
compute stream waits for that stream only (an event, not a host synchronization), so the next batch
is uploaded while the current one is encoded. The encoder is any :class:`lsegrt.Encoder` (or a
model's ``encode_image``): ``(B,3,H,W)`` float32 normalized → ``(B,512,H/2,W/2)`` float32 unit vectors.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Sequence

import torch

from ..sizes import as_chw, normalize
from .timing import Span

EncodeFn = Callable[[torch.Tensor], torch.Tensor]


class DeviceStage:
    """Upload (H2D + normalize) and encode, for one device."""

    def __init__(self, encode: EncodeFn, device: torch.device | str, mean: Sequence[float], std: Sequence[float]):
        self.encode_fn = encode
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.h2d = torch.cuda.Stream(self.device) if self.cuda else None
        self.compute = torch.cuda.current_stream(self.device) if self.cuda else None
        # On the device once: normalize() then uses them without a host→device copy per batch.
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device)

    def upload(self, frames: list[dict[str, Any]], hw: tuple[int, int], size: int) -> tuple[torch.Tensor, Span]:
        """Frame records (pixels in pinned host memory) → ``(size, 3, H, W)`` normalized on the device,
        ready for the compute stream; slots after ``len(frames)`` are padding (zeros)."""
        h, w = hw
        with torch.cuda.stream(self.h2d) if self.cuda else nullcontext():
            span = Span(self.h2d)
            buf = torch.empty((size, 3, h, w), dtype=torch.float32, device=self.device)
            for i, frame in enumerate(frames):
                buf[i].copy_(as_chw(frame["pixels"].to(self.device, non_blocking=True)))
            if len(frames) < size:
                buf[len(frames):].zero_()
            x = normalize(buf, self.mean, self.std)
            span.stop()
        if self.cuda:
            self.compute.wait_stream(self.h2d)
            x.record_stream(self.compute)
        return x, span

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, Span]:
        span = Span(self.compute)
        return self.encode_fn(x), span

