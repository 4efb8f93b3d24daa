"""Batching by input size: one shape per batch, fixed size, bounded pending frames."""

from lsegrt.pipeline.batch import Batcher


def _frame(hw):
    return {"hw": hw}


def test_groups_by_size_and_flushes_partial_batches():
    b = Batcher(2)
    out = []
    for hw in [(32, 64), (64, 32), (32, 64), (64, 32), (32, 64)]:
        out += list(b.add(_frame(hw)))
    out += list(b.flush())
    assert [(x.hw, x.n, x.size) for x in out] == [((32, 64), 2, 2), ((64, 32), 2, 2), ((32, 64), 1, 2)]


def test_pending_frames_stay_bounded():
    b = Batcher(4, max_pending=6)
    emitted = []
    for k in range(20):  # every frame a new size: groups never fill
        emitted += list(b.add(_frame((32 * (k + 1), 32))))
        assert b.pending <= 6
    assert sum(x.n for x in emitted) + b.pending == 20 and all(x.size == 4 for x in emitted)
