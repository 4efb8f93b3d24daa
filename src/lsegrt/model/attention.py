"""ViT attention with the class token's key apart: the same softmax, a faster route at some token counts.

A ViT-L/16 image of (16a)×(16b) pixels has N = 1 + a·b tokens. When a·b is a multiple of 128 (1024²,
512², 768²…), cuDNN's attention kernel (128-key tiles on Hopper) spends a whole last tile on one key.
On an H200 (fp16, 16 heads of 64, per layer): 0.172 ms with 4,097 keys, 0.151 ms with 4,096; 0.029 vs
0.024 ms at 1,025; no difference at 577 or 1,201 (docs/BENCHMARKS.md). So the attention runs over keys
1…N-1 (the patches) with its log-sum-exp, and key 0 (the class token) is merged in afterwards, exactly:

    out = o + σ(s₀ − lse) · (v₀ − o),     s₀ = q·k₀·scale

(σ(s₀ − lse) is the weight key 0 takes in the full softmax). On CUDA the merge is one Triton kernel
that reads q, o and the log-sum-exp once and writes the heads already merged, (B, N, H·D); it is a
custom op so Inductor passes the packed qkv views through untouched instead of copying them. On the CPU
the same op runs PyTorch's flash attention and the merge in fp32 (the tests' path).

:func:`flash4_attention` is the same attention (the class key apart where it is worth it, else whole) by
FlashAttention-4's kernel for Hopper (package ``flash-attn-4``, CuTe DSL) instead of cuDNN's: the compile
backend's ``flash4``, in its ``fast`` on a Hopper GPU that imports it (measured: docs/BENCHMARKS.md). It takes
the heads in the (B, N, H, D) layout the qkv GEMM writes, so no copy goes in, and its output is already
(B, N, H·D).
"""

from __future__ import annotations

import importlib

import torch

from . import flash4_cache

KEY_TILE = 128  # cuDNN's key tile for fp16, head dim 64, on Hopper (its kernel name: …64x128x64…)
# the dtypes cuDNN's and FlashAttention-4's attention kernels run in (neither has an fp32 one)
HALF_DTYPES = (torch.float16, torch.bfloat16)


def worth_it(tokens: int) -> bool:
    """Whether the class token's key alone fills the last key tile (see the module docstring)."""
    return tokens > KEY_TILE and (tokens - 1) % KEY_TILE == 0


def applies(tokens: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Where the route is taken: where it is worth it, on the CPU, or on CUDA in fp16/bf16 (cuDNN's
    attention has no fp32 kernel; there the model keeps PyTorch's own choice)."""
    if not worth_it(tokens):
        return False
    return device.type == "cpu" or (device.type == "cuda" and dtype in HALF_DTYPES)


def merge_first_key(q, k, v, o, lse, scale: float) -> torch.Tensor:
    """Reference merge (any device, fp32 math): (B, H, N, D) pieces → (B, N, H·D) in q's dtype."""
    s0 = (q.float() * k[:, :, :1].float()).sum(-1, keepdim=True) * scale
    w0 = torch.sigmoid(s0 - lse.reshape(*q.shape[:-1], 1))
    of = o.float()
    out = of + w0 * (v[:, :, :1].float() - of)
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1).to(q.dtype)


@torch.library.custom_op("lsegrt::attend_first_key_apart", mutates_args=())
def attend_first_key_apart(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q·kᵀ·scale)·v over all N keys, heads merged: (B, H, N, D) ×3 → (B, N, H·D)."""
    rest_k, rest_v = k[:, :, 1:], v[:, :, 1:]
    if q.is_cuda:
        o, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(
            q, rest_k, rest_v, None, True, 0.0, False, False, scale=scale)[:2]
        if _triton_merge_fits(q, k, v, o):
            return _triton_merge(q, k, v, o, lse, scale)
    else:
        o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, rest_k, rest_v, 0.0, False, scale=scale)[:2]
    return merge_first_key(q, k, v, o, lse, scale)


@attend_first_key_apart.register_fake
def _(q, k, v, scale):
    b, h, n, d = q.shape
    return q.new_empty(b, n, h * d)


FLASH4_PACKAGE = "flash-attn-4"


def importable(module: str) -> bool:
    """Whether ``module`` imports. For the CuTe-DSL kernel packages (FlashAttention-4, quack) the import loads the
    DSL's runtime: any failure, not only ImportError, means "not usable here"."""
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


def flash4_available() -> bool:
    """Whether FlashAttention-4's CuTe kernels can be imported (package ``flash-attn-4``); the import turns its
    kernel cache on disk on first (:mod:`.flash4_cache`)."""
    flash4_cache.enable()
    return importable(flash4_cache.INTERFACE)


@torch.library.custom_op("lsegrt::flash4_attention", mutates_args=())
def flash4_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                     first_key_apart: bool) -> torch.Tensor:
    """softmax(q·kᵀ·scale)·v, heads merged: (B, H, N, D) ×3 → (B, N, H·D). On CUDA by FlashAttention-4
    (with ``first_key_apart``: over keys 1…N-1, key 0 merged in as in :func:`attend_first_key_apart`);
    elsewhere the reference routes of this module."""
    if not q.is_cuda:
        if first_key_apart:
            return attend_first_key_apart(q, k, v, scale)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)
        return o.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
    flash4_cache.enable()
    from flash_attn.cute.interface import flash_attn_func

    b, h, n, d = q.shape
    keys = slice(1, None) if first_key_apart else slice(None)
    o, lse = flash_attn_func(q.transpose(1, 2), k[:, :, keys].transpose(1, 2), v[:, :, keys].transpose(1, 2),
                             softmax_scale=scale, return_lse=True)
    if not first_key_apart:
        return o.reshape(b, n, h * d)
    o = o.transpose(1, 2)  # (B, H, N, D) view, as the merge reads it
    if _triton_merge_fits(q, k, v, o):
        return _triton_merge(q, k, v, o, lse, scale)
    return merge_first_key(q, k, v, o, lse, scale)


@flash4_attention.register_fake
def _(q, k, v, scale, first_key_apart):
    b, h, n, d = q.shape
    return q.new_empty(b, n, h * d)


def _triton_merge_fits(q, k, v, o) -> bool:
    d = q.shape[-1]
    return d & (d - 1) == 0 and all(t.stride(-1) == 1 for t in (q, k, v, o))


def _triton_merge(q, k, v, o, lse, scale: float) -> torch.Tensor:
    import triton

    from ._merge_kernel import merge_first_key_kernel

    b, h, n, d = q.shape
    out = torch.empty(b, n, h * d, device=q.device, dtype=q.dtype)
    lse = lse.reshape(b, h, n)
    block = 64
    merge_first_key_kernel[(triton.cdiv(n, block), h, b)](
        q, k, v, o, lse, out, n, scale,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        o.stride(0), o.stride(1), o.stride(2), lse.stride(0), lse.stride(1), lse.stride(2),
        H=h, D=d, BLOCK=block, num_warps=4)
    return out
