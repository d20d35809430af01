"""Executors decide *where* each run's lifecycle executes; the run store decides what is left.

* ``local`` (``local.py``): in-process one after another, or a process pool on CPU.
* ``ray`` (``ray_executor.py``): a Ray task per run with declared CPUs/GPUs, on a local or existing
  Ray cluster.
* ``slurm`` (``slurm_executor.py``): one Slurm job array through submitit (or submitit's local
  executor), requeued and resumed on timeout or preemption.

Every executor is called as ``executor(todo, make_run, out_dir, data_root, device, progress,
workers=N, **options)``: the resolved configs still to run, a module-level run factory
(``harness.runner.make_run`` for search runs, ``harness.evaluate.make_eval_run`` for
evaluation runs) that workers import by name, the run store, the data folder, the device
(``auto``/``cpu``/``cuda``), a progress callback, and executor-specific options.  It returns one
summary ``{run_id, status, failure}`` per run; status ``running-elsewhere`` means another executor
holds the run's lock (``harness.runlock``) and it was not run here.  ``ray`` and ``slurm`` need the
``cluster`` extra (``pip install -e .[cluster]``: ``ray``, ``submitit``).

Each executor module declares an ``ExecutorSpec`` (``SPEC``, ``harness.executors.base``): its options
(flag, keyword, meaning, bounds, default) and how they are checked.  ``add_executor_arguments`` puts them
on a command's parser, ``executor_options`` turns the parsed command line into the chosen executor's
keyword options; the command line itself knows none of them.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any, Callable, Dict, Mapping, Optional

from harness.errors import ConfigError
from harness.executors.base import SHARED_FLAGS, ExecutorSpec

#: name -> the module whose ``SPEC`` declares the executor (imported on demand; they import nothing heavy)
MODULES = {
    "local": "harness.executors.local",
    "ray": "harness.executors.ray_executor",
    "slurm": "harness.executors.slurm_executor",
}
EXECUTORS = tuple(MODULES)


def get_spec(name: str) -> ExecutorSpec:
    """The declaration of executor ``name`` (``ConfigError`` listing the known ones for another name)."""
    if name not in MODULES:
        raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(EXECUTORS)}")
    return importlib.import_module(MODULES[name]).SPEC


def require(executor: str) -> None:
    """``ConfigError`` (one line) when the package an executor needs is not installed."""
    module = get_spec(executor).package
    if not module:
        return
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"--executor {executor} needs the '{module}' package, which is not installed: "
            "pip install -e '.[cluster]' (brings ray and submitit)"
        ) from None


def get_executor(name: str) -> Callable:
    """The run function of executor ``name``, once its package is known to be installed."""
    spec = get_spec(name)
    require(name)
    return spec.run


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor``, the options every executor shares, and one argument group per executor."""
    g = parser.add_argument_group("executor (local | ray | slurm; README 'Running on many GPUs, Ray, Slurm')")
    g.add_argument(
        "--executor", default="local", help="; ".join(f"{name}: {get_spec(name).summary}" for name in EXECUTORS)
    )
    added = set()
    for flag in SHARED_FLAGS:
        flag.add_to(g)
        added.add(flag.flag)
    for name in EXECUTORS:
        spec = get_spec(name)
        own = [f for f in spec.flags if f.flag not in added]
        if own:
            group = parser.add_argument_group(f"{name} executor options")
            for flag in own:
                flag.add_to(group)
                added.add(flag.flag)


def executor_options(args: argparse.Namespace, profile: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The keyword options of the executor ``args.executor`` names, from the parsed command line (and the
    profile's defaults, e.g. ``resources.slurm``).  ``ConfigError`` (one line): an unknown executor, its
    package missing, a flag of another executor, a bad value."""
    spec = get_spec(args.executor)
    require(args.executor)
    own = {f.flag for f in spec.flags}
    for name in EXECUTORS:
        for flag in get_spec(name).flags:
            if flag.flag not in own and flag.given(args):
                raise ConfigError(f"{flag.flag} does not apply to --executor {spec.name}")
    return spec.options_from_args(args, profile)


__all__ = ["EXECUTORS", "get_spec", "get_executor", "require", "add_executor_arguments", "executor_options"]
