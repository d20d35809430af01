"""Executors decide *where* each run's lifecycle executes; the run store decides what is left.

* ``local`` (``local.py``): in-process one after another, or a process pool on CPU.
* ``ray`` (``ray_executor.py``): a Ray task per run with declared CPUs/GPUs, on a local or existing
  Ray cluster.
* ``slurm`` (``slurm_executor.py``): one Slurm job array through submitit (or submitit's local
  executor), requeued and resumed on timeout or preemption.

Every executor is called as ``executor(todo, make_run, out_dir, data_root, device, progress,
workers=N, **options)``: the resolved configs still to run, a module-level run factory
(``harness.runner.make_run`` for search runs, ``harness.executors.runs.make_eval_run`` for
evaluation runs) that workers import by name, the run store, the data folder, the device
(``auto``/``cpu``/``cuda``), a progress callback, and executor-specific options.  It returns one
summary ``{run_id, status, failure}`` per run; status ``running-elsewhere`` means another executor
holds the run's lock (``harness.runlock``) and it was not run here.  ``ray`` and ``slurm`` need the
``cluster`` extra (``pip install -e .[cluster]``: ``ray``, ``submitit``).
"""
from __future__ import annotations

import importlib
from typing import Callable

from harness.errors import ConfigError

EXECUTORS = ("local", "ray", "slurm")
NEEDS = {"ray": "ray", "slurm": "submitit"}


def require(executor: str) -> None:
    """``ConfigError`` (one line) when the package an executor needs is not installed."""
    module = NEEDS.get(executor)
    if not module:
        return
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"--executor {executor} needs the '{module}' package, which is not installed: "
                          "pip install -e '.[cluster]' (brings ray and submitit)") from None


def get_executor(name: str) -> Callable:
    if name == "local":
        from harness.executors.local import run_local

        return run_local
    if name == "ray":
        require(name)
        from harness.executors.ray_executor import run_ray

        return run_ray
    if name == "slurm":
        require(name)
        from harness.executors.slurm_executor import run_slurm

        return run_slurm
    raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "get_executor", "require"]
