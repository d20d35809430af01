"""The body of one Slurm array task (``harness.executors.slurm_executor``): what submitit pickles and a
node runs.  Apart from the executor's options module so that reading those (every command's parser
does) never imports submitit."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Dict, NoReturn, Optional

from submitit.helpers import Checkpointable

from harness.executors.common import FileProgress, RunFactory, run_one
from harness.lifecycle import RunInterrupted, log


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
        guard_preemption_handler(preemption_signal(env))
        progress = FileProgress(Path(progress_file)) if progress_file else None
        try:
            return run_one(make_run, cfg, out_dir, data_root, device, threads, progress, job)
        except RunInterrupted as exc:
            leave_after_interrupt(exc, job)


def preemption_signal(env: Any) -> signal.Signals:
    """The signal submitit's requeue handler is bound to (``SUBMITIT_PREEMPT_SIGNAL``, default ``USR2``).
    ``_usr_sig`` is submitit's own (private) accessor; USR2 where a version lacks it."""
    usr_sig = getattr(env, "_usr_sig", None)
    return usr_sig() if callable(usr_sig) else signal.SIGUSR2


def guard_preemption_handler(sig: signal.Signals) -> None:
    """Wrap the handler submitit installed for ``sig`` (checkpoint the call, ``scontrol requeue``, exit): an
    exception it raises becomes ``RunInterrupted``, which the run's lifecycle lets through, so the run stays
    unfinished and resumable from its checkpoint.  Unwrapped, the exception reached the lifecycle's
    ``except Exception`` and the run was recorded as failed, its checkpoints removed.  Seen: Slurm's requeue
    signals the whole job step, and its SIGTERM can kill ``scontrol requeue`` itself (a child of the task)
    after the requeue went through but before the command exits, so ``check_call`` raises; and submitit raises
    ``UncompletedJobError`` when no requeue is left."""
    submitit_handler = signal.getsignal(sig)
    if not callable(submitit_handler):
        return

    def on_preemption(signum: int, frame: Any) -> None:
        try:
            submitit_handler(signum, frame)
        except Exception as exc:
            raise RunInterrupted(exc) from exc

    signal.signal(sig, on_preemption)


def leave_after_interrupt(exc: RunInterrupted, job: str) -> NoReturn:
    """End this attempt after a preemption whose handling raised.  No requeue left (submitit's
    ``UncompletedJobError``): re-raised, so submitit writes its result file and the driver reports the run
    unfinished at once.  Anything else (the requeue command died): exit without a result, as submitit does after
    a requeue; a requeued attempt resumes from the last checkpoint, and if none comes the driver reports the task
    lost once it leaves the queue.  Either way the same command resumes the run later."""
    from submitit.core.utils import UncompletedJobError

    if isinstance(exc.cause, UncompletedJobError):
        raise exc.cause
    log(
        f"warning: {job}: preempted, and submitit's requeue raised {exc}; this attempt exits without a result "
        "(the run stays unfinished: a requeued attempt, or the same command run again, resumes it from its last "
        "checkpoint)"
    )
    raise SystemExit(-1)


__all__ = ["RunJob", "guard_preemption_handler", "leave_after_interrupt", "preemption_signal"]
