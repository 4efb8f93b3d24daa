"""Word-free segmentation: label every pixel with its nearest word from the whole CLIP vocabulary.

No label list is given: each pixel embedding is compared with the text features of every whole word
(:mod:`lsegrt.vocab`, ~32k words), the best word per pixel wins, and words covering at least
``min_coverage`` of the image are kept. The argmax runs at the embedding resolution (H/2×W/2): the
×2 bilinear logit upsampling (docs/ARCHITECTURE.md §6) only smooths boundaries between neighbouring pixels and does
not change which words are present or their share in any meaningful way, and it would cost 4× the
dominant pixels×vocabulary product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import LsegError
from .segmentation import EncodeFn

if TYPE_CHECKING:
    from .api import LSegModel

# Scores held at once in the chunked argmax: 2^24 float32 = 64 MiB, whatever the image or vocabulary.
CHUNK_ELEMENTS = 1 << 24


@dataclass
class WordfreeResult:
    """What :func:`wordfree` found in one image.

    ``words``/``ids``/``coverage``/``argmax_coverage``/``mean_cosine`` are parallel lists, most
    covered word first. ``ids`` index the vocabulary that was searched. ``labels`` is ``(H0,W0)``
    int32 at the original image size, values indexing ``words``.
    ``coverage``: share of embedding pixels labelled with the word once the argmax is restricted to
    the kept words. ``argmax_coverage``: its share in the unrestricted argmax over the vocabulary.
    ``mean_cosine``: mean cosine between the word and the pixels it labels.
    """

    words: list[str]
    ids: list[int]
    coverage: list[float]
    argmax_coverage: list[float]
    mean_cosine: list[float]
    labels: np.ndarray
    vocabulary_size: int
    embedding_hw: tuple[int, int]
    model_hw: tuple[int, int]

    def coverage_by_word(self) -> dict[str, float]:
        return dict(zip(self.words, self.coverage))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no label map)."""
        return {
            "vocabulary_size": self.vocabulary_size,
            "model_size": list(self.model_hw),
            "embedding_size": list(self.embedding_hw),
            "image_size": list(self.labels.shape),
            "words": [
                {"word": w, "id": i, "coverage": c, "argmax_coverage": a, "mean_cosine": m}
                for w, i, c, a, m in zip(self.words, self.ids, self.coverage, self.argmax_coverage,
                                         self.mean_cosine)
            ],
        }


def chunked_argmax(
    pixels: torch.Tensor, text: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,C) pixels · (V,C) text → best (P,) int64 row of ``text`` and its (P,) float32 score.

    The (P,V) score matrix is never built: the vocabulary is walked in chunks of
    ``chunk_elements // P`` rows, keeping a running maximum (ties keep the lower index, like argmax).
    """
    if pixels.ndim != 2 or text.ndim != 2 or pixels.shape[1] != text.shape[1]:
        raise LsegError(f"chunked_argmax: shapes {tuple(pixels.shape)} and {tuple(text.shape)} do not match")
    pixels = pixels.float()
    text = text.float().to(pixels.device)
    p, v = pixels.shape[0], text.shape[0]
    step = max(1, min(v, chunk_elements // max(p, 1)))
    best = torch.full((p,), float("-inf"), device=pixels.device)
    index = torch.zeros(p, dtype=torch.long, device=pixels.device)
    for start in range(0, v, step):
        score, arg = (pixels @ text[start : start + step].T).max(dim=1)
        better = score > best
        best = torch.where(better, score, best)
        index = torch.where(better, arg + start, index)
    return index, best


def _nearest_resize(index: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    """(h,w) int ids → (H0,W0) int32 ids, nearest with pixel-centre alignment (like PIL's NEAREST)."""
    out = F.interpolate(index[None, None].double(), size=hw, mode="nearest-exact")
    return out[0, 0].to(torch.int32).cpu().numpy()


@torch.inference_mode()
def wordfree(
    model: "LSegModel",
    image: Any,
    size: int | tuple[int, int] = 384,
    words: Sequence[str] | None = None,
    min_coverage: float = 0.01,
    encoder: EncodeFn | None = None,
    top: int | None = None,
    progress: bool = True,
) -> WordfreeResult:
    """Find the words an image contains, with no label list. HxWx3 uint8 / PIL → :class:`WordfreeResult`.

    1. Encode once: (1,3,H,W) → (1,512,H/2,W/2) unit pixels (``encoder`` if given, e.g. an
       :class:`lsegrt.Encoder`; default the model's eager network).
    2. Per pixel, argmax of the cosine over ``words`` (default :func:`lsegrt.vocab.whole_words`, text
       features cached on disk), chunked so memory stays bounded; at H/2×W/2 (see the module note).
    3. Keep words with ``argmax_coverage >= min_coverage`` (at most ``top``, most covered first; always
       at least the most covered one), re-run the argmax restricted to them so every pixel gets a kept
       word, and resize that map (nearest) to the original image size.
    """
    from .images import as_rgb_array
    from .vocab import vocab_embeddings, whole_words

    if not 0.0 <= float(min_coverage) <= 1.0:
        raise LsegError(f"min coverage {min_coverage}: must be a fraction between 0 and 1, e.g. 0.01")
    if top is not None and int(top) < 1:
        raise LsegError(f"top {top}: must be at least 1")
    array = as_rgb_array(image)
    words = whole_words() if words is None else list(words)
    text = vocab_embeddings(model, words, progress=progress)

    x = model.preprocess(array, size)
    encode = encoder or model.encode_image
    device = getattr(encoder, "device", None)
    if device is not None:
        x = x.to(device)
    features = encode(x)
    if features.ndim != 4 or features.shape[0] != 1:
        raise LsegError(f"encoder returned shape {tuple(features.shape)}, expected (1,512,h,w)")
    h, w = features.shape[-2:]
    pixels = features[0].float().flatten(1).T  # (h*w, 512)
    text = text.to(pixels.device)

    first, _ = chunked_argmax(pixels, text)
    counts = torch.bincount(first, minlength=len(words)).cpu()
    total = h * w
    order = sorted(range(len(words)), key=lambda i: (-int(counts[i]), i))
    kept = [i for i in order if counts[i] > 0 and counts[i] / total >= min_coverage] or order[:1]
    if top is not None:
        kept = kept[: int(top)]

    # Restricting to the kept words only moves pixels whose best word was dropped, so the shares grow.
    local, score = chunked_argmax(pixels, text[kept])
    final = torch.bincount(local, minlength=len(kept)).cpu()
    cos_sum = torch.bincount(local, weights=score.double(), minlength=len(kept)).cpu()
    rank = sorted(range(len(kept)), key=lambda j: (-int(final[j]), kept[j]))
    remap = torch.empty(len(kept), dtype=torch.long, device=local.device)
    remap[torch.tensor(rank, device=local.device)] = torch.arange(len(kept), device=local.device)
    labels = _nearest_resize(remap[local].view(h, w), tuple(array.shape[:2]))

    ids = [kept[j] for j in rank]
    return WordfreeResult(
        words=[words[i] for i in ids],
        ids=ids,
        coverage=[int(final[j]) / total for j in rank],
        argmax_coverage=[int(counts[i]) / total for i in ids],
        mean_cosine=[float(cos_sum[j] / max(int(final[j]), 1)) for j in rank],
        labels=labels,
        vocabulary_size=len(words),
        embedding_hw=(int(h), int(w)),
        model_hw=(int(x.shape[-2]), int(x.shape[-1])),
    )
