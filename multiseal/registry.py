"""Tiny name → builder registries: the extension points of multiseal.

A new topology, scheduler, prompt style or grader is one function plus one ``register`` line.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A plain dict from name to object that rejects duplicate names and explains unknown ones."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; usable as ``@REG.register("name")`` too."""
        if item is None:
            def deco(obj: T) -> T:
                self.register(name, obj)
                return obj
            return deco
        if name in self._items:
            raise ValueError(f"{self.what} '{name}' is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} '{name}'; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
