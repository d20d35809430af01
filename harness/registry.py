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

Protocol rows (``harness.config.load_protocol``) come the same way for built-ins and plugins: every
package named in the ``harness.protocols`` entry-point group holds ``<space>.yaml`` files
(``protocol_packages``; the harness's own is ``harness.protocols``).  A method's ``role`` is one of
``ROLES``: ``core`` (the compared methods), ``variant`` (the paper's variants), ``extra`` (outside the
paper's claims, e.g. a plugin's method: reported where it ran, never expected).  See ``docs/plugins.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Type, TypeVar

if TYPE_CHECKING:  # the contracts, for type checkers only: nothing is imported at run time
    from harness.methods import SearchMethod
    from harness.spaces.base import SearchSpace

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


#: a method's ``role``: which methods a complete run store is expected to hold (reports/runs.py)
ROLES = ("core", "variant", "extra")


def register_method(name: str):
    register = _register(_METHODS, "method", name)

    def deco(cls: Type[T]) -> Type[T]:
        role = getattr(cls, "role", "core")
        if role not in ROLES:
            raise ValueError(f"method {name!r}: role must be one of {', '.join(ROLES)}, not {role!r}")
        return register(cls)

    return deco


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


#: the harness's own protocol package and its distribution (also used without installed package metadata)
HARNESS_PROTOCOLS = "harness.protocols"
HARNESS_DISTRIBUTION = "milenas-harness"
_protocol_packages: Optional[List[Tuple[str, str]]] = None


def protocol_packages() -> List[Tuple[str, str]]:
    """``(distribution, package)`` of every package in the ``harness.protocols`` entry-point group, the
    harness's own first, then by distribution name; each package folder holds ``<space>.yaml`` files."""
    global _protocol_packages
    if _protocol_packages is None:
        found: Dict[str, str] = {}
        try:
            from importlib.metadata import entry_points

            for ep in entry_points(group="harness.protocols"):
                dist = getattr(ep, "dist", None)
                found[ep.value] = dist.name if dist is not None else ep.value
        except Exception:  # pragma: no cover - broken metadata
            pass
        found[HARNESS_PROTOCOLS] = HARNESS_DISTRIBUTION
        _protocol_packages = sorted(
            ((d, m) for m, d in found.items()), key=lambda dm: (dm[1] != HARNESS_PROTOCOLS, dm[0], dm[1])
        )
    return list(_protocol_packages)


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
    ``role`` keeps only the methods of that role (``ROLES``)."""
    load_plugins()
    names = [n for n in _METHODS if role is None or getattr(_METHODS[n], "role", "core") == role]
    if order == "display":
        return sorted(names, key=lambda n: (getattr(_METHODS[n], "display_rank", 100), n))
    return sorted(names)


def find_method(name: Optional[str]) -> Optional[Type[SearchMethod]]:
    load_plugins()
    return _METHODS.get(name) if name else None


def get_space(name: str) -> Type[SearchSpace]:
    load_plugins()
    if name not in _SPACES:
        raise UnknownNameError(f"unknown search space {name!r}; known spaces: {', '.join(sorted(_SPACES))}")
    return _SPACES[name]


def get_method(name: str) -> Type[SearchMethod]:
    load_plugins()
    if name not in _METHODS:
        raise UnknownNameError(f"unknown search method {name!r}; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
