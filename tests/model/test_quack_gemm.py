"""The qkv projection by quack's GEMM (lsegrt.model.quack_gemm): where it applies, that the op computes the
same linear map off the GPU (also under torch.compile), and that a ViT block takes it only where asked."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from lsegrt.model import quack_gemm
from lsegrt.model.quack_gemm import MIN_ROWS, applies, quack_linear
from lsegrt.model.vit import Attention


def test_it_applies_from_the_measured_row_count_in_half_precision_only():
    assert MIN_ROWS == 4097  # ViT-L/16 at 1024², batch 1: where it was measured faster
    assert applies(4097, torch.float16) and applies(8 * 4097, torch.bfloat16)
    assert not applies(4096, torch.float16) and not applies(1201, torch.float16)
    assert not applies(4097, torch.float32)


def test_the_op_off_the_gpu_is_the_linear_map_also_compiled():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(37, 64, generator=g), torch.randn(192, 64, generator=g), torch.randn(192, generator=g)
    torch.testing.assert_close(quack_linear(x, w, b), F.linear(x, w, b), rtol=0, atol=0)
    compiled = torch.compile(lambda x, w, b: quack_linear(x, w, b), fullgraph=True)
    torch.testing.assert_close(compiled(x, w, b), F.linear(x, w, b), rtol=1e-6, atol=1e-6)


def test_a_block_takes_the_quack_route_only_where_asked_and_it_applies(monkeypatch):
    import lsegrt.model.vit as vit

    rows = []

    def counted(x, weight, bias):
        rows.append(x.shape[0])
        return quack_linear(x, weight, bias)

    monkeypatch.setattr(vit.quack_gemm, "quack_linear", counted)
    monkeypatch.setattr(quack_gemm, "MIN_ROWS", 2 * 129)  # tiny sizes stand in for 4,097 rows
    torch.manual_seed(0)
    attn = Attention(64, num_heads=4, qkv_bias=True).eval().to(torch.bfloat16)
    quack = copy.deepcopy(attn)
    quack.quack_qkv = True
    for batch in (2, 1):  # 258 rows: quack's; 129: below the row count, timm's own
        x = torch.randn(batch, 129, 64).to(torch.bfloat16)
        with torch.inference_mode():
            torch.testing.assert_close(quack(x).float(), attn(x).float(), rtol=0, atol=1e-2)
    assert rows == [258]
    with torch.inference_mode():
        attn(torch.randn(2, 129, 64).to(torch.bfloat16))  # the switch is off by default
        quack.float()(torch.randn(2, 129, 64))  # fp32: cuBLAS's (quack's route is for fp16/bf16)
    assert rows == [258] and Attention.quack_qkv is False
