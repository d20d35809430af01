"""What the ``ray`` and ``slurm`` executors share: the body of one task, paths and environment a
worker needs, progress through files on the run store, and the summary of a run that did not
return one (a task that died for good)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple

if TYPE_CHECKING:  # imported where used: executor modules are read to build every command's parser
    from harness.lifecycle import ProgressFn

RunFactory = Callable[..., Any]


def config_run_id(cfg: Dict[str, Any]) -> str:
    """The run id of a resolved config (``harness.config.config_run_id``)."""
    from harness.config import config_run_id as run_id_of

    return run_id_of(cfg)


def absolute_paths(out_dir: Path, data_root: Optional[Path]) -> Tuple[str, str]:
    """Absolute run-store and data folders, as the driver resolves them: workers start elsewhere."""
    from harness.paths import data_dir

    return str(Path(out_dir).resolve()), str(Path(data_dir(data_root)).expanduser().resolve())


def harness_env() -> Dict[str, str]:
    """The driver's ``HARNESS_*`` settings (data, cache, fault hooks, lock timings) for the workers."""
    return {k: v for k, v in os.environ.items() if k.startswith("HARNESS_")}


def run_one(
    make_run: RunFactory,
    cfg: Dict[str, Any],
    out_dir: str,
    data_root: Optional[str],
    device: str,
    threads: Optional[int],
    progress: Optional["ProgressFn"],
    job: Optional[str],
) -> Dict[str, Any]:
    """One run's lifecycle in a worker: ``threads`` torch threads, the scheduler's job id on the lock."""
    import torch

    from harness.lifecycle import pick_device, summary
    from harness.runlock import set_job_identity

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

    def pump(self, progress: "ProgressFn") -> None:
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


__all__: List[str] = [
    "config_run_id",
    "absolute_paths",
    "harness_env",
    "run_one",
    "lost_summary",
    "FileProgress",
    "ProgressTail",
    "first_line",
]
