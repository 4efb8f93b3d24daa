"""Progress of long work, for the library, the CLI and the extraction pipeline alike.

``with Progress("embedding vocabulary", total=n, unit="words") as bar: bar.advance(k)`` shows a rich
bar on stderr when stderr is a terminal, and otherwise (logs, CI, pipes) one plain line every
``interval`` seconds: work that ends sooner prints nothing at all, so quick runs keep stderr empty.
Stdout is left to results and tables.

Specialisations (:class:`lsegrt.pipeline.progress.Progress`) keep that logic and change only what
is shown: :meth:`Progress.text` (a plain line), :meth:`Progress.detail` (text after the bar), and the
class attributes ``tenths`` and ``closing_line``.

:func:`note` is for one-off facts about where time goes ("building an engine into the cache", "cached
engine reused"): it logs to the ``lsegrt`` logger at INFO, which the CLI prints and a library user sees
only when they configure logging.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, TextIO

LOGGER = logging.getLogger("lsegrt")
DEFAULT_INTERVAL = 5.0


def note(message: str) -> None:
    """One informational line (see the module note)."""
    LOGGER.info(message)


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class Progress:
    """Counts ``total`` steps of ``description``; see the module note for where it shows.

    ``enabled=False`` silences it (same interface). ``stream`` defaults to ``sys.stderr`` at start;
    ``tty`` overrides whether it counts as a terminal; ``say`` takes the plain lines instead of
    ``stream``. ``start()`` and ``close()`` are the ``with`` block's two ends, for work that is not one
    block.
    """

    tenths = False  # also a plain line at each new tenth of the total: a log then shows the pace of fast work
    closing_line = True  # a plain run that said something also says it finished

    def __init__(self, description: str, total: int | None = None, unit: str = "", *, enabled: bool = True,
                 interval: float | None = None, stream: TextIO | None = None, tty: bool | None = None,
                 say: Callable[[str], None] | None = None):
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.interval = DEFAULT_INTERVAL if interval is None else interval
        self.stream = stream
        self.tty = tty
        self.say = say
        self.completed = 0
        self.lines = 0  # plain lines written (tests, and the closing line's decision)
        self._tenth = 0
        self._rich: Any = None
        self._task: Any = None

    # -- context --------------------------------------------------------------------------------------
    def __enter__(self) -> "Progress":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close(finished=exc[0] is None)

    def start(self) -> "Progress":
        self.stream = self.stream or sys.stderr
        self._start = self._last = time.monotonic()
        if self.enabled and (_is_terminal(self.stream) if self.tty is None else self.tty):
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            # force_terminal: a ``tty=True`` override must draw even where rich would not see a terminal
            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
                console=Console(file=self.stream, force_terminal=True), transient=True)
            self._rich.start()
            self._task = self._rich.add_task(self.description, total=self.total, detail=self.detail())
        return self

    def close(self, finished: bool = True) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self.closing_line and self.lines and finished:
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
            self._rich.update(self._task, completed=completed, description=self.description, detail=self.detail())
            return
        now = time.monotonic()
        tenth = 10 * completed // self.total if self.tenths and self.total else 0
        if now - self._last >= self.interval or tenth > self._tenth:
            self._last, self._tenth = now, tenth
            self._line()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    # -- what is shown (specialisations override these) -----------------------------------------------
    def detail(self) -> str:
        """Text after the rich bar."""
        return ""

    def text(self, done: bool) -> str:
        """One plain line; ``done`` for the closing one."""
        elapsed = self.elapsed
        count = f"{self.completed}/{self.total}" if self.total else str(self.completed)
        text = f"{self.description}: {count}{' ' + self.unit if self.unit else ''}, {_fmt_seconds(elapsed)}"
        if done:
            text += ", done"
        elif self.total and self.completed:
            text += f", about {_fmt_seconds(elapsed * (self.total - self.completed) / self.completed)} left"
        return text

    def _line(self, done: bool = False) -> None:
        text = self.text(done)
        if self.say is None:
            print(text, file=self.stream, flush=True)
        else:
            self.say(text)
        self.lines += 1


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
