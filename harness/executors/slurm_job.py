"""The body of one Slurm array task (``harness.executors.slurm_executor``): what submitit pickles and a
node runs.  Apart from the executor's options module so that reading those (every command's parser
does) never imports submitit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from submitit.helpers import Checkpointable

from harness.executors.common import FileProgress, RunFactory, run_one


class RunJob(Checkpointable):
    """One array task: one run's lifecycle.  ``checkpoint`` (from ``Checkpointable``) resubmits the same
    call on timeout or preemption; the run itself resumes from the run store's checkpoint."""

    def __call__(
        self,
        make_run: RunFactory,
        cfg: Dict[str, Any],
        out_dir: str,
        data_root: Optional[str],
        device: str,
        threads: Optional[int],
        progress_file: Optional[str],
    ) -> Dict[str, Any]:
        import submitit

        env = submitit.JobEnvironment()
        job = f"{env.cluster}:{env.job_id}"
        progress = FileProgress(Path(progress_file)) if progress_file else None
        return run_one(make_run, cfg, out_dir, data_root, device, threads, progress, job)


__all__ = ["RunJob"]
