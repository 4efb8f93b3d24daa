"""Bad input through the CLI: one line on stderr starting `lsegrt: error:`, exit code 2, no traceback,
and no output written (not even a temp file)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def dirs(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    out.mkdir()
    return inp, out


def _corrupt(inp: Path, official_ckpt) -> Path:
    # Seeded: torch's unpickler fails differently on different garbage; keep every run the same.
    (inp / "corrupt.ckpt").write_bytes(random.Random(0).randbytes(8192))
    return inp / "corrupt.ckpt"


def _truncated(inp: Path, official_ckpt) -> Path:
    data = official_ckpt("vit_tiny").read_bytes()
    (inp / "half.ckpt").write_bytes(data[: len(data) // 2])
    return inp / "half.ckpt"


def _resnet18(inp: Path, official_ckpt) -> Path:
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), inp / "resnet18.pt")
    return inp / "resnet18.pt"


def _renamed_key(inp: Path, official_ckpt) -> Path:
    from lsegrt.synthetic import official_state_dict, save_lightning_checkpoint

    sd = official_state_dict("vit_tiny")
    sd["net.scratch.head1.wieght"] = sd.pop("net.scratch.head1.weight")
    return save_lightning_checkpoint(inp / "renamed.ckpt", sd)


def _evil(inp: Path, official_ckpt) -> Path:
    from lsegrt.synthetic import official_state_dict, save_lightning_checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {inp / 'executed'}",))

    return save_lightning_checkpoint(inp / "evil.ckpt", official_state_dict("vit_tiny"), callbacks={"x": Evil()})


def _not_an_image(inp: Path) -> Path:
    (inp / "notes.jpg").write_text("this is not a JPEG\n")
    return inp / "notes.jpg"


def _truncated_png(inp: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 64), (10, 200, 30)).save(inp / "full.png")
    data = (inp / "full.png").read_bytes()
    (inp / "cut.png").write_bytes(data[: len(data) // 2])
    (inp / "full.png").unlink()
    return inp / "cut.png"


CHECKPOINTS = {
    "missing": lambda inp, ck: inp / "missing.ckpt",
    "corrupt": _corrupt,
    "truncated": _truncated,
    "wrong-architecture": _resnet18,
    "renamed-key": _renamed_key,
    "arbitrary-global": _evil,
}


def _check(result, root: Path, before: set[str], match: str | None = None) -> str:
    code, out, err = result
    assert code == 2, (out, err)
    assert err.startswith("lsegrt: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    assert _files(root) == before  # nothing written, no temp file left
    if match:
        assert match in err, err
    return err


@pytest.mark.parametrize("case", list(CHECKPOINTS))
@pytest.mark.parametrize("verb", ["encode", "segment", "convert"])
def test_bad_checkpoint(dirs, run_cli, official_ckpt, case, verb):
    inp, out = dirs
    ckpt = CHECKPOINTS[case](inp, official_ckpt)
    before = _files(inp.parent)
    if verb == "encode":
        argv = ["encode", "--checkpoint", ckpt, "--size", "64", "--out", out / "f.npy"]
    elif verb == "segment":
        argv = ["segment", "--checkpoint", ckpt, "--labels", "cat, other", "--size", "64", "--out", out]
    else:
        argv = ["convert", ckpt, out / "x.safetensors"]
    err = _check(run_cli(*argv), inp.parent, before)
    # detect_variant's "not an LSeg state_dict" message does not name the file yet (reported)
    assert ckpt.name in err or case == "wrong-architecture"
    assert not (inp / "executed").exists()


@pytest.mark.parametrize("make", [_not_an_image, _truncated_png], ids=["not-an-image", "truncated-png"])
@pytest.mark.parametrize("verb", ["encode", "segment"])
def test_bad_image(dirs, run_cli, make, verb):
    inp, out = dirs
    image = make(inp)
    before = _files(inp.parent)
    dest = out / "f.npy" if verb == "encode" else out
    _check(run_cli(verb, image, "--variant", "vit_tiny", "--out", dest), inp.parent, before, match=image.name)


def test_missing_image(dirs, run_cli):
    inp, out = dirs
    before = _files(inp.parent)
    _check(run_cli("encode", inp / "nope.png", "--variant", "vit_tiny", "--out", out / "f.npy"),
           inp.parent, before, match="nope.png")


@pytest.mark.parametrize("verb", ["encode", "segment"])
def test_size_not_a_multiple_of_32(dirs, run_cli, verb):
    inp, out = dirs
    before = _files(inp.parent)
    dest = out / "f.npy" if verb == "encode" else out
    err = _check(run_cli(verb, "--variant", "vit_tiny", "--size", "400x400", "--out", dest), inp.parent, before)
    assert "400x400" in err and "multiples of 32" in err


@pytest.mark.parametrize("labels, match", [
    (" , ", "empty label list"),
    ("dog, " + "a very long label " * 20, "77"),
], ids=["empty", "over-77-tokens"])
def test_bad_labels(dirs, run_cli, labels, match):
    inp, out = dirs
    before = _files(inp.parent)
    _check(run_cli("segment", "--variant", "vit_tiny", "--labels", labels, "--out", out), inp.parent, before,
           match=match)


@pytest.mark.parametrize("verb", ["encode-npy", "encode-safetensors", "encode-dir", "segment", "convert"])
def test_output_in_missing_folder(dirs, run_cli, official_ckpt, verb):
    inp, out = dirs
    missing = out / "missing"
    argv = {
        "encode-npy": ["encode", "--variant", "vit_tiny", "--out", missing / "f.npy"],
        "encode-safetensors": ["encode", "--variant", "vit_tiny", "--out", missing / "f.safetensors"],
        "encode-dir": ["encode", "--variant", "vit_tiny", "--out", missing / "sub"],
        "segment": ["segment", "--variant", "vit_tiny", "--labels", "a, b", "--out", missing / "sub"],
        "convert": ["convert", official_ckpt("vit_tiny"), missing / "x.safetensors"],
    }[verb]
    before = _files(inp.parent)
    _check(run_cli(*argv), inp.parent, before, match="does not exist")


def test_convert_refuses_other_suffix(dirs, run_cli, official_ckpt):
    inp, out = dirs
    before = _files(inp.parent)
    _check(run_cli("convert", official_ckpt("vit_tiny"), out / "x.pt"), inp.parent, before, match=".safetensors")


def test_checkpoint_contradicting_variant(dirs, run_cli, official_ckpt):
    inp, out = dirs
    before = _files(inp.parent)
    _check(run_cli("encode", "--checkpoint", official_ckpt("vit_tiny"), "--variant", "rn_tiny",
                   "--out", out / "f.npy"), inp.parent, before, match="not --variant rn_tiny")


def test_real_process(dirs):
    """The installed entry point: exit status 2 and a single stderr line, in a fresh interpreter."""
    inp, out = dirs
    before = _files(inp.parent)
    proc = subprocess.run(
        [sys.executable, "-m", "lsegrt", "encode", "--checkpoint", str(inp / "missing.ckpt"), "--out",
         str(out / "f.npy")], capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("lsegrt: error: checkpoint not found") and proc.stderr.count("\n") == 1
    assert _files(inp.parent) == before
