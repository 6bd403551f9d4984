"""Progress display for long work: one rich bar per stage with its name and ETA; silent when quiet."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["Progress", "QuietProgress", "RichProgress"]


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
        finally:
            t = self._bar.tasks[[x.id for x in self._bar.tasks].index(task)]
            self._bar.update(task, completed=t.total if t.total is not None else 1, total=t.total or 1)

    def note(self, message: str) -> None:
        self._bar.console.print(message)

    def close(self) -> None:
        self._bar.stop()
