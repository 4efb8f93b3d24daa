"""The ViT attention with the class token's key apart (lsegrt.model.attention): the same softmax as SDPA
over all keys, on the CPU route, through torch.compile, in the Triton merge kernel (Triton's interpreter,
no GPU) and in the whole encoder."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention as TimmAttention

from lsegrt.model.attention import applies, attend_first_key_apart, flash4_attention, worth_it
from lsegrt.model.vit import Attention

from .conftest import run_interpreted


def _packed(batch, tokens, heads, dim, seed=0, dtype=torch.float32):
    """q, k, v as timm makes them: views of one packed (B, N, 3, H, D) GEMM output."""
    qkv = torch.randn(batch, tokens, 3, heads, dim, generator=torch.Generator().manual_seed(seed)).to(dtype)
    return qkv.permute(2, 0, 3, 1, 4).unbind(0)


def _reference(q, k, v):
    b, h, n, d = q.shape
    return F.scaled_dot_product_attention(q.double(), k.double(), v.double()).transpose(1, 2).reshape(b, n, h * d)


def test_worth_it_where_the_class_key_alone_fills_the_last_key_tile():
    assert [n for n in (577, 1025, 1201, 2305, 4097, 129, 128, 1) if worth_it(n)] == [1025, 2305, 4097, 129]


def test_applies_on_the_cpu_and_on_cuda_in_half_precision_only():
    cpu, cuda, meta = torch.device("cpu"), torch.device("cuda"), torch.device("meta")
    assert applies(4097, torch.float32, cpu) and applies(4097, torch.float16, cuda) and applies(4097, torch.bfloat16, cuda)
    assert not applies(4097, torch.float32, cuda)  # cuDNN's attention has no fp32 kernel
    assert not applies(4097, torch.float16, meta) and not applies(577, torch.float16, cuda)


@pytest.mark.parametrize("tokens", [2, 5, 129, 300])
def test_class_key_apart_is_attention_over_all_keys(tokens):
    q, k, v = _packed(2, tokens, 4, 16, seed=tokens)
    out = attend_first_key_apart(q, k, v, 16 ** -0.5)
    assert out.shape == (2, tokens, 64) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _reference(q, k, v), rtol=0, atol=2e-6)


def test_class_key_apart_compiles_to_the_same_result():
    q, k, v = _packed(1, 129, 4, 16)
    compiled = torch.compile(lambda q, k, v: attend_first_key_apart(q, k, v, 0.25), fullgraph=True)
    torch.testing.assert_close(compiled(q, k, v).double(), _reference(q, k, v), rtol=0, atol=2e-6)


def test_class_key_dominating_the_softmax_still_merges_exactly():
    q, k, v = _packed(1, 129, 2, 16)
    k = k.clone()
    k[:, :, 0] = q.mean(2) * 40  # every query now puts almost all its weight on key 0
    torch.testing.assert_close(attend_first_key_apart(q, k, v, 0.25).double(), _reference(q, k, v), rtol=0, atol=2e-6)


TRITON_CHECK = """
import json, sys, torch
from lsegrt.model.attention import _triton_merge, merge_first_key

out = {}
for tokens, dtype in ((129, torch.float32), (70, torch.float16), (257, torch.float16)):
    g = torch.Generator().manual_seed(tokens)
    qkv = torch.randn(2, tokens, 3, 4, 64, generator=g).to(dtype)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q.float(), k[:, :, 1:].float(), v[:, :, 1:].float(), 0.0, False, scale=0.125)[:2]
    o = o.to(dtype)
    a = _triton_merge(q, k, v, o, lse.reshape(2, 4, tokens, 1), 0.125)
    b = merge_first_key(q, k, v, o, lse, 0.125)
    out[f"{tokens}:{dtype}"] = [list(a.shape), str(a.dtype), float((a.double() - b.double()).abs().max())]
print(json.dumps(out))
"""


def test_triton_merge_kernel_matches_the_reference_merge_in_tritons_interpreter():
    res = run_interpreted(TRITON_CHECK)
    for key, (shape, dtype, diff) in res.items():
        tokens = int(key.split(":")[0])
        assert shape == [2, tokens, 256]
        assert dtype == ("torch.float32" if "float32" in key else "torch.float16")
        # fp16: both round the same fp32 value to fp16, up to one unit in the last place
        assert diff <= (1e-6 if "float32" in key else 2 ** -10), (key, diff)


def test_attention_keeps_timms_keys_and_computes_the_same_with_the_class_key_apart():
    torch.manual_seed(0)
    attn = Attention(64, num_heads=4, qkv_bias=True).eval()
    assert isinstance(attn, TimmAttention) and set(attn.state_dict()) == set(TimmAttention(64, 4, qkv_bias=True).state_dict())
    apart = copy.deepcopy(attn)
    apart.cls_key_apart = True
    for tokens in (129, 130):  # 130: not worth it, plain SDPA
        x = torch.randn(2, tokens, 64)
        with torch.inference_mode():
            torch.testing.assert_close(apart(x), attn(x), rtol=1e-5, atol=1e-5)
    assert Attention.cls_key_apart is False


def test_encoder_with_the_class_key_apart_matches_at_a_token_count_where_it_applies(tiny_vit):
    from lsegrt.backends.compiled import CompileOptions, served_module

    opts = CompileOptions.parse({"cls_key_apart": True})
    assert opts.cls_key_apart and opts.record()["cls_key_apart"] is True
    plain = served_module(tiny_vit, "fp32", torch.device("cpu"), CompileOptions.parse({}))
    apart = served_module(tiny_vit, "fp32", torch.device("cpu"), opts)
    assert sum(getattr(m, "cls_key_apart", False) for m in apart.modules()) == len(tiny_vit.net.pretrained.model.blocks)
    x = torch.rand(1, 3, 128, 256, generator=torch.Generator().manual_seed(2))  # 8×16 patches: 129 tokens
    with torch.inference_mode():
        torch.testing.assert_close(apart(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("apart", [False, True])
def test_flash4_attention_off_the_gpu_is_attention_over_all_keys(apart):
    q, k, v = _packed(2, 129, 4, 16, seed=3)
    out = flash4_attention(q, k, v, 16 ** -0.5, apart)
    assert out.shape == (2, 129, 64)
    torch.testing.assert_close(out.double(), _reference(q, k, v), rtol=0, atol=2e-6)
    compiled = torch.compile(lambda q, k, v: flash4_attention(q, k, v, 16 ** -0.5, apart), fullgraph=True)
    torch.testing.assert_close(compiled(q, k, v).double(), _reference(q, k, v), rtol=0, atol=2e-6)


def test_attention_takes_the_flash4_route_in_half_precision_only(monkeypatch):
    import lsegrt.model.vit as vit

    calls = []

    def counted(q, k, v, scale, apart):
        calls.append(apart)
        return flash4_attention(q, k, v, scale, apart)

    monkeypatch.setattr(vit, "flash4_attention", counted)
    torch.manual_seed(0)
    attn = Attention(64, num_heads=4, qkv_bias=True).eval().to(torch.bfloat16)
    fa4 = copy.deepcopy(attn)
    fa4.flash4 = fa4.cls_key_apart = True
    for tokens in (129, 130):  # 129: the class key apart; 130: whole
        x = torch.randn(2, tokens, 64).to(torch.bfloat16)
        with torch.inference_mode():
            torch.testing.assert_close(fa4(x).float(), attn(x).float(), rtol=0, atol=2e-2)
    assert calls == [True, False]
    with torch.inference_mode():
        fa4.float()(torch.randn(1, 129, 64))  # fp32: FA4 has no fp32 kernel, the route stays PyTorch's
    assert calls == [True, False] and Attention.flash4 is False
