"""The ViT qkv projection by quack's CuTe-DSL GEMM (package ``quack-kernels``, FlashAttention-4's dependency).

Timed alone on an H100 (docs/BENCHMARKS.md, eighteenth session), quack's GEMM with a 192×128 ping-pong tile
and a 2×1 cluster took 38.7 µs for ViT-L/16's qkv GEMM at 4,097 rows (1024², batch 1) against cuBLAS's 41.4 µs,
bit-identical; at 577 and 1,201 rows, and for every other block GEMM, cuBLAS was faster. So only the qkv GEMM,
only from :data:`MIN_ROWS` rows, and only where asked (the ``quack_qkv`` option of the compile backend). The
kernel is compiled by the CuTe DSL on its first call in a process (about 1.6 s). A custom op, so Inductor calls
it as it is; off CUDA (and below the row count) ``F.linear``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .attention import HALF_DTYPES, importable

QUACK_PACKAGE = "quack-kernels"
MIN_ROWS = 4097  # the row count where it was measured faster (ViT-L/16 at 1024², batch 1)
# (tile_m, tile_n, pingpong, cluster_m, cluster_n): the fastest of eight tiles timed at 4,097 rows
TILE = (192, 128, True, 2, 1)


def quack_available() -> bool:
    """Whether quack's GEMM can be imported (it loads the CuTe DSL's runtime)."""
    return importable("quack.gemm_interface")


def applies(rows: int, dtype: torch.dtype) -> bool:
    """Whether a qkv GEMM over ``rows`` rows of ``dtype`` goes to quack (where it was measured faster)."""
    return rows >= MIN_ROWS and dtype in HALF_DTYPES


@functools.cache
def gemm_config(tile: tuple[int, int, bool, int, int] = TILE):
    """quack's GemmConfig for a Hopper GEMM with ``tile`` = (tile_m, tile_n, pingpong, cluster_m, cluster_n)."""
    from quack.gemm_config import GemmConfig

    tm, tn, pingpong, cm, cn = tile
    return GemmConfig(tile_m=tm, tile_n=tn, pingpong=pingpong, cluster_m=cm, cluster_n=cn, swap_ab=False,
                      device_capacity=9, is_dynamic_persistent=False, use_tma_gather=False)


@torch.library.custom_op("lsegrt::quack_linear", mutates_args=())
def quack_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x·weightᵀ + bias: (M, K), (N, K), (N,) → (M, N), on CUDA by quack's GEMM with :data:`TILE`."""
    if not x.is_cuda:
        return F.linear(x, weight, bias)
    from quack.gemm_interface import gemm_tuned

    out = torch.empty(x.shape[0], weight.shape[0], device=x.device, dtype=x.dtype)
    gemm_tuned.fn(x.contiguous(), weight.t(), out, bias=bias, config=gemm_config())  # B as the (K, N) view
    return out


@quack_linear.register_fake
def _(x, weight, bias):
    return x.new_empty(x.shape[0], weight.shape[0])
