"""The whole-word vocabulary of CLIP's BPE and its text embeddings, cached on disk.

A "whole word" is a BPE token that ends a word (``…</w>``) whose text is ASCII letters only, at least
``min_len`` long, and not an English stop word (``lsegrt/data/stopwords.txt``). Order is the tokenizer's
(merge rank, roughly frequency), so the list is deterministic for a given open_clip vocabulary.

Embeddings are the model's text features of each word as a raw label (no prompt template,
docs/ARCHITECTURE.md §5), exactly what :meth:`LSegModel.encode_text` gives, cached under
``cache_dir()/text/<model sha256[:16]>-<word-list sha256[:16]>.pt`` as one plain float32 tensor. A cache
file of the wrong shape or dtype, unreadable, or holding a non-finite value is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from .fileio import atomic_path
from .sidecar import cache_dir

if TYPE_CHECKING:
    from .api import LSegModel

_END = "</w>"


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """English stop words and web fragments ('the', 'and', 'com', 'http', ...), lowercase."""
    text = resources.files("lsegrt").joinpath("data/stopwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def whole_words(min_len: int = 3) -> list[str]:
    """CLIP BPE tokens that are whole alphabetic ASCII words of ``min_len``+ letters, minus stop words.

    Deterministic: tokenizer order (merge rank). With open_clip's vocabulary and ``min_len=3`` this is
    31 723 words (346 stop words and 203 word-final BPE fragments such as "ing" removed).
    """
    from .model.text import tokenizer

    stop = stopwords()
    out = []
    for token in tokenizer().encoder:  # dict: insertion order is the BPE rank order
        if not token.endswith(_END):
            continue
        word = token[: -len(_END)]
        if len(word) >= min_len and word.isascii() and word.isalpha() and word not in stop:
            out.append(word)
    return out


def words_digest(words: Sequence[str]) -> str:
    """sha256 hex of the word list (order matters: row i of the embeddings is word i)."""
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()


def cache_path(model: "LSegModel", words: Sequence[str]) -> Path:
    """``cache_dir()/text/<model.sha256[:16]>-<words_digest[:16]>.pt``."""
    return cache_dir() / "text" / f"{model.sha256[:16]}-{words_digest(words)[:16]}.pt"


def _load_cached(path: Path, n: int, dim: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated or foreign file: recomputing is always safe
        return None
    if not isinstance(cached, torch.Tensor) or tuple(cached.shape) != (n, dim) or cached.dtype != torch.float32:
        return None
    if not bool(torch.isfinite(cached).all()):  # a NaN row would label pixels with garbage forever
        return None
    return cached


@torch.inference_mode()
def compute_embeddings(
    model: "LSegModel", words: Sequence[str], batch_size: int = 1024, progress: bool = True
) -> torch.Tensor:
    """Words → (V,512) float32 unit text features on CPU, in batches of ``batch_size`` (no cache).

    ``progress``: report the words done (:mod:`lsegrt.progress`: a bar on a terminal, else a line every
    few seconds; the whole 31,723-word vocabulary takes minutes on a CPU).
    """
    from .model.layers import l2_normalize
    from .model.text import encode_tokens, tokenize
    from .progress import Progress

    tower = model.text_tower
    context = model.config.text.context_length
    out = torch.empty(len(words), model.config.out_dim, dtype=torch.float32)
    with Progress("embedding vocabulary (once per checkpoint, then cached)", total=len(words), unit="words",
                  enabled=progress) as bar:
        for start in range(0, len(words), batch_size):
            batch = list(words[start : start + batch_size])
            ids = tokenize(batch, context).to(model.device)
            out[start : start + len(batch)] = l2_normalize(encode_tokens(tower, ids), dim=-1).cpu()
            bar.advance(len(batch))
    return out


def vocab_embeddings(
    model: "LSegModel", words: Sequence[str] | None = None, batch_size: int = 1024, progress: bool = True
) -> torch.Tensor:
    """Words (default :func:`whole_words`) → (V,512) float32 unit text features on ``model.device``.

    Loaded from the on-disk cache when present with the right shape; otherwise computed in batches
    (with progress, see :func:`compute_embeddings`) and saved atomically. Row i is ``model.encode_text([words[i]])``.
    """
    words = whole_words() if words is None else list(words)
    if not words:
        from .errors import LsegError

        raise LsegError("empty word list: pass at least one word")
    path = cache_path(model, words)
    emb = _load_cached(path, len(words), model.config.out_dim)
    if emb is None:
        emb = compute_embeddings(model, words, batch_size=batch_size, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(emb.contiguous(), tmp)
    return emb.to(model.device)
