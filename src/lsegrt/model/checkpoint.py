"""Reading, validating and converting LSeg checkpoints (docs/ARCHITECTURE.md §3, §4, §9).

A checkpoint is untrusted data: `torch.load(weights_only=True)` only, with at most a few inert
stand-ins for Lightning callback classes. Loading is strict: every required key with its documented
shape, nothing unexpected beyond the documented unused families, and every mismatch named.
"""

from __future__ import annotations

import hashlib
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


TEXT = "clip_pretrained."  # the text tower's keys


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
    from .text import state_shapes

    with torch.device("meta"):
        net = LSegNet(cfg, text=False)
    shapes = {k: (v.shape, v.dtype) for k, v in net.state_dict().items()}
    return shapes | {f"{TEXT}{k}": v for k, v in state_shapes(cfg.text).items()}


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


def _kind(dtype: torch.dtype) -> str:
    return "float" if dtype.is_floating_point else "integer" if not dtype.is_complex and dtype != torch.bool else str(dtype)


def validate(sd: dict[str, torch.Tensor], cfg: LSegConfig, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Return the used tensors cast to the network's dtypes, or raise listing every mismatch.

    Refused, with the key names: missing, unexpected and mis-shaped keys, tensors of the wrong kind
    (integers or booleans where the network holds floats, and the reverse) and floats holding NaN or
    Inf, which would turn every feature into NaN without an error.
    """
    exp = expected_shapes(cfg)
    used = {k: v for k, v in sd.items() if not is_unused(k)}
    missing = sorted(exp.keys() - used.keys())
    unexpected = sorted(used.keys() - exp.keys())
    shaped = sorted(
        f"{k} {list(used[k].shape)}≠{list(exp[k][0])}" for k in used.keys() & exp.keys()
        if tuple(used[k].shape) != tuple(exp[k][0])
    )
    typed = sorted(
        f"{k} {str(used[k].dtype).removeprefix('torch.')} (expected {_kind(exp[k][1])})" for k in used.keys() & exp.keys()
        if _kind(used[k].dtype) != _kind(exp[k][1])
    )
    if missing or unexpected or shaped or typed:
        parts = [f"{len(missing)} missing ({_fmt(missing)})" if missing else "",
                 f"{len(unexpected)} unexpected ({_fmt(unexpected)})" if unexpected else "",
                 f"{len(shaped)} mis-shaped ({_fmt(shaped)})" if shaped else "",
                 f"{len(typed)} of the wrong type ({_fmt(typed)})" if typed else ""]
        raise LsegError(f"{source} does not match LSeg {cfg.name}: " + "; ".join(p for p in parts if p))
    nonfinite = sorted(k for k, v in used.items() if v.is_floating_point() and v.device.type != "meta"
                       and not bool(torch.isfinite(v).all()))
    if nonfinite:
        raise LsegError(f"{source}: {len(nonfinite)} tensor(s) hold NaN or Inf ({_fmt(nonfinite)}); "
                        "the checkpoint is damaged or was saved from a diverged run")
    return {k: v.to(exp[k][1]) for k, v in used.items()}


def weights_sha256(sd: dict[str, torch.Tensor]) -> str:
    """Identity of a validated inference state dict: sha256 over its keys in sorted order, each with
    dtype, shape and raw bytes (little-endian, as stored in memory).

    Depends on the weights the encoders use and nothing else: an official ``.ckpt`` and its
    ``lsegrt convert`` ``.safetensors`` (no optimizer state, no unused families) are the same model
    and get the same identity, so engines built from one stay valid for the other.
    """
    h = hashlib.sha256(b"lsegrt-weights-v1\0")
    for key in sorted(sd):
        t = sd[key].detach()
        if t.device.type != "cpu":
            raise ValueError("weights_sha256 hashes CPU tensors (hash before any device move)")
        h.update(f"{key}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def checkpoint_identity(path: str | os.PathLike, sd: dict[str, torch.Tensor] | None = None,
                        at: list[int] | None = None) -> str:
    """:func:`weights_sha256` of the checkpoint at ``path``, computed once per file version.

    Remembered by the file's stat (:mod:`lsegrt.hashcache`), so checking an engine against a 1.5 GB
    checkpoint does not reload it every time. ``sd`` is the validated state dict the caller read from
    ``path`` when its stat was ``at`` (:func:`lsegrt.hashcache.stamp`): it is hashed instead of reading
    the file again, and remembered only if the file is still the one that was read.
    """
    from .. import hashcache

    path = Path(path)
    if not path.is_file():
        raise LsegError(f"checkpoint not found: {path}")
    if sd is None:
        def compute(p: Path) -> str:
            raw = read_state_dict(p)
            return weights_sha256(validate(raw, detect_variant(raw, p.name), source=p.name))

        return hashcache.digest(path, "weights", compute)
    found = hashcache.lookup(path, "weights")
    if found is not None and hashcache.stamp(path) == at:
        return found
    value = weights_sha256(sd)
    hashcache.remember(path, "weights", value, at=at)
    return value


def build_net(cfg: LSegConfig, sd: dict[str, torch.Tensor], device: str | torch.device = "cpu",
              text: bool = True) -> LSegNet:
    """Network with exactly ``sd``'s weights (already validated), in eval mode on ``device``.

    ``text=False``: the image encoder alone (``sd``'s `clip_pretrained.*` tensors are not used; see
    :func:`attach_text_tower`)."""
    with torch.device("meta"):
        net = LSegNet(cfg, text=False)
    net = net.to_empty(device=device)
    net.load_state_dict({k: v for k, v in sd.items() if not k.startswith(TEXT)}, strict=True)
    if text:
        attach_text_tower(net, sd, device)
    return net.eval()


def attach_text_tower(net: LSegNet, sd: dict[str, torch.Tensor], device: str | torch.device) -> None:
    """Build `clip_pretrained` on ``device`` from ``sd``'s `clip_pretrained.*` tensors (validated) and add
    it to ``net``, which then holds the checkpoint's whole module tree."""
    from .text import build_text_tower

    with torch.device("meta"):
        tower = build_text_tower(net.cfg.text)
    tower = tower.to_empty(device=device)
    tower.load_state_dict({k.removeprefix(TEXT): v for k, v in sd.items() if k.startswith(TEXT)}, strict=True)
    # to_empty leaves non-persistent buffers uninitialized; the causal mask is one.
    tower.attn_mask = tower.build_causal_mask().to(device)
    net.clip_pretrained = tower.eval()


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
