"""Progress: plain periodic lines off a terminal, a rich bar on one; stage utilisation."""

from lsegrt.pipeline.progress import Progress, format_bytes, format_utilisation
from lsegrt.pipeline.timing import Span, StageTimes


def test_plain_lines_every_tenth():
    lines = []
    p = Progress(20, tty=False, say=lines.append, interval=1e9)
    for done in range(1, 21):
        p.update(done, 0, {"gpu": 0.5})
    p.close()
    assert len(lines) == 10 and lines[-1].startswith("20/20 frames (0 skipped)") and "gpu 50%" in lines[-1]


def test_rich_bar_on_a_terminal(capsys):
    p = Progress(5, tty=True)
    p.update(3, 1, {"write": 0.25})
    p.close()
    assert "frames/s" in capsys.readouterr().out


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
