"""`lsegrt encode`: .npy, .safetensors with several images, a folder."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _unit(a: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5))


def test_encode_npy(tmp_path, run_cli):
    out = tmp_path / "f.npy"
    code, stdout, err = run_cli("encode", "--variant", "vit_tiny", "--size", "64x96", "--out", out, "--device", "cpu")
    assert code == 0, err
    a = np.load(out)
    assert a.shape == (1, 512, 32, 48) and a.dtype == np.float32 and _unit(a)
    assert "random vit_tiny weights" in stdout and "1x512x32x48" in stdout and " ms " in stdout
    assert err == ""


def test_encode_matches_api(tmp_path, run_cli, official_ckpt, chelsea):
    import lsegrt

    out = tmp_path / "f.npy"
    code, _, err = run_cli("encode", "--checkpoint", official_ckpt("rn_tiny"), "--size", "128", "--out", out)
    assert code == 0, err
    model = lsegrt.load(official_ckpt("rn_tiny"))
    ref = model.encode_image(model.preprocess(chelsea, 128)).numpy()
    assert np.array_equal(np.load(out), ref)


def test_encode_safetensors_several_images(tmp_path, run_cli, chelsea):
    from PIL import Image
    from safetensors import safe_open

    Image.fromarray(chelsea[:, :300]).save(tmp_path / "cat.png")
    Image.fromarray(chelsea[:200]).save(tmp_path / "wide.jpg")
    out = tmp_path / "feats.safetensors"
    code, stdout, err = run_cli("encode", tmp_path / "cat.png", tmp_path / "wide.jpg", "sample:chelsea",
                                "--variant", "rn_tiny", "--size", "64", "--out", out)
    assert code == 0, err
    with safe_open(str(out), framework="np") as f:
        assert sorted(f.keys()) == ["cat", "chelsea", "wide"]
        meta = f.metadata()
        assert f.get_tensor("cat").shape == (1, 512, 32, 32)
        assert f.get_tensor("wide").shape == (1, 512, 16, 32)
        assert all(_unit(f.get_tensor(k)) for k in f.keys())
    assert meta["variant"] == "rn_tiny" and meta["size"] == "64" and meta["checkpoint"] == "random:rn_tiny:seed0"
    assert json.loads(meta["inputs"])["wide"] == [32, 64]
    assert len([line for line in stdout.splitlines() if "features" in line]) == 3


def test_encode_folder(tmp_path, run_cli):
    out = tmp_path / "feats"
    code, _, err = run_cli("encode", "sample:chelsea", "sample:coffee", "--variant", "vit_tiny",
                           "--size", "64", "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["chelsea.npy", "coffee.npy"]
    assert np.load(out / "coffee.npy").shape == (1, 512, 16, 32)  # 400x600 → 32x64 input


def test_several_images_into_npy_is_an_error(tmp_path, run_cli):
    code, _, err = run_cli("encode", "sample:chelsea", "sample:coffee", "--variant", "vit_tiny",
                           "--out", tmp_path / "f.npy")
    assert code == 2 and err.startswith("lsegrt: error: 2 images") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("precision", ["bf16"])
def test_encode_through_an_encoder(tmp_path, run_cli, precision):
    """The features really come from a `precision` encoder: close to fp32 eager, but not equal to it
    (a printed "torch bf16" alone would pass even if the option were dropped)."""
    out, ref = tmp_path / "f.npy", tmp_path / "ref.npy"
    code, stdout, err = run_cli("encode", "--variant", "vit_tiny", "--size", "64", "--out", out,
                                "--backend", "torch", "--precision", precision)
    assert code == 0, err
    code, _, err = run_cli("encode", "--variant", "vit_tiny", "--size", "64", "--out", ref)
    assert code == 0, err
    a, b = np.load(out), np.load(ref)
    assert _unit(a) and a.shape == b.shape
    cos = (a * b).sum(axis=1)
    assert not np.array_equal(a, b) and 0.99 < cos.min() and cos.mean() < 1 - 1e-7


def test_encode_same_names_in_different_folders(tmp_path, run_cli, chelsea):
    from PIL import Image

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(chelsea[:64, :96]).save(tmp_path / sub / "x.jpg")
    Image.fromarray(chelsea[:64, :64]).save(tmp_path / "a" / "x-2.jpg")  # would collide with a renamed 'x-2'
    out = tmp_path / "feats"
    code, stdout, err = run_cli("encode", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "a" / "x-2.jpg",
                                "--variant", "vit_tiny", "--size", "64", "--out", out)
    assert code == 0, err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.npy"))
    assert written == ["a/x-2.npy", "a/x.npy", "b/x.npy"]
    assert "(3 files)" in stdout
    assert not np.array_equal(np.load(out / "a" / "x.npy"), np.load(out / "a" / "x-2.npy"))


def test_encode_never_replaces_an_input(tmp_path, run_cli):
    (tmp_path / "f.npy").write_bytes(b"an input the user named explicitly")
    code, _, err = run_cli("encode", tmp_path / "f.npy", "--variant", "vit_tiny", "--out", tmp_path)
    assert code == 2 and "would replace an input" in err
    assert (tmp_path / "f.npy").read_bytes() == b"an input the user named explicitly"


def test_encode_checks_the_output_suffix_first(tmp_path, run_cli):
    code, _, err = run_cli("encode", tmp_path / "missing.jpg", "--variant", "vit_tiny", "--out", tmp_path / "x.pt")
    assert code == 2 and "expected FILE.npy, FILE.safetensors or a folder" in err
