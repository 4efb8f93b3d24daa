"""`lsegrt.progress`: plain periodic lines when not on a terminal, silence for quick work, a rich bar on
a terminal, the ``tty`` and ``say`` overrides, and the engine cache saying what it does. (The pipeline's
specialisation: tests/pipeline/test_progress.py.)"""

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


def test_plain_line_every_interval(clock):
    stream = io.StringIO()
    with Progress("work", total=10, stream=stream, interval=5) as bar:
        for now in (1, 4, 6, 7, 10, 11.5):
            clock.now = now
            bar.advance()
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == ["work: 3/10", "work: 6/10",
                                                                                  "work: 6/10"]
    assert stream.getvalue().splitlines()[0] == "work: 3/10, 6 s, about 14 s left"


def test_no_closing_line_after_an_error():
    stream = io.StringIO()
    try:
        with Progress("work", total=2, stream=stream, interval=0) as bar:
            bar.advance()
            raise KeyError
    except KeyError:
        pass
    assert stream.getvalue().splitlines() == ["work: 1/2, 0 s, about 0 s left"]


def test_tty_and_say_override_the_stream():
    said = []
    terminal = FakeTTY()
    with Progress("work", total=2, stream=terminal, interval=0, tty=False, say=said.append) as bar:
        bar.advance(2)
    assert terminal.getvalue() == "" and said[-1].endswith("done") and bar.lines == 2
    stream = io.StringIO()
    with Progress("work", total=2, stream=stream, interval=0, tty=True, say=said.append) as bar:
        bar.advance(2)
    assert "work" in stream.getvalue() and bar.lines == 0 and len(said) == 2


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
