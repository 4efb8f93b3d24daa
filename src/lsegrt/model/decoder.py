"""DPT-style decoder of LSeg (docs/ARCHITECTURE.md §2, 'Decoder (scratch)')."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import l2_normalize


def as_unit_vectors(out: torch.Tensor, normalized: bool) -> torch.Tensor:
    """head1's output as the encoder's float32 unit vectors: the fp32 L2 norm over channels, unless the
    head already normalized (:attr:`Scratch.head_normalizes`)."""
    return out if normalized else l2_normalize(out, dim=1)


class ResidualConvUnit(nn.Module):
    """ReLU → conv1 → bn1 → ReLU → conv2 → bn2, plus the un-activated input (ReLU not in place)."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(features)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(F.relu(x)))
        out = self.bn2(self.conv2(F.relu(out)))
        return out + x


class FusionBlock(nn.Module):
    """refinenetK: add the skip's RCU, RCU, ×2 bilinear (align_corners=True), 1×1 out_conv.

    ``conv_first`` (off by default; a backend sets it on its own copy, see :func:`fold_linear_maps`)
    applies out_conv before the upsampling. Both are linear and bilinear weights sum to one, so the
    result is the same up to rounding, for a quarter of out_conv's work.
    """

    conv_first = False
    # set with refinenet1's out_conv moved into an upsampling head (lsegrt.model.upsample_norm): the block
    # stops before its upsampling, which the head does
    head_upsamples = False

    def __init__(self, features: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        return self.fuse(x, None if skip is None else self.resConfUnit1(skip))

    def fuse(self, x: torch.Tensor, skip_features: torch.Tensor | None = None) -> torch.Tensor:
        """The block once its skip has been through resConfUnit1 (which needs nothing from ``x``, so it
        can run earlier, beside the backbone: lsegrt.model.branches)."""
        if self.head_upsamples:
            return self.out_conv(self._mixed(x, skip_features))
        if self.conv_first:
            return F.interpolate(self.out_conv(self._mixed(x, skip_features)), scale_factor=2.0, mode="bilinear",
                                 align_corners=True)
        return self.out_conv(self.upsampled(x, skip_features))

    def upsampled(self, x: torch.Tensor, skip_features: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`fuse` up to its out_conv (``conv_first`` off): the ×2 upsampled map."""
        return F.interpolate(self._mixed(x, skip_features), scale_factor=2.0, mode="bilinear", align_corners=True)

    def _mixed(self, x: torch.Tensor, skip_features: torch.Tensor | None) -> torch.Tensor:
        if skip_features is not None:
            x = x + skip_features
        return self.resConfUnit2(x)


class Scratch(nn.Module):
    """layerK_rn projections, four fusion blocks and the 512-d head1 (keys `scratch.*`)."""

    def __init__(self, in_channels: tuple[int, ...], features: int, out_dim: int):
        super().__init__()
        for k, c in enumerate(in_channels, start=1):
            self.add_module(f"layer{k}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        for k in range(1, 5):
            self.add_module(f"refinenet{k}", FusionBlock(features))
        self.head1 = nn.Conv2d(features, out_dim, 1)

    @property
    def head_normalizes(self) -> bool:
        """Whether head1 already returns the float32 unit vectors (lsegrt.model.upsample_norm)."""
        return getattr(self.head1, "normalizes", False)

    def forward(self, l1: torch.Tensor, l2: torch.Tensor, l3: torch.Tensor, l4: torch.Tensor) -> torch.Tensor:
        """Four stage maps at H/4, H/8, H/16, H/32 → (B, out_dim, H/2, W/2), not normalized (unless
        :attr:`head_normalizes`)."""
        p4 = self.refinenet4(self.layer4_rn(l4))
        p3 = self.refinenet3(p4, self.layer3_rn(l3))
        p2 = self.refinenet2(p3, self.layer2_rn(l2))
        p1 = self.refinenet1(p2, self.layer1_rn(l1))
        return self.head1(p1)
