"""Outputs: never over an input, never over each other, checked (suffix, folder, permissions) before any
work, and OS errors while writing are one line, exit 2, with nothing half-written left."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = ["--variant", "vit_tiny", "--device", "cpu", "--size", "64"]


def _png(path: Path, seed: int = 0, hw=(40, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((*hw, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line_error(code: int, err: str, match: str | None = None) -> None:
    assert code == 2, err
    assert err.startswith("lsegrt: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    if match:
        assert match in err, err


@pytest.fixture(autouse=True)
def small_vocabulary(monkeypatch, cache_dir):
    from lsegrt import vocab

    monkeypatch.setattr(vocab, "whole_words", lambda min_len=3: ["cat", "dog", "grass", "sky"])


# -- never over an input ------------------------------------------------------------------------------
def test_wordfree_output_is_the_input_image(tmp_path, run_cli):
    image = _png(tmp_path / "photo.png")
    before = _tree(tmp_path)
    code, _, err = run_cli("wordfree", image, *TINY, "--output", image)
    _one_line_error(code, err, "would overwrite the input")
    assert _tree(tmp_path) == before


def test_wordfree_json_is_the_input_through_a_symlink(tmp_path, run_cli):
    image = _png(tmp_path / "photo.png")
    (tmp_path / "link.json").symlink_to(image)
    before = _tree(tmp_path)
    code, _, err = run_cli("wordfree", image, *TINY, "--out", tmp_path / "o", "--json", tmp_path / "link.json")
    _one_line_error(code, err, "would overwrite the input")
    assert _tree(tmp_path) == before


def test_segment_rerun_in_a_folder_of_earlier_outputs(tmp_path, run_cli):
    """photo.png's overlay would replace photo_overlay.png, itself one of the inputs (a second run on a
    folder that holds the first run's outputs)."""
    _png(tmp_path / "d" / "photo.png")
    _png(tmp_path / "d" / "photo_overlay.png", seed=1)
    before = _tree(tmp_path)
    code, _, err = run_cli("segment", tmp_path / "d", *TINY, "--labels", "a, b", "--out", tmp_path / "d")
    _one_line_error(code, err, "photo_overlay.png")
    assert _tree(tmp_path) == before


def test_convert_output_is_the_input_by_hard_link(tmp_path, run_cli, official_ckpt):
    from lsegrt.convert import convert_checkpoint

    src = tmp_path / "a.safetensors"
    convert_checkpoint(official_ckpt("vit_tiny"), src)
    os.link(src, tmp_path / "b.safetensors")
    before = _tree(tmp_path)
    code, _, err = run_cli("convert", src, tmp_path / "b.safetensors")
    _one_line_error(code, err, "would overwrite the input")
    assert _tree(tmp_path) == before


def test_refuse_overwriting_inputs_unit(tmp_path):
    from lsegrt.errors import LsegError
    from lsegrt.fileio import refuse_overwriting_inputs

    a = _png(tmp_path / "a.png")
    os.link(a, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(a)
    for out in (a, tmp_path / "hard.png", tmp_path / "soft.png", tmp_path / "x" / ".." / "a.png"):
        with pytest.raises(LsegError, match="would overwrite the input"):
            refuse_overwriting_inputs([out], ["sample:chelsea", None, a])
    refuse_overwriting_inputs([tmp_path / "new.png", tmp_path / "b.png"], [a, "random:vit_tiny"])


@pytest.mark.parametrize("argv, match", [
    (["wordfree", *TINY, "--output", "{d}/x.jpg"], "must end in .png"),
    (["wordfree", *TINY, "--out", "{d}", "--json", "{d}/w.csv"], "must end in .json"),
    (["segment", *TINY, "--labels", "a, b", "--out", "{d}/out.png"], "looks like a file name"),
    (["bench", "--variant", "vit_tiny", "--size", "64", "--device", "cpu", "--out", "{d}/bench.csv"],
     "looks like a file name"),
    (["compare", "--variant", "vit_tiny", "--candidate", "torch", "--device", "cpu", "--out", "{d}/c.json"],
     "looks like a file name"),
], ids=["wordfree-output-jpg", "wordfree-json-csv", "segment-out-png", "bench-out-csv", "compare-out-json"])
def test_output_suffixes(tmp_path, run_cli, argv, match):
    code, _, err = run_cli(*[a.format(d=tmp_path) for a in argv])
    _one_line_error(code, err, match)
    assert list(tmp_path.iterdir()) == []


# -- never over each other; the count printed is the count written -------------------------------------
def test_same_stem_from_different_folders(tmp_path, run_cli):
    images = [_png(tmp_path / "a" / "x.png"), _png(tmp_path / "b" / "x.png", 1), _png(tmp_path / "c" / "x-2.png", 2),
              _png(tmp_path / "d" / "X.png", 3)]
    out = tmp_path / "out"
    code, stdout, err = run_cli("segment", *images, *TINY, "--labels", "a, b", "--out", out)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 8 and len({n.casefold() for n in names}) == 8, names
    assert "wrote 8 files" in stdout
    code, stdout, err = run_cli("wordfree", *images, *TINY, "--out", tmp_path / "w")
    assert code == 0, err
    assert len(list((tmp_path / "w").iterdir())) == 4


def test_image_stems_are_unique():
    from lsegrt.cli.common import image_stems

    stems = image_stems(["a/x.jpg", "b/x.jpg", "c/x-2.jpg", "sample:chelsea", "d/chelsea.png", "e/X.png"])
    assert stems == ["x", "x-2", "x-2-2", "chelsea", "chelsea-2", "X-3"]
    assert len({s.casefold() for s in stems}) == len(stems)


# -- validation before any work ------------------------------------------------------------------------
def test_too_many_labels_fail_before_the_model_loads(tmp_path, run_cli, monkeypatch):
    import lsegrt.api

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the labels were checked")

    monkeypatch.setattr(lsegrt.api, "random_model", no_model)
    labels = ", ".join(f"label{i}" for i in range(300))
    code, _, err = run_cli("segment", *TINY, "--labels", labels, "--out", tmp_path)
    _one_line_error(code, err, "256")
    assert list(tmp_path.iterdir()) == []


# -- OS errors -----------------------------------------------------------------------------------------
def test_output_is_a_folder(tmp_path, run_cli):
    (tmp_path / "taken.png").mkdir()
    code, _, err = run_cli("wordfree", *TINY, "--output", tmp_path / "taken.png")
    _one_line_error(code, err, "is a folder")
    code, _, err = run_cli("wordfree", *TINY, "--out", tmp_path, "--json", tmp_path / "taken.png")
    _one_line_error(code, err)


def test_disk_full_while_writing(tmp_path, run_cli, monkeypatch):
    """ENOSPC in the middle of a PNG: one line naming the output and the errno, exit 2, no temp file."""
    real_save = Image.Image.save

    def full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the temp file exists and holds data
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full)
    code, _, err = run_cli("segment", *TINY, "--labels", "a, b", "--out", tmp_path)
    _one_line_error(code, err, "[ENOSPC]")
    assert str(tmp_path / "chelsea_overlay.png") in err and ".tmp" not in err
    assert list(tmp_path.iterdir()) == []


def test_folder_without_write_permission(tmp_path, run_cli, monkeypatch):
    """Checked before any work (root bypasses permission bits, so os.access reports what we simulate)."""
    import lsegrt.api

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != locked and real_access(p, mode, **k))
    monkeypatch.setattr(lsegrt.api, "random_model", lambda *a, **k: pytest.fail("model loaded"))
    for argv in (["segment", *TINY, "--labels", "a, b", "--out", locked],
                 ["wordfree", *TINY, "--output", locked / "x.png"],
                 ["bench", "--variant", "vit_tiny", "--device", "cpu", "--out", locked / "sub"]):
        code, _, err = run_cli(*argv)
        _one_line_error(code, err, "permission denied")
    assert list(locked.iterdir()) == []
