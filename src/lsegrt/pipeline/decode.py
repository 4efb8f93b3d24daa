"""Decode stage: worker processes turn units into model-size pixels, one frame at a time.

Each frame is read with :func:`lsegrt.images.load_image`'s rules (EXIF orientation, every PIL mode to
8-bit RGB) and brought to its input size with :func:`lsegrt.sizes.model_pixels` (exactly the resize of
``LSegModel.preprocess``; normalization happens later, on the device). A frame already at its input
size travels as ``(H, W, 3) uint8``; a resized one as ``(3, H, W) float32``, because rounding the
resized pixels back to uint8 would change the features.

A frame that cannot be read does not stop the run: it comes out as a record with ``skipped`` set to
the one-line reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import LsegError
from ..images import SAMPLE_PREFIX, load_image, sample_image
from ..sizes import model_pixels, target_size
from .sources import ArrayFrame, Shard, Unit


def _frame(frame_id: str, source: str, index: int | None, order: int, array, size, t0: float) -> dict[str, Any]:
    hw0 = tuple(int(v) for v in array.shape[:2])
    try:
        hw = hw0 if size is None else target_size(hw0, size)
        pixels = model_pixels(array, hw)
    except LsegError as exc:
        return skipped(frame_id, source, index, order, str(exc))
    return {"frame_id": frame_id, "source": source, "index": index, "order": order, "hw0": hw0, "hw": hw,
            "pixels": pixels, "decode_s": time.perf_counter() - t0}


def skipped(frame_id: str, source: str, index: int | None, order: int, reason: str) -> dict[str, Any]:
    return {"frame_id": frame_id, "source": source, "index": index, "order": order,
            "skipped": " ".join(reason.split())}


class _VideoSkip:
    """``index in skip``: frames already done, belonging to another shard or not among ``only``
    (``read_video_frames`` decodes them, since later frames depend on them, but never converts them)."""

    def __init__(self, unit: Unit, shard: Shard):
        self.done, self.only, self.shard, self.order = unit.skip, unit.only, shard, unit.order

    def __contains__(self, index: int) -> bool:
        if self.only is not None:
            return index not in self.only
        return index in self.done or not self.shard.owns_video_frame(self.order, index)


def decode_unit(unit: Unit, size, shard: Shard, video_stride: int = 1, video_fps: float | None = None
                ) -> Iterator[dict[str, Any]]:
    """One unit → frame records (see :func:`_frame`) or skipped records, in order."""
    t0 = time.perf_counter()
    if unit.kind == "sample":
        yield _frame(unit.frame_id, unit.path, None, unit.order,
                     sample_image(unit.path.removeprefix(SAMPLE_PREFIX)), size, t0)
        return
    if unit.kind == "image":
        try:
            array = load_image(unit.path)
        except LsegError as exc:
            yield skipped(unit.frame_id, unit.path, None, unit.order, str(exc))
            return
        yield _frame(unit.frame_id, unit.path, None, unit.order, array, size, t0)
        return
    from .video import read_video_frames

    skip = _VideoSkip(unit, shard)
    frames = read_video_frames(unit.path, stride=video_stride, fps=video_fps, skip=skip)
    while True:
        t0 = time.perf_counter()
        try:
            index, array = next(frames)
        except StopIteration:
            return
        except LsegError as exc:
            # The video's own id marks it as done (with the reason) so --resume does not retry it.
            yield skipped(unit.frame_id, unit.path, None, unit.order, str(exc))
            return
        yield _frame(unit.video_frame_id(index), unit.path, index, unit.order, array, size, t0)


class UnitDataset(IterableDataset):
    """Units split over DataLoader workers (unit ``k`` → worker ``k mod n``); yields frame records."""

    def __init__(self, units: list[Unit], size, shard: Shard, video_stride: int = 1,
                 video_fps: float | None = None):
        self.units, self.size, self.shard = units, size, shard
        self.video_stride, self.video_fps = video_stride, video_fps

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        wid, n = (info.id, info.num_workers) if info is not None else (0, 1)
        for k, unit in enumerate(self.units):
            if k % n == wid:
                yield from decode_unit(unit, self.size, self.shard, self.video_stride, self.video_fps)


class ArrayDataset(IterableDataset):
    """Arrays from Python (read in the main process: a generator cannot be split over workers)."""

    def __init__(self, frames: Iterable[ArrayFrame], size, shard: Shard, done: set[str]):
        self.frames, self.size, self.shard, self.done = frames, size, shard, done

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for f in self.frames:
            if self.shard.owns_image(f.order) and f.frame_id not in self.done:
                yield _frame(f.frame_id, "array", None, f.order, f.array, self.size, time.perf_counter())


def frame_loader(dataset: IterableDataset, workers: int, pin_memory: bool, prefetch: int = 4) -> DataLoader:
    """A DataLoader yielding one frame record at a time: ``workers`` processes (0: in this process),
    at most ``workers × prefetch`` frames decoded ahead, tensors in pinned memory when asked."""
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch, in_order=False)
    return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory, **kwargs)


def default_workers() -> int:
    import os

    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

