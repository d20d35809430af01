"""A scheduler's preemption whose handling goes wrong never records the run as failed: the run stops
unfinished, keeps its checkpoint and resumes to the record an uninterrupted run writes
(``harness.executors.slurm_job``, ``harness.lifecycle.RunInterrupted``).  In one process, with a real
signal; the same on a real Slurm cluster is ``tests/test_executors.py`` (requeue command dies)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import torch

from harness import records
from harness.lifecycle import RunInterrupted
from harness.runner import SearchRun
from tests.fixtures.records_compare import strip_volatile
from tests.test_runner import tiny_cfg

submitit = pytest.importorskip("submitit", reason="submitit not installed (pip install -e .[cluster])")
from harness.executors.slurm_job import guard_preemption_handler, leave_after_interrupt  # noqa: E402

SIG = signal.SIGUSR2


@pytest.fixture
def handler_that_raises():
    """Stands in for submitit's requeue handler on USR2, failing as it can: the requeue command killed by the
    requeue's own SIGTERM, or no requeue left."""
    calls = []
    failure: list = [None]

    def handler(signum, frame):
        calls.append(signum)
        raise failure[0]

    before = signal.signal(SIG, handler)
    yield calls, failure
    signal.signal(SIG, before)


def _preempt_after_first_checkpoint(run: SearchRun) -> None:
    save = run.save_checkpoint

    def save_then_signal(record, next_epoch, *a):
        save(record, next_epoch, *a)
        os.kill(os.getpid(), SIG)  # the handler runs in this (main) thread at the next bytecode

    run.save_checkpoint = save_then_signal  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "failure",
    [
        subprocess.CalledProcessError(-15, ["scontrol", "requeue", "7_1"]),
        submitit.core.utils.UncompletedJobError("Job not requeued because: timed-out too many times."),
    ],
    ids=["requeue-command-died", "no-requeue-left"],
)
def test_a_failing_preemption_handler_leaves_the_run_resumable(handler_that_raises, shared_data, tmp_path, failure):
    calls, fail_with = handler_that_raises
    fail_with[0] = failure
    cfg = tiny_cfg(epochs=3)
    full = SearchRun(cfg, tmp_path / "full", shared_data, torch.device("cpu")).run()

    guard_preemption_handler(SIG)
    run = SearchRun(cfg, tmp_path / "store", shared_data, torch.device("cpu"))
    _preempt_after_first_checkpoint(run)
    with pytest.raises(RunInterrupted) as info:
        run.run()
    assert calls == [SIG] and info.value.cause is failure
    assert records.read_record(run.record_path)["status"] == "running"  # not "failed"
    assert run.ckpt_path.is_file(), "the checkpoint a resume needs is kept"
    assert not list((tmp_path / "store" / "locks").glob("*.lock")), "the run's lock is released"

    resumed = SearchRun(cfg, tmp_path / "store", shared_data, torch.device("cpu")).run()
    assert resumed["status"] == "ok" and resumed["provenance"]["attempts"][-1]["first_epoch"] == 1
    assert strip_volatile(resumed) == strip_volatile(full)


def test_without_the_guard_the_same_failure_records_a_failed_run(handler_that_raises, shared_data, tmp_path):
    """What the guard prevents (the CI failure it fixes): the handler's exception reached the lifecycle's
    ``except Exception``, the run was recorded failed and its checkpoints removed."""
    _, fail_with = handler_that_raises
    fail_with[0] = subprocess.CalledProcessError(-15, ["scontrol", "requeue", "7_1"])
    run = SearchRun(tiny_cfg(epochs=3), tmp_path / "store", shared_data, torch.device("cpu"))
    _preempt_after_first_checkpoint(run)
    rec = run.run()
    assert rec["status"] == "failed" and "CalledProcessError" in rec["failure"]["reason"]
    assert not run.ckpt_path.exists()


def test_leaving_after_an_interrupt(capsys):
    no_requeue = submitit.core.utils.UncompletedJobError("Job not requeued because: timed-out too many times.")
    with pytest.raises(submitit.core.utils.UncompletedJobError) as info:
        leave_after_interrupt(RunInterrupted(no_requeue), "slurm:7_1")
    assert info.value is no_requeue  # submitit writes its result file: the driver reports the run unfinished
    died = subprocess.CalledProcessError(-15, ["scontrol", "requeue", "7_1"])
    with pytest.raises(SystemExit) as exited:
        leave_after_interrupt(RunInterrupted(died), "slurm:7_1")
    assert exited.value.code == -1  # as submitit exits after a requeue: no result, the requeued attempt resumes
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: slurm:7_1: preempted, and submitit's requeue raised ")
    assert "CalledProcessError" in err[0] and "resumes it from its last checkpoint" in err[0]


def test_no_handler_installed_is_left_alone():
    before = signal.signal(SIG, signal.SIG_DFL)
    try:
        guard_preemption_handler(SIG)
        assert signal.getsignal(SIG) == signal.SIG_DFL
    finally:
        signal.signal(SIG, before)


def test_the_guarded_signal_is_submitits_preemption_signal():
    """The task body guards the signal submitit's handler is bound to (USR2 unless SUBMITIT_PREEMPT_SIGNAL)."""
    from harness.executors.slurm_job import preemption_signal

    class Env:
        @staticmethod
        def _usr_sig():
            return signal.SIGUSR1

    assert preemption_signal(Env()) == signal.SIGUSR1
    assert preemption_signal(object()) == signal.SIGUSR2
