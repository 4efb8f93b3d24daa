"""The image encoder cut into named stages that run one after another on real intermediate tensors.

`lsegrt profile` times each stage on its own (eager, or each stage compiled on its own) and
:mod:`lsegrt.flops` counts each stage's FLOPs. Stages only call the model's own submodules, in the
order :class:`lsegrt.model.net.ImageEncoder` does (no hooks, nothing patched); chaining them
reproduces the encoder's output exactly (tested).

Every stage is an ``nn.Module`` whose ``forward(*state)`` returns the next state, a tuple. The ViT
patch grid (gh, gw) travels as two Python ints at the end of the state, as in the model itself.

ViT:    patch_embed → blocks a-b (``groups`` equal groups; taps collected on the way) → reassemble
        (readout + reassemble of the four taps) → decoder stages
ResNet: stem+layer1 → layer2 → layer3 → layer4 → decoder stages
decoder: layer_rn (the four 3×3 projections) → refinenet4 → refinenet3 → refinenet2 → refinenet1 (each
        with its ×2 bilinear upsampling) → head (1×1 conv to 512) → l2norm (fp32 norm, float32 output)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .model.decoder import as_unit_vectors
from .model.net import CastEncoder, ImageEncoder
from .model.resnet import ResNetBackbone


@dataclass(frozen=True)
class Stage:
    name: str  # e.g. "blocks 0-5"
    kind: str  # stem | blocks | reassemble | projection | refinenet | head | norm
    module: nn.Module


class _Embed(nn.Module):
    """Input cast, patch embedding, class token and resized position embedding (ViTTrunk.forward's start)."""

    def __init__(self, trunk: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.trunk, self.dtype = trunk, dtype

    def forward(self, image):
        return self.trunk.embed(image.to(self.dtype))


class _Blocks(nn.Module):
    """Transformer blocks ``first..last``; the residual stream after each tap block joins the state."""

    def __init__(self, trunk: nn.Module, first: int, last: int):
        super().__init__()
        self.blocks = nn.ModuleList(trunk.blocks[first:last + 1])
        self.first, self.taps = first, tuple(trunk.taps)

    def forward(self, x, *rest):
        *taps, gh, gw = rest
        taps = list(taps)
        for i, block in enumerate(self.blocks, start=self.first):
            x = block(x)
            if i in self.taps:
                taps.append(x)
        return (x, *taps, gh, gw)


class _Reassemble(nn.Module):
    """Readout + reassemble of the four taps into the decoder's four maps (ViTBackbone.forward's end)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.posts = nn.ModuleList([backbone.act_postprocess1, backbone.act_postprocess2,
                                    backbone.act_postprocess3, backbone.act_postprocess4])

    def forward(self, x, t1, t2, t3, t4, gh, gw):
        return tuple(post(t, gh, gw) for post, t in zip(self.posts, (t1, t2, t3, t4)))


class _ResNetLayer(nn.Module):
    """One of LSeg's ResNet layers (layer1 includes the stem); its output joins the state."""

    def __init__(self, layer: nn.Module, dtype: torch.dtype | None):
        super().__init__()
        self.layer, self.dtype = layer, dtype

    def forward(self, *maps):
        x = maps[-1] if self.dtype is None else maps[-1].to(self.dtype)
        out = self.layer(x)
        return (out,) if self.dtype is not None else (*maps, out)


class _Project(nn.Module):
    def __init__(self, scratch: nn.Module):
        super().__init__()
        self.convs = nn.ModuleList([scratch.layer1_rn, scratch.layer2_rn, scratch.layer3_rn, scratch.layer4_rn])

    def forward(self, l1, l2, l3, l4):
        return tuple(conv(x) for conv, x in zip(self.convs, (l1, l2, l3, l4)))


class _Refine(nn.Module):
    """refinenetK on the previous level's output and its skip; the deeper levels' skips pass through."""

    def __init__(self, block: nn.Module, first: bool):
        super().__init__()
        self.block, self.first = block, first

    def forward(self, *state):
        if self.first:  # refinenet4: (r1, r2, r3, r4) → (r1, r2, r3, p4)
            *skips, r4 = state
            return (*skips, self.block(r4))
        *skips, skip, p = state
        return (*skips, self.block(p, skip))


class _Head(nn.Module):
    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, p1):
        return (self.conv(p1),)


class _Norm(nn.Module):
    """The L2 norm, or nothing where the head already normalized (lsegrt.model.upsample_norm)."""

    def __init__(self, done: bool = False):
        super().__init__()
        self.done = done

    def forward(self, x):
        return (as_unit_vectors(x, self.done),)


def _unwrap(encoder: nn.Module) -> tuple[ImageEncoder, torch.dtype]:
    if isinstance(encoder, CastEncoder):
        return encoder.encoder, encoder.dtype
    if isinstance(encoder, ImageEncoder):
        return encoder, torch.float32
    raise TypeError(f"expected an ImageEncoder or CastEncoder, got {type(encoder).__name__}")


def block_groups(depth: int, taps: tuple[int, ...], groups: int) -> list[tuple[int, int]]:
    """``groups`` contiguous, near-equal ranges of block indices covering every block up to the last tap."""
    n = max(taps) + 1 if taps else depth
    groups = max(1, min(groups, n))
    bounds = [round(i * n / groups) for i in range(groups + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(groups)]


def encoder_stages(encoder: nn.Module, groups: int = 4) -> list[Stage]:
    """Stages of ``encoder`` (an :class:`ImageEncoder`, or the :class:`CastEncoder` every backend serves).

    Chained with :func:`run_stages` on a (B,3,H,W) float32 image they compute exactly what
    ``encoder(image)`` computes. ``groups``: how many groups the ViT blocks are cut into.
    """
    enc, dtype = _unwrap(encoder)
    stages: list[Stage] = []
    if isinstance(enc.pretrained, ResNetBackbone):
        rn = enc.pretrained
        stages.append(Stage("stem+layer1", "stem", _ResNetLayer(rn.layer1, dtype)))
        for k in (2, 3, 4):
            stages.append(Stage(f"layer{k}", "blocks", _ResNetLayer(getattr(rn, f"layer{k}"), None)))
    else:
        trunk = enc.pretrained.model
        stages.append(Stage("patch_embed", "stem", _Embed(trunk, dtype)))
        for first, last in block_groups(len(trunk.blocks), trunk.taps, groups):
            name = f"block {first}" if first == last else f"blocks {first}-{last}"
            stages.append(Stage(name, "blocks", _Blocks(trunk, first, last)))
        stages.append(Stage("reassemble", "reassemble", _Reassemble(enc.pretrained)))
    sc = enc.scratch
    stages.append(Stage("layer_rn", "projection", _Project(sc)))
    for k in (4, 3, 2, 1):
        stages.append(Stage(f"refinenet{k}", "refinenet", _Refine(getattr(sc, f"refinenet{k}"), k == 4)))
    stages.append(Stage("head", "head", _Head(sc.head1)))
    stages.append(Stage("l2norm", "norm", _Norm(sc.head_normalizes)))
    return stages


def run_stages(stages: list[Stage], image: torch.Tensor, call=None) -> torch.Tensor:
    """Run ``stages`` in order from ``image``; ``call(stage, state) -> state`` overrides how each runs."""
    state: tuple = (image,)
    for stage in stages:
        state = call(stage, state) if call is not None else stage.module(*state)
    (out,) = state
    return out
