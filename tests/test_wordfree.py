"""Word-free segmentation: chunked argmax, planted answers, the full vocabulary once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsegrt import vocab
from lsegrt.errors import LsegError
from lsegrt.wordfree import chunked_argmax, wordfree


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("chunk", [1, 100, 257 * 7, 257 * 1000, 1 << 30])
def test_chunked_argmax_matches_dense(chunk):
    g = torch.Generator().manual_seed(0)
    pixels = _unit(torch.randn(257, 16, generator=g))
    text = _unit(torch.randn(1000, 16, generator=g))
    index, score = chunked_argmax(pixels, text, chunk_elements=chunk)
    dense = pixels @ text.T
    assert torch.equal(index, dense.argmax(1))
    torch.testing.assert_close(score, dense.max(1).values)


def test_chunked_argmax_rejects_mismatched_widths():
    with pytest.raises(LsegError):
        chunked_argmax(torch.zeros(4, 8), torch.zeros(3, 16))


class Planted:
    """A fake encoder: pixel features are ``u`` in the left quarter of columns, ``v`` elsewhere, except a
    ``speck`` of pixels set to ``s`` (all unit 512-d)."""

    def __init__(self, u, v, s, speck=4):
        self.u, self.v, self.s, self.speck = u, v, s, speck
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        f = self.v.view(512, 1, 1).repeat(1, h, w)
        f[:, :, : w // 4] = self.u.view(512, 1, 1)
        f[:, 0, w - self.speck:] = self.s.view(512, 1)
        return f[None]


@pytest.fixture
def planted(monkeypatch):
    g = torch.Generator().manual_seed(1)
    rows = _unit(torch.randn(40, 512, generator=g))
    words = [f"w{i}" for i in range(40)]
    u, v, s = rows[7], rows[23], rows[31]
    # A little noise towards other words keeps the planted rows the unique best match.
    enc = Planted(_unit(u + 0.05 * rows[1]), _unit(v + 0.05 * rows[2]), _unit(s + 0.3 * v))
    calls = []

    def fake_vocab(model, words_, batch_size=1024, progress=True):
        calls.append(list(words_))
        assert list(words_) == words
        return rows

    monkeypatch.setattr(vocab, "vocab_embeddings", fake_vocab)
    return words, enc, calls


def test_planted_words_found_with_their_coverage(tiny_vit, chelsea, planted):
    words, enc, calls = planted
    res = wordfree(tiny_vit, chelsea, 128, words=words, min_coverage=0.0, encoder=enc, progress=False)
    assert enc.calls == 1 and len(calls) == 1  # the image is encoded once
    h, w = res.embedding_hw
    assert (h, w) == (res.model_hw[0] // 2, res.model_hw[1] // 2) == (48, 64)
    speck = 4 / (h * w)
    assert res.words == ["w23", "w7", "w31"]
    assert res.ids == [23, 7, 31]
    np.testing.assert_allclose(res.coverage, [0.75 - speck, 0.25, speck])
    assert res.argmax_coverage == res.coverage
    assert res.labels.shape == chelsea.shape[:2] and res.labels.dtype == np.int32
    # The label map at the original size: the left quarter is w7 (id 1), the rest w23 (id 0).
    assert (res.labels[:, : chelsea.shape[1] // 4 - 4] == 1).all()
    assert (res.labels[10:, chelsea.shape[1] // 4 + 4:] == 0).all()
    assert res.mean_cosine[0] > 0.99 and res.mean_cosine[1] > 0.99


def test_small_words_merge_into_nearest_kept(tiny_vit, chelsea, planted):
    words, enc, _ = planted
    res = wordfree(tiny_vit, chelsea, 128, words=words, min_coverage=0.01, encoder=enc, progress=False)
    h, w = res.embedding_hw
    speck = 4 / (h * w)
    assert speck < 0.01
    assert res.words == ["w23", "w7"]
    # The speck (built from w31 leaning towards v) goes to w23 once w31 is dropped.
    np.testing.assert_allclose(res.coverage, [0.75, 0.25])
    np.testing.assert_allclose(res.argmax_coverage, [0.75 - speck, 0.25])
    assert set(np.unique(res.labels)) == {0, 1}
    d = res.to_dict()
    assert [x["word"] for x in d["words"]] == ["w23", "w7"] and d["vocabulary_size"] == 40


def test_top_limits_the_words(tiny_vit, chelsea, planted):
    words, enc, _ = planted
    res = wordfree(tiny_vit, chelsea, 128, words=words, min_coverage=0.0, encoder=enc, top=1, progress=False)
    assert res.words == ["w23"] and res.coverage == [1.0]
    assert (res.labels == 0).all()


def test_min_coverage_above_everything_keeps_the_best(tiny_vit, chelsea, planted):
    words, enc, _ = planted
    res = wordfree(tiny_vit, chelsea, 128, words=words, min_coverage=0.9, encoder=enc, progress=False)
    assert res.words == ["w23"]


@pytest.mark.parametrize("kwargs", [{"min_coverage": 1.5}, {"min_coverage": -0.1}, {"top": 0}])
def test_bad_arguments(tiny_vit, chelsea, kwargs):
    with pytest.raises(LsegError):
        wordfree(tiny_vit, chelsea, 64, words=["dog"], progress=False, **kwargs)


def test_planted_real_features(tiny_vit, chelsea, monkeypatch):
    """Text rows equal to the tiny model's own features at two pixels: those words must be found, and
    the coverage must equal a dense argmax over the same rows."""
    feats = tiny_vit.encode_image(tiny_vit.preprocess(chelsea, 128))[0]  # (512,48,64)
    g = torch.Generator().manual_seed(2)
    distractors = _unit(torch.randn(30, 512, generator=g))
    rows = torch.cat([distractors[:10], feats[:, 10, 8][None], distractors[10:], feats[:, 40, 50][None]])
    words = [f"d{i}" for i in range(10)] + ["cat"] + [f"d{i}" for i in range(10, 30)] + ["grass"]
    monkeypatch.setattr(vocab, "vocab_embeddings", lambda model, w, **k: rows)
    res = wordfree(tiny_vit, chelsea, 128, words=words, min_coverage=0.0, progress=False)
    dense = torch.einsum("chw,vc->vhw", feats, rows).argmax(0)
    expect = {words[i]: float((dense == i).float().mean()) for i in dense.unique().tolist()}
    assert {"cat", "grass"} <= set(res.words)
    assert res.ids[res.words.index("cat")] == 10
    for word, cov in zip(res.words, res.coverage):
        assert cov == pytest.approx(expect[word])
    assert sum(res.coverage) == pytest.approx(1.0)


def test_accepts_an_encoder_object(tiny_vit, chelsea):
    import lsegrt

    with lsegrt.Encoder.open("torch", checkpoint=tiny_vit) as enc:
        a = wordfree(tiny_vit, chelsea, 64, words=["dog", "cat", "grass", "sky"], encoder=enc, progress=False)
    b = wordfree(tiny_vit, chelsea, 64, words=["dog", "cat", "grass", "sky"], progress=False)
    assert a.words == b.words and np.array_equal(a.labels, b.labels)


@pytest.mark.slow
def test_full_vocabulary_on_chelsea(tiny_vit, chelsea, cache_dir):
    """The one run over all ~32k words: embedding, cache reload, and word-free segmentation."""
    import time

    from lsegrt.vocab import vocab_embeddings, whole_words

    words = whole_words()
    t0 = time.perf_counter()
    emb = vocab_embeddings(tiny_vit, words, progress=False)
    computed = time.perf_counter() - t0
    assert emb.shape == (len(words), 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(words)))
    pick = [words.index(w) for w in ("dog", "cat", "grass")]
    torch.testing.assert_close(emb[pick], tiny_vit.encode_text(["dog", "cat", "grass"]), rtol=0, atol=1e-6)
    t0 = time.perf_counter()
    assert torch.equal(vocab_embeddings(tiny_vit, words, progress=False), emb)
    assert time.perf_counter() - t0 < computed / 5

    res = wordfree(tiny_vit, chelsea, 128, min_coverage=0.01, top=15, progress=False)
    assert res.vocabulary_size == len(words)
    assert 1 <= len(res.words) <= 15
    assert set(res.words) <= set(words)
    assert sum(res.coverage) == pytest.approx(1.0)
    assert all(a >= 0.01 for a in res.argmax_coverage)
    assert res.coverage == sorted(res.coverage, reverse=True)
    assert res.labels.shape == chelsea.shape[:2]
    assert set(np.unique(res.labels)) <= set(range(len(res.words)))
