"""Small numerics helpers shared by the image and text towers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the activation dtype (docs/ARCHITECTURE.md §8: a 1024-wide ViT's
    statistics may overflow in fp16). Identical to nn.LayerNorm in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


def l2_normalize(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Unit vectors along ``dim``, computed in fp32 (an fp16 sum of squares over 512 channels overflows
    once the RMS exceeds ≈11.3, §8). The 1e-12 floor only matters for exact zero vectors; the
    reference divides by the bare norm."""
    x = x.float()
    return x / torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(1e-12)
