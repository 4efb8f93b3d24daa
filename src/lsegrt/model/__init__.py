"""LSeg networks (timm-style: blocks by concern, variants as data)."""

from .config import LOGIT_SCALE, VARIANTS, LSegConfig, get_config
from .net import CastEncoder, ImageEncoder, LSegNet

__all__ = ["LOGIT_SCALE", "VARIANTS", "LSegConfig", "get_config", "CastEncoder", "ImageEncoder", "LSegNet"]
