"""A side branch computed in row strips (the compile backend's ``strip_pixels`` option).

With ``overlap`` the decoder's side branches run on a second stream beside the backbone. At 1024² the first
branch's three 3×3 convolutions (256 channels on a 256×256 map) took 100–110 µs each on an H100, and while one
ran the backbone's next kernel waited for it: 82–91 µs, three times a call (docs/BENCHMARKS.md, nineteenth and
twentieth sessions). A running thread block is never preempted, so the backbone's higher stream priority
cannot help once such a kernel has the SMs. In strips, each convolution is several shorter kernels, and between
two of them the block scheduler serves the waiting backbone first.

A strip of output rows ``r0..r1`` is computed from input rows ``r0-halo..r1+halo`` (``halo``: the rows the
branch's stride-1 convolutions see beyond a pixel, one per 3×3): outputs within ``halo`` rows of a cut edge saw
zero padding where the map goes on, and are dropped; at the map's own edges the padding is the map's. Every
kept pixel is computed from the same inputs and weights as without strips, so the result is the same up to
the rounding of the algorithms the convolutions get per strip. The strips' outputs are joined in one buffer,
which Inductor writes strip by strip from the branch's last element-wise kernel (no extra copy).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def strip_bounds(height: int, width: int, max_pixels: int) -> list[tuple[int, int]]:
    """Output row ranges [r0, r1) of at most ``max_pixels`` pixels each (at least one row), covering
    ``height`` rows; one range when the map fits or ``max_pixels`` is 0."""
    rows = height if max_pixels <= 0 else max(1, max_pixels // max(1, width))
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


def row_halo(*modules: nn.Module | None) -> int:
    """Rows a pixel's output reads beyond its own through ``modules`` applied in turn: the sum of their
    convolutions' reach (stride 1 only; a strided convolution is refused)."""
    halo = 0
    for module in modules:
        for conv in (m for m in (module.modules() if module is not None else ()) if isinstance(m, nn.Conv2d)):
            if conv.stride[0] != 1:
                raise ValueError(f"row strips need stride-1 convolutions, not {conv}")
            halo += conv.dilation[0] * (conv.kernel_size[0] - 1) // 2
    return halo


def in_strips(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, halo: int,
              max_pixels: int) -> torch.Tensor:
    """``fn(x)`` for a shape-preserving ``fn`` whose outputs read at most ``halo`` rows beyond their own,
    computed in row strips of at most ``max_pixels`` output pixels (one call where the map fits)."""
    height = x.shape[-2]
    bounds = strip_bounds(height, x.shape[-1], max_pixels)
    if len(bounds) == 1:
        return fn(x)
    parts = []
    for r0, r1 in bounds:
        a, b = max(r0 - halo, 0), min(r1 + halo, height)
        parts.append(fn(x[..., a:b, :])[..., r0 - a:r1 - a, :])
    return torch.cat(parts, dim=-2)
