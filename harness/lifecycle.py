"""One run lifecycle for search and evaluation runs.

look for the record → build → resume from the last checkpoint → loop over epochs → finish or
fail → write the record atomically.  ``Run`` owns every step of that walk once; a search run
(``harness.runner.SearchRun``) and an evaluation run (``harness.evaluate.EvalRun``) only say how
to build themselves, what one epoch does, what their checkpoint holds besides RNG states, and
what their final summary is.  The lifecycle knows nothing about where it runs (executors:
``harness.executors``).

Layout of an output folder::

    OUT/records/<run_id>.json       one record per run (harness.records schema), written atomically
    OUT/checkpoints/<run_id>.pt     state after the last finished epoch (deleted when the run ends); the one
                                    before it is kept as <run_id>.prev.pt until the next is safely written, and
                                    an unreadable one is moved aside (<name>.unreadable-<time>), never deleted
    OUT/locks/<run_id>.lock         who runs it now (``harness.runlock``; a run held elsewhere is skipped)

After-epoch hooks (``harness.hooks``, the config's ``hooks`` section) run after each epoch's
``run_epoch`` and before its entry is appended and checkpointed: their results land in the entry
(``entry["hooks"][name]``, seconds in ``entry["hook_seconds"]``, not in ``epoch_seconds``), so a resumed
run never re-measures a finished epoch.

A finished run (status ok or failed) is never recomputed; a record of the same run id with
another config is an error; a running one resumes from its checkpoint.  On CPU a resumed run
gives the same record as an uninterrupted one (times aside).
"""

from __future__ import annotations

import math
import os
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from harness import records
from harness.errors import ConfigError, HarnessError
from harness.hooks import build_hooks, run_after_epoch
from harness.precision import apply_precision, prepare_network
from harness.provenance import provenance
from harness.runlock import LockLost, RunLock, elsewhere_summary
from harness.trackers import start as start_trackers

ProgressFn = Callable[[Dict[str, Any]], None]
FINISHED = ("ok", "failed")


class NonFiniteLoss(RuntimeError):
    """A run's loss became NaN or infinite; the run is recorded as failed."""


class RunInterrupted(BaseException):
    """The scheduler took this run's process away (preemption, time limit) and handling that raised ``cause``
    (e.g. the requeue command died).  The run stops where it is: unfinished, its checkpoints kept, resumable;
    never recorded as failed.  A ``BaseException`` so that the lifecycle's ``except Exception`` (a failed run
    is recorded) lets it through, as it does ``KeyboardInterrupt`` and ``SystemExit``."""

    def __init__(self, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, not {name!r}") from exc


def sync(device: torch.device) -> None:
    """Wait for queued device work (CUDA) so that wall-clock times are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_output_dir(out_dir: Path) -> None:
    """Fail early, with one clear line, if ``out_dir`` cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(f"output folder {out_dir} is not writable: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------------------------- memory


def reset_peak_memory(device: torch.device) -> None:
    """Reset this process's peak-RSS counter (VmHWM, Linux) and the CUDA peak, so each run reports its own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> Dict[str, float]:
    """Peak resident memory (MB) of this process since the last reset (VmHWM; ru_maxrss as a fallback),
    and the peak CUDA allocation on a GPU."""
    rss = None
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"peak_rss_mb": rss}
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


# ---------------------------------------------------------------------------------- RNG and checkpoints


def cuda_index(device: torch.device) -> int:
    """The CUDA device index of ``device`` (``cuda`` without an index: the current device)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def rng_states(gen: torch.Generator, device: torch.device) -> Dict[str, Any]:
    """Every random stream a run draws from: torch CPU, the run's own GPU (one state, not one per visible GPU:
    a run resumed under Ray or Slurm may see another number of GPUs), the data generator."""
    return {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(cuda_index(device)) if device.type == "cuda" else None,
        "data_rng": gen.get_state(),
    }


def restore_rng_states(state: Dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    """Restore ``rng_states``.  Checkpoints of earlier versions hold a list (one state per GPU then visible): the
    run's device index is taken from it when it exists there, else the first (the run's GPU was the only one it
    used when it ran alone on a node)."""
    torch.set_rng_state(state["torch_rng"])
    cuda = state.get("cuda_rng")
    if cuda is not None and device.type == "cuda":
        idx = cuda_index(device)
        if isinstance(cuda, (list, tuple)):
            cuda = cuda[idx] if idx < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(cuda, idx)
    gen.set_state(state["data_rng"])


class UnreadableCheckpoint(Exception):
    """A checkpoint file exists but cannot be loaded (torn, truncated, corrupt)."""


def read_checkpoint(path: Path, config_hash: str) -> Optional[Dict[str, Any]]:
    """A checkpoint of the same config, loaded on the CPU (RNG states must stay CPU tensors); None when absent or
    of another config; ``UnreadableCheckpoint`` (with the reason) when the file cannot be loaded."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UnreadableCheckpoint(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or "modules" not in state:
        raise UnreadableCheckpoint("not a run checkpoint (no module states)")
    return state if state.get("config_hash") == config_hash else None


def checkpoint_slots(path: Path) -> List[Path]:
    """The newest checkpoint and the one before it (kept until the next one is safely written)."""
    return [path, path.with_name(path.stem + ".prev" + path.suffix)]


def set_aside(path: Path) -> Path:
    """Move an unreadable file aside (never deleted): ``NAME.unreadable-<UTC time>``."""
    dest = path.with_name(f"{path.name}.unreadable-{now().replace(':', '')}")
    os.replace(path, dest)
    return dest


def read_finished_record(path: Path, config_hash: str) -> Optional[Dict[str, Any]]:
    """The record at ``path`` (None if absent or unreadable); ``ConfigError`` if it holds another config."""
    if not path.is_file():
        return None
    try:
        rec = records.read_record(path)
    except (ValueError, OSError):
        return None
    if rec.get("config_hash") != config_hash:
        commit = str((rec.get("provenance") or {}).get("commit") or "unknown")[:8]
        raise ConfigError(
            f"{path} holds run {rec.get('run_id', path.stem)} with a different config ({rec.get('config_hash')}, "
            f"written by harness commit {commit}; this one resolves to {config_hash}); "
            "use another --out folder or delete that record (reports still read it)"
        )
    return rec


def fault_requested(run_id: str, epoch: int) -> bool:
    """Test hook: ``HARNESS_FAULT_NAN=<run_id>@<epoch>`` asks a run to poison itself at that epoch."""
    return os.environ.get("HARNESS_FAULT_NAN", "") == f"{run_id}@{epoch}"


# ---------------------------------------------------------------------------------- the lifecycle


class Run:
    """The lifecycle of one run.  Subclasses implement the hooks marked below."""

    kind: str = ""  #: record kind: "search" | "evaluation"
    seconds_key: str = "seconds"  #: name of the summed epoch seconds in ``final`` (search_seconds…)
    #: set by ``build``: the run's data (with a ``provenance`` dict) and its data generator (checkpointed)
    data: Any
    gen: torch.Generator
    #: trackers watching this run (``harness.trackers.TrackerSettings``, set by ``harness.trackers.with_trackers``):
    #: observers, never in the config; told after the first record write, after each epoch and at the end
    trackers: Any = None

    def __init__(
        self,
        cfg: Dict[str, Any],
        run_id: str,
        out_dir: Path,
        data_root: Optional[Path] = None,
        device: Optional[torch.device] = None,
        progress: Optional[ProgressFn] = None,
    ):
        self.cfg = cfg
        self.run_id = run_id
        self.out_dir = Path(out_dir)
        self.record_path = self.out_dir / "records" / f"{run_id}.json"
        self.ckpt_path = self.out_dir / "checkpoints" / f"{run_id}.pt"
        self.data_root = data_root
        self.device = device or pick_device()
        self.progress = progress or (lambda event: None)
        self.hash = records.config_hash(cfg)

    # ------------------------------------------------------------------ hooks
    def build(self) -> None:  # pragma: no cover - abstract
        """Seed, build data, network, optimizers; set ``self.gen`` (the data generator)."""
        raise NotImplementedError

    def total_epochs(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def record_fields(self) -> Dict[str, Any]:
        """Kind-specific top-level record fields (label, method, genotype…)."""
        return {}

    def data_provenance(self) -> Dict[str, Any]:
        return dict(self.data.provenance)

    def run_epoch(self, epoch: int, record: Dict[str, Any]) -> Dict[str, Any]:  # pragma: no cover - abstract
        """Train one epoch and measure; returns the epoch's record entry (with ``epoch_seconds``).
        Raise ``NonFiniteLoss`` on a non-finite loss."""
        raise NotImplementedError

    def stop_early(self, record: Dict[str, Any], entry: Dict[str, Any]) -> bool:
        return False

    def networks(self) -> List[torch.nn.Module]:
        """The networks ``build`` made (the precision policy may swap modules in them): ``self.net``."""
        net = getattr(self, "net", None)
        return [net] if isinstance(net, torch.nn.Module) else []

    def module_state(self) -> Dict[str, Any]:  # pragma: no cover - abstract
        """Network and optimizer states for the checkpoint (RNG states are added by the lifecycle)."""
        raise NotImplementedError

    def load_module_state(self, state: Dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def poison(self) -> None:  # pragma: no cover - abstract
        """Fault injection (tests): make the next loss non-finite."""
        raise NotImplementedError

    def final_fields(self, record: Dict[str, Any]) -> Dict[str, Any]:
        """The record's ``final`` summary beyond seconds and peak memory."""
        return {}

    def progress_event(self, entry: Dict[str, Any]) -> Dict[str, Any]:
        return {}

    def before_epoch(self, epoch: int) -> None:
        """Called before every epoch (tests patch it to interrupt a run); injects requested faults."""
        if fault_requested(self.run_id, epoch):
            self.poison()

    # ------------------------------------------------------------------ the walk
    def existing(self) -> Optional[Dict[str, Any]]:
        return read_finished_record(self.record_path, self.hash)

    def new_record(self, precision: Dict[str, Any]) -> Dict[str, Any]:
        cfg = self.cfg
        prov = provenance(self.device)
        prov.update(self.data_provenance())
        prov["precision"] = precision
        return {
            "schema": records.SCHEMA,
            "kind": self.kind,
            "run_id": self.run_id,
            "label": cfg.get("label"),
            "space": cfg.get("space"),
            "method": cfg.get("method"),
            "variant": cfg.get("variant") or {},
            "seed": cfg["seed"],
            "profile": cfg.get("profile"),
            "scale": cfg.get("scale"),
            "status": "running",
            "failure": None,
            "config": cfg,
            "config_hash": self.hash,
            "provenance": prov,
            "deviations": list(cfg.get("deviations") or []),
            **self.record_fields(),
            "epochs": [],
            "final": None,
            "started_at": now(),
            "finished_at": None,
        }

    def save_checkpoint(self, record: Dict[str, Any], next_epoch: int) -> None:
        """The state after a finished epoch.  The previous checkpoint becomes ``*.prev.pt`` first, so a bad or
        interrupted write always leaves one readable checkpoint behind."""
        state = {
            "config_hash": self.hash,
            "next_epoch": next_epoch,
            "modules": self.module_state(),
            **rng_states(self.gen, self.device),
            "record": record,
        }
        newest, previous = checkpoint_slots(self.ckpt_path)
        if newest.is_file():
            os.replace(newest, previous)
        records.atomic_torch_save(newest, state)

    def remove_checkpoints(self) -> None:
        for path in checkpoint_slots(self.ckpt_path):
            path.unlink(missing_ok=True)

    def resume(self) -> Optional[Dict[str, Any]]:
        """The newest readable checkpoint of this config (modules and RNG states loaded), or None.  An unreadable
        one is one warning line naming it and why, is moved aside (``set_aside``) and is listed in
        ``self.events`` (the record's ``events``); the run then resumes from the other slot or starts again."""
        self.events: List[Dict[str, Any]] = []
        found = []
        for path in checkpoint_slots(self.ckpt_path):
            try:
                state = read_checkpoint(path, self.hash)
            except UnreadableCheckpoint as exc:
                moved = set_aside(path)
                log(f"warning: checkpoint {path} is unreadable ({exc}); moved aside to {moved.name}")
                self.events.append(
                    {
                        "event": "checkpoint_unreadable",
                        "at": now(),
                        "path": str(path),
                        "reason": str(exc),
                        "moved_to": str(moved),
                    }
                )
                continue
            if state is not None:
                found.append(state)
        if not found:
            if self.events:
                log(f"warning: {self.run_id}: no readable checkpoint left; the run starts again from epoch 0")
                self.events[-1]["action"] = "restarted from epoch 0"
            return None
        state = max(found, key=lambda s: int(s["next_epoch"]))
        if self.events:
            log(f"warning: {self.run_id}: resuming from the checkpoint before epoch {state['next_epoch']}")
            self.events[-1]["action"] = f"resumed at epoch {state['next_epoch']}"
        self.load_module_state(state["modules"])
        restore_rng_states(state, self.gen, self.device)
        return state

    def note_attempt(self, record: Dict[str, Any], start: int) -> None:
        """Record this attempt (a run resumed after a requeue may run on another machine or GPU): the record's
        ``provenance`` describes the machine now running it, ``provenance.attempts`` every attempt in order
        (device, host, commit, first epoch), and ``events`` what happened to its checkpoints."""
        prov = provenance(self.device)
        earlier = record["provenance"].get("attempts") or []
        if start > 0:  # resumed: the provenance now describes this machine
            record["provenance"].update(
                {k: prov[k] for k in ("commit", "dirty", "versions", "device", "threads", "hostname")}
            )
        record["provenance"]["attempts"] = earlier + [
            {
                "attempt": len(earlier) + 1,
                "device": prov["device"],
                "hostname": prov["hostname"],
                "commit": prov["commit"],
                "started_at": now(),
                "first_epoch": start,
            }
        ]
        if self.trackers:
            record["provenance"]["attempts"][-1]["trackers"] = list(self.trackers.names)
        if self.events:
            record["events"] = (record.get("events") or []) + self.events

    def run(self) -> Dict[str, Any]:
        """The lifecycle under the run's lock (``harness.runlock``): a run whose lock a live holder has
        (another executor on the same run store) is not run here; it returns status ``running-elsewhere``."""
        done = self.existing()
        if done is not None and done.get("status") in FINISHED:
            return done
        lock = RunLock(self.out_dir, self.run_id)
        if not lock.acquire():
            return elsewhere_summary(self.run_id, lock.holder)
        self.lock = lock
        try:
            done = self.existing()  # finished by another executor between our first look and the lock
            if done is not None and done.get("status") in FINISHED:
                return done
            return self._run_locked()
        except LockLost as exc:
            return elsewhere_summary(self.run_id, exc.holder)
        finally:
            lock.release()

    def _run_locked(self) -> Dict[str, Any]:
        reset_peak_memory(self.device)
        precision = apply_precision(self.cfg.get("precision"), self.device)
        self.build()
        for net in self.networks():  # precision.deterministic: deterministic module forms (harness.precision)
            prepare_network(self.cfg.get("precision"), net)
        state = self.resume()
        self.hooks = build_hooks(self.cfg, self.kind)
        for hook in self.hooks:
            hook.setup(self)
        if state:
            record, start = state["record"], state["next_epoch"]
        else:
            record, start = self.new_record(precision), 0
        self.note_attempt(record, start)
        records.write_record(self.record_path, record)
        self.watch = start_trackers(self.trackers, self, record)  # no trackers: an empty set, no backend imported
        epochs = self.total_epochs()
        try:
            for epoch in range(start, epochs):
                self.before_epoch(epoch)
                entry = self.run_epoch(epoch, record)
                run_after_epoch(self.hooks, self, epoch, entry)  # timed apart from epoch_seconds, RNG forked
                self.lock.beat()  # heartbeat; LockLost if another executor took this run over
                record["epochs"].append(entry)
                self.watch.epoch(record, entry)  # trackers: a failure is one warning line, never the run's
                self.progress(
                    {
                        "run_id": self.run_id,
                        "label": self.cfg.get("label"),
                        "space": self.cfg.get("space"),
                        "seed": self.cfg["seed"],
                        "epoch": epoch,
                        "epochs": epochs,
                        "epoch_seconds": entry["epoch_seconds"],
                        "eta_seconds": entry["epoch_seconds"] * (epochs - epoch - 1),
                        **self.progress_event(entry),
                    }
                )
                if self.stop_early(record, entry):
                    break
                if epoch + 1 < epochs:
                    self.save_checkpoint(record, epoch + 1)
                    records.write_record(self.record_path, record)
        except (KeyboardInterrupt, SystemExit, LockLost, RunInterrupted):
            self.watch.close(record)
            raise
        except Exception as exc:  # a failed run is recorded, and the matrix goes on
            return self._finish_failed(record, exc)
        record["final"] = {
            **self.final_fields(record),
            self.seconds_key: sum(e["epoch_seconds"] for e in record["epochs"]),
            **peak_memory_mb(self.device),
        }
        record["status"] = "ok"
        record["finished_at"] = now()
        records.write_record(self.record_path, record)
        self.remove_checkpoints()
        self.watch.close(record)
        return record

    def _finish_failed(self, record: Dict[str, Any], exc: BaseException) -> Dict[str, Any]:
        record["status"] = "failed"
        record["failure"] = {"reason": f"{type(exc).__name__}: {exc}", "epoch": len(record["epochs"])}
        record["finished_at"] = now()
        records.write_record(self.record_path, record)
        self.remove_checkpoints()
        self.watch.close(record)
        return record


def check_finite(values: Dict[str, float], epoch: int, what: str = "training loss") -> None:
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteLoss(f"non-finite {what} in epoch {epoch}: {bad}")


def summary(record: Dict[str, Any]) -> Dict[str, Any]:
    """What an executor reports back about a run."""
    out = {"run_id": record["run_id"], "status": record["status"], "failure": record["failure"]}
    if record.get("holder"):
        out["holder"] = record["holder"]  # status running-elsewhere: who runs it
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


__all__: List[str] = [
    "Run",
    "NonFiniteLoss",
    "RunInterrupted",
    "pick_device",
    "check_output_dir",
    "peak_memory_mb",
    "sync",
    "now",
    "read_checkpoint",
    "rng_states",
    "restore_rng_states",
    "summary",
    "check_finite",
]
