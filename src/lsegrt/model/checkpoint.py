"""Reading, validating and converting LSeg checkpoints (docs/ARCHITECTURE.md §3, §4, §9).

A checkpoint is untrusted data: `torch.load(weights_only=True)` only, with at most a few inert
stand-ins for Lightning callback classes. Loading is strict: every required key with its documented
shape, nothing unexpected beyond the documented unused families, and every mismatch named.
"""

from __future__ import annotations

import os
import pickle
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..errors import LsegError
from .config import VARIANTS, LSegConfig
from .net import LSegNet

# §5: present in the official files, never used by the encoders. Skipped by name, not by leniency.
UNUSED_PREFIXES = (
    "clip_pretrained.visual.",
    "clip_pretrained.logit_scale",
    "pretrained.model.head.",
    "pretrained.model.norm.",
)
PREFIX = "net."


class _InertLightningObject:
    """Stand-in for Lightning classes pickled in `callbacks`: accepts state, executes nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


# Names a weights_only load may meet in a Lightning checkpoint's non-weight entries (§9).
_LIGHTNING_GLOBALS = [
    (_InertLightningObject, f"{mod}.callbacks.model_checkpoint.ModelCheckpoint")
    for mod in ("pytorch_lightning", "lightning.pytorch")
] + [
    (_InertLightningObject, f"{mod}.callbacks.early_stopping.EarlyStopping")
    for mod in ("pytorch_lightning", "lightning.pytorch")
]


def is_unused(key: str) -> bool:
    return key.startswith(UNUSED_PREFIXES)


def _torch_load(path: Path) -> Any:
    kwargs = dict(map_location="cpu", weights_only=True)
    with torch.serialization.safe_globals(_LIGHTNING_GLOBALS):
        try:
            return torch.load(path, mmap=True, **kwargs)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, **kwargs)  # legacy (non-zip) format cannot be memory-mapped


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a Lightning `.ckpt`, a plain `.pt/.pth` state_dict or a `.safetensors` file, `net.` stripped."""
    path = Path(path)
    if not path.exists():
        raise LsegError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise LsegError(f"checkpoint is not a file: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = _torch_load(path)
    except pickle.UnpicklingError as exc:
        # torch's message recommends turning weights_only off (never: a checkpoint is untrusted); name the
        # offending global instead, which is what the user needs to see.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise LsegError(f"refusing to load {path.name}: it pickles {found.group(1)}, which is not plain "
                            "weights (lsegrt never unpickles code from a checkpoint)") from None
        raise LsegError(f"cannot read checkpoint {path.name}: corrupt, truncated or not a checkpoint") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any parser failure means a bad file
        # (torch's unpickler raises IndexError/KeyError/..., safetensors its own SafetensorError)
        msg = " ".join(str(exc).split())[:200]
        raise LsegError(f"cannot read checkpoint {path.name}: corrupt, truncated or not a checkpoint ({msg})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LsegError(f"{path.name} holds no state_dict of tensors (is it an LSeg checkpoint?)")
    # removeprefix, not lstrip: lstrip('net.') would eat any leading n/e/t/. characters (§9).
    return {k.removeprefix(PREFIX): v for k, v in obj.items()}


@lru_cache(maxsize=None)
def expected_shapes(cfg: LSegConfig) -> dict[str, tuple[torch.Size, torch.dtype]]:
    """Every key the network needs with its shape and dtype, from a meta-device build (no memory).

    Cached per variant: a load asks for it in detection, validation and random weights. Read-only."""
    with torch.device("meta"):
        net = LSegNet(cfg)
    return {k: (v.shape, v.dtype) for k, v in net.state_dict().items()}


def detect_variant(sd: dict[str, torch.Tensor], source: str = "state_dict") -> LSegConfig:
    """Pick the variant of the detected family whose keys and shapes match best (exactly, if loadable)."""
    if "pretrained.model.cls_token" in sd:
        family = "vit"
    elif any(k.startswith("pretrained.layer1.") for k in sd):
        family = "resnet"
    else:
        some = ", ".join(sorted(sd)[:3])
        raise LsegError(f"{source} is not an LSeg state_dict: neither ViT nor ResNet backbone keys found (first keys: {some})")
    candidates = [c for c in VARIANTS.values() if c.backbone == family]
    used = {k: tuple(v.shape) for k, v in sd.items() if not is_unused(k)}

    def mismatches(cfg: LSegConfig) -> int:
        exp = {k: tuple(s) for k, (s, _) in expected_shapes(cfg).items()}
        return len(exp.keys() ^ used.keys()) + sum(used[k] != exp[k] for k in exp.keys() & used.keys())

    # the closest variant, so one bad key is reported as one bad key, not as a wholesale mismatch
    return min(candidates, key=mismatches)


def _fmt(keys: list[str], limit: int = 6) -> str:
    more = f", … (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def validate(sd: dict[str, torch.Tensor], cfg: LSegConfig, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Return the used tensors cast to the network's dtypes, or raise listing every mismatch."""
    exp = expected_shapes(cfg)
    used = {k: v for k, v in sd.items() if not is_unused(k)}
    missing = sorted(exp.keys() - used.keys())
    unexpected = sorted(used.keys() - exp.keys())
    shaped = sorted(
        f"{k} {list(used[k].shape)}≠{list(exp[k][0])}" for k in used.keys() & exp.keys()
        if tuple(used[k].shape) != tuple(exp[k][0])
    )
    if missing or unexpected or shaped:
        parts = [f"{len(missing)} missing ({_fmt(missing)})" if missing else "",
                 f"{len(unexpected)} unexpected ({_fmt(unexpected)})" if unexpected else "",
                 f"{len(shaped)} mis-shaped ({_fmt(shaped)})" if shaped else ""]
        raise LsegError(f"{source} does not match LSeg {cfg.name}: " + "; ".join(p for p in parts if p))
    return {k: v.to(exp[k][1]) for k, v in used.items()}


def build_net(cfg: LSegConfig, sd: dict[str, torch.Tensor], device: str | torch.device = "cpu") -> LSegNet:
    """Network with exactly ``sd``'s weights (already validated), in eval mode on ``device``."""
    with torch.device("meta"):
        net = LSegNet(cfg)
    net = net.to_empty(device=device)
    net.load_state_dict(sd, strict=True)
    # to_empty leaves non-persistent buffers uninitialized; the text tower's causal mask is one.
    net.clip_pretrained.attn_mask = net.clip_pretrained.build_causal_mask().to(device)
    return net.eval()


_CONV_TRANSPOSE = {"pretrained.act_postprocess1.4.weight", "pretrained.act_postprocess2.4.weight"}


def random_state_dict(cfg: LSegConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights for every key, filled in sorted key order by lsegrt's own rule.

    Independent of timm/torchvision/open_clip initializers, so goldens stay stable across versions.
    Scales keep activations O(1): weights ~ N(0, 1/fan_in), norms ≈ 1, BN variances ≈ 1.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, (shape, dtype) in sorted(expected_shapes(cfg).items()):
        if dtype == torch.int64:
            out[key] = torch.zeros(shape, dtype=dtype)
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "running_var":
            t = 0.5 + torch.rand(shape, generator=gen)
        elif leaf == "running_mean":
            t = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) <= 1 and ("norm" in key or "ln_" in key or ".bn" in key or key.endswith(".1.weight")
                                   or "downsample.1" in key) and leaf == "weight":
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) <= 1:
            t = 0.02 * torch.randn(shape, generator=gen)
        elif key.endswith(("pos_embed", "cls_token", "positional_embedding", "token_embedding.weight")):
            t = 0.02 * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[1:].numel() if key != "clip_pretrained.text_projection" else shape[0]
            if key in _CONV_TRANSPOSE:  # weight is (in, out, k, k): each output sees `in` inputs
                fan_in = shape[0]
            t = torch.randn(shape, generator=gen) / fan_in**0.5
        out[key] = t.to(dtype)
    return out
