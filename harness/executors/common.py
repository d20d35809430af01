"""What the ``ray`` and ``slurm`` executors share: the body of one task, paths and environment a
worker needs, progress through files on the run store, and the summary of a run that did not
return one (a task that died for good)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from harness.errors import ConfigError
from harness.lifecycle import ProgressFn, pick_device, summary
from harness.runlock import set_job_identity

RunFactory = Callable[..., Any]


def config_run_id(cfg: Dict[str, Any]) -> str:
    """The run id of a resolved config (evaluation configs carry it; search ids are derived)."""
    from harness.config import run_id

    if cfg.get("run_id"):
        return str(cfg["run_id"])
    return run_id(cfg["space"], cfg["method"], cfg["variant"], cfg["seed"])  # = harness.runner.search_run_id


def absolute_paths(out_dir: Path, data_root: Optional[Path]) -> Tuple[str, str]:
    """Absolute run-store and data folders, as the driver resolves them: workers start elsewhere."""
    from harness.paths import data_dir

    return str(Path(out_dir).resolve()), str(Path(data_dir(data_root)).expanduser().resolve())


def harness_env() -> Dict[str, str]:
    """The driver's ``HARNESS_*`` settings (data, cache, fault hooks, lock timings) for the workers."""
    return {k: v for k, v in os.environ.items() if k.startswith("HARNESS_")}


def run_one(make_run: RunFactory, cfg: Dict[str, Any], out_dir: str, data_root: Optional[str], device: str,
            threads: Optional[int], progress: Optional[ProgressFn], job: Optional[str]) -> Dict[str, Any]:
    """One run's lifecycle in a worker: ``threads`` torch threads, the scheduler's job id on the lock."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    set_job_identity(job)
    try:
        run = make_run(cfg, Path(out_dir), Path(data_root) if data_root else None, pick_device(device), progress)
        return summary(run.run())
    finally:
        set_job_identity(None)


def lost_summary(cfg: Dict[str, Any], reason: str) -> Dict[str, Any]:
    """A run whose task ended without a result (it stays unfinished in the run store: the next
    command resumes it from its last checkpoint)."""
    return {"run_id": config_run_id(cfg), "status": "error", "failure": {"reason": reason, "epoch": None}}


def first_line(text: str, limit: int = 300) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    # a remote traceback ends with the exception line: that is the informative one
    line = lines[-1] if len(lines) > 1 and "Traceback" in text else lines[0]
    return line[:limit]


# ------------------------------------------------------------------------------ progress via files

class FileProgress:
    """Progress events of one run appended as JSON lines to a file on the shared folder."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __call__(self, event: Dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(json.dumps(event, default=str) + "\n")
        except OSError:
            pass  # progress is informational: never fail a run over it


class ProgressTail:
    """Follows the progress files of a set of runs from their current ends; ``pump`` forwards new events."""

    def __init__(self, paths: Iterable[Path]):
        self.offsets = {}
        for p in paths:
            p = Path(p)
            self.offsets[p] = p.stat().st_size if p.is_file() else 0

    def pump(self, progress: ProgressFn) -> None:
        for path, offset in list(self.offsets.items()):
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n")
            if end < 0:
                continue
            self.offsets[path] = offset + end + 1
            for line in chunk[:end].splitlines():
                try:
                    progress(json.loads(line))
                except ValueError:
                    continue


# ------------------------------------------------------------------------------ option parsing

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_slurm_time(value: Any) -> int:
    """Minutes from a Slurm time limit: ``MINUTES``, ``HH:MM:SS``, ``MM:SS``, ``D-HH[:MM[:SS]]``."""
    text = str(value).strip()
    m = _TIME.match(text)
    if not m:
        raise ConfigError(f"--slurm-time must be minutes or [D-]HH:MM[:SS] (Slurm's format), not {text!r}")
    days, a, b, c = m.groups()
    if days is None and b is None:
        minutes = int(a)  # MINUTES
    elif days is None and c is None:
        minutes = int(a) + (1 if int(b) else 0)  # MM:SS, rounded up
    elif days is None:
        minutes = int(a) * 60 + int(b) + (1 if int(c) else 0)  # HH:MM:SS
    else:
        minutes = int(days) * 1440 + int(a) * 60 + int(b or 0) + (1 if int(c or 0) else 0)
    if minutes < 1:
        raise ConfigError(f"--slurm-time must be at least one minute, not {text!r}")
    return minutes


def positive_int(value: Any, flag: str, allow_zero: bool = False) -> Optional[int]:
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be an integer, not {value!r}") from None
    if n < 0 or (n == 0 and not allow_zero):
        raise ConfigError(f"{flag} must be {'>= 0' if allow_zero else 'positive'}, not {n}")
    return n


__all__: List[str] = ["config_run_id", "absolute_paths", "harness_env", "run_one", "lost_summary", "FileProgress",
                      "ProgressTail", "parse_slurm_time", "positive_int", "first_line"]
