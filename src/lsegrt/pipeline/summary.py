"""What a run did: :class:`ExtractSummary`, counted by the writer threads, merged over shards."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .progress import format_bytes, format_utilisation
from .store import SUMMARY_JSON, Store, write_json_durable


@dataclass
class ExtractSummary:
    """What one run (one shard) did; also written as ``summary-<rank>-of-<world>.json`` in the dataset
    and merged over shards into ``summary.json``."""

    out: str
    shard: str
    device: str
    backend: str
    precision: str
    batch_size: int
    workers: int
    frames_planned: int | None  # this shard's frames still to do at the start (None: unknown, videos)
    already_done: int  # frames finished by earlier runs (any shard)
    written: int = 0
    skipped: int = 0
    bytes_written: int = 0
    bytes_per_frame: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    startup_s: float = 0.0  # start → first batch submitted to the encoder (model load, compile…)
    time_to_first_frame_s: float | None = None  # start → first frame durable on disk
    frames_per_s: float = 0.0  # written / wall
    steady_frames_per_s: float | None = None  # after the first frame was durable
    peak_rss_bytes: int = 0  # this process
    peak_rss_children_bytes: int = 0  # the largest child process that ended (decode or compile workers)
    utilisation: dict[str, float] = field(default_factory=dict)
    pca_explained: float | None = None  # share of the variance the stored components explain
    pca_fit_s: float | None = None  # the sample pass and the fit (part of start-up)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def exit_code(self) -> int:
        """0, or 3 when some frames were skipped (unreadable)."""
        return 3 if self.skipped else 0


class Counters:
    """Frames, skipped frames and bytes made durable, updated by the writer threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.written = self.skipped = self.bytes = 0
        self.first_t: float | None = None
        self.first_written = 0

    def done(self, written: int, skipped: int, nbytes: int) -> None:
        with self.lock:
            self.written += written
            self.skipped += skipped
            self.bytes += nbytes
            if written and self.first_t is None:
                self.first_t = time.perf_counter()
                self.first_written = self.written



def write_summaries(store: Store, summary: ExtractSummary) -> None:
    """This shard's summary file, then ``summary.json`` merged over every shard's file present."""
    shard = store.shard
    write_json_durable(store.root / f"summary-{shard.rank}-of-{shard.world}.json", summary.to_dict(), shard)
    parts = []
    for p in sorted(store.root.glob("summary-*-of-*.json")):
        try:
            parts.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    merged = {
        "shards": parts,
        "written": sum(p.get("written", 0) for p in parts),
        "skipped": sum(p.get("skipped", 0) for p in parts),
        "bytes_written": sum(p.get("bytes_written", 0) for p in parts),
        "wall_s": max((p.get("wall_s", 0) for p in parts), default=0),
    }
    merged["frames_per_s"] = round(merged["written"] / max(merged["wall_s"], 1e-9), 2)
    write_json_durable(store.root / SUMMARY_JSON, merged, shard)


def describe_summary(s: ExtractSummary) -> list[str]:
    """The end-of-run lines: frames, speed, start-up, memory, per-stage utilisation, bytes."""
    lines = [f"{s.written} frames written, {s.skipped} skipped, {s.already_done} done before; "
             f"{format_bytes(s.bytes_written)} in {s.wall_s:.1f} s → {s.frames_per_s:.2f} frames/s"
             + (f" ({s.steady_frames_per_s:.2f} frames/s after the first)" if s.steady_frames_per_s else ""),
             f"start-up {s.startup_s:.1f} s, time to first frame "
             + (f"{s.time_to_first_frame_s:.1f} s" if s.time_to_first_frame_s is not None else "-")
             + f"; peak RSS {format_bytes(s.peak_rss_bytes)} (largest child process {format_bytes(s.peak_rss_children_bytes)})",
             f"busy: {format_utilisation(s.utilisation)}"]
    return lines
