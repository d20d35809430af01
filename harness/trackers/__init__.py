"""Live trackers: watch a run while it runs in TensorBoard, Weights & Biases or MLflow (docs/trackers.md).

The records stay the source of truth; a tracker is a live view of them.  ``--tracker tensorboard|wandb|mlflow|none``
(repeatable, or a comma list; a profile's top-level ``trackers:`` list is the default) on ``search``,
``reproduce``, ``evaluate`` and ``hypergrad`` chooses them; the ``track`` extra installs them
(``pip install -e '.[track]'``).

Trackers ride with a run the way its device and threads do, never in its config: the command resolves a
``TrackerSettings`` once (``settings_from_args``), ``with_trackers`` attaches it to the run factory every executor
already ships to where the run executes (this process, a local worker, a Ray task, a Slurm task), and the run
lifecycle (``harness.lifecycle.Run``) calls ``start`` after writing its first record, then the returned set
after each finished epoch and when the run ends.  Each tracker logs to a folder inside the run store
(``OUT/tb/<run_id>``, ``OUT/wandb``, ``OUT/mlruns``) unless given a tracking URI (``--mlflow-uri``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from harness.errors import ConfigError
from harness.trackers.base import RunInfo, Tracker, TrackerSet, TrackerSettings, warn

#: tracker name -> (module holding its ``Tracker`` class as ``TRACKER``, the package it needs)
TRACKERS: Dict[str, Dict[str, str]] = {
    "tensorboard": {"module": "harness.trackers.tensorboard_tracker", "package": "tensorboard"},
    "wandb": {"module": "harness.trackers.wandb_tracker", "package": "wandb"},
    "mlflow": {"module": "harness.trackers.mlflow_tracker", "package": "mlflow"},
}
NONE = "none"
EXTRA = "track"


def parse_names(values: Optional[Iterable[Any]]) -> List[str]:
    """``--tracker`` values (repeatable, each a name or a comma list) as tracker names, in order, without
    duplicates; ``none`` alone means no tracker.  An unknown name is one ``ConfigError`` line."""
    names: List[str] = []
    for value in values or []:
        for item in str(value).split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item != NONE and item not in TRACKERS:
                raise ConfigError(
                    f"unknown tracker {item!r}; known trackers: {', '.join(TRACKERS)}, or {NONE} (docs/trackers.md)"
                )
            if item not in names:
                names.append(item)
    if NONE in names and len(names) > 1:
        raise ConfigError(f"--tracker {NONE} cannot be combined with other trackers")
    return [n for n in names if n != NONE]


def require(names: Iterable[str]) -> None:
    """``ConfigError`` (one line naming the ``track`` extra) when a chosen tracker's package is not installed."""
    for name in names:
        package = TRACKERS[name]["package"]
        try:
            importlib.import_module(package)
        except ImportError:
            raise ConfigError(
                f"--tracker {name} needs the '{package}' package, which is not installed: "
                f"pip install -e '.[{EXTRA}]' (brings tensorboard, wandb and mlflow)"
            ) from None


def wandb_mode() -> str:
    """``offline`` unless ``WANDB_MODE`` asks for another mode; ``online`` only where a W&B login exists
    (``WANDB_API_KEY`` or a netrc entry for the W&B host), so the harness never prompts for one."""
    mode = (os.environ.get("WANDB_MODE") or "offline").strip().lower()
    if mode == "dryrun":
        mode = "offline"
    if mode in ("online", "run") and not wandb_logged_in():
        warn("wandb", RuntimeError("WANDB_MODE=online but no W&B login (WANDB_API_KEY or netrc)"), "logging offline")
        return "offline"
    return "online" if mode == "run" else mode


def wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def settings_from_args(args: Any, profile: Optional[Mapping[str, Any]] = None) -> TrackerSettings:
    """The trackers a command chose: ``--tracker`` (else the profile's ``trackers``, else none) and
    ``--mlflow-uri`` (else the profile's ``mlflow_uri``).  Unknown names and missing packages: one
    ``ConfigError`` line, before any run starts."""
    given = list(getattr(args, "tracker", None) or [])
    profile = profile or {}
    if not given and profile.get("trackers") is not None:
        raw = profile["trackers"]
        given = [raw] if isinstance(raw, str) else raw
        if not isinstance(given, list) or not all(isinstance(x, str) for x in given):
            raise ConfigError(f"profile {profile.get('name')}: trackers must be a list of tracker names, not {raw!r}")
    names = parse_names(given)
    require(names)
    flag_uri = getattr(args, "mlflow_uri", None)
    if flag_uri and "mlflow" not in names:
        raise ConfigError("--mlflow-uri needs --tracker mlflow")
    uri = (flag_uri or profile.get("mlflow_uri")) if "mlflow" in names else None
    settings = TrackerSettings(
        names=tuple(names),
        mlflow_uri=str(uri) if uri else None,
        wandb_mode=wandb_mode() if "wandb" in names else "offline",
        wandb_project=os.environ.get("WANDB_PROJECT") or "nas-harness",
        wandb_entity=os.environ.get("WANDB_ENTITY") or None,
    )
    return settings


def tracker_class(name: str) -> Callable[[RunInfo], Tracker]:
    return importlib.import_module(TRACKERS[name]["module"]).TRACKER


def start(settings: Optional[TrackerSettings], run: Any, record: Dict[str, Any]) -> TrackerSet:
    """The trackers of ``run`` (a ``harness.lifecycle.Run``), opened on its record; epochs the record holds that a
    tracker lacks (a resumed run) are logged first.  A tracker that cannot start is one warning line."""
    if not settings:
        return TrackerSet([])
    trackers: List[Tracker] = []
    for name in settings.names:
        try:
            trackers.append(tracker_class(name)(RunInfo(run.run_id, Path(run.out_dir), settings)))
        except Exception as exc:  # its package missing on this worker, …
            warn(name, exc)
    tset = TrackerSet(trackers, record.get("space"))
    if tset:
        tset.open(record)
    return tset


@dataclass(frozen=True)
class with_trackers:  # noqa: N801 - used like a function: with_trackers(make_run, settings)
    """A run factory (``make_run(cfg, out_dir, data_root, device, progress) -> Run``) whose runs log to
    ``settings``' trackers.  Picklable (a module-level factory and a frozen dataclass), so every executor ships it
    to its workers as it ships the plain factory."""

    make_run: Callable[..., Any]
    settings: TrackerSettings

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = self.make_run(*args, **kwargs)
        run.trackers = self.settings
        return run


def wrap(make_run: Callable[..., Any], settings: Optional[TrackerSettings]) -> Callable[..., Any]:
    """``make_run`` itself when no tracker is chosen, else ``with_trackers(make_run, settings)``."""
    return with_trackers(make_run, settings) if settings else make_run


def add_tracker_arguments(p: Any) -> None:
    """``--tracker`` and ``--mlflow-uri`` on a command's parser (``harness.cli_args.add_trackers``)."""
    g = p.add_argument_group("live trackers (docs/trackers.md; pip install -e '.[track]')")
    g.add_argument(
        "--tracker",
        action="append",
        default=[],
        metavar="NAME",
        help="log each epoch live to " + " | ".join([*TRACKERS, NONE]) + " (repeatable or a comma list; default: "
        "the profile's 'trackers', else none); folders inside --out: tb/, wandb/, mlruns/",
    )
    g.add_argument(
        "--mlflow-uri",
        default=None,
        metavar="URI",
        help="MLflow tracking URI: a server (http://HOST:PORT) or a store (sqlite:///PATH); default OUT/mlruns",
    )


__all__ = [
    "TRACKERS",
    "TrackerSettings",
    "TrackerSet",
    "parse_names",
    "require",
    "settings_from_args",
    "start",
    "with_trackers",
    "wrap",
    "add_tracker_arguments",
]
