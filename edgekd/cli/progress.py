"""Render the library's progress: a rich bar per task on a terminal, plain log lines otherwise (CI)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def make_progress(console: Console):
    return RichProgress(console) if console.is_terminal else PlainProgress()


class PlainProgress:
    """One line per event on stderr, with time since start: readable in a CI log."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._totals: dict[str, int | None] = {}
        self._done: dict[str, int] = {}

    def _line(self, text: str) -> None:
        print(f"[{time.monotonic() - self._started:7.1f}s] {text}", file=sys.stderr, flush=True)

    def start(self, task: str, total: int | None = None) -> None:
        self._totals[task], self._done[task] = total, 0

    def advance(self, task: str, steps: int = 1, status: str = "") -> None:
        self._done[task] = self._done.get(task, 0) + steps
        total = self._totals.get(task)
        count = f"{self._done[task]}/{total}" if total else str(self._done[task])
        self._line(f"{task} {count}" + (f" · {status}" if status else ""))

    def finish(self, task: str) -> None:
        self._totals.pop(task, None)

    def note(self, message: str) -> None:
        self._line(message)

    def close(self) -> None:
        pass


class RichProgress:
    """A live bar per task; finished tasks stay on screen with their last status."""

    def __init__(self, console: Console) -> None:
        self._bars = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        self._ids: dict[str, int] = {}
        self._bars.start()

    def start(self, task: str, total: int | None = None) -> None:
        self._ids[task] = self._bars.add_task(task, total=total, status="")

    def advance(self, task: str, steps: int = 1, status: str = "") -> None:
        if task not in self._ids:
            self.start(task)
        self._bars.update(self._ids[task], advance=steps, status=status)

    def finish(self, task: str) -> None:
        if task in self._ids:
            bar = self._bars.tasks[self._ids[task]]
            self._bars.update(self._ids[task], total=bar.completed or 1, completed=bar.completed or 1)

    def note(self, message: str) -> None:
        self._bars.console.print(f"[dim]{message}")

    def close(self) -> None:
        self._bars.stop()
