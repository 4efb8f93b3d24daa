"""The whole-word vocabulary and its on-disk text-embedding cache."""

from __future__ import annotations

import pytest
import torch

from lsegrt import vocab
from lsegrt.vocab import cache_path, stopwords, vocab_embeddings, whole_words, words_digest

SMALL = ["dog", "cat", "grass", "sky", "tree"]


def test_whole_words_properties():
    words = whole_words()
    assert 25_000 < len(words) < 40_000
    assert len(set(words)) == len(words)
    assert all(w.isascii() and w.isalpha() and len(w) >= 3 and w == w.lower() for w in words)
    stop = stopwords()
    assert not stop.intersection(words)
    for fragment in ("the", "and", "com", "http", "www", "with", "they", "ing"):
        assert fragment in stop and fragment not in words
    for word in ("dog", "cat", "grass", "sky", "tree", "car"):
        assert word in words


def test_whole_words_deterministic_and_min_len():
    words = whole_words()
    assert whole_words() == words
    assert words_digest(whole_words()) == words_digest(words)
    long = whole_words(min_len=5)
    assert long and all(len(w) >= 5 for w in long)
    assert long == [w for w in words if len(w) >= 5]


def test_each_word_is_one_bpe_token():
    from lsegrt.model.text import tokenize

    ids = tokenize(whole_words()[:2000])
    assert bool(((ids != 0).sum(1) == 3).all())  # SOT, the word, EOT


def test_cache_round_trip(tiny_vit, cache_dir, monkeypatch):
    first = vocab_embeddings(tiny_vit, SMALL, progress=False)
    path = cache_path(tiny_vit, SMALL)
    assert path.is_file() and path.parent == cache_dir / "text"
    assert path.name.startswith(tiny_vit.sha256[:16] + "-" + words_digest(SMALL)[:16])
    assert first.shape == (len(SMALL), 512) and first.dtype == torch.float32
    torch.testing.assert_close(first.norm(dim=1), torch.ones(len(SMALL)))
    torch.testing.assert_close(first, tiny_vit.encode_text(SMALL), rtol=0, atol=1e-6)
    assert not list(path.parent.glob("*.tmp*"))  # atomic: no temp file left behind

    def boom(*a, **k):
        raise AssertionError("recomputed although the cache was valid")

    monkeypatch.setattr(vocab, "compute_embeddings", boom)
    assert torch.equal(vocab_embeddings(tiny_vit, SMALL, progress=False), first)


def test_cache_keyed_by_word_list(tiny_vit, cache_dir):
    a = vocab_embeddings(tiny_vit, SMALL, progress=False)
    b = vocab_embeddings(tiny_vit, SMALL[::-1], progress=False)
    assert cache_path(tiny_vit, SMALL) != cache_path(tiny_vit, SMALL[::-1])
    torch.testing.assert_close(a.flip(0), b)


@pytest.mark.parametrize("bad", ["shape", "garbage", "nan", "inf"])
def test_bad_cache_is_recomputed(tiny_vit, cache_dir, monkeypatch, bad):
    path = cache_path(tiny_vit, SMALL)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bad == "shape":
        torch.save(torch.zeros(len(SMALL) + 1, 512), path)
    elif bad in ("nan", "inf"):  # right shape and dtype, one poisoned value
        poisoned = tiny_vit.encode_text(SMALL).clone()
        poisoned[2, 7] = float(bad)
        torch.save(poisoned, path)
    else:
        path.write_bytes(b"not a torch file")
    calls = []
    real = vocab.compute_embeddings
    monkeypatch.setattr(vocab, "compute_embeddings", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = vocab_embeddings(tiny_vit, SMALL, progress=False)
    assert calls == [1]
    torch.testing.assert_close(out, tiny_vit.encode_text(SMALL), rtol=0, atol=1e-6)
    rewritten = torch.load(path, weights_only=True)
    assert rewritten.shape == (len(SMALL), 512) and bool(torch.isfinite(rewritten).all())


def test_batches_match_one_batch(tiny_vit):
    words = whole_words()[:50]
    one = vocab.compute_embeddings(tiny_vit, words, batch_size=1024, progress=False)
    many = vocab.compute_embeddings(tiny_vit, words, batch_size=7, progress=False)
    torch.testing.assert_close(one, many, rtol=0, atol=1e-6)



def test_progress_while_embedding(tiny_vit, monkeypatch, capsys):
    """Plain progress lines on stderr when it is not a terminal (interval 0 here: one per batch)."""
    from lsegrt import progress

    monkeypatch.setattr(progress, "DEFAULT_INTERVAL", 0.0)
    vocab.compute_embeddings(tiny_vit, whole_words()[:30], batch_size=10)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].split(",")[0].strip() for line in lines[:3]] == ["10/30 words", "20/30 words",
                                                                                 "30/30 words"]
    assert lines[-1].endswith("done") and lines[0].startswith("embedding vocabulary")
    vocab.compute_embeddings(tiny_vit, whole_words()[:30], batch_size=10, progress=False)
    assert capsys.readouterr().err == ""
