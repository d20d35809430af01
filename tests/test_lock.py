"""The per-run lock (harness.runlock): atomic create, stale-lock recovery, takeover races, heartbeat,
and two `reproduce` processes on one run store finishing the matrix once between them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from harness import records
from harness.runlock import (
    RUNNING_ELSEWHERE,
    LockLost,
    RunLock,
    process_start,
    read_lock,
    set_job_identity,
    stale_reason,
)

REPO = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"


def _write_lock(out: Path, run_id: str, **fields) -> Path:
    path = out / "locks" / f"{run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    content = {
        "run_id": run_id,
        "token": "other",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
        "job": None,
        "started_at": "2026-01-01T00:00:00+00:00",
        "heartbeat": "2026-01-01T00:00:00+00:00",
        "heartbeat_unix": now,
    }
    content.update(fields)
    path.write_text(json.dumps(content))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_acquire_is_exclusive_and_release_removes_the_lock(tmp_path):
    a, b = RunLock(tmp_path, "r1"), RunLock(tmp_path, "r1")
    assert a.acquire()
    held = read_lock(a.path)
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname() and held["token"] == a.token
    assert held["started_at"] and held["heartbeat_unix"] > 0
    assert not b.acquire()  # a live holder (this very process): running elsewhere
    assert b.holder["token"] == a.token
    a.release()
    assert not a.path.exists()
    assert b.acquire()
    b.release()
    assert list((tmp_path / "locks").iterdir()) == []


def test_dead_holder_on_this_host_is_stale(tmp_path):
    _write_lock(tmp_path, "r", pid=_dead_pid(), pid_start=None)
    lock = RunLock(tmp_path, "r")
    assert lock.acquire()
    assert "gone" in lock.took_over
    assert read_lock(lock.path)["token"] == lock.token
    lock.release()


def test_reused_pid_is_stale(tmp_path):
    # this process's pid, but a different start time: the pid was reused by another process
    _write_lock(tmp_path, "r", pid=os.getpid(), pid_start="1")
    lock = RunLock(tmp_path, "r")
    assert lock.acquire() and "gone" in lock.took_over
    lock.release()


def test_other_host_is_live_until_its_heartbeat_times_out(tmp_path, monkeypatch):
    path = _write_lock(tmp_path, "r", host="node-elsewhere", pid=1, heartbeat_unix=time.time() - 30)
    lock = RunLock(tmp_path, "r")
    assert not lock.acquire() and lock.holder["host"] == "node-elsewhere"
    assert stale_reason(read_lock(path), path) is None
    monkeypatch.setenv("HARNESS_LOCK_STALE_SECONDS", "20")
    lock = RunLock(tmp_path, "r")
    assert lock.acquire() and "heartbeat" in lock.took_over
    lock.release()


def test_an_earlier_attempt_of_the_same_job_is_stale(tmp_path):
    # a requeued Slurm task (or retried Ray task) on another node finds its own previous attempt's lock
    _write_lock(tmp_path, "r", host="node-a", pid=1, job="slurm:123_4")
    set_job_identity("slurm:123_5")
    try:
        assert not RunLock(tmp_path, "r").acquire()  # another task of the array: live
        set_job_identity("slurm:123_4")
        lock = RunLock(tmp_path, "r")
        assert lock.acquire() and "earlier attempt" in lock.took_over
        lock.release()
    finally:
        set_job_identity(None)


def test_unreadable_lock_is_held_while_young_then_stale(tmp_path):
    path = tmp_path / "locks" / "r.lock"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # a holder between creating and writing it
    assert not RunLock(tmp_path, "r").acquire()
    old = time.time() - 120
    os.utime(path, (old, old))
    lock = RunLock(tmp_path, "r")
    assert lock.acquire() and "unreadable" in lock.took_over
    lock.release()


def test_heartbeat_thread_refreshes_and_a_taken_lock_is_lost(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_LOCK_HEARTBEAT_SECONDS", "0.05")
    lock = RunLock(tmp_path, "r")
    assert lock.acquire()
    first = read_lock(lock.path)["heartbeat_unix"]
    time.sleep(0.3)
    assert read_lock(lock.path)["heartbeat_unix"] > first
    lock.beat()  # still ours
    _write_lock(tmp_path, "r", token="thief", host="node-b")  # judged stale and taken over elsewhere
    with pytest.raises(LockLost, match="node-b"):
        lock.beat()
    lock.release()
    assert read_lock(lock.path)["token"] == "thief"  # release never removes someone else's lock
    assert not list((tmp_path / "locks").glob("*.hb-*"))


RACE = textwrap.dedent("""
    import sys, time
    from harness.runlock import RunLock
    out, start = sys.argv[1], float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    lock = RunLock(out, "r")
    got = lock.acquire()
    print("WIN" if got else "LOSE", flush=True)
    if got:
        sys.stdin.read()  # hold it until the test has heard from every racer (it closes our stdin)
        lock.release()
""")


@pytest.mark.parametrize("stale_first", [False, True], ids=["fresh", "stale-takeover"])
def test_racing_processes_one_winner(tmp_path, stale_first):
    """Six processes try to take the same lock at the same instant (free, or held by a dead process)."""
    if stale_first:
        _write_lock(tmp_path, "r", pid=_dead_pid(), pid_start=None)
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path), str(start)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outs = [p.stdout.readline().strip() for p in procs]  # the winner still holds the lock meanwhile
    for p in procs:
        p.stdin.close()
        p.wait(timeout=60)
    assert sorted(outs) == ["LOSE"] * 5 + ["WIN"], outs
    assert not (tmp_path / "locks" / "r.lock").exists()


def test_run_held_elsewhere_is_not_run(tmp_path, shared_data):
    from harness import config as C
    from harness.runner import SearchRun

    prof = C.load_profile(TINY)
    cfg = C.resolve("nb201", "milenas", 0, prof, C.find_part(prof, "nb201"))
    holder = RunLock(tmp_path, "nb201__milenas__s0")
    assert holder.acquire()
    try:
        res = SearchRun(cfg, tmp_path, shared_data, torch.device("cpu")).run()
    finally:
        holder.release()
    assert res["status"] == RUNNING_ELSEWHERE and f"pid {os.getpid()}" in res["holder"]
    assert not (tmp_path / "records" / "nb201__milenas__s0.json").exists()
    rec = SearchRun(cfg, tmp_path, shared_data, torch.device("cpu")).run()  # free again: runs
    assert rec["status"] == "ok"
    assert not list((tmp_path / "locks").iterdir())


# ---------------------------------------------------------------------- two reproduce processes

PROFILE = {
    "name": "tiny-lock",
    "scale": "custom",
    "seeds": [0, 1],
    "parts": [
        {
            "space": "nb201",
            "methods": ["darts-1st", "milenas", "gdas"],
            "data": {"n_train": 160, "n_val": 160, "n_eval": 80, "image_size": 12, "batch_size": 32},
            "supernet": {"C": 4, "N": 1},
            "epochs": 3,
        }
    ],
}


def test_two_reproduce_processes_finish_the_matrix_once(tmp_path, shared_data):
    import yaml

    prof = tmp_path / "tiny-lock.yaml"
    prof.write_text(yaml.safe_dump(PROFILE))
    out = tmp_path / "shared-store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "reproduce",
        "--profile",
        str(prof),
        "--out",
        str(out),
        "--workers",
        "1",
        "--device",
        "cpu",
        "--no-report",
    ]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    errs = [r[1] for r in results]
    assert set(codes) <= {0, 3} and 0 in codes, (codes, errs)
    # every epoch of every run was computed by exactly one of the two processes (one progress line each);
    # a run that the other process finished while this one waited for it is reported, not recomputed
    computed = Counter()
    for err in errs:
        computed.update(re.findall(r"^  nb201 (.+?)\s+seed (\d+) \| epoch (\d+)/\d+", err, flags=re.M))
    expected_epochs = {
        (label, str(s), str(e + 1))
        for label in ("DARTS (1st order)", "MiLeNAS", "GDAS")
        for s in (0, 1)
        for e in range(3)
    }
    assert set(computed) == expected_epochs and all(n == 1 for n in computed.values()), (computed, errs)
    assert all(re.search(r"epoch \d+/3", e) for e in errs), "both processes ran part of the matrix"
    assert any("running elsewhere" in e for e in errs), errs
    expected = {f"nb201__{m}__s{s}" for m in PROFILE["parts"][0]["methods"] for s in (0, 1)}
    recs = records.load_runs(out)
    assert sorted(r["run_id"] for r in recs) == sorted(expected) and all(r["status"] == "ok" for r in recs)
    for r in recs:  # every epoch once in each record: nothing was computed twice into a record
        assert [e["epoch"] for e in r["epochs"]] == list(range(r["config"]["epochs"]))
    assert not list((out / "locks").iterdir()) and not list((out / "checkpoints").glob("*.pt"))
    rc3 = [e for c, e in zip(codes, errs) if c == 3]
    for e in rc3:
        assert "matrix not finished" in e
