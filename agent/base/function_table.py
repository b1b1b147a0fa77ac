"""A name -> function table filled by a decorator (the named checks, the safe remedies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class FunctionTable(dict[str, Any]):
    def add(self, name: str) -> Callable[[F], F]:
        """Decorator: register the function under ``name``."""

        def register(fn: F) -> F:
            self[name] = fn
            return fn

        return register
