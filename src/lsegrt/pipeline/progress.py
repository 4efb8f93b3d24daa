"""Progress of a run: :class:`lsegrt.progress.Progress` (a rich bar on a terminal, plain periodic
lines otherwise) showing frames, frames/s, ETA and stage utilisation.

Utilisation is the live share of wall time each stage was busy (decode workers, waiting for decoded
frames, host→device, GPU, device→host, writers), so the bottleneck is visible while the run goes: the
stage near 100 % is the one to speed up.
"""

from __future__ import annotations

import sys
from typing import Callable

from .. import progress
from .timing import STAGES


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_utilisation(util: dict[str, float]) -> str:
    return " ".join(f"{s} {100 * util.get(s, 0):.0f}%" for s in STAGES)


class Progress(progress.Progress):
    """``update(done, skipped, utilisation)`` from the main thread; ``close()`` at the end.

    Starts when made. The pipeline reports on stdout, so the bar (and ``tty``'s default) is stdout's and
    plain lines go to ``say``. Those come at each new tenth of the total too, and no closing line
    follows them: each carries the count, and the run's summary comes next.
    """

    tenths = True
    closing_line = False

    def __init__(self, total: int | None, *, enabled: bool = True, tty: bool | None = None,
                 say: Callable[[str], None] = print, interval: float = progress.DEFAULT_INTERVAL,
                 label: str = "extract"):
        super().__init__(label, total, "frames", enabled=enabled, interval=interval, stream=sys.stdout, tty=tty,
                         say=say)
        self.skipped = 0
        self.utilisation: dict[str, float] = {}
        self.start()

    def update(self, done: int, skipped: int, utilisation: dict[str, float]) -> None:  # type: ignore[override]
        self.skipped, self.utilisation = skipped, utilisation
        super().update(done + skipped)

    def rate(self) -> float:
        """Frames written (skipped ones not counted) per second since the start."""
        return (self.completed - self.skipped) / max(self.elapsed, 1e-9)

    def detail(self) -> str:
        return f"{self.rate():.1f} frames/s  {format_utilisation(self.utilisation)}"

    def text(self, done: bool) -> str:
        rate = self.rate()
        of = f"/{self.total}" if self.total else ""
        eta = f", ETA {max(0.0, (self.total - self.completed) / rate):.0f} s" if self.total and rate > 0 else ""
        return (f"{self.completed}{of} frames ({self.skipped} skipped), {rate:.1f} frames/s{eta}; busy: "
                f"{format_utilisation(self.utilisation)}")
