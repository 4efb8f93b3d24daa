"""Variant configurations (docs/ARCHITECTURE.md §1), as data.

The official checkpoints carry no hyper-parameters, so each variant's shape is fixed here. The tiny
variants run the exact same code with small widths; the tests use them so CI needs no GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

VIT_MEAN = (0.5, 0.5, 0.5)
VIT_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# §6: a constant 1/0.07, not CLIP's learned logit_scale.
LOGIT_SCALE = 1.0 / 0.07


@dataclass(frozen=True)
class TextConfig:
    """CLIP text tower (§5). Vocabulary and context stay fixed: they belong to the tokenizer."""

    width: int = 512
    layers: int = 12
    heads: int = 8
    vocab_size: int = 49408
    context_length: int = 77


@dataclass(frozen=True)
class LSegConfig:
    """One LSeg variant: image backbone + DPT-style decoder + 512-d head, and its text tower."""

    name: str
    backbone: str  # "vit" or "resnet"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    features: int = 256  # decoder width
    out_dim: int = 512  # embedding width (shared with the text projection)
    # ViT
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    taps: tuple[int, ...] = (5, 11, 17, 23)
    reassemble: tuple[int, ...] = (256, 512, 1024, 1024)  # channels after act_postprocessK.3
    pos_grid: int = 24  # stored position-embedding grid (384 / 16)
    # ResNet
    resnet_layers: tuple[int, ...] = (3, 4, 23, 3)
    resnet_widths: tuple[int, ...] = (64, 128, 256, 512)
    text: TextConfig = field(default_factory=TextConfig)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Channels entering scratch.layerK_rn."""
        if self.backbone == "vit":
            return self.reassemble
        return tuple(4 * w for w in self.resnet_widths)


VARIANTS: dict[str, LSegConfig] = {
    "vit_l16": LSegConfig("vit_l16", "vit", VIT_MEAN, VIT_STD),
    "rn101": LSegConfig("rn101", "resnet", IMAGENET_MEAN, IMAGENET_STD),
}
# Same code paths, tiny widths: for tests and quick CPU demos only.
VARIANTS["vit_tiny"] = replace(
    VARIANTS["vit_l16"], name="vit_tiny", features=32, embed_dim=64, depth=4, num_heads=4,
    taps=(0, 1, 2, 3), reassemble=(16, 32, 64, 64), text=TextConfig(width=64, layers=2, heads=4),
)
VARIANTS["rn_tiny"] = replace(
    VARIANTS["rn101"], name="rn_tiny", features=32, resnet_layers=(1, 1, 1, 1),
    resnet_widths=(8, 16, 32, 64), text=TextConfig(width=64, layers=2, heads=4),
)

# Which checkpoints are zero-shot (§5): they always pair the class with 'others'.
FULL_SIZE = ("vit_l16", "rn101")


def get_config(variant: str) -> LSegConfig:
    from ..errors import LsegError

    try:
        return VARIANTS[variant]
    except KeyError:
        raise LsegError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}") from None
