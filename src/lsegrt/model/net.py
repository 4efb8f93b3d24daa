"""The LSeg network: image encoder (backbone + decoder + head) and the CLIP text tower.

Module names follow the checkpoint keys exactly (`pretrained.*`, `scratch.*`, `clip_pretrained.*`,
docs/ARCHITECTURE.md §3/§4), so `load_state_dict(strict=True)` is the whole compatibility story.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import LSegConfig
from .decoder import Scratch, as_unit_vectors
from .resnet import ResNetBackbone
from .text import build_text_tower
from .vit import ViTBackbone


class ImageEncoder(nn.Module):
    """(B,3,H,W) normalized → (B,512,H/2,W/2) float32 per-pixel unit vectors. H, W multiples of 32.

    The only graph lsegrt exports and compiles: no text tower, no dot product, no logit upsampling.
    """

    def __init__(self, cfg: LSegConfig, pretrained: nn.Module | None = None, scratch: nn.Module | None = None):
        super().__init__()
        self.pretrained = pretrained if pretrained is not None else (
            ViTBackbone(cfg) if cfg.backbone == "vit" else ResNetBackbone(cfg)
        )
        self.scratch = scratch if scratch is not None else Scratch(cfg.stage_channels, cfg.features, cfg.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return as_unit_vectors(self.scratch(*self.pretrained(x)), self.scratch.head_normalizes)


class LSegNet(ImageEncoder):
    """Image encoder plus `clip_pretrained` (the text tower), matching the checkpoint's module tree.

    ``text=False`` leaves the tower out (:func:`lsegrt.model.checkpoint.attach_text_tower` adds it when
    text is first encoded): image-only work then never imports open_clip.
    """

    def __init__(self, cfg: LSegConfig, text: bool = True):
        super().__init__(cfg)
        self.cfg = cfg
        if text:
            self.clip_pretrained = build_text_tower(cfg.text)

    @property
    def has_text_tower(self) -> bool:
        return "clip_pretrained" in self._modules

    def image_encoder(self) -> ImageEncoder:
        """The image path alone, sharing weights (for export/compile without the text tower)."""
        return ImageEncoder(self.cfg, self.pretrained, self.scratch)


class CastEncoder(nn.Module):
    """Runs ``encoder`` in ``dtype`` with float32 I/O: the graph every backend serves (§8 fp32 norms)."""

    def __init__(self, encoder: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.encoder = encoder
        self.dtype = dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image.to(self.dtype)).float()
