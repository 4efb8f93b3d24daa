"""File digests remembered by stat: reused for an untouched file, recomputed for any change."""

from __future__ import annotations

import os

from lsegrt import hashcache


def _counting():
    calls = []

    def compute(path):
        calls.append(path)
        return path.read_bytes().hex()

    return calls, compute


def test_untouched_file_is_read_once(tmp_path, cache_dir):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    calls, compute = _counting()
    assert hashcache.digest(f, "hex", compute) == hashcache.digest(f, "hex", compute) == "616263"
    assert len(calls) == 1
    assert hashcache.digest(f, "other-kind", compute) and len(calls) == 2  # kinds are separate


def test_rewrite_with_same_size_and_restored_mtime_is_read_again(tmp_path, cache_dir):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    calls, compute = _counting()
    hashcache.digest(f, "hex", compute)
    st = f.stat()
    f.write_bytes(b"xyz")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back, as `cp -p` or `touch -r` would
    assert hashcache.digest(f, "hex", compute) == b"xyz".hex() and len(calls) == 2  # ctime gave it away


def test_damaged_store_is_ignored_and_rewritten(tmp_path, cache_dir):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    cache_dir.mkdir(exist_ok=True)
    (cache_dir / "file_digests.json").write_text("{not json")
    calls, compute = _counting()
    assert hashcache.digest(f, "hex", compute) == "616263"
    assert hashcache.lookup(f, "hex") == "616263"


def test_store_is_bounded(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(hashcache, "MAX_ENTRIES", 3)
    for i in range(5):
        f = tmp_path / f"{i}.bin"
        f.write_bytes(bytes([i]))
        hashcache.remember(f, "hex", str(i))
    assert [hashcache.lookup(tmp_path / f"{i}.bin", "hex") for i in range(5)] == [None, None, "2", "3", "4"]


def test_unusable_cache_folder_costs_only_rereads(tmp_path, monkeypatch, official_ckpt):
    """LSEGRT_CACHE somewhere that cannot be created: loading and exporting still work."""
    import lsegrt
    from lsegrt.export import export_onnx

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("LSEGRT_CACHE", str(tmp_path / "file" / "cache"))
    model = lsegrt.load(official_ckpt("rn_tiny"))
    assert len(model.sha256) == 64
    export_onnx(model, tmp_path / "m.onnx", trace_size=(64, 64), verify=False)
    lsegrt.Encoder.open("onnxruntime", engine=tmp_path / "m.onnx", checkpoint=model).close()
