"""After-epoch hooks of a run: measurements that ride along a search without disturbing it.

A hook is named in the resolved config's ``hooks`` section (``hooks: {hypergrad: {...settings...}}``,
set in a profile part or with ``--set hooks.<name>.<key>=...``) and registered with
``@register_hook(name)`` on an ``EpochHook`` subclass.  The run lifecycle (``harness.lifecycle.Run``)
builds the hooks once the run is built and calls each one after every epoch's training and
evaluation, before the epoch's record entry is appended and the checkpoint written; the hook's result
lands in that entry::

    entry["hooks"][name]          what ``EpochHook.after_epoch`` returned (JSON-safe; skipped when None)
    entry["hook_seconds"][name]   wall-clock seconds the hook took (not part of ``epoch_seconds``)

so a hook's results get the run's lock, record and resume for free: a resumed run continues after
its last checkpointed epoch and never re-measures finished epochs.

Contract of a hook (tests/test_hooks.py checks the lifecycle's side; tests/test_hypergrad.py the ``hypergrad`` hook's):

* it must not disturb the search: the lifecycle forks the torch RNG streams (CPU and the run's CUDA
  device) around every call; a hook works on copies and never writes a parameter, buffer, gradient
  or optimizer state of the run, and never draws from the run's data generator;
* its settings are an ``Option`` table (``harness.schema``) in ``options``, validated and filled with
  defaults when the config is resolved (``resolve_hooks``; bad input is one ``ConfigError`` line);
  ``resolve_settings`` may turn settings into numbers that depend on the run's config;
* ``setup`` runs once per process (again after a resume), ``after_epoch`` after every epoch.

Built-in hooks: ``hypergrad`` (``harness.hypergrad.hook``) and ``collapse`` (``harness.diagnostics.collapse``:
α-Hessian eigenvalue, parameter-free ops, mixing entropy), which is on for every search (``DEFAULT_HOOKS``; a
profile part's or ``--set``'s settings are merged over its defaults).
"""

from __future__ import annotations

import copy
import importlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Type

import torch

from harness.errors import ConfigError
from harness.schema import Option, validate_section, with_defaults

#: modules that register the built-in hooks (imported on first lookup)
BUILTIN_HOOK_MODULES = ("harness.hypergrad.hook", "harness.diagnostics.collapse")
#: hooks every search config carries (settings merged under a profile part's ``hooks``): collapse diagnostics
DEFAULT_HOOKS: Dict[str, Dict[str, Any]] = {"collapse": {}}

_HOOKS: Dict[str, Type["EpochHook"]] = {}


def register_hook(name: str) -> Callable[[Type["EpochHook"]], Type["EpochHook"]]:
    """Class decorator: make an ``EpochHook`` subclass available as ``hooks.<name>`` in a config."""

    def deco(cls: Type["EpochHook"]) -> Type["EpochHook"]:
        if name in _HOOKS and _HOOKS[name] is not cls:
            raise ValueError(f"hook {name!r} registered twice")
        cls.name = name
        _HOOKS[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    for module in BUILTIN_HOOK_MODULES:
        importlib.import_module(module)


def list_hooks() -> List[str]:
    _load_builtin()
    return sorted(_HOOKS)


def get_hook(name: str) -> Type["EpochHook"]:
    _load_builtin()
    if name not in _HOOKS:
        raise ConfigError(f"unknown hook {name!r}; known hooks: {', '.join(sorted(_HOOKS)) or 'none'}")
    return _HOOKS[name]


@dataclass
class EpochState:
    """What a hook sees after an epoch: the run (its ``cfg``, ``method``, ``net``, ``data``, ``device``) and
    the epoch's record entry (read it; the hook's result is written under ``entry["hooks"]`` by the lifecycle)."""

    run: Any
    epoch: int
    entry: Dict[str, Any]

    @property
    def cfg(self) -> Dict[str, Any]:
        return self.run.cfg

    @property
    def method(self) -> Any:
        return self.run.method

    @property
    def net(self) -> Any:
        return self.run.net

    @property
    def data(self) -> Any:
        return self.run.data

    @property
    def device(self) -> torch.device:
        return self.run.device


class EpochHook:
    """Base class of an after-epoch hook (see the module doc)."""

    name: ClassVar[str] = ""  #: registry name (set by @register_hook)
    options: ClassVar[Dict[str, Option]] = {}  #: its settings
    run_kinds: ClassVar[tuple] = ("search",)  #: record kinds it can ride along

    @classmethod
    def resolve_settings(cls, settings: Dict[str, Any], cfg: Dict[str, Any]) -> Dict[str, Any]:
        """Validated settings with defaults filled in (``ConfigError`` on bad input); override to check
        the settings against the run's config or turn run-dependent values into numbers."""
        where = f"hooks.{cls.name}"
        if settings is None:
            settings = {}
        validate_section(settings, cls.options, where)
        return with_defaults(settings, cls.options)

    def __init__(self, settings: Dict[str, Any]):
        self.settings = settings

    def setup(self, run: Any) -> None:
        """Called once after the run is built (and resumed): build fixed inputs here."""

    def after_epoch(self, state: EpochState) -> Optional[Dict[str, Any]]:  # pragma: no cover - abstract
        """The epoch's measurement (a JSON-safe mapping) or None (nothing recorded this epoch)."""
        raise NotImplementedError


def resolve_hooks(hooks: Any, cfg: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The config's ``hooks`` section, each hook's settings validated and completed (one ``ConfigError`` line)."""
    if not isinstance(hooks, dict):
        raise ConfigError(f"hooks must be a mapping such as {{hypergrad: {{}}}}, not {hooks!r}")
    out = {}
    for name, settings in hooks.items():
        cls = get_hook(name)
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError(f"hooks.{name} must be a mapping of settings, not {settings!r}")
        out[name] = cls.resolve_settings(copy.deepcopy(settings or {}), cfg)
    return out


def build_hooks(cfg: Dict[str, Any], kind: str) -> List[EpochHook]:
    """The hooks a run of ``kind`` runs, in the config's order (settings already resolved)."""
    out = []
    for name, settings in (cfg.get("hooks") or {}).items():
        cls = get_hook(name)
        if kind not in cls.run_kinds:
            raise ConfigError(f"hook {name} runs along {', '.join(cls.run_kinds)} runs, not {kind} runs")
        out.append(cls(settings))
    return out


def json_safe(x: Any) -> Any:
    """Non-finite floats become None, tuples lists, recursively (records are strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def run_after_epoch(hooks: List[EpochHook], run: Any, epoch: int, entry: Dict[str, Any]) -> None:
    """Call every hook after ``epoch`` with the torch RNG streams forked; write results and seconds into ``entry``."""
    if not hooks:
        return
    device = run.device
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    state = EpochState(run, epoch, entry)
    for hook in hooks:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=devices):
            result = hook.after_epoch(state)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        entry.setdefault("hook_seconds", {})[hook.name] = time.perf_counter() - t0
        if result is not None:
            entry.setdefault("hooks", {})[hook.name] = json_safe(result)


__all__ = [
    "EpochHook",
    "EpochState",
    "register_hook",
    "get_hook",
    "list_hooks",
    "resolve_hooks",
    "DEFAULT_HOOKS",
    "build_hooks",
    "run_after_epoch",
    "json_safe",
]
