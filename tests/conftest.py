"""Shared fixtures: tiny models of the real architectures (CPU, seconds), a sample image."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("LSEGRT_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "lsegrt"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_vit():
    import lsegrt

    return lsegrt.random_model("vit_tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_rn():
    import lsegrt

    return lsegrt.random_model("rn_tiny", seed=0)


@pytest.fixture(params=["vit_tiny", "rn_tiny"])
def tiny_model(request, tiny_vit, tiny_rn):
    return {"vit_tiny": tiny_vit, "rn_tiny": tiny_rn}[request.param]


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Isolated engine / text-embedding cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("LSEGRT_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def official_ckpt(tmp_path_factory):
    """``official_ckpt(variant)`` → path of a tiny synthetic checkpoint in the official Lightning layout
    (`net.` keys, fp16 CLIP, unused families, SGD momentum, callbacks); written once per session."""
    from lsegrt.synthetic import official_state_dict, save_lightning_checkpoint

    root = tmp_path_factory.mktemp("official")
    made = {}

    def make(variant: str = "vit_tiny"):
        if variant not in made:
            made[variant] = save_lightning_checkpoint(
                root / f"{variant}.ckpt", official_state_dict(variant, seed=0), momentum=True)
        return made[variant]

    return make


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*argv)`` → (exit code, stdout, stderr) of ``lsegrt.cli.main`` in-process."""
    from lsegrt.cli import main

    def run(*argv: str):
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors and --help exit through SystemExit
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def clock(monkeypatch):
    """``lsegrt.progress``'s clock, set by hand: ``clock.now = 6.0`` (seconds) before the next update."""
    import types

    import lsegrt.progress

    fake = types.SimpleNamespace(now=0.0)
    fake.monotonic = lambda: fake.now
    monkeypatch.setattr(lsegrt.progress, "time", fake)
    return fake


@pytest.fixture
def fake_flash4(tmp_path, monkeypatch):
    """A stand-in for FlashAttention-4's modules with the layout of its kernel cache on disk (flash-attn-4
    4.0.0b40: ``cache_utils.get_cache_path()``, ``interface._flash_attn_fwd.compile_cache``, a JITPersistentCache
    whose file for a key is ``cache_path / (sha256(pickle(key)) + ".o")``). Its ``compile(key)`` puts a kernel
    into that cache as FA4 does (``on_disk=False``: in memory only) and returns the file."""
    import hashlib
    import pickle
    import sys
    import types

    from lsegrt.model import flash4_cache

    monkeypatch.setenv(flash4_cache.ENABLED_VARIABLE, "unset at teardown")
    monkeypatch.delenv(flash4_cache.ENABLED_VARIABLE)
    root = tmp_path / "fa4-cache"

    class Cache:
        def __init__(self, path):
            self.cache, self.cache_path = {}, path

        def _key_to_hash(self, key):
            return hashlib.sha256(pickle.dumps(key)).hexdigest()

    def get_cache_path():
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _flash_attn_fwd():
        pass

    _flash_attn_fwd.compile_cache = cache = Cache(root / ("5" * 64) / "fwd")
    modules = {name: types.ModuleType(name) for name in
               ("flash_attn", "flash_attn.cute", "flash_attn.cute.cache_utils", "flash_attn.cute.interface")}
    modules["flash_attn.cute.cache_utils"].get_cache_path = get_cache_path
    modules["flash_attn.cute.interface"]._flash_attn_fwd = _flash_attn_fwd
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)

    def compile(key, data=b"kernel object", on_disk=True):
        cache.cache[key] = object()
        file = cache.cache_path / f"{cache._key_to_hash(key)}.o"
        if on_disk:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
        return file

    return types.SimpleNamespace(root=root, cache=cache, compile=compile)
