"""Executors decide *where* each run's lifecycle executes; the run store decides what is left.

``local`` (this package's ``local`` module): in-process one after another, or a process pool on
CPU.  Every executor takes the list of resolved configs still to run and a function that builds a
run from a config (``harness.runner.make_run`` for search runs), and returns one summary per run.
"""
from __future__ import annotations

from typing import Callable

from harness.errors import ConfigError

EXECUTORS = ("local",)


def get_executor(name: str) -> Callable:
    if name == "local":
        from harness.executors.local import run_local

        return run_local
    raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "get_executor"]
