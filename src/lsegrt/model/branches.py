"""The image encoder as one critical path and three side branches (the `overlap` option's structure).

LSeg's decoder reads the backbone at four taps. What it does to the first three taps (reassemble,
3×3 projection, the fusion block's first residual unit) needs nothing from the later taps, so it can
run on a second CUDA stream while the backbone goes on; at batch 1 the backbone's GEMMs leave SMs
idle. Only the last tap's branch and the fusion chain are left after the backbone:

    image → segment 1 → tap1 → segment 2 → tap2 → segment 3 → tap3 → segment 4 → tap4
                         │                  │                  │                  │
                      branch 1           branch 2           branch 3           branch 4
                         └────────────── s1, s2, s3, b4 ──────────────→ tail → finish → (B,512,H/2,W/2)

The finish (the last 1×1 convolutions and the L2 norm) is its own piece so that a CUDA graph of
everything before it can hand over to kernels that write into the caller's own memory.

Every piece calls the model's own submodules in the order :class:`lsegrt.model.net.ImageEncoder`
does, so running them in order computes exactly what the encoder computes (tested bit for bit).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import torch
from torch import nn

from .decoder import as_unit_vectors
from .net import ImageEncoder
from .resnet import ResNetBackbone


class _ViTSegment(nn.Module):
    """Blocks ``first..last`` of the ViT trunk; the first segment also casts and embeds the image."""

    def __init__(self, trunk: nn.Module, first: int, last: int, dtype: torch.dtype | None):
        super().__init__()
        self.trunk = trunk if dtype is not None else None  # only the first segment embeds
        self.blocks = nn.ModuleList(trunk.blocks[first:last + 1])
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            x = self.trunk.embed(x.to(self.dtype))[0]
        for block in self.blocks:
            x = block(x)
        return x


class _ResNetSegment(nn.Module):
    """A ResNet stage; the first also casts the image, and with ``channels_last`` makes it channels-last so
    that every map after it, each piece's output included, is (a compiled piece's outputs keep the memory
    format PyTorch would give them: NCHW maps between pieces meant converting at every boundary)."""

    def __init__(self, layer: nn.Module, dtype: torch.dtype | None, channels_last: bool = False):
        super().__init__()
        self.layer, self.dtype, self.channels_last = layer, dtype, channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is not None:
            x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.layer(x)


class _Branch(nn.Module):
    """Tap k → reassemble (ViT) → layerK_rn → refinenetK.resConfUnit1 (not for the last tap)."""

    def __init__(self, post: nn.Module | None, project: nn.Module, unit: nn.Module | None):
        super().__init__()
        self.post, self.project, self.unit = post, project, unit

    def forward(self, tap: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        x = self.post(tap, gh, gw) if self.post is not None else tap
        x = self.project(x)
        return self.unit(x) if self.unit is not None else x


class _Tail(nn.Module):
    """refinenet4 … refinenet1 on the branches' outputs, refinenet1 up to its upsampling, or up to its
    mixed map where head1 upsamples (the model's dtype)."""

    def __init__(self, scratch: nn.Module):
        super().__init__()
        self.scratch = scratch

    def forward(self, b4: torch.Tensor, s3: torch.Tensor, s2: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        sc = self.scratch
        p = sc.refinenet4.fuse(b4)
        p = sc.refinenet3.fuse(p, s3)
        p = sc.refinenet2.fuse(p, s2)
        if sc.refinenet1.conv_first:  # its out_conv comes before the upsampling: all of it stays here
            return sc.refinenet1.fuse(p, s1)
        return sc.refinenet1.upsampled(p, s1)


class _Finish(nn.Module):
    """refinenet1's out_conv, head1, fp32 L2 norm over channels, float32 out. Apart from the tail so that a
    CUDA graph of the rest can end before it: its kernels then write into new memory, the caller's own
    output. It starts at the last convolution because Inductor adds a convolution's bias in the kernel
    that follows it: cut after the convolution, the bias would be one more pass over the largest map.
    A head that normalizes (:class:`lsegrt.model.upsample_norm.UpsampleNormHead`) is all of it."""

    def __init__(self, scratch: nn.Module):
        super().__init__()
        block = scratch.refinenet1
        self.out_conv = nn.Identity() if block.conv_first else block.out_conv
        self.head1 = scratch.head1
        self.normalized = scratch.head_normalizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return as_unit_vectors(self.head1(self.out_conv(x)), self.normalized)


def _numbered(base: type[nn.Module], count: int = 4) -> tuple[type[nn.Module], ...]:
    """``count`` subclasses of ``base`` (``<base>_1`` …), each with a ``forward`` that is a code object of its
    own, made once at import and kept in this module under their names.

    Dynamo keeps what it traced of a function on the function's code object, and its saved form (caching
    precompile, a saved build's ``dynamo_cache``) is keyed by the function's qualified name, under which a new
    process finds the code again: four segments sharing one ``forward`` collided there (their traced code
    installed four times on one code object). The same source, so the same computation."""
    shared = base.forward
    classes = []
    for k in range(1, count + 1):
        name = f"{base.__name__}_{k}"
        code = (shared.__code__.replace(co_qualname=f"{name}.forward") if sys.version_info >= (3, 11)
                else shared.__code__.replace(co_name=f"forward_{k}"))  # a new object either way
        forward = types.FunctionType(code, shared.__globals__, "forward", shared.__defaults__)
        forward.__qualname__ = f"{name}.forward"
        cls = type(name, (base,), {"forward": forward, "__module__": __name__, "__qualname__": name,
                                   "__doc__": base.__doc__})
        globals()[name] = cls
        classes.append(cls)
    return tuple(classes)


_VIT_SEGMENTS = _numbered(_ViTSegment)
_RESNET_SEGMENTS = _numbered(_ResNetSegment)
_BRANCHES = _numbered(_Branch)


@dataclass(frozen=True)
class SplitEncoder:
    """Four backbone segments (segment k: previous tap → tap k, the first from the float32 image), four
    branches (tap k, gh, gw → what the decoder needs of it), the tail (b4, s3, s2, s1 → refinenet1's
    upsampled map) and the finish (→ its out_conv, head1, normalized float32 features).
    ``patch``: the ViT patch stride, for the token grid the branches reshape to (None for ResNet)."""

    segments: tuple[nn.Module, ...]
    branches: tuple[nn.Module, ...]
    tail: nn.Module
    finish: nn.Module
    patch: int | None

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(gh, gw) of an input of this size (0, 0 for ResNet, whose branches take no grid)."""
        return (height // self.patch, width // self.patch) if self.patch else (0, 0)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """The pieces one after another (what the encoder computes; no streams)."""
        gh, gw = self.grid(*image.shape[-2:])
        x, feats = image, []
        for segment, branch in zip(self.segments, self.branches):
            x = segment(x)
            feats.append(branch(x, gh, gw))
        s1, s2, s3, b4 = feats
        return self.finish(self.tail(b4, s3, s2, s1))


def split_encoder(encoder: ImageEncoder, dtype: torch.dtype = torch.float32,
                  channels_last: bool = False) -> SplitEncoder:
    """``encoder`` (weights already in ``dtype``) cut at its four taps; the first segment casts the
    float32 image to ``dtype``, the tail returns float32 (as :class:`lsegrt.model.net.CastEncoder`).
    ``channels_last``: a ResNet's maps between the pieces are channels-last (same values)."""
    sc = encoder.scratch
    projects = (sc.layer1_rn, sc.layer2_rn, sc.layer3_rn, sc.layer4_rn)
    units = (sc.refinenet1.resConfUnit1, sc.refinenet2.resConfUnit1, sc.refinenet3.resConfUnit1, None)
    bb = encoder.pretrained
    if isinstance(bb, ResNetBackbone):
        layers = (bb.layer1, bb.layer2, bb.layer3, bb.layer4)
        segments = tuple(_RESNET_SEGMENTS[k](layer, dtype if k == 0 else None, channels_last and k == 0)
                         for k, layer in enumerate(layers))
        posts: tuple = (None,) * 4
        patch = None
    else:
        trunk = bb.model
        bounds = (-1, *trunk.taps)
        segments = tuple(_VIT_SEGMENTS[k](trunk, bounds[k] + 1, bounds[k + 1], dtype if k == 0 else None)
                         for k in range(4))
        posts = (bb.act_postprocess1, bb.act_postprocess2, bb.act_postprocess3, bb.act_postprocess4)
        patch = trunk.patch_embed.proj.stride[0]
    branches = tuple(_BRANCHES[k](p, c, u) for k, (p, c, u) in enumerate(zip(posts, projects, units)))
    return SplitEncoder(segments, branches, _Tail(sc), _Finish(sc), patch)
