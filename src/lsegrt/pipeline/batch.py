"""Batch stage: frames grouped by input size, so every batch has one shape.

A compiled graph, a CUDA graph or a TensorRT profile is specialised to one input shape; batches of a
fixed size at a few input sizes reuse them. The last, partial batch of a size is padded up to the
full batch size on the device (the padding is computed and thrown away): a new batch size would cost
a new compile. Memory stays bounded: at most ``max_pending`` frames wait for their batch to fill;
beyond that the fullest group leaves early, padded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Batch:
    """Frames of one input size ``hw``; ``size`` is the padded batch size the encoder sees."""

    hw: tuple[int, int]
    frames: list[dict[str, Any]] = field(default_factory=list)
    size: int = 1

    @property
    def n(self) -> int:
        return len(self.frames)


class Batcher:
    """``add(frame)`` → batches that just filled; ``flush()`` → the rest, at the end of the run."""

    def __init__(self, batch_size: int, max_pending: int | None = None):
        self.batch_size = batch_size
        self.max_pending = max_pending or 4 * batch_size
        self.groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self.pending = 0

    def add(self, frame: dict[str, Any]) -> Iterator[Batch]:
        hw = tuple(frame["hw"])
        group = self.groups.setdefault(hw, [])
        group.append(frame)
        self.pending += 1
        if len(group) == self.batch_size:
            yield self._take(hw)
        elif self.pending > self.max_pending:
            yield self._take(max(self.groups, key=lambda k: len(self.groups[k])))

    def flush(self) -> Iterator[Batch]:
        for hw in list(self.groups):
            yield self._take(hw)

    def _take(self, hw: tuple[int, int]) -> Batch:
        frames = self.groups.pop(hw)
        self.pending -= len(frames)
        return Batch(hw, frames, self.batch_size)
