"""CLIP ViT-B/32 text tower and tokenizer (docs/ARCHITECTURE.md §5), from open_clip.

The tower is open_clip's :class:`TextTransformer`, whose attribute names match the checkpoint's
`clip_pretrained.*` keys. :func:`encode_tokens` runs its submodules itself so the sequence can be cut
right after the last EOT token: with a causal mask the tokens after EOT cannot influence it, so the
result is exact and short labels cost a fraction of the 77-token context.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import QuickGELU, TextTransformer

from ..errors import LsegError
from .config import TextConfig
from .layers import LayerNormFp32

SOT, EOT = 49406, 49407


def build_text_tower(cfg: TextConfig) -> TextTransformer:
    """`clip_pretrained`: token/positional embeddings, pre-norm blocks with QuickGELU, ln_final, projection."""
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


@lru_cache(maxsize=1)
def tokenizer() -> SimpleTokenizer:
    """CLIP byte-level BPE (vocabulary shipped inside open_clip: nothing is downloaded)."""
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
