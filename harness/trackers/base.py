"""What every live tracker shares: the settings a run carries, the values an epoch entry gives a tracker, the α
heat-map, and the guard that turns any tracker failure into one warning line.

A tracker is an observer of the run lifecycle (``harness.lifecycle.Run``): it is told when a run starts (with
its record), after each finished epoch (the record and the epoch's entry, complete: hooks included) and when the
run ends.  It logs only values the record holds, so the record stays the source of truth and a tracker is a live
view of it.  Trackers are not part of a run's config: choosing one never changes the config hash, the run id or
the record's measurements (the record's ``provenance.attempts`` names the trackers of each attempt).
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

#: epoch-entry keys that are not per-epoch measurements (the epoch is the step; α probabilities become an image,
#: the cell's text a text entry)
NOT_SCALARS = ("epoch", "alpha_probs", "arch")


@dataclass(frozen=True)
class TrackerSettings:
    """The trackers a run logs to, resolved where the command runs and shipped with the run factory to
    wherever the run executes (``harness.trackers.with_trackers``).

    ``names``: registered tracker names (``harness.trackers.TRACKERS``), in order.  ``mlflow_uri``: an MLflow
    tracking URI (a server ``http://HOST:PORT`` or a store such as ``sqlite:///PATH``); ``None``: the run store's
    ``OUT/mlruns``.  ``tensorboard_dir`` / ``wandb_dir``: another folder than ``OUT/tb`` / ``OUT/wandb``.
    ``wandb_mode``: ``offline`` unless the command's environment asked for ``online`` (``WANDB_MODE``) and a
    W&B login exists there.  ``wandb_project``: ``WANDB_PROJECT`` or ``nas-harness``."""

    names: Tuple[str, ...] = ()
    mlflow_uri: Optional[str] = None
    tensorboard_dir: Optional[str] = None
    wandb_dir: Optional[str] = None
    wandb_mode: str = "offline"
    wandb_project: str = "nas-harness"
    wandb_entity: Optional[str] = None

    def __bool__(self) -> bool:
        return bool(self.names)


@dataclass
class RunInfo:
    """What a tracker knows of the run it watches, besides its record."""

    run_id: str
    out_dir: Path
    settings: TrackerSettings

    @property
    def key(self) -> str:
        """A stable identity of this run in this run store (for trackers whose run ids are global, e.g. W&B
        online): the run id and a short hash of the run store's absolute path."""
        digest = hashlib.sha1(str(self.out_dir.resolve()).encode()).hexdigest()[:8]
        return f"{self.run_id}-{digest}"


# ------------------------------------------------------------------------------------------ values of an entry


def scalars(entry: Dict[str, Any]) -> Dict[str, float]:
    """Every finite number of an epoch entry, nested keys joined by ``/`` (``arch_info/benchmark/cifar10_test_200ep``,
    ``hooks/hypergrad/...``), plus ``seconds_per_iteration`` (``epoch_seconds / iterations``) where the entry
    counts iterations.  Booleans become 0/1; strings, lists and non-finite numbers are left out."""
    out: Dict[str, float] = {}
    for key, value in _flatten(entry, ""):
        if key in NOT_SCALARS:
            continue
        out[key] = value
    if entry.get("iterations") and "epoch_seconds" in entry:
        out["seconds_per_iteration"] = float(entry["epoch_seconds"]) / float(entry["iterations"])
    return out


def _flatten(value: Any, prefix: str) -> Iterator[Tuple[str, float]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(value, bool):
        yield prefix, float(value)
    elif isinstance(value, (int, float)) and math.isfinite(float(value)):
        yield prefix, float(value)


def texts(entry: Dict[str, Any]) -> Dict[str, str]:
    """The entry's text values a tracker shows as text: the derived cell (``arch``)."""
    return {"arch": str(entry["arch"])} if entry.get("arch") else {}


def hyperparameters(record: Dict[str, Any]) -> Dict[str, Any]:
    """The resolved config, flattened (``optim.w_lr``), lists as text, plus ``config_hash``."""
    out: Dict[str, Any] = {"config_hash": record.get("config_hash")}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            out[prefix] = value
        else:
            out[prefix] = str(value)

    walk(record.get("config") or {}, "")
    return out


def tags(record: Dict[str, Any]) -> Dict[str, str]:
    """What a tracker tags a run with: seed, scale, commit, device (the record's provenance), and its group."""
    prov = record.get("provenance") or {}
    return {
        "run_id": str(record.get("run_id")),
        "kind": str(record.get("kind")),
        "space": str(record.get("space")),
        "method": str(record.get("method")),
        "variant": variant_text(record),
        "seed": str(record.get("seed")),
        "scale": str(record.get("scale")),
        "commit": str(prov.get("commit")),
        "device": str(prov.get("device")),
    }


def variant_text(record: Dict[str, Any]) -> str:
    variant = record.get("variant") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(variant.items())) or "default"


def group(record: Dict[str, Any]) -> str:
    """Runs are grouped by space, method and variant: ``nb201/milenas/lam=0.1`` (an evaluation of a cell no search
    found, e.g. a zoo genotype: ``darts/evaluation/default``)."""
    return f"{record.get('space')}/{record.get('method') or record.get('kind')}/{variant_text(record)}"


# ------------------------------------------------------------------------------------------ the α heat-map


def heatmap(alpha_probs: Dict[str, List[List[float]]], space: Optional[str], epoch: int) -> Any:
    """softmax(α) of each α tensor (edges × candidate ops) as one RGB image (``numpy`` uint8, H×W×3), drawn with
    matplotlib's Agg canvas (no display, no global backend change) on a fixed 0–1 color scale (viridis).  Columns
    are named by the space's ``ops`` where their count matches."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ops: Tuple[str, ...] = ()
    if space:
        try:
            from harness.registry import get_space

            ops = tuple(get_space(space).ops)
        except Exception:
            ops = ()
    names = list(alpha_probs)
    fig = Figure(figsize=(3.0 * len(names) + 0.4, 3.2), dpi=80)
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        mat = np.asarray(alpha_probs[name], dtype=float)
        ax = fig.add_subplot(1, len(names), i + 1)
        # a fixed 0–1 scale (probabilities): epochs compare by color, and no colorbar to draw (half the cost)
        ax.imshow(mat, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set_title(f"softmax({name}), epoch {epoch} (color: 0 to 1)", fontsize=7)
        ax.set_ylabel("edge", fontsize=7)
        if len(ops) == mat.shape[1]:
            ax.set_xticks(range(len(ops)))
            ax.set_xticklabels(ops, rotation=60, ha="right", fontsize=6)
        else:
            ax.set_xlabel("op", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.32, top=0.9, wspace=0.3)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


# ------------------------------------------------------------------------------------------ a tracker


class Tracker:
    """One tracker backend.  ``open`` starts (or finds again, on resume) the tracker's run of this harness run and
    returns the last epoch it already holds (-1: none); the set then logs every record epoch after that one,
    earlier attempts' included, so a resumed run continues its tracker run without duplicate epochs."""

    name = ""
    #: the ``pip`` package whose absence makes choosing this tracker an error (the ``track`` extra brings it)
    package = ""

    def __init__(self, info: RunInfo):
        self.info = info

    def open(self, record: Dict[str, Any]) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_epoch(self, record: Dict[str, Any], entry: Dict[str, Any], image: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self, record: Dict[str, Any]) -> None:
        """The run ended (``record["status"]``: ok, failed, or still running when interrupted)."""

    def abandon(self) -> None:
        """Release what can be released after a failure, never raising."""


def warn(name: str, exc: BaseException, action: str = "tracker disabled for this run; the run goes on") -> None:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    print(f"warning: tracker {name}: {text} ({action})", file=sys.stderr, flush=True)


class TrackerSet:
    """The trackers of one run, each guarded: any exception is one ``warning: tracker NAME: ...`` line, that
    tracker is disabled for the rest of the run, and the run and its record go on.  The α heat-map is drawn
    once per epoch for all trackers."""

    def __init__(self, trackers: List[Tracker], space: Optional[str] = None):
        self.trackers = trackers
        self.space = space
        self.last: Dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def _guard(self, tracker: Tracker, call, *args) -> bool:
        try:
            call(*args)
            return True
        except Exception as exc:  # a tracker never fails a run
            warn(tracker.name, exc)
            self.trackers.remove(tracker)
            try:
                tracker.abandon()
            except Exception:
                pass
            return False

    def open(self, record: Dict[str, Any]) -> None:
        for tracker in list(self.trackers):

            def start(t: Tracker = tracker) -> None:
                self.last[t.name] = int(t.open(record))

            self._guard(tracker, start)
        for entry in list(record.get("epochs") or []):  # epochs of earlier attempts not in the tracker yet
            self.epoch(record, entry)

    def epoch(self, record: Dict[str, Any], entry: Dict[str, Any]) -> None:
        todo = [t for t in self.trackers if int(entry.get("epoch", -1)) > self.last.get(t.name, -1)]
        if not todo:
            return
        image = None
        if entry.get("alpha_probs"):
            try:
                image = heatmap(entry["alpha_probs"], self.space, int(entry.get("epoch", 0)))
            except Exception as exc:  # the scalars still go out
                warn("heat-map", exc, "no α image this epoch")
        for tracker in todo:
            if self._guard(tracker, tracker.log_epoch, record, entry, image):
                self.last[tracker.name] = int(entry.get("epoch", -1))

    def close(self, record: Dict[str, Any]) -> None:
        for tracker in list(self.trackers):
            self._guard(tracker, tracker.close, record)
        self.trackers = []


__all__ = [
    "TrackerSettings",
    "RunInfo",
    "Tracker",
    "TrackerSet",
    "scalars",
    "texts",
    "hyperparameters",
    "tags",
    "group",
    "heatmap",
    "warn",
]
