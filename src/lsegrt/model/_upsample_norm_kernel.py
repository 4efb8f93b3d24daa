"""Triton kernel of :func:`lsegrt.model.upsample_norm.upsample2x_normalize` (imported only on CUDA)."""

import triton
import triton.language as tl


@triton.jit
def upsample2x_normalize_kernel(x_ptr, bias_ptr, out_ptr, C, h, w, H, W, scale_y, scale_x,
                                sx_b, sx_c, sx_y, sx_x, eps,
                                CP: tl.constexpr, BLOCK_X: tl.constexpr, STREAM: tl.constexpr = False):
    """One program: BLOCK_X pixels of output row ``yo`` of image ``b``, all C channels.

    Bilinear weights as PyTorch's upsample_bilinear2d (align_corners=True, fp32 source coordinates);
    the channel vector is formed in fp32, the bias added, divided by its norm (floored at ``eps``) and
    stored into the float32 NCHW output, contiguous along x; ``STREAM``: with the streaming cache hint
    (the output, 537 MB at 1024², is never read back here).
    """
    xo = tl.program_id(0) * BLOCK_X + tl.arange(0, BLOCK_X)
    yo = tl.program_id(1)
    b = tl.program_id(2)
    c = tl.arange(0, CP)
    cols = xo < W
    chans = c < C
    mask = chans[:, None] & cols[None, :]

    sy = yo.to(tl.float32) * scale_y
    y0 = sy.to(tl.int32)  # sy ≥ 0: truncation is floor
    y1 = tl.minimum(y0 + 1, h - 1)
    ly = sy - y0.to(tl.float32)
    sx = xo.to(tl.float32) * scale_x
    x0 = sx.to(tl.int32)
    x1 = tl.minimum(x0 + 1, w - 1)
    lx = sx - x0.to(tl.float32)

    base = x_ptr + b * sx_b + c[:, None] * sx_c
    r0 = base + y0 * sx_y
    r1 = base + y1 * sx_y
    a = tl.load(r0 + x0[None, :] * sx_x, mask=mask, other=0.0).to(tl.float32)
    bb = tl.load(r0 + x1[None, :] * sx_x, mask=mask, other=0.0).to(tl.float32)
    cc = tl.load(r1 + x0[None, :] * sx_x, mask=mask, other=0.0).to(tl.float32)
    dd = tl.load(r1 + x1[None, :] * sx_x, mask=mask, other=0.0).to(tl.float32)
    wx = lx[None, :]
    top = (1.0 - wx) * a + wx * bb
    bot = (1.0 - wx) * cc + wx * dd
    v = (1.0 - ly) * top + ly * bot
    bias = tl.load(bias_ptr + c, mask=chans, other=0.0).to(tl.float32)
    v = tl.where(mask, v + bias[:, None], 0.0)
    norm = tl.sqrt(tl.sum(v * v, axis=0))
    v = v / tl.maximum(norm, eps)[None, :]
    dst = out_ptr + b * (C * H * W) + c[:, None] * (H * W) + yo * W + xo[None, :]
    if STREAM:
        tl.store(dst, v, mask=mask, cache_modifier=".cs")
    else:
        tl.store(dst, v, mask=mask)

