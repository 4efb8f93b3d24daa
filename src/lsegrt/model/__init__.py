"""LSeg networks (timm-style: blocks by concern, variants as data).

The network classes import timm and open_clip; they load on first access, so importing the
configurations (``lsegrt.model.config``) stays light.
"""

from .config import LOGIT_SCALE, VARIANTS, LSegConfig, get_config

__all__ = ["LOGIT_SCALE", "VARIANTS", "LSegConfig", "get_config", "CastEncoder", "ImageEncoder", "LSegNet"]
_LAZY = ("CastEncoder", "ImageEncoder", "LSegNet")


def __getattr__(name: str):
    if name in _LAZY:
        from . import net

        return getattr(net, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
