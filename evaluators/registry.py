"""Name -> object registries, with a "did you mean" for typos."""

from __future__ import annotations

import difflib
from typing import Generic, TypeVar

from .task import Task

T = TypeVar("T")


class UnknownName(KeyError):
    """An unregistered name; the message lists the closest registered names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        self.message = f"unknown {kind} {name!r}.{hint} Known: {', '.join(known) or '(none)'}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return self.message


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


def _build_tasks() -> Registry[Task]:
    # Task modules import only the scorers (sympy loads on first use), so this stays fast.
    from .tasks import finance, gsm8k, gsm8k_cot, legal, probability

    registry: Registry[Task] = Registry("task")
    for module in (gsm8k, gsm8k_cot, legal, finance, probability):
        registry.register(module.TASK.name, module.TASK)
    registry.register(legal.ARTICLES_TASK.name, legal.ARTICLES_TASK)
    return registry


TASKS: Registry[Task] = _build_tasks()
