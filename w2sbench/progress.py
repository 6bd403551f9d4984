"""Progress display for long work: rich bars on a terminal, one timestamped line per stage in a log file.

A run on a cluster writes stderr to a file, where rich's live bars print nothing until the run ends;
`LineProgress` prints one line when each computed stage finishes instead, plus a start line for a stage still
running after ``slow_after`` seconds (10), so `tail -f` shows where a run is without two lines per
prediction. Stages served from the stage cache print nothing themselves: the run notes their count once
per trust property (w2sbench/run_pairs.py).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

__all__ = ["LineProgress", "Progress", "QuietProgress", "RichProgress", "for_stream"]


class Progress:
    """The interface the pipeline reports to."""

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[StageHandle]:
        yield StageHandle()

    def note(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class StageHandle:
    def update(self, done: int, total: int | None = None) -> None:
        pass


QuietProgress = Progress


class _RichStage(StageHandle):
    def __init__(self, bar: object, task: object) -> None:
        self._bar = bar
        self._task = task

    def update(self, done: int, total: int | None = None) -> None:
        self._bar.update(self._task, completed=done, total=total)  # type: ignore[attr-defined]


class RichProgress(Progress):
    """Rich progress bars on stderr; finished stages stay listed with their time."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichBar

        self.console = Console(stderr=True)
        self._bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._bar.start()

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[StageHandle]:
        task = self._bar.add_task(name, total=total)
        handle = _RichStage(self._bar, task)
        try:
            yield handle
        except BaseException as exc:
            # the bar stays where the stage stopped (an interrupted training at 90/189 is not complete)
            self._bar.update(task, description=f"{name} ({_stopped(exc)})")
            raise
        t = self._bar.tasks[[x.id for x in self._bar.tasks].index(task)]
        self._bar.update(task, completed=t.total if t.total is not None else 1, total=t.total or 1)

    def note(self, message: str) -> None:
        self._bar.console.print(message)

    def close(self) -> None:
        self._bar.stop()


def _stopped(exc: BaseException) -> str:
    """How a stage that raised ended: "interrupted" by Ctrl-C (or the signal that stops a worker), else "failed"."""
    return "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"


class LineProgress(Progress):
    """One line per finished stage on ``stream`` (stderr): ``[HH:MM:SS] done <stage> (12.3 s)`` (or ``failed``,
    or ``interrupted`` after Ctrl-C).

    A stage still running after ``slow_after`` seconds also gets ``[HH:MM:SS] start <stage>`` at that moment
    (from a timer thread), so a long training shows up while it runs; 0 prints every start line at once,
    None none."""

    def __init__(self, stream: TextIO | None = None, slow_after: float | None = 10.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._slow_after = slow_after
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self._stream, flush=True)

    def _start_line(self, name: str) -> threading.Timer | None:
        """Print the start line now (``slow_after`` 0) or once the stage has run ``slow_after`` seconds."""
        if self._slow_after is None:
            return None
        if self._slow_after <= 0:
            self._line(f"start {name}")
            return None
        timer = threading.Timer(self._slow_after, self._line, args=(f"start {name}",))
        timer.daemon = True
        timer.start()
        return timer

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[StageHandle]:
        timer = self._start_line(name)
        start = time.perf_counter()
        outcome = "done"
        try:
            yield StageHandle()
        except BaseException as exc:
            outcome = _stopped(exc)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._line(f"{outcome} {name} ({time.perf_counter() - start:.1f} s)")

    def note(self, message: str) -> None:
        self._line(message)


def for_stream(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """The progress display for ``stream`` (stderr): nothing when quiet, bars on a terminal, lines otherwise."""
    if quiet:
        return Progress()
    stream = stream if stream is not None else sys.stderr
    return RichProgress() if stream.isatty() else LineProgress(stream)
