"""Synthetic checkpoints in the exact official layout (docs/ARCHITECTURE.md §3, §4, §9), for tests and demos.

The official weights cannot be downloaded everywhere, so this module writes files that look like them
to the loader: the `net.` prefix, the CLIP text tower's attention/MLP weights and `text_projection` in
fp16 (as saved with CLIP on CUDA), the unused families (`pretrained.model.{norm,head}`, CLIP's
`logit_scale` and its whole image tower `clip_pretrained.visual.*`) and the Lightning extras. The used
weights are exactly :func:`lsegrt.model.checkpoint.random_state_dict` (up to the fp16 rounding), so a
synthetic file loads to the same network as ``lsegrt.random_model(variant, seed)``.

    sd = official_state_dict("vit_tiny", seed=0)
    save_lightning_checkpoint("tiny.ckpt", sd)
    model = lsegrt.load("tiny.ckpt")
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from .fileio import atomic_path
from .model.checkpoint import PREFIX, expected_shapes, is_unused, random_state_dict
from .model.config import FULL_SIZE, LSegConfig, get_config

Shapes = dict[str, tuple[torch.Size, torch.dtype]]

VISUAL_PATCH = 32  # CLIP ViT-B/32
VISUAL_TOKENS = 1 + (224 // VISUAL_PATCH) ** 2  # 50: class slot + 7×7 grid at 224²
IMAGENET_CLASSES = 1000


def _visual_shapes(cfg: LSegConfig) -> dict[str, torch.Size]:
    """`clip_pretrained.visual.*` (152 keys for ViT-B/32): width 1.5× the text width, as many layers.

    For the full-size text tower (512 wide, 12 layers) this is CLIP ViT-B/32's image tower exactly;
    the tiny variants get the proportionally tiny tower.
    """
    w, layers, out = cfg.text.width * 3 // 2, cfg.text.layers, 512
    S = torch.Size
    shapes = {
        "class_embedding": S([w]),
        "positional_embedding": S([VISUAL_TOKENS, w]),
        "proj": S([w, out]),
        "conv1.weight": S([w, 3, VISUAL_PATCH, VISUAL_PATCH]),
        "ln_pre.weight": S([w]),
        "ln_pre.bias": S([w]),
    }
    for m in range(layers):
        p = f"transformer.resblocks.{m}."
        shapes.update({
            p + "attn.in_proj_weight": S([3 * w, w]),
            p + "attn.in_proj_bias": S([3 * w]),
            p + "attn.out_proj.weight": S([w, w]),
            p + "attn.out_proj.bias": S([w]),
            p + "ln_1.weight": S([w]),
            p + "ln_1.bias": S([w]),
            p + "mlp.c_fc.weight": S([4 * w, w]),
            p + "mlp.c_fc.bias": S([4 * w]),
            p + "mlp.c_proj.weight": S([w, 4 * w]),
            p + "mlp.c_proj.bias": S([w]),
            p + "ln_2.weight": S([w]),
            p + "ln_2.bias": S([w]),
        })
    shapes.update({"ln_post.weight": S([w]), "ln_post.bias": S([w])})
    return {f"clip_pretrained.visual.{k}": v for k, v in shapes.items()}


def _stored_dtype(key: str, dtype: torch.dtype, clip_fp16: bool) -> torch.dtype:
    """OpenAI CLIP's `convert_weights` on CUDA: Linear/Conv/attention weights and the two projections
    go to fp16; embeddings, LayerNorms and `logit_scale` stay fp32 (§5)."""
    if not clip_fp16 or not key.startswith("clip_pretrained."):
        return dtype
    leaf = key.removeprefix("clip_pretrained.")
    if ".attn." in leaf or ".mlp." in leaf or leaf in ("text_projection", "visual.proj", "visual.conv1.weight"):
        return torch.float16
    return dtype


def _unused_shapes(cfg: LSegConfig) -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
    """(ViT trunk extras, CLIP extras): the families the loader skips by name."""
    trunk: dict[str, torch.Size] = {}
    if cfg.backbone == "vit":
        d = cfg.embed_dim
        classes = IMAGENET_CLASSES if cfg.name in FULL_SIZE else 10
        trunk = {
            "pretrained.model.norm.weight": torch.Size([d]),
            "pretrained.model.norm.bias": torch.Size([d]),
            "pretrained.model.head.weight": torch.Size([classes, d]),
            "pretrained.model.head.bias": torch.Size([classes]),
        }
    clip = {"clip_pretrained.logit_scale": torch.Size([]), **_visual_shapes(cfg)}
    return trunk, clip


def official_key_shapes(variant: str = "vit_l16", clip_fp16: bool = True, with_unused: bool = True) -> Shapes:
    """Every key of an official checkpoint's ``state_dict`` (with `net.`) → (shape, stored dtype).

    No tensor is allocated: shapes come from a meta-device build. Full size: vit_l16 730 keys /
    495,144,697 elements, rn101 1036 keys / 212,578,617 elements (§3, §4). Order follows the module
    tree, with the unused keys where the reference's modules hold them.
    """
    cfg = get_config(variant)
    used = expected_shapes(cfg)
    trunk, clip = _unused_shapes(cfg) if with_unused else ({}, {})
    out: Shapes = {}

    def put(key: str, shape: torch.Size, dtype: torch.dtype) -> None:
        out[PREFIX + key] = (shape, _stored_dtype(key, dtype, clip_fp16))

    pending_trunk = dict(trunk)
    for key, (shape, dtype) in used.items():
        if pending_trunk and not key.startswith("pretrained.model."):
            for k, s in pending_trunk.items():
                put(k, s, torch.float32)
            pending_trunk = {}
        if clip and key.startswith("clip_pretrained."):
            for k, s in clip.items():
                put(k, s, torch.float32)
            clip = {}
        put(key, shape, dtype)
    for k, s in {**pending_trunk, **clip}.items():
        put(k, s, torch.float32)
    return out


def _unused_tensor(key: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    leaf = key.rsplit(".", 1)[-1]
    if key.endswith("logit_scale"):
        return torch.tensor(math.log(1 / 0.07))  # CLIP's initial value; LSeg never reads it (§6)
    if leaf == "weight" and len(shape) == 1:
        return 1.0 + 0.1 * torch.randn(shape, generator=gen)
    if len(shape) <= 1 or leaf.endswith("embedding"):  # biases, class and position embeddings
        return 0.02 * torch.randn(shape, generator=gen)
    return torch.randn(shape, generator=gen) / shape[1:].numel() ** 0.5


def official_state_dict(
    variant: str = "vit_l16", seed: int = 0, clip_fp16: bool = True, with_unused: bool = True
) -> dict[str, torch.Tensor]:
    """A state_dict in the official layout: `net.` keys, stored dtypes and (optionally) unused families.

    Used weights = ``random_state_dict(get_config(variant), seed)`` cast to the stored dtype; unused
    keys come from a separate generator, so they never shift the used ones. Full-size vit_l16 holds
    ≈ 1.7 GB (fp32 with fp16 CLIP); the tiny variants a few MB.
    """
    cfg = get_config(variant)
    shapes = official_key_shapes(variant, clip_fp16=clip_fp16, with_unused=with_unused)
    used = random_state_dict(cfg, seed)
    gen = torch.Generator().manual_seed(seed + 0x5EED)
    out: dict[str, torch.Tensor] = {}
    for key, (shape, dtype) in shapes.items():
        bare = key.removeprefix(PREFIX)
        if is_unused(bare):
            out[key] = _unused_tensor(bare, shape, gen).to(dtype)
        else:
            t = used.pop(bare)
            out[key] = t if t.dtype == dtype else t.to(dtype)
    return out


def _trainable(key: str, t: torch.Tensor) -> bool:
    """What LSeg's SGD updated: the image path's float parameters (not BN statistics, not CLIP)."""
    bare = key.removeprefix(PREFIX)
    return (t.is_floating_point() and not bare.startswith("clip_pretrained.")
            and not bare.endswith(("running_mean", "running_var")))


def lightning_payload(state_dict: dict[str, torch.Tensor], momentum: bool = False,
                      callbacks: dict[str, Any] | None = None, epoch: int = 199) -> dict[str, Any]:
    """The top-level dict of a Lightning checkpoint around ``state_dict`` (keys get `net.` if missing).

    ``momentum`` adds SGD momentum buffers for the trainable tensors (doubles the image-path size, like
    the released files); ``callbacks`` replaces the default ModelCheckpoint state (plain data).
    """
    sd = {k if k.startswith(PREFIX) else PREFIX + k: v for k, v in state_dict.items()}
    trainable = [k for k, v in sd.items() if _trainable(k, v)]
    state = {i: {"momentum_buffer": torch.zeros_like(sd[k])} for i, k in enumerate(trainable)} if momentum else {}
    steps_per_epoch = 1263
    if callbacks is None:
        callbacks = {
            "ModelCheckpoint{'monitor': 'val_acc_epoch', 'mode': 'max', 'every_n_train_steps': 0, "
            "'every_n_epochs': 1, 'train_time_interval': None, 'save_on_train_epoch_end': False}": {
                "monitor": "val_acc_epoch",
                "best_model_score": torch.tensor(0.4321),
                "best_model_path": f"checkpoints/lseg/epoch={epoch}.ckpt",
                "current_score": torch.tensor(0.4321),
                "dirpath": "checkpoints/lseg",
            }
        }
    return {
        "epoch": epoch,
        "global_step": (epoch + 1) * steps_per_epoch,
        "pytorch-lightning_version": "1.3.5",
        "state_dict": sd,
        "callbacks": callbacks,
        "optimizer_states": [{
            "state": state,
            "param_groups": [{
                "lr": 0.004 * (1 - epoch / 240) ** 0.9, "momentum": 0.9, "dampening": 0,
                "weight_decay": 0.0001, "nesterov": False, "initial_lr": 0.004,
                "params": list(range(len(trainable))),
            }],
        }],
        "lr_schedulers": [{"base_lrs": [0.004], "last_epoch": epoch + 1, "_step_count": epoch + 2,
                           "verbose": False, "_get_lr_called_within_step": False,
                           "_last_lr": [0.004 * (1 - epoch / 240) ** 0.9], "lr_lambdas": [None]}],
    }


def save_lightning_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], *,
                              momentum: bool = False, callbacks: dict[str, Any] | None = None,
                              epoch: int = 199) -> Path:
    """Write ``state_dict`` as a Lightning `.ckpt` (§9: `state_dict`, `epoch`, `global_step`,
    `pytorch-lightning_version`, `callbacks`, `optimizer_states`, `lr_schedulers`), atomically."""
    payload = lightning_payload(state_dict, momentum=momentum, callbacks=callbacks, epoch=epoch)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)
