"""Registries of search spaces and search methods (in the spirit of timm's model registry).

A search space registers with ``@register_space("nb201")``, a search method with
``@register_method("milenas")``.  ``list_spaces()`` / ``list_methods()`` return the sorted names,
``get_space(name)`` / ``get_method(name)`` return the registered class.  Importing
``harness.spaces`` and ``baselines`` fills the registries (``load_builtin()`` does both).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Type, TypeVar

T = TypeVar("T")

_SPACES: Dict[str, type] = {}
_METHODS: Dict[str, type] = {}


class UnknownNameError(KeyError):
    """An unknown method, space or profile name; its message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def _register(table: Dict[str, type], kind: str, name: str) -> Callable[[Type[T]], Type[T]]:
    def deco(cls: Type[T]) -> Type[T]:
        if name in table and table[name] is not cls:
            raise ValueError(f"{kind} {name!r} is registered twice ({table[name]} and {cls})")
        table[name] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def register_space(name: str):
    return _register(_SPACES, "space", name)


def register_method(name: str):
    return _register(_METHODS, "method", name)


def load_builtin() -> None:
    """Import the built-in spaces and baselines so that they register themselves."""
    import harness.spaces  # noqa: F401
    import baselines  # noqa: F401


def list_spaces() -> List[str]:
    load_builtin()
    return sorted(_SPACES)


def list_methods() -> List[str]:
    load_builtin()
    return sorted(_METHODS)


def get_space(name: str) -> type:
    load_builtin()
    if name not in _SPACES:
        raise UnknownNameError(f"unknown search space {name!r}; known spaces: {', '.join(sorted(_SPACES))}")
    return _SPACES[name]


def get_method(name: str) -> type:
    load_builtin()
    if name not in _METHODS:
        raise UnknownNameError(f"unknown search method {name!r}; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
