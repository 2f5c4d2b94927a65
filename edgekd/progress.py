"""How the library reports progress without printing: the CLI passes a Progress that renders it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, task: str, total: int | None = None) -> None:
        """A unit of work begins (a stage, the epochs of one model, the runs of one profile)."""

    def advance(self, task: str, steps: int = 1, status: str = "") -> None:
        """``steps`` more of ``task`` are done; ``status`` is a short line such as ``loss 0.31``."""

    def finish(self, task: str) -> None:
        """``task`` is done."""

    def note(self, message: str) -> None:
        """A line worth showing the user (a skipped stage, a chosen setting)."""


class NullProgress:
    """Reports nothing: the default for library calls."""

    def start(self, task: str, total: int | None = None) -> None:
        pass

    def advance(self, task: str, steps: int = 1, status: str = "") -> None:
        pass

    def finish(self, task: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass
