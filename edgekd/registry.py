"""One generic registry per extension point: decorator registration, duplicates raise,
an unknown name lists what exists and the close matches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edgekd.errors import EdgeKDError, close_matches

T = TypeVar("T")


class UnknownNameError(EdgeKDError):
    """A name that no registry entry has."""


class Registry(Generic[T]):
    """Maps names to objects (classes, factories, functions).

    >>> losses = Registry("loss")
    >>> @losses.register("hinton")
    ... def hinton(): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{close_matches(name, self._entries)}; known: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
