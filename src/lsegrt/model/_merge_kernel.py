"""Triton kernel of :func:`lsegrt.model.attention.attend_first_key_apart` (imported only on CUDA)."""

import triton
import triton.language as tl


@triton.jit
def merge_first_key_kernel(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, out_ptr, n_tokens, scale,
                           sq_b, sq_h, sq_n, sk_b, sk_h, sv_b, sv_h, so_b, so_h, so_n, sl_b, sl_h, sl_n,
                           H: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr):
    """One program: BLOCK tokens of one head. out[b, t, h·D:(h+1)·D] = o + σ(q·k₀·scale − lse)·(v₀ − o)."""
    t0 = tl.program_id(0) * BLOCK
    h = tl.program_id(1)
    b = tl.program_id(2)
    t = t0 + tl.arange(0, BLOCK)
    d = tl.arange(0, D)
    rows = t < n_tokens
    q = tl.load(q_ptr + b * sq_b + h * sq_h + t[:, None] * sq_n + d[None, :], mask=rows[:, None], other=0.0)
    o = tl.load(o_ptr + b * so_b + h * so_h + t[:, None] * so_n + d[None, :], mask=rows[:, None], other=0.0)
    lse = tl.load(lse_ptr + b * sl_b + h * sl_h + t * sl_n, mask=rows, other=0.0)
    k0 = tl.load(k_ptr + b * sk_b + h * sk_h + d).to(tl.float32)
    v0 = tl.load(v_ptr + b * sv_b + h * sv_h + d).to(tl.float32)
    s0 = tl.sum(q.to(tl.float32) * k0[None, :], axis=1) * scale
    w0 = tl.sigmoid(s0 - lse.to(tl.float32))
    of = o.to(tl.float32)
    out = of + w0[:, None] * (v0[None, :] - of)
    dst = out_ptr + b * (n_tokens * H * D) + t[:, None] * (H * D) + h * D + d[None, :]
    tl.store(dst, out.to(out_ptr.dtype.element_ty), mask=rows[:, None])
