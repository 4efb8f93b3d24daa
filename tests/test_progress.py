"""`lsegrt.progress`: plain periodic lines when not on a terminal, silence for quick work, a rich bar on
a terminal, and the engine cache saying what it does."""

from __future__ import annotations

import io

from lsegrt.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quick_work_prints_nothing():
    stream = io.StringIO()
    with Progress("work", total=3, stream=stream, interval=60) as bar:
        for _ in range(3):
            bar.advance()
    assert stream.getvalue() == "" and bar.completed == 3


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    with Progress("crops", total=4, unit="crops", stream=stream, interval=0) as bar:
        for _ in range(4):
            bar.advance()
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["crops: 1/4 crops", "crops: 2/4 crops", "crops: 3/4 crops",
                                                      "crops: 4/4 crops", "crops: 4/4 crops"]
    assert "left" in lines[0] and lines[-1].endswith("done") and bar.lines == 5


def test_disabled_is_silent_everywhere():
    for stream in (io.StringIO(), FakeTTY()):
        with Progress("work", total=2, stream=stream, interval=0, enabled=False) as bar:
            bar.advance(2)
        assert stream.getvalue() == ""


def test_rich_bar_on_a_terminal():
    stream = FakeTTY()
    with Progress("embedding", total=2, stream=stream, interval=0) as bar:
        bar.advance(2)
    assert bar.lines == 0  # no plain lines: rich drew (and cleared) a bar
    assert "embedding" in stream.getvalue()


def test_engine_cache_says_build_and_reuse(tmp_path, run_cli, cache_dir):
    """The first onnxruntime run exports into the cache and says so; the second says it reuses it."""
    argv = ["segment", "--variant", "vit_tiny", "--labels", "a, b", "--size", "64", "--device", "cpu",
            "--backend", "onnxruntime", "--out", tmp_path]
    code, first, err = run_cli(*argv)
    assert code == 0, err
    assert "building " in first and "into the cache" in first and "using the cached engine" not in first
    code, second, err = run_cli(*argv)
    assert code == 0, err
    assert "using the cached engine" in second and "building " not in second
