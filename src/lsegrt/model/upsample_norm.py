"""LSeg's last step in one pass: ×2 bilinear upsampling, the head's bias and the L2 norm over channels.

The encoder ends with refinenet1's ×2 bilinear upsampling (align_corners=True), then 1×1 convolutions
(out_conv, head1: with ``fold`` merged into one 256→512 convolution) and an fp32 L2 norm over the 512
channels. A 1×1 convolution commutes with the upsampling (both linear, each output pixel's bilinear
weights sum to one, so the bias commutes too): run first, it costs a quarter. Moved so under Inductor,
the upsampling fused into the norm's reduction and was slower (docs/BENCHMARKS.md, third session). So
here the convolution runs first, without its bias, and one Triton kernel reads its output once, per
output pixel gathers the four source pixels' channel vectors, adds the bias, divides by the norm and
writes the float32 output, so the largest map (at 1024² the 512×512×512 output) is written once and
never read back. A custom op, so Inductor leaves it whole. On the CPU (and where the kernel does not
fit) the same function in PyTorch, in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12  # as lsegrt.model.layers.l2_normalize


def reference(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The same function in PyTorch, fp32 math: (B,C,h,w), (C,) → (B,C,2h,2w) float32 unit vectors."""
    up = F.interpolate(x.float(), scale_factor=2.0, mode="bilinear", align_corners=True)
    up = up + bias.float()[:, None, None]
    return up / torch.linalg.vector_norm(up, dim=1, keepdim=True).clamp_min(EPS)


@torch.library.custom_op("lsegrt::upsample2x_normalize", mutates_args=())
def upsample2x_normalize(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """normalize(upsample2x(x) + bias) over channels: (B,C,h,w), (C,) → contiguous (B,C,2h,2w) float32."""
    if x.is_cuda and _kernel_fits(x):
        return _triton(x, bias)
    return reference(x, bias).contiguous()


@upsample2x_normalize.register_fake
def _(x, bias):
    b, c, h, w = x.shape
    return x.new_empty(b, c, 2 * h, 2 * w, dtype=torch.float32)


MAX_CHANNELS = 1024  # the kernel holds a pixel's whole channel vector in registers


def _kernel_fits(x: torch.Tensor) -> bool:
    return x.shape[1] <= MAX_CHANNELS and x.numel() > 0


# 16 output pixels × all channels per program, 4 warps: on an H100 at 1024², 0.236 ms against 0.266 ms for the
# first tile (32 pixels, 8 warps) and 0.35 ms for 64 pixels; on a NCHW input about 10× slower (the gathers along x
# are not vectorized), so the head keeps the convolution's channels-last output (docs/BENCHMARKS.md, sixth and
# fifteenth sessions). Other tiles and the streaming store are for tools/issue9_probe.py --finish to time.
TILE = (16, 4, False)  # (output pixels per program, warps, streaming store)


def _triton(x: torch.Tensor, bias: torch.Tensor, tile: tuple[int, int, bool] = TILE) -> torch.Tensor:
    import triton

    from ._upsample_norm_kernel import upsample2x_normalize_kernel

    b, c, h, w = x.shape
    H, W = 2 * h, 2 * w
    out = torch.empty(b, c, H, W, device=x.device, dtype=torch.float32)
    block_x, warps, stream = tile
    upsample2x_normalize_kernel[(triton.cdiv(W, block_x), H, b)](
        x, bias, out, c, h, w, H, W, (h - 1) / (H - 1), (w - 1) / (W - 1),
        x.stride(0), x.stride(1), x.stride(2), x.stride(3), EPS,
        CP=triton.next_power_of_2(c), BLOCK_X=block_x, STREAM=stream, num_warps=warps)
    return out


class UpsampleNormHead(nn.Module):
    """A 1×1 convolution's weights (refinenet1's out_conv merged with head1) applied before the ×2
    upsampling, then :func:`upsample2x_normalize`: refinenet1's mixed map (B,256,h,w) → the encoder's
    float32 unit vectors (B,512,2h,2w)."""

    normalizes = True  # the encoder adds no L2 norm of its own after this head

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the kernel wants channels-last (see _triton); a convolution's output follows its input's memory
        # format, and a ResNet's maps are NCHW unless asked (RN101 at 1024² was 1.1 ms slower with them)
        x = x.contiguous(memory_format=torch.channels_last)
        return upsample2x_normalize(F.conv2d(x, self.weight), self.bias)
