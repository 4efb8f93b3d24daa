"""The pinned-buffer pool: reuse, a byte budget, and blocking until a writer gives a buffer back."""

import threading
import time

from lsegrt.pipeline.transfer import PinnedPool


def _acquire_in_thread(pool, nbytes):
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire(nbytes)), daemon=True)
    t.start()
    time.sleep(0.2)
    return t, got


def test_pool_reuses_and_blocks_at_its_budget():
    pool = PinnedPool(budget=8 << 20, pin=False)  # CPU memory here; pinned on a GPU machine
    a = pool.acquire(1 << 20)
    b = pool.acquire(3 << 20)  # sizes round up to powers of two, like PyTorch's pinned allocator
    assert (a.numel(), b.numel(), pool.total) == (1 << 20, 4 << 20, 5 << 20)
    t, got = _acquire_in_thread(pool, 4 << 20)
    assert not got  # over budget and nothing free: waits for a writer to release one
    pool.release(b)
    t.join(5)
    assert got and got[0] is b  # the freed 4 MB buffer is reused
    pool.release(a)
    assert pool.acquire(512 << 10) is a  # the smallest free buffer that fits


def test_an_oversize_batch_waits_for_everything_then_fits():
    pool = PinnedPool(budget=2 << 20, pin=False)
    a = pool.acquire(1 << 20)
    t, got = _acquire_in_thread(pool, 8 << 20)
    assert not got
    pool.release(a)  # free but too small: dropped, then the big buffer is allocated alone
    t.join(5)
    assert got and got[0].numel() == 8 << 20 and pool.total == 8 << 20
