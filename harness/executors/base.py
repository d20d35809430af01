"""How an executor declares itself: its name, the package it needs, its command-line options and its run
function, in one ``ExecutorSpec`` that lives in the executor's own module.

An option is an ``ExecutorFlag``: the flag (``--slurm-time``), the keyword of the run function it feeds
(``time_min``), and its meaning as a ``harness.schema.Option`` (doc = the help text, kind, bounds, choices,
default).  The command line only parses; ``ExecutorSpec.options_from_args`` turns the parsed text into the
run function's keywords and raises ``ConfigError`` (one line) on a bad value.  This module imports
nothing heavy: the parser of every command is built from these tables.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from harness.errors import ConfigError
from harness.schema import Option

#: how the command-line text of a flag becomes its value: ``parse(text, flag) -> value`` (``ConfigError``)
Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class ExecutorFlag:
    """One command-line option of an executor.  ``action``: argparse's (``append``, ``store_true``); a flag
    left out gives ``option.default``.  ``parse`` replaces the conversion by ``option.kind``."""

    flag: str
    key: str
    option: Option
    parse: Optional[Parser] = None
    action: Optional[str] = None
    metavar: Optional[str] = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def add_to(self, group) -> None:
        text = self.option.doc + (f" (default {self.option.default})" if self.option.default is not None else "")
        kwargs: Dict[str, Any] = {"dest": self.dest, "help": text.replace("%", "%%")}
        if self.action == "store_true":
            kwargs.update(action="store_true", default=False)
        else:
            kwargs.update(default=[] if self.action == "append" else None, metavar=self.metavar)
            if self.action:
                kwargs["action"] = self.action
        group.add_argument(self.flag, **kwargs)

    def given(self, args: argparse.Namespace) -> bool:
        """Whether the command line set this flag."""
        return getattr(args, self.dest, None) not in (None, False, [])

    def value(self, args: argparse.Namespace) -> Any:
        """The flag's value from the parsed command line, converted and checked; its default when not given."""
        if not self.given(args):
            return self.option.default
        raw = getattr(args, self.dest)
        value = self.parse(raw, self.flag) if self.parse else convert(raw, self.flag, self.option)
        check(value, self.flag, self.option)
        return value


def convert(text: Any, flag: str, option: Option) -> Any:
    """Command-line text to ``option.kind`` (``int``, ``float``; anything else is kept as given)."""
    if option.kind not in (int, float) or isinstance(text, bool):
        return text
    try:
        return option.kind(text)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{flag} must be {'an integer' if option.kind is int else 'a number'}, not {text!r}"
        ) from None


def check(value: Any, flag: str, option: Option) -> None:
    """``ConfigError`` naming ``flag`` when ``value`` breaks ``option`` (choices, bounds, kind)."""
    if value is None:
        return
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{flag} must be {' or '.join(map(str, option.choices))}, not {value!r}")
    if option.minimum is not None and isinstance(value, (int, float)):
        low = option.minimum
        if value < low or (option.exclusive and value == low):
            positive = (option.exclusive and low == 0) or (option.kind is int and low == 1 and not option.exclusive)
            bound = "positive" if positive else (f"> {low:g}" if option.exclusive else f">= {low:g}")
            raise ConfigError(f"{flag} must be {bound}, not {value:g}")
    option.check("", flag, value)


def key_value_pairs(items: Any, flag: str) -> Optional[Dict[str, str]]:
    """``["KEY=VALUE", …]`` as a mapping (``--constraint=a100`` and ``constraint=a100`` alike)."""
    out: Dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} expects KEY=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().lstrip("-").replace("-", "_")] = value
    return out or None


#: shared by every executor that declares them (one argparse flag each)
THREADS = ExecutorFlag(
    "--threads",
    "threads",
    Option(
        "torch threads per run; ray/slurm: also its CPUs (default 1); local: default all cores in-process, "
        "cores/workers in the pool",
        kind=int,
        minimum=1,
        nullable=True,
    ),
)
GPUS_PER_TASK = ExecutorFlag(
    "--gpus-per-task",
    "gpus_per_task",
    Option(
        "ray/slurm: GPUs per run (default 1 when CUDA is used; 0 with --device cpu)", kind=int, minimum=0, nullable=True
    ),
)
SHARED_FLAGS = (THREADS, GPUS_PER_TASK)


@dataclass(frozen=True)
class ExecutorSpec:
    """An executor: ``run(todo, make_run, out_dir, data_root, device, progress, workers=N, **options)``
    (see ``harness.executors``), the options it takes from the command line (``flags``), the package it
    needs, and ``finish(options, profile) -> options``: checks across its options and profile defaults."""

    name: str
    summary: str
    run: Callable[..., Any]
    flags: Tuple[ExecutorFlag, ...] = ()
    package: Optional[str] = None
    finish: Optional[Callable[[Dict[str, Any], Optional[Mapping[str, Any]]], Dict[str, Any]]] = None

    def options_from_args(
        self, args: argparse.Namespace, profile: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        """The run function's keyword options from the parsed command line (``ConfigError`` on bad input)."""
        options = {f.key: f.value(args) for f in self.flags}
        return self.finish(options, profile) if self.finish else options


def path_value(text: Any, flag: str) -> Path:
    return Path(text)


__all__ = [
    "ExecutorFlag",
    "ExecutorSpec",
    "THREADS",
    "GPUS_PER_TASK",
    "SHARED_FLAGS",
    "convert",
    "check",
    "key_value_pairs",
    "path_value",
]
