"""Registries of search spaces and search methods (in the spirit of timm's model registry).

A search space registers with ``@register_space("nb201")``, a search method with
``@register_method("milenas")``.  ``list_spaces()`` / ``list_methods()`` return the sorted names,
``get_space(name)`` / ``get_method(name)`` return the registered class, ``find_method(name)``
the class or None (for tolerant readers of old records).

A method class carries its own metadata (label, colour, display rank, role, options with their
validation, per-epoch logs; see ``harness.methods.SearchMethod``): config validation, reports and
regression checks ask the registry and keep no list of method names of their own.

The registries are filled by importing plugin modules named in the ``harness.plugins`` entry-point
group (``pyproject.toml``: the built-in spaces and ``baselines``; a third-party package adds its
own methods or spaces the same way).  This module imports none of them statically.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Optional, Type, TypeVar

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


#: used when the package metadata is not installed (running from a source tree without ``pip install -e``)
BUILTIN_PLUGINS = ("harness.spaces", "baselines")
_loaded = False


def _plugin_modules() -> List[str]:
    try:
        from importlib.metadata import entry_points

        found = [ep.value for ep in entry_points(group="harness.plugins")]
    except Exception:  # pragma: no cover - broken metadata
        found = []
    return sorted(set(found) | set(BUILTIN_PLUGINS))


def load_plugins() -> None:
    """Import every plugin module once so that its spaces and methods register themselves."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _plugin_modules():
        importlib.import_module(module)


def list_spaces() -> List[str]:
    load_plugins()
    return sorted(_SPACES)


def list_methods(order: str = "name", role: Optional[str] = None) -> List[str]:
    """Registered method names, by name or (``order="display"``) by each class's ``display_rank``;
    ``role`` keeps only "core" methods (the five compared) or "variant"s."""
    load_plugins()
    names = [n for n in _METHODS if role is None or getattr(_METHODS[n], "role", "core") == role]
    if order == "display":
        return sorted(names, key=lambda n: (getattr(_METHODS[n], "display_rank", 100), n))
    return sorted(names)


def find_method(name: Optional[str]) -> Optional[type]:
    load_plugins()
    return _METHODS.get(name) if name else None


def get_space(name: str) -> type:
    load_plugins()
    if name not in _SPACES:
        raise UnknownNameError(f"unknown search space {name!r}; known spaces: {', '.join(sorted(_SPACES))}")
    return _SPACES[name]


def get_method(name: str) -> type:
    load_plugins()
    if name not in _METHODS:
        raise UnknownNameError(f"unknown search method {name!r}; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
