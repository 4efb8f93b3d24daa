"""Progress of a run: a rich bar on a terminal, plain periodic lines otherwise.

Both show frames done, frames/s, ETA and the live share of wall time each stage was busy (decode
workers, waiting for decoded frames, host→device, GPU, device→host, writers), so the bottleneck is
visible while the run goes: the stage near 100 % is the one to speed up.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from .timing import STAGES


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_utilisation(util: dict[str, float]) -> str:
    return " ".join(f"{s} {100 * util.get(s, 0):.0f}%" for s in STAGES)


class Progress:
    """``update(done, skipped, utilisation)`` from the main thread; ``close()`` at the end."""

    def __init__(self, total: int | None, *, enabled: bool = True, tty: bool | None = None,
                 say: Callable[[str], None] = print, interval: float = 5.0, label: str = "extract"):
        self.total, self.enabled, self.say, self.interval = total, enabled, say, interval
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.t0 = time.perf_counter()
        self.last_line = self.t0
        self.last_decile = 0
        self.done = 0
        self._rich = None
        if enabled and self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeRemainingColumn

            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), TextColumn("{task.fields[util]}"),
                refresh_per_second=4,
            )
            self._task = self._rich.add_task(label, total=total, rate="", util="")
            self._rich.start()

    def update(self, done: int, skipped: int, utilisation: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        self.done = done
        rate = done / max(now - self.t0, 1e-9)
        if self._rich is not None:
            self._rich.update(self._task, completed=done + skipped, rate=f"{rate:.1f} frames/s",
                              util=format_utilisation(utilisation))
            return
        decile = int(10 * (done + skipped) / self.total) if self.total else 0
        if now - self.last_line >= self.interval or decile > self.last_decile:
            self.last_line, self.last_decile = now, decile
            of = f"/{self.total}" if self.total else ""
            eta = ""
            if self.total and rate > 0:
                eta = f", ETA {max(0.0, (self.total - done - skipped) / rate):.0f} s"
            self.say(f"{done + skipped}{of} frames ({skipped} skipped), {rate:.1f} frames/s{eta}; busy: "
                     f"{format_utilisation(utilisation)}")

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
