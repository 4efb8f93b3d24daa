"""Native code a compiler builds into its cache folders, carried by a saved `compile` build.

``torch.compiler.save_cache_artifacts()`` carries Inductor's generated code and Triton's kernel binaries,
but not three kinds of native code a new process would otherwise compile:

- **C++ kernels** (a CPU build): Inductor compiles each graph's kernels into a library in its cache folder,
  named by a hash of the source and compiler command (vit_tiny on two cores: 16.6 s of a 19.2 s first call).
- **Triton launchers** (a CUDA build): Triton 3.6 builds a small C module per kernel signature
  (``__triton_launcher``) and one for its driver (``cuda_utils``) into its cache folder, named by a hash
  of their source. Inductor launches its own kernels without them, except with ``pdl``, where every
  kernel goes through Triton's launcher (sixth session: 13.1 s from opening a saved build to its first
  output, against ≤ 5 without); lsegrt's own Triton kernels always do.
- **FlashAttention-4 kernels** (``flash4``): object files in FA4's own cache folder, named by a hash of the
  kernel's compile key under a fingerprint of FA4's sources (:mod:`lsegrt.model.flash4_cache`).

A build records the libraries of each kind this process has loaded (read from /proc/self/maps, so only
what the model's calls used; FA4's kernels from its in-memory cache) into a zip beside the file, hashed in
the sidecar like the file itself.
Opening the build verifies the sidecar first, then puts the libraries back where the compiler will look
for them; a library whose name the new process never computes is never loaded, so a different Python or
Triton only compiles as it would have.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import LsegError
from ..model import flash4_cache


def _inductor_root(device: torch.device) -> Path:
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir())


def _triton_root(device: torch.device) -> Path:
    # where Inductor points Triton unless TRITON_CACHE_DIR is set (its first kernel sets the variable)
    from torch._inductor.runtime.cache_dir_utils import triton_cache_dir

    return Path(triton_cache_dir(device.index if device.index is not None else 0))


def _flash4_root(device: torch.device) -> Path | None:
    return flash4_cache.root()


@dataclass(frozen=True)
class LibraryKind:
    """One kind of library: the zip's suffix (FILE + suffix, beside FILE), the names its entries may have
    (the library's last two path components, as the compiler's cache lays them out) and that cache's folder
    in this process."""

    suffix: str
    entry: re.Pattern
    root: Callable[[torch.device], Path | None]  # None: that compiler is not usable in this process


CPP_KERNELS = LibraryKind(".cpp-kernels.zip", re.compile(r"^[a-z0-9]{2}/c[a-z0-9]{50,60}(\.main)?\.so$"),
                          _inductor_root)
# <base32 of a sha256>/<module><EXT_SUFFIX>, e.g. …/__triton_launcher.cpython-312-x86_64-linux-gnu.so
TRITON_LAUNCHERS = LibraryKind(".triton-launchers.zip",
                               re.compile(r"^[A-Z2-7]{52}/(__triton_launcher|cuda_utils)\.[A-Za-z0-9_.-]+\.so$"),
                               _triton_root)
# <fingerprint of FA4's sources>/<cache name>/<sha256 of the compile key>.o
FLASH4_KERNELS = LibraryKind(".flash4-kernels.zip", re.compile(r"^[0-9a-f]{64}/[a-z_]+/[0-9a-f]{64}\.o$"),
                             _flash4_root)
KINDS = (CPP_KERNELS, TRITON_LAUNCHERS, FLASH4_KERNELS)


def kind_of(name: str) -> LibraryKind | None:
    """The kind whose zip ``name`` (a sidecar's data file) is, if any."""
    return next((k for k in KINDS if name.endswith(k.suffix)), None)


def loaded() -> dict[LibraryKind, list[tuple[str, Path]]]:
    """Per kind, (entry name, file) of each library of that kind this process has loaded (Linux: from
    /proc/self/maps, read once; elsewhere none, and a new process compiles them; FA4's kernels: those its
    cache holds on disk)."""
    found: dict[LibraryKind, dict[str, Path]] = {kind: {} for kind in KINDS}
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        maps = []
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].endswith(".so"):
            continue
        lib = Path(parts[5])
        name = f"{lib.parent.name}/{lib.name}"
        for kind in KINDS:
            if kind.entry.match(name) and lib.is_file():
                found[kind][name] = lib
    found[FLASH4_KERNELS] = dict(flash4_cache.used_kernels())
    return {kind: sorted(libs.items()) for kind, libs in found.items()}


def write(path: Path, libraries: list[tuple[str, Path]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, lib in libraries:
            zf.write(lib, name)


def restore(path: Path, kind: LibraryKind, device: torch.device) -> int:
    """Put the libraries of ``path`` (a verified build's zip) into ``kind``'s cache folder where they are
    missing, each written under a temporary name and renamed. Returns how many were written (none where
    ``kind``'s compiler is not usable here: the request the build was checked against then differs anyway)."""
    root = kind.root(torch.device(device))
    if root is None:
        return 0
    written = 0
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LsegError(f"{path.name} cannot be read ({exc}); rebuild the saved build") from None
    with zf:
        names = zf.namelist()
        for name in names:  # all checked before any is written
            if not kind.entry.match(name):
                raise LsegError(f"{path.name}: unexpected entry {name[:80]!r}; rebuild the saved build")
        for name in names:
            target = root / name
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(zf.read(name))
                tmp.chmod(0o755)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            written += 1
    return written
