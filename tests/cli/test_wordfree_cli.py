"""`lsegrt wordfree` end to end with the tiny model and a small vocabulary (fast)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from lsegrt import vocab
from lsegrt.cli import main

WORDS = ["cat", "dog", "grass", "sky", "tree", "water", "fur", "eye", "wall", "floor"]
TINY = ["--variant", "vit_tiny", "--device", "cpu", "--size", "96"]


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors exit directly
        return int(exc.code)


@pytest.fixture(autouse=True)
def small_vocabulary(monkeypatch, cache_dir):
    monkeypatch.setattr(vocab, "whole_words", lambda min_len=3: list(WORDS))


def test_default_sample_writes_overlay_and_json(tmp_path, capsys, chelsea):
    out = tmp_path / "out"
    out.mkdir()
    rc = run(["wordfree", *TINY, "--out", str(out), "--min-coverage", "0.02", "--json", str(tmp_path / "w.json")])
    stdout = capsys.readouterr().out
    assert rc == 0
    png = out / "chelsea_wordfree.png"
    assert png.is_file() and sorted(p.name for p in out.iterdir()) == ["chelsea_wordfree.png"]
    with Image.open(png) as img:
        assert img.mode == "RGB"
        assert img.width > chelsea.shape[1] and img.height >= chelsea.shape[0]  # legend on the right
    data = json.loads((tmp_path / "w.json").read_text())
    (entry,) = data["images"]
    assert entry["image"] == "sample:chelsea" and entry["overlay"] == str(png)
    found = [w["word"] for w in entry["words"]]
    assert found and set(found) <= set(WORDS)
    assert sum(w["coverage"] for w in entry["words"]) == pytest.approx(1.0)
    assert data["model"]["variant"] == "vit_tiny" and entry["vocabulary_size"] == len(WORDS)
    for word in found:
        assert word in stdout
    assert "pixels %" in stdout and "random vit_tiny" in stdout


def test_output_file_and_top(tmp_path, capsys, chelsea):
    src = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(src)
    dst = tmp_path / "result.png"
    rc = run(["wordfree", str(src), *TINY, "--output", str(dst), "--top", "2", "--min-coverage", "0",
               "--json", str(tmp_path / "w.json")])
    assert rc == 0 and dst.is_file()
    (entry,) = json.loads((tmp_path / "w.json").read_text())["images"]
    assert len(entry["words"]) == 2


def test_backend_option(tmp_path, capsys):
    """The run reports the encoder that actually ran (its describe()), not the command-line text."""
    rc = run(["wordfree", *TINY, "--out", str(tmp_path), "--backend", "torch", "--precision", "bf16",
              "--json", str(tmp_path / "w.json")])
    assert rc == 0 and (tmp_path / "chelsea_wordfree.png").is_file()
    encoder = json.loads((tmp_path / "w.json").read_text())["encoder"]
    assert encoder["backend"] == "torch" and encoder["precision"] == "bf16" and encoder["variant"] == "vit_tiny"


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_text("this is not a png")
    rc = run(["wordfree", str(bad), *TINY, "--out", str(tmp_path)])
    assert rc == 2
    assert "broken.png" in _error(capsys)
    assert not list(tmp_path.glob("*_wordfree.png"))


def test_missing_output_folder(tmp_path, capsys):
    rc = run(["wordfree", *TINY, "--output", str(tmp_path / "missing" / "x.png")])
    assert rc == 2
    assert "does not exist" in _error(capsys)
    assert not (tmp_path / "missing").exists()
    rc = run(["wordfree", *TINY, "--out", str(tmp_path / "a" / "b")])
    assert rc == 2
    assert "does not exist" in _error(capsys)
    assert not (tmp_path / "a").exists()


def test_missing_json_folder(tmp_path, capsys):
    rc = run(["wordfree", *TINY, "--out", str(tmp_path), "--json", str(tmp_path / "no" / "w.json")])
    assert rc == 2
    assert "does not exist" in _error(capsys)
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("args", [["--min-coverage", "2"], ["--top", "0"], ["--size", "100x100"]])
def test_bad_options(tmp_path, capsys, args):
    rc = run(["wordfree", *TINY, "--out", str(tmp_path), *args])
    assert rc == 2
    _error(capsys)


def test_output_needs_a_single_image(tmp_path, capsys):
    rc = run(["wordfree", "sample:chelsea", "sample:coffee", *TINY, "--output", str(tmp_path / "x.png")])
    assert rc == 2
    assert "--out DIR" in _error(capsys)
