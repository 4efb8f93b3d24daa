"""Progress of long work, for the library and the CLI alike.

``with Progress("embedding vocabulary", total=n, unit="words") as bar: bar.advance(k)`` shows a rich
bar on stderr when stderr is a terminal, and otherwise (logs, CI, pipes) one plain line every
``interval`` seconds: work that ends sooner prints nothing at all, so quick runs keep stderr empty.
Stdout is left to results and tables.

:func:`note` is for one-off facts about where time goes ("building an engine into the cache", "cached
engine reused"): it logs to the ``lsegrt`` logger at INFO, which the CLI prints and a library user sees
only when they configure logging.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

LOGGER = logging.getLogger("lsegrt")
DEFAULT_INTERVAL = 5.0


def note(message: str) -> None:
    """One informational line (see the module note)."""
    LOGGER.info(message)


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class Progress:
    """Counts ``total`` steps of ``description``; see the module note for where it shows.

    ``enabled=False`` silences it (same interface). ``stream`` defaults to ``sys.stderr`` at entry.
    """

    def __init__(self, description: str, total: int | None = None, unit: str = "", *, enabled: bool = True,
                 interval: float | None = None, stream: TextIO | None = None):
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.interval = DEFAULT_INTERVAL if interval is None else interval
        self.stream = stream
        self.completed = 0
        self.lines = 0  # plain lines written (tests, and the closing line's decision)
        self._rich: Any = None
        self._task: Any = None

    # -- context --------------------------------------------------------------------------------------
    def __enter__(self) -> "Progress":
        self.stream = self.stream or sys.stderr
        self._start = self._last = time.monotonic()
        if self.enabled and _is_terminal(self.stream):
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), console=Console(file=self.stream), transient=True)
            self._rich.__enter__()
            self._task = self._rich.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None
        elif self.lines and exc[0] is None:  # a plain run that said something also says it finished
            self._line(done=True)

    # -- updates --------------------------------------------------------------------------------------
    def advance(self, steps: int = 1, description: str | None = None) -> None:
        self.update(self.completed + steps, description)

    def update(self, completed: int, description: str | None = None) -> None:
        self.completed = completed
        if description is not None:
            self.description = description
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=completed, description=self.description)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line()

    def _line(self, done: bool = False) -> None:
        elapsed = time.monotonic() - self._start
        count = f"{self.completed}/{self.total}" if self.total else str(self.completed)
        text = f"{self.description}: {count}{' ' + self.unit if self.unit else ''}, {_fmt_seconds(elapsed)}"
        if done:
            text += ", done"
        elif self.total and self.completed:
            text += f", about {_fmt_seconds(elapsed * (self.total - self.completed) / self.completed)} left"
        print(text, file=self.stream, flush=True)
        self.lines += 1


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
