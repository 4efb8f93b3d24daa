"""FlashAttention-4's kernel cache on disk: turned on before FA4 is imported (unless the user chose), and
which of its files hold the kernels this process used (for a saved build to carry)."""

from __future__ import annotations

import os
import sys

from lsegrt.backends.compiled_libraries import FLASH4_KERNELS
from lsegrt.model import attention, flash4_cache


def test_enable_turns_the_cache_on_unless_the_user_chose(monkeypatch):
    monkeypatch.setenv(flash4_cache.ENABLED_VARIABLE, "0")
    flash4_cache.enable()
    assert os.environ[flash4_cache.ENABLED_VARIABLE] == "0"
    monkeypatch.delenv(flash4_cache.ENABLED_VARIABLE)
    assert attention.flash4_available() in (True, False)  # whether FA4 imports here or not, it was enabled first
    assert os.environ[flash4_cache.ENABLED_VARIABLE] == "1"


def test_used_kernels_are_the_forward_caches_files_under_fa4s_folder(fake_flash4):
    on_disk = [fake_flash4.compile(("fwd", 64, n)) for n in (577, 4097)]
    fake_flash4.compile(("fwd", 64, 1201), on_disk=False)  # a failed export: nothing to carry
    used = flash4_cache.used_kernels()
    assert [file for _, file in used] == sorted(on_disk)
    assert all(FLASH4_KERNELS.entry.match(name) and fake_flash4.root / name == file for name, file in used)
    assert flash4_cache.root() == fake_flash4.root
    assert os.environ[flash4_cache.ENABLED_VARIABLE] == "1"


def test_no_kernels_without_fa4_or_with_another_cache_layout(fake_flash4, monkeypatch):
    fake_flash4.compile(("fwd", 64, 577))
    assert len(flash4_cache.used_kernels()) == 1
    monkeypatch.delattr(fake_flash4.cache, "cache_path")  # an in-memory JITCache, or another FA4
    assert flash4_cache.used_kernels() == []
    monkeypatch.delitem(sys.modules, flash4_cache.INTERFACE)
    assert flash4_cache.used_kernels() == []
    monkeypatch.setitem(sys.modules, "flash_attn.cute.cache_utils", None)  # FA4 does not import here
    assert flash4_cache.root() is None
