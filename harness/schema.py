"""One validation mechanism for every setting the harness reads.

A setting is described by an ``Option`` (its meaning, type or choices, bounds, default, and the deviation
text a run records when its value is not the reference's).  A section of settings (a config section, a
method's options, a space's supernet options, an evaluation recipe, a measurement hook's settings) is a
mapping ``key -> Option`` checked by ``validate_section``: an unknown key or a bad value is one
``ConfigError`` line that names where it was found and what is allowed.

Names in messages: a section given by a path (``data``, ``optim``, ``evaluate``) names its keys
``data.batch_size``; a section given by a description (``method milenas``, ``nb201 supernet``) names them
``method milenas option lam``.  ``coerce_section`` turns number text (``"1e-3"``, which YAML 1.1 — the
dialect PyYAML reads — keeps as a string) into a number where the option is a number, and leaves strings
alone where the option is a string.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from harness.errors import ConfigError

#: number text as YAML 1.2 reads it (PyYAML's YAML 1.1 misses ``1e-3``: no dot, so it stays a string)
_INT_TEXT = re.compile(r"[-+]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Option:
    """One setting: ``kind`` is ``float`` | ``int`` | ``bool`` | ``str`` | ``list`` | ``dict``; ``choices``
    restricts the value to a set; ``minimum`` / ``maximum`` bound numbers (``exclusive`` /
    ``exclusive_maximum`` make them strict); ``nullable`` allows ``None``; ``item_kind`` checks the
    elements of a list; ``rule`` is one more check of the value, returning what the value must be
    (``"a positive multiple of 10"``) when it is not, else None."""

    doc: str
    kind: type = float
    choices: Optional[Tuple[Any, ...]] = None
    minimum: Optional[float] = None
    exclusive: bool = False
    deviation: Optional[str] = None  #: text recorded in a run's deviations when the value is not the reference's
    default: Any = None  #: the value when the settings do not name it
    maximum: Optional[float] = None
    nullable: bool = False
    item_kind: Optional[type] = None
    exclusive_maximum: bool = False
    rule: Optional[Callable[[Any], Optional[str]]] = None

    def check(self, where: str, key: str, value: Any) -> None:
        """Raise ``ConfigError`` (one line, ``"{name} must be …, not {value!r}"``) on a bad value; ``name`` is
        ``where.key`` for a section path, ``where key`` for a description (see the module doc)."""
        at = qualified(where, key)
        if value is None and self.nullable:
            return
        if self.choices is not None:
            if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
                raise ConfigError(f"{at} must be one of {list(self.choices)}, not {value!r}")
            return
        if not _is_kind(value, self.kind):
            raise ConfigError(
                f"{at} must be {_kind_text(self.kind)}{' or null' if self.nullable else ''}, not {value!r}"
            )
        if self.item_kind is not None and not all(_is_kind(v, self.item_kind) for v in value):
            raise ConfigError(f"{at} must be a list of {_kind_text(self.item_kind)} values, not {value!r}")
        if not self._in_bounds(value):
            raise ConfigError(f"{at} must be {self._bounds_text()}, not {value!r}")
        why = self.rule(value) if self.rule is not None else None
        if why:
            raise ConfigError(f"{at} must be {why}, not {value!r}")

    def coerce(self, value: Any) -> Any:
        """``value`` with number text turned into a number when this option is a number (else unchanged)."""
        if not isinstance(value, str) or self.choices is not None:
            return value
        text = value.strip()
        if self.kind is int and _INT_TEXT.fullmatch(text):
            return int(text)
        if self.kind is float and _FLOAT_TEXT.fullmatch(text):
            return float(text)
        return value

    def _in_bounds(self, value: Any) -> bool:
        lo, hi = self.minimum, self.maximum
        if lo is not None and (value <= lo if self.exclusive else value < lo):
            return False
        return hi is None or (value < hi if self.exclusive_maximum else value <= hi)

    def _bounds_text(self) -> str:
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"in {'(' if self.exclusive else '['}{lo:g}, {hi:g}{')' if self.exclusive_maximum else ']'}"
        if lo is not None:
            if lo == 0 and self.exclusive or lo == 1 and self.kind is int and not self.exclusive:
                return "positive"
            return f"{'>' if self.exclusive else '>='} {lo:g}"
        return f"{'<' if self.exclusive_maximum else '<='} {hi:g}"


def qualified(where: str, key: str) -> str:
    """``data.batch_size`` (``where`` a section path) or ``method milenas option lam`` (a description)."""
    if not where:
        return key
    return f"{where} {key}" if " " in where else f"{where}.{key}"


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def _kind_text(kind: type) -> str:
    return {
        float: "a number",
        int: "an integer",
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(kind, f"a {kind.__name__}")


def validate_section(values: Mapping[str, Any], options: Mapping[str, Option], where: str, noun: str = "key") -> None:
    """Check every key of ``values`` against ``options``: unknown keys and bad values raise ``ConfigError``
    (``"{where}: unknown {noun} 'x'; known {noun}s: …"``).  ``noun`` names a key in messages (``option`` for
    a method's or a supernet's options)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping, not {values!r}")
    unknown = sorted(set(values) - set(options))
    if unknown:
        named = f"{noun} {unknown[0]!r}" if len(unknown) == 1 else f"{noun}s {', '.join(map(repr, unknown))}"
        raise ConfigError(f"{where}: unknown {named}; known {noun}s: {', '.join(options)}")
    item_where = f"{where} {noun}" if " " in where else where
    for key, value in values.items():
        options[key].check(item_where, key, value)


def coerce_section(values: Mapping[str, Any], options: Mapping[str, Option]) -> Dict[str, Any]:
    """``values`` with number text turned into numbers where the option is a number (``Option.coerce``);
    unknown keys are left for ``validate_section`` to report."""
    return {k: options[k].coerce(v) if k in options else v for k, v in values.items()}


def with_defaults(values: Mapping[str, Any], options: Mapping[str, Option]) -> Dict[str, Any]:
    """``values`` with every option's default filled in (options without a default stay absent)."""
    out = {k: o.default for k, o in options.items() if o.default is not None}
    out.update(values)
    return out
