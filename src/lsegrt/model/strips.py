"""3×3 convolutions computed in row strips (the compile backend's ``strip_pixels`` option).

With ``overlap`` the decoder's side branches run on a second stream beside the backbone. At 1024² the first
branch's three 3×3 convolutions (256 channels on a 256×256 map) took 100–110 µs each on an H100, and while one
ran the backbone's next kernel waited for it: 82–91 µs, three times a call (docs/BENCHMARKS.md, nineteenth and
twentieth sessions). A running thread block is never preempted, so the backbone's higher stream priority
cannot help once such a kernel has the SMs. In strips the same convolution is several shorter kernels, and
between two of them the block scheduler serves the waiting backbone first.

A strip of output rows ``r0..r1`` reads input rows ``r0-1..r1`` (one row of halo each side, the zero padding
where the map ends): each output pixel is computed from the same inputs and weights as in one convolution, so
the result is the same up to the rounding of the convolution algorithm cuDNN picks per strip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def strip_bounds(height: int, width: int, max_pixels: int) -> list[tuple[int, int]]:
    """Output row ranges [r0, r1) of at most ``max_pixels`` pixels each (at least one row), covering
    ``height`` rows; one range when the map fits or ``max_pixels`` is 0."""
    rows = height if max_pixels <= 0 else max(1, max_pixels // max(1, width))
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


class StripConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters, same state-dict keys) that, where :attr:`strip_pixels` is set on it and
    it is a 3×3 convolution of stride 1, padding 1 and no dilation, computes its output in row strips of at
    most that many pixels. 0 (the default): one convolution, as nn.Conv2d."""

    strip_pixels = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bounds = strip_bounds(x.shape[-2], x.shape[-1], self.strip_pixels) if self._strippable() else []
        if len(bounds) <= 1:
            return super().forward(x)
        height, parts = x.shape[-2], []
        for r0, r1 in bounds:
            a, b = max(r0 - 1, 0), min(r1 + 1, height)  # the strip's input rows, halo included
            y = F.conv2d(x[..., a:b, :], self.weight, self.bias, 1, 1, 1, self.groups)
            parts.append(y[..., r0 - a:r0 - a + (r1 - r0), :])  # drop the halo rows' outputs
        return torch.cat(parts, dim=-2)

    def _strippable(self) -> bool:
        return (self.strip_pixels > 0 and self.kernel_size == (3, 3) and self.stride == (1, 1)
                and self.padding == (1, 1) and self.dilation == (1, 1) and self.padding_mode == "zeros")
