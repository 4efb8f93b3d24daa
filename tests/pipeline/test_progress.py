"""The run's progress (a specialisation of `lsegrt.progress.Progress`, whose shared behaviour
tests/test_progress.py covers): its line, a line per tenth, no closing line, the bar's detail; stage
utilisation."""

from lsegrt.pipeline.progress import Progress, format_bytes, format_utilisation
from lsegrt.pipeline.timing import Span, StageTimes


def test_plain_lines_every_tenth():
    lines = []
    p = Progress(20, tty=False, say=lines.append, interval=1e9)
    for done in range(1, 21):
        p.update(done, 0, {"gpu": 0.5})
    p.close()
    assert len(lines) == 10 and lines[-1].startswith("20/20 frames (0 skipped)") and "gpu 50%" in lines[-1]


def test_plain_line_counts_skipped_frames_but_not_in_the_rate(clock):
    lines = []
    p = Progress(20, tty=False, say=lines.append, interval=1)
    clock.now = 2.0
    p.update(10, 2, {"decode": 1.0, "write": 0.25})
    p.close()
    assert lines == ["12/20 frames (2 skipped), 5.0 frames/s, ETA 2 s; busy: "
                     "decode 100% wait 0% h2d 0% gpu 0% d2h 0% write 25%"]


def test_unknown_total_has_no_eta(clock):
    lines = []
    p = Progress(None, tty=False, say=lines.append, interval=1)
    clock.now = 4.0
    p.update(2, 0, {})
    assert lines == ["2 frames (0 skipped), 0.5 frames/s; busy: decode 0% wait 0% h2d 0% gpu 0% d2h 0% write 0%"]


def test_rich_bar_on_a_terminal(capsys):
    lines = []
    p = Progress(5, tty=True, say=lines.append)
    p.update(3, 1, {"write": 0.25})
    p.close()
    out = capsys.readouterr().out
    assert "frames/s" in out and "write 25%" in out and lines == []


def test_utilisation_is_a_share_of_capacity():
    t = StageTimes({"write": 4})
    t.add("write", 2.0)
    t.add("gpu", 0.5)
    span = Span()
    t.add("h2d", span.stop().seconds())
    u = t.utilisation(1.0)
    assert u["write"] == 0.5 and u["gpu"] == 0.5 and u["h2d"] < 0.01
    assert format_utilisation(u).startswith("decode 0% wait 0% h2d 0% gpu 50%")
    assert format_bytes(78_643_200) == "78.6 MB" and format_bytes(512) == "512 B"
