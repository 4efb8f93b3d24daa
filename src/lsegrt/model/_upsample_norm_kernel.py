"""Triton kernel of :func:`lsegrt.model.upsample_norm.upsample2x_normalize` (imported only on CUDA)."""

import triton
import triton.language as tl


@triton.jit
def upsample2x_normalize_kernel(x_ptr, bias_ptr, out_ptr, C, h, w, H, W, scale_y, scale_x,
                                sx_b, sx_c, sx_y, sx_x, eps,
                                CP: tl.constexpr, BLOCK_X: tl.constexpr):
    """One program: BLOCK_X pixels of output row ``yo`` of image ``b``, all C channels.

    Bilinear weights as PyTorch's upsample_bilinear2d (align_corners=True, fp32 source coordinates);
    the channel vector is formed in fp32, the bias added, divided by its norm (floored at ``eps``) and
    stored into the float32 NCHW output, contiguous along x.
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
    tl.store(dst, v, mask=mask)


@triton.jit
def upsample2x_normalize_chunked_kernel(x_ptr, bias_ptr, out_ptr, C, h, w, H, W, scale_y, scale_x,
                                        sx_b, sx_c, sx_y, sx_x, eps,
                                        CB: tl.constexpr, BLOCK_X: tl.constexpr):
    """The same function over channel chunks of CB, in two passes (the sum of squares, then the scaled
    values): registers independent of C, so wider pixel tiles (BLOCK_X) and full 512-byte stores."""
    xo = tl.program_id(0) * BLOCK_X + tl.arange(0, BLOCK_X)
    yo = tl.program_id(1)
    b = tl.program_id(2)
    cols = xo < W
    sy = yo.to(tl.float32) * scale_y
    y0 = sy.to(tl.int32)
    y1 = tl.minimum(y0 + 1, h - 1)
    ly = sy - y0.to(tl.float32)
    sx = xo.to(tl.float32) * scale_x
    x0 = sx.to(tl.int32)
    x1 = tl.minimum(x0 + 1, w - 1)
    wx = (sx - x0.to(tl.float32))[None, :]
    o00 = y0 * sx_y + x0[None, :] * sx_x
    o01 = y0 * sx_y + x1[None, :] * sx_x
    o10 = y1 * sx_y + x0[None, :] * sx_x
    o11 = y1 * sx_y + x1[None, :] * sx_x
    ss = tl.zeros([BLOCK_X], dtype=tl.float32)
    for c0 in range(0, C, CB):
        c = c0 + tl.arange(0, CB)
        mask = (c < C)[:, None] & cols[None, :]
        base = x_ptr + b * sx_b + c[:, None] * sx_c
        top = (1.0 - wx) * tl.load(base + o00, mask=mask, other=0.0).to(tl.float32) \
            + wx * tl.load(base + o01, mask=mask, other=0.0).to(tl.float32)
        bot = (1.0 - wx) * tl.load(base + o10, mask=mask, other=0.0).to(tl.float32) \
            + wx * tl.load(base + o11, mask=mask, other=0.0).to(tl.float32)
        v = (1.0 - ly) * top + ly * bot + tl.load(bias_ptr + c, mask=c < C, other=0.0).to(tl.float32)[:, None]
        v = tl.where(mask, v, 0.0)
        ss += tl.sum(v * v, axis=0)
    inv = 1.0 / tl.maximum(tl.sqrt(ss), eps)
    for c0 in range(0, C, CB):
        c = c0 + tl.arange(0, CB)
        mask = (c < C)[:, None] & cols[None, :]
        base = x_ptr + b * sx_b + c[:, None] * sx_c
        top = (1.0 - wx) * tl.load(base + o00, mask=mask, other=0.0).to(tl.float32) \
            + wx * tl.load(base + o01, mask=mask, other=0.0).to(tl.float32)
        bot = (1.0 - wx) * tl.load(base + o10, mask=mask, other=0.0).to(tl.float32) \
            + wx * tl.load(base + o11, mask=mask, other=0.0).to(tl.float32)
        v = (1.0 - ly) * top + ly * bot + tl.load(bias_ptr + c, mask=c < C, other=0.0).to(tl.float32)[:, None]
        dst = out_ptr + b * (C * H * W) + c[:, None] * (H * W) + yo * W + xo[None, :]
        tl.store(dst, v * inv[None, :], mask=mask)
