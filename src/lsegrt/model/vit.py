"""ViT-L/16 image backbone with taps, `project` readout and reassemble (docs/ARCHITECTURE.md §2).

Blocks are timm's; the loop over them is ours so the four taps are plain return values (no hooks,
no global state), and every grid size is read from the patch-embedding output so one exported graph
serves every input size.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import Mlp as TimmMlp
from timm.models.vision_transformer import Attention as TimmAttention
from timm.models.vision_transformer import Block
from torch import nn

from . import quack_gemm
from .attention import HALF_DTYPES, applies, attend_first_key_apart, flash4_attention, worth_it
from .config import LSegConfig
from .layers import LayerNormFp32


class PatchEmbed(nn.Module):
    """Conv 16×16 stride 16; pixels past the last full patch are ignored by the stride.

    ``as_gemm`` (off by default, as timm's ``fused_attn`` a switch a backend sets on its own copy)
    computes the same products as one GEMM over the unfolded patches: on an H200 cuDNN's fp16 kernel
    for this convolution took 0.111 ms at 384² where the GEMM took 0.008 ms (docs/BENCHMARKS.md).
    """

    as_gemm = False

    def __init__(self, dim: int, patch: int = 16):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(gh, gw): the patches of an input of this size (pixels past the last full patch ignored)."""
        p = self.proj.stride[0]
        return height // p, width // p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.as_gemm:
            return self.proj(x)
        p = self.proj.stride[0]
        b, c, h, w = x.shape
        gh, gw = self.grid(h, w)
        patches = x[:, :, :gh * p, :gw * p].reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
        y = F.linear(patches.reshape(b, gh * gw, c * p * p), self.proj.weight.flatten(1), self.proj.bias)
        return y.transpose(1, 2).reshape(b, -1, gh, gw)


class Mlp(TimmMlp):
    """timm's Mlp (same parameters and keys). ``gelu_epilogue`` (off by default; a backend sets it on
    its own copy) runs fc1's bias and the GELU inside the GEMM (cuBLASLt's epilogue,
    ``torch._addmm_activation``): one kernel instead of two, but its GELU is the tanh approximation,
    not the exact erf GELU of the checkpoint, so it is an opt-in whose fidelity is measured."""

    gelu_epilogue = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.gelu_epilogue:
            return super().forward(x)
        h = torch._addmm_activation(self.fc1.bias, x.reshape(-1, x.shape[-1]), self.fc1.weight.t(), use_gelu=True)
        return self.fc2(h.reshape(*x.shape[:-1], h.shape[-1]))


class Attention(TimmAttention):
    """timm's Attention (same parameters and keys). ``cls_key_apart`` (off by default; a backend sets it on
    its own copy) computes it with the class token's key apart (:mod:`.attention`) at the token counts
    where that is faster (:func:`.attention.applies`): the same softmax, by another route. ``flash4`` (off by
    default, likewise) runs it in fp16/bf16 by FlashAttention-4's kernel. ``quack_qkv`` (likewise) computes the
    qkv projection by quack's GEMM where :func:`.quack_gemm.applies`."""

    cls_key_apart = False
    flash4 = False  # FlashAttention-4's kernel instead of cuDNN's (:func:`.attention.flash4_attention`), fp16/bf16
    quack_qkv = False  # quack's CuTe-DSL GEMM for the qkv projection (:func:`.quack_gemm.quack_linear`)

    def _quack(self, x: torch.Tensor) -> bool:
        return self.quack_qkv and quack_gemm.applies(x.shape[0] * x.shape[1], x.dtype)

    def _route(self, x: torch.Tensor):
        """The attention route this copy's switches pick for ``x``: a function (q, k, v, scale) → (B, N, H·D),
        or None for timm's own."""
        n = x.shape[1]
        if self.flash4 and x.dtype in HALF_DTYPES:
            apart = self.cls_key_apart and worth_it(n)
            return lambda q, k, v, scale: flash4_attention(q, k, v, scale, apart)
        if self.cls_key_apart and applies(n, x.dtype, x.device):
            return attend_first_key_apart
        if self._quack(x):  # timm's attention, after a qkv projection of our own
            return _sdpa
        return None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        attend = None if attn_mask is not None or is_causal or self.training else self._route(x)
        if attend is None:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        b, n, c = x.shape
        if self._quack(x):
            qkv = quack_gemm.quack_linear(x.reshape(b * n, c), self.qkv.weight, self.qkv.bias)
        else:
            qkv = self.qkv(x)
        qkv = qkv.reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = attend(self.q_norm(q), self.k_norm(k), v, float(self.scale))
        return self.proj_drop(self.proj(self.norm(x)))


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """timm's fused attention route, heads merged: (B, H, N, D) ×3 → (B, N, H·D)."""
    o = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return o.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)


class ViTTrunk(nn.Module):
    """`pretrained.model`: patch embedding, class token, resized position embedding, blocks.

    ``pos_cache`` (a switch a backend sets on its own copy, off by default): :meth:`cache_pos_embed` stores
    the position embedding resized for an input size, in the compute dtype, and :meth:`embed` takes it as
    it is instead of interpolating the 24×24 grid on every call (exact: the same values, rounded once, as
    eager computes them). Sizes never cached are interpolated as before.
    """

    pos_cache = False

    def __init__(self, cfg: LSegConfig):
        super().__init__()
        self.pos_embeds: dict[tuple[int, int], torch.Tensor] = {}  # (gh, gw) → (1, 1+gh·gw, D); not state
        d = cfg.embed_dim
        self.pos_grid = cfg.pos_grid
        self.taps = tuple(cfg.taps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_grid**2, d))
        self.patch_embed = PatchEmbed(d)
        norm = partial(LayerNormFp32, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=norm, act_layer=nn.GELU, mlp_layer=Mlp,
                  attn_layer=Attention)
            for _ in range(max(cfg.taps) + 1)
        )

    def resized_pos_embed(self, gh, gw) -> torch.Tensor:
        """(1, 1+gh·gw, D): grid slots resized bilinearly, align_corners=False, no antialias."""
        cls_pos, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        d = grid.shape[-1]
        grid = grid.reshape(1, self.pos_grid, self.pos_grid, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
        grid = grid.flatten(2).transpose(1, 2)
        return torch.cat([cls_pos, grid], dim=1)

    def cache_pos_embed(self, height: int, width: int) -> None:
        """With ``pos_cache``: resize the position embedding for a (height, width) input once, outside any
        compiled graph (which then reads it as an input: Dynamo does not recompile when another size is
        added). A no-op for a size already cached, or with the switch off."""
        if not self.pos_cache:
            return
        grid = self.patch_embed.grid(height, width)
        if grid not in self.pos_embeds:
            with torch.no_grad():
                self.pos_embeds[grid] = self.resized_pos_embed(*grid).to(self.cls_token.dtype)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B,3,H,W) → tokens (B, 1+gh·gw, D): patches, class token, resized position embedding; (gh, gw)."""
        x = self.patch_embed(x)
        gh, gw = x.shape[-2], x.shape[-1]
        x = x.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype)
        pos = self.pos_embeds.get((gh, gw)) if self.pos_cache else None
        if pos is None:
            pos = self.resized_pos_embed(gh, gw)
        return torch.cat([cls, x], dim=1) + pos.to(x.dtype), gh, gw

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], int, int]:
        """(B,3,H,W) → the residual stream after each tap block, (B, 1+gh·gw, D) each, and (gh, gw)."""
        x, gh, gw = self.embed(x)
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                taps.append(x)
        return taps, gh, gw


def pos_cache_trunks(module: nn.Module) -> list[ViTTrunk]:
    """The trunks in ``module`` whose ``pos_cache`` switch is on: a caller runs their
    :meth:`~ViTTrunk.cache_pos_embed` for each input size before the compiled call."""
    return [m for m in module.modules() if isinstance(m, ViTTrunk) and m.pos_cache]


class ProjectReadout(nn.Module):
    """`act_postprocessK.0`: [patch token ‖ class token] → Linear(2D→D) → exact GELU.

    ``split`` (a switch a backend sets on its own copy, off by default): the same map without the
    concatenation, W·[p ‖ c] + b = W_p·p + (W_c·c + b), the class token's half computed once per image
    and added as a bias: the GEMM over the patches has half the depth and the concatenated copy is gone
    (exact up to rounding).
    """

    split = False

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]
        if self.split:
            linear, d = self.project[0], tokens.shape[-1]
            cls_bias = F.linear(tokens[:, :1], linear.weight[:, d:], linear.bias)  # (B, 1, D)
            return self.project[1](F.linear(patches, linear.weight[:, :d]) + cls_bias)
        cls = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat([patches, cls], dim=-1))


def deconv_as_gemm(x: torch.Tensor, deconv: nn.ConvTranspose2d) -> torch.Tensor:
    """``deconv(x)`` for a transposed convolution whose kernel equals its stride, as one GEMM and a pixel
    shuffle: each input pixel paints its own s×s block of the output, so the block is the pixel's C-vector
    times a C × (s·s·O) matrix. The GEMM's columns are ordered (row, column, channel) within the block, so
    the shuffle (with the bias) moves whole O-vectors and the result is channels-last; with channels-last
    maps and weights both reshapes are views. Exact up to rounding."""
    s = deconv.stride[0]
    b, c, h, w = x.shape
    o = deconv.out_channels
    weight = deconv.weight.permute(0, 2, 3, 1).reshape(c, s * s * o)
    y = x.permute(0, 2, 3, 1).reshape(b * h * w, c) @ weight
    y = y.reshape(b, h, w, s, s, o).permute(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, o) + deconv.bias
    return y.permute(0, 3, 1, 2)


def gemm_shaped(deconv: nn.Module) -> bool:
    """Whether :func:`deconv_as_gemm` computes ``deconv``: a square kernel equal to its stride, no padding,
    dilation or groups."""
    return (isinstance(deconv, nn.ConvTranspose2d) and deconv.kernel_size == deconv.stride
            and deconv.kernel_size[0] == deconv.kernel_size[1] and deconv.padding == (0, 0)
            and deconv.output_padding == (0, 0) and deconv.dilation == (1, 1) and deconv.groups == 1
            and deconv.bias is not None)


class Reassemble(nn.Sequential):
    """`act_postprocessK`: weights at indices 0, 3, 4 (§2). Indices 1 and 2 (transpose, a fixed-size
    unflatten in the reference) hold no weights; their work is a reshape from the tap's grid here.

    ``deconv_gemm`` (a switch a backend sets on its own copy, off by default): the ×4 and ×2 transposed
    convolutions of levels 1 and 2 as :func:`deconv_as_gemm` instead of cuDNN's kernel.
    """

    deconv_gemm = False

    def __init__(self, dim: int, out: int, level: int):
        resample = {
            1: nn.ConvTranspose2d(out, out, 4, stride=4),
            2: nn.ConvTranspose2d(out, out, 2, stride=2),
            3: None,
            4: nn.Conv2d(out, out, 3, stride=2, padding=1),
        }[level]
        mods = [ProjectReadout(dim), nn.Identity(), nn.Identity(), nn.Conv2d(dim, out, 1)]
        if resample is not None:
            mods.append(resample)
        super().__init__(*mods)

    def forward(self, tokens: torch.Tensor, gh, gw) -> torch.Tensor:  # type: ignore[override]
        x = self[0](tokens)
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], gh, gw)
        x = self[3](x)
        if len(self) == 4:
            return x
        resample = self[4]
        # the resample layer may be pinned to another dtype than the rest (bf16 engines, see
        # backends.common.encoder_module); cast in and out so the graph stays consistent
        x_in = x.to(resample.weight.dtype)
        if self.deconv_gemm and gemm_shaped(resample):
            return deconv_as_gemm(x_in, resample).to(x.dtype)
        return resample(x_in).to(x.dtype)


class ViTBackbone(nn.Module):
    """`pretrained`: (B,3,H,W) → four maps at H/4, H/8, H/16, H/32 for the decoder."""

    def __init__(self, cfg: LSegConfig):
        super().__init__()
        self.model = ViTTrunk(cfg)
        for k, out in enumerate(cfg.reassemble, start=1):
            self.add_module(f"act_postprocess{k}", Reassemble(cfg.embed_dim, out, k))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        taps, gh, gw = self.model(x)
        posts = (self.act_postprocess1, self.act_postprocess2, self.act_postprocess3, self.act_postprocess4)
        return tuple(post(t, gh, gw) for post, t in zip(posts, taps))
