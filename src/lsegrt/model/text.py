"""CLIP ViT-B/32 text tower and tokenizer (docs/ARCHITECTURE.md §5), from open_clip.

The tower is open_clip's :class:`TextTransformer`, whose attribute names match the checkpoint's
`clip_pretrained.*` keys. :func:`encode_tokens` runs its submodules itself so the sequence can be cut
right after the last EOT token: with a causal mask the tokens after EOT cannot influence it, so the
result is exact and short labels cost a fraction of the 77-token context.

open_clip is imported on first use only: its package import pulls in Hugging Face transformers (and
through it scikit-learn and SciPy) wherever those are installed, ≈ 3 s on the H200 machine, which an
image-only run (encode, extract, a saved build's first inference) never needs.
:func:`state_shapes` gives the tower's checkpoint layout without it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from ..errors import LsegError
from .config import TextConfig
from .layers import LayerNormFp32

if TYPE_CHECKING:
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transformer import TextTransformer

SOT, EOT = 49406, 49407


def build_text_tower(cfg: TextConfig) -> TextTransformer:
    """`clip_pretrained`: token/positional embeddings, pre-norm blocks with QuickGELU, ln_final, projection."""
    from open_clip.transformer import QuickGELU, TextTransformer

    return TextTransformer(
        context_length=cfg.context_length,
        vocab_size=cfg.vocab_size,
        width=cfg.width,
        heads=cfg.heads,
        layers=cfg.layers,
        output_dim=512,
        act_layer=QuickGELU,
        norm_layer=LayerNormFp32,
    )


def state_shapes(cfg: TextConfig) -> dict[str, tuple[torch.Size, torch.dtype]]:
    """The tower's state_dict layout (keys under `clip_pretrained.`, shapes, float32), as
    :func:`build_text_tower` builds it, written out so that checking a checkpoint needs no open_clip
    (a test holds it equal to open_clip's own module)."""
    w, f32 = cfg.width, torch.float32
    shapes = {"token_embedding.weight": (cfg.vocab_size, w), "positional_embedding": (cfg.context_length, w)}
    for i in range(cfg.layers):
        block = {"ln_1.weight": (w,), "ln_1.bias": (w,), "attn.in_proj_weight": (3 * w, w), "attn.in_proj_bias": (3 * w,),
                 "attn.out_proj.weight": (w, w), "attn.out_proj.bias": (w,), "ln_2.weight": (w,), "ln_2.bias": (w,),
                 "mlp.c_fc.weight": (4 * w, w), "mlp.c_fc.bias": (4 * w,), "mlp.c_proj.weight": (w, 4 * w),
                 "mlp.c_proj.bias": (w,)}
        shapes.update({f"transformer.resblocks.{i}.{k}": v for k, v in block.items()})
    shapes.update({"ln_final.weight": (w,), "ln_final.bias": (w,), "text_projection": (w, 512)})
    return {k: (torch.Size(v), f32) for k, v in shapes.items()}


@lru_cache(maxsize=1)
def tokenizer() -> SimpleTokenizer:
    """CLIP byte-level BPE (vocabulary shipped inside open_clip: nothing is downloaded)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def tokenize(labels: list[str], context_length: int = 77) -> torch.Tensor:
    """Labels → (N, 77) int64: SOT, BPE ids, EOT, zero padding. Raw strings, no prompt template.

    A label that needs more than 77 tokens is an error, never truncated (§5).
    """
    if not labels:
        raise LsegError("no labels given: pass at least one label, e.g. 'dog, grass, other'")
    tok = tokenizer()
    out = torch.zeros(len(labels), context_length, dtype=torch.long)
    for i, label in enumerate(labels):
        if not label.strip():
            raise LsegError(f"label {i + 1} is empty")
        ids = [SOT, *tok.encode(label), EOT]
        if len(ids) > context_length:
            raise LsegError(
                f"label {label[:40]!r}… is {len(ids)} tokens long; CLIP's limit is {context_length} (shorten it)"
            )
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def encode_tokens(tower: TextTransformer, ids: torch.Tensor) -> torch.Tensor:
    """(N, 77) int64 token ids → (N, 512) float32 text features (unnormalized, projected)."""
    eot = ids.argmax(dim=-1)
    n = int(eot.max()) + 1
    ids = ids[:, :n]
    dtype = tower.token_embedding.weight.dtype
    x = tower.token_embedding(ids).to(dtype) + tower.positional_embedding[:n].to(dtype)
    mask = torch.full((n, n), float("-inf"), device=ids.device, dtype=dtype).triu_(1)
    x = tower.transformer(x, attn_mask=mask)
    x = tower.ln_final(x)
    pooled = x[torch.arange(x.shape[0], device=x.device), eot]
    return (pooled @ tower.text_projection).float()
