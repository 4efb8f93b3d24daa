"""The native libraries a saved compile build carries: found among what this process loaded, zipped,
and put back where the compiler looks, with any other entry refused."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch

from lsegrt.backends import compiled_libraries as libs
from lsegrt.errors import LsegError

LAUNCHER = "A" * 52 + "/__triton_launcher.cpython-311-x86_64-linux-gnu.so"
CPU = torch.device("cpu")


@pytest.mark.parametrize("kind, good, bad", [
    (libs.CPP_KERNELS, "ab/c" + "a" * 51 + ".main.so",
     ("../escape.so", "/abs/c.so", "ab/notakernel.py", "ab/c" + "a" * 51 + ".so.load_ok")),
    (libs.TRITON_LAUNCHERS, LAUNCHER,
     ("../" + LAUNCHER, "/" + LAUNCHER, "a" * 52 + "/__triton_launcher.so", "A" * 52 + "/evil.cpython-311.so",
      "A" * 52 + "/cuda_utils.py")),
])
def test_zip_entries_other_than_the_compilers_library_names_are_refused(kind, good, bad, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    root = kind.root(CPU)
    assert root.is_relative_to(tmp_path / "cache")  # Inductor's folder, or Triton's inside it
    z = tmp_path / "k.zip"
    for entry in bad:
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr(good, b"x")
            zf.writestr(entry, b"x")
        with pytest.raises(LsegError, match="unexpected entry"):
            libs.restore(z, kind, CPU)
        assert not (root / good).exists()  # nothing written before every entry is checked
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(good, b"lib")
    assert libs.restore(z, kind, CPU) == 1 and (root / good).read_bytes() == b"lib"
    assert libs.restore(z, kind, CPU) == 0  # present already: kept
    assert libs.kind_of("model.compiled" + kind.suffix) is kind and libs.kind_of("model.compiled") is None


def test_a_damaged_zip_is_one_line_error(tmp_path):
    z = tmp_path / "k.zip"
    z.write_bytes(b"not a zip")
    with pytest.raises(LsegError, match="cannot be read.*rebuild"):
        libs.restore(z, libs.TRITON_LAUNCHERS, CPU)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_a_loaded_triton_launcher_travels_to_another_cache_folder(tmp_path, monkeypatch):
    # a real shared library where Triton 3.6 caches a launcher, loaded as Triton would load it
    src = tmp_path / "launcher.c"
    src.write_text("int lsegrt_test_launcher(void) { return 7; }\n")
    built = tmp_path / "triton" / LAUNCHER
    built.parent.mkdir(parents=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(built), str(src)], check=True)
    before = dict(libs.loaded()[libs.TRITON_LAUNCHERS])
    assert LAUNCHER not in before
    ctypes.CDLL(str(built))
    found = libs.loaded()
    assert dict(found[libs.TRITON_LAUNCHERS])[LAUNCHER] == built and LAUNCHER not in dict(found[libs.CPP_KERNELS])
    z = tmp_path / "m.compiled.triton-launchers.zip"
    libs.write(z, [(LAUNCHER, built)])
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "elsewhere"))  # what the new process uses
    assert libs.restore(z, libs.TRITON_LAUNCHERS, CPU) == 1
    copy = tmp_path / "elsewhere" / LAUNCHER
    assert copy.read_bytes() == built.read_bytes() and ctypes.CDLL(str(copy)).lsegrt_test_launcher() == 7


FA4_KERNEL = "5" * 64 + "/fwd/" + "a" * 64 + ".o"


def test_flash4_kernels_travel_to_fa4s_folder_and_nothing_else_does(fake_flash4, tmp_path):
    built = fake_flash4.compile(("fwd", 64, 577), data=b"object")
    (name, file), = libs.loaded()[libs.FLASH4_KERNELS]
    assert file == built and libs.FLASH4_KERNELS.entry.match(name)
    z = tmp_path / "m.compiled.flash4-kernels.zip"
    for bad in ("../" + FA4_KERNEL, "/" + FA4_KERNEL, FA4_KERNEL.replace(".o", ".so"), FA4_KERNEL.upper(),
                "5" * 64 + "/" + "a" * 64 + ".o", "5" * 64 + "/../" + "a" * 64 + ".o"):
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr(bad, b"x")
        with pytest.raises(LsegError, match="unexpected entry"):
            libs.restore(z, libs.FLASH4_KERNELS, CPU)
    libs.write(z, [(name, file)])
    built.unlink()  # a machine new to the build
    assert libs.restore(z, libs.FLASH4_KERNELS, CPU) == 1 and built.read_bytes() == b"object"


def test_nothing_is_restored_where_the_compiler_does_not_import(fake_flash4, tmp_path, monkeypatch):
    z = tmp_path / "m.compiled.flash4-kernels.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(FA4_KERNEL, b"x")
    monkeypatch.setitem(sys.modules, "flash_attn.cute.cache_utils", None)
    assert libs.restore(z, libs.FLASH4_KERNELS, CPU) == 0 and not (fake_flash4.root / FA4_KERNEL).exists()
