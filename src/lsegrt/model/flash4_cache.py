"""FlashAttention-4's compiled kernels on disk, so that a new process loads them instead of compiling them.

FlashAttention-4 (``flash-attn-4``, CuTe DSL) compiles its attention kernel for each new shape in every new
process: 1.6 s of IR generation and 1.1 s of compilation in the first call from a saved build (ViT-L/16,
384², an H100 host, twenty-first session, under cProfile). With its persistent cache on
(``FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED=1``, read once when ``flash_attn.cute`` is imported) it exports each
kernel it compiles as an object file, ``<cache>/<fingerprint of FA4's sources>/fwd/<sha256 of the key>.o``
(``<cache>``: ``FLASH_ATTENTION_CUTE_DSL_CACHE_DIR``, by default ``<tmp>/<user>/flash_attention_cute_dsl_cache``),
and a later process with the same FA4 loads it. lsegrt turns the cache on unless the variable is set
(:func:`enable`, before each import of FA4 here), and a saved compile build carries the object files of the
kernels its process used (:func:`used_kernels`), as it carries Triton's launchers
(:mod:`lsegrt.backends.compiled_libraries`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENABLED_VARIABLE = "FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED"
INTERFACE = "flash_attn.cute.interface"


def enable() -> None:
    """Turn FA4's persistent cache on for this process unless the user chose (set the variable) already."""
    os.environ.setdefault(ENABLED_VARIABLE, "1")


def root() -> Path | None:
    """FA4's cache folder in this process (created), or None where FA4 does not import."""
    enable()
    try:
        from flash_attn.cute.cache_utils import get_cache_path
    except Exception:  # the CuTe DSL's runtime may fail to load in many ways: FA4 is then not usable here
        return None
    return Path(get_cache_path())


def used_kernels() -> list[tuple[str, Path]]:
    """(path under :func:`root`, file) of each forward kernel in this process's FA4 that is on disk.

    FA4 4.0.0b40 keeps them in ``_flash_attn_fwd.compile_cache``, a ``JITPersistentCache`` whose file for a key
    is ``cache_path / (_key_to_hash(key) + ".o")``. Where FA4 was not imported, its cache is in memory only or
    has another layout, none: a new process then compiles the kernels, as without a saved build."""
    interface = sys.modules.get(INTERFACE)
    cache = getattr(getattr(interface, "_flash_attn_fwd", None), "compile_cache", None)
    folder, key_hash, entries = (getattr(cache, name, None) for name in ("cache_path", "_key_to_hash", "cache"))
    if folder is None or not callable(key_hash) or not isinstance(entries, dict):
        return []
    base = root()
    found = {}
    for key in list(entries):
        file = Path(folder) / f"{key_hash(key)}.o"
        if base is not None and file.is_file() and file.is_relative_to(base):
            found[file.relative_to(base).as_posix()] = file
    return sorted(found.items())
