"""Faults and resume: SIGKILL at a random point then resume, a NaN in one run, atomic writes.

Every run here uses a tiny NB201 matrix (C=4, N=1, 12x12 images, 160/160 images, 3 epochs,
3 methods) so each subprocess takes seconds.  On CPU a resumed matrix must give the same records
as an uninterrupted one, times aside.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from harness import records
from harness.errors import HarnessError
from tests.fixtures.harness_subprocess import harness_env, reproduce_cmd
from tests.fixtures.records_compare import read_records, strip_volatile

REPO = Path(__file__).resolve().parents[1]
METHODS = ["darts-1st", "milenas", "gdas"]
TINY = {
    "name": "tiny-faults",
    "scale": "custom",
    "seeds": [0],
    "parts": [
        {
            "space": "nb201",
            "methods": METHODS,
            "data": {"n_train": 160, "n_val": 160, "n_eval": 80, "image_size": 12, "batch_size": 32},
            "supernet": {"C": 4, "N": 1},
            "epochs": 3,
            "epochs_by_method": {"gdas": 4},
        }
    ],
}
# run-dependent fields: wall times, timestamps, peak memory, host


@pytest.fixture
def tiny_profile(tmp_path) -> Path:
    path = tmp_path / "tiny-faults.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return path


def _cmd(profile: Path, out: Path):
    return reproduce_cmd(profile, out, "--workers", "1")


def _run(profile: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _cmd(profile, out), cwd=REPO, env=harness_env(**env), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*.tmp")], f"temp files left in {folder}"


def _kill_when(proc: subprocess.Popen, ready, rng: random.Random, max_delay: float, timeout: float = 120) -> bool:
    """SIGKILL ``proc`` a random time (0..max_delay s) after ``ready()`` holds; False if it ended first."""
    t_end = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            return False
        if time.time() > t_end:
            proc.kill()
            pytest.fail("timed out waiting for the first checkpoint")
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, max_delay))
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return True


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_profile, tmp_path, shared_data):
    ref, out = tmp_path / "reference", tmp_path / "killed"
    _run(tiny_profile, ref)
    expected = read_records(ref)
    assert sorted(expected) == sorted(f"nb201__{m}__s0" for m in METHODS)
    assert all(r["status"] == "ok" for r in expected.values())
    seed = int(os.environ.get("HARNESS_TEST_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"kill seed {seed} (set HARNESS_TEST_KILL_SEED to replay)")

    # 1st kill: at a random point after the first checkpoint exists (mid-run, mid-epoch or mid-write)
    proc = subprocess.Popen(
        _cmd(tiny_profile, out),
        cwd=REPO,
        env=harness_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ckpts = out / "checkpoints"
    killed1 = _kill_when(proc, lambda: ckpts.is_dir() and any(ckpts.glob("*.pt")), rng, max_delay=1.5)

    # 2nd kill: after at least one run has finished, so that resuming must skip it
    def one_finished():
        return any(r.get("status") == "ok" for r in records.load_runs(out))

    finished_before: Dict[str, Any] = {}
    if killed1 and len([r for r in records.load_runs(out) if r["status"] == "ok"]) < len(METHODS):
        proc = subprocess.Popen(
            _cmd(tiny_profile, out),
            cwd=REPO,
            env=harness_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _kill_when(proc, one_finished, rng, max_delay=1.0)
    for path in sorted((out / "records").glob("*.json")):
        rec = records.read_record(path)  # every record on disk is complete JSON: writes are atomic
        if rec["status"] == "ok":
            finished_before[path.stem] = (path.stat().st_mtime_ns, rec["started_at"], rec["finished_at"])
    _no_temp_files(out)

    proc = _run(tiny_profile, out)
    got = read_records(out)
    assert sorted(got) == sorted(expected)
    for rid in expected:
        assert strip_volatile(got[rid]) == strip_volatile(expected[rid]), (
            f"{rid}: resumed record differs from uninterrupted run"
        )
    for rid, (mtime, started, finished) in finished_before.items():
        path = out / "records" / f"{rid}.json"
        assert path.stat().st_mtime_ns == mtime, f"{rid} was recomputed"
        assert (got[rid]["started_at"], got[rid]["finished_at"]) == (started, finished)
    if finished_before:
        assert "already finished" in proc.stderr
    assert not list((out / "checkpoints").glob("*.pt")), "checkpoints of finished runs must be removed"
    _no_temp_files(out)


def test_nan_in_one_run_is_recorded_and_the_matrix_goes_on(tiny_profile, tmp_path, shared_data):
    out = tmp_path / "nan"
    _run(tiny_profile, out, HARNESS_FAULT_NAN="nb201__milenas__s0@1")
    recs = read_records(out)
    bad = recs["nb201__milenas__s0"]
    assert bad["status"] == "failed"
    assert "non-finite" in bad["failure"]["reason"].lower() or "nan" in bad["failure"]["reason"].lower()
    assert bad["failure"]["epoch"] == 1 and len(bad["epochs"]) == 1 and bad["final"] is None
    others = [r for rid, r in recs.items() if rid != "nb201__milenas__s0"]
    assert len(others) == len(METHODS) - 1 and all(r["status"] == "ok" for r in others)
    assert not list((out / "checkpoints").glob("*.pt"))

    # the failed run is finished: running the matrix again does not recompute it
    mtime = (out / "records" / "nb201__milenas__s0.json").stat().st_mtime_ns
    _run(tiny_profile, out)
    assert (out / "records" / "nb201__milenas__s0.json").stat().st_mtime_ns == mtime

    rep = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(out)],
        cwd=REPO,
        env=harness_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stderr[-3000:]
    md = (out / "report" / "report.md").read_text()
    assert "failed" in md and "NonFiniteLoss" in md
    assert (out / "report" / "report.html").is_file()


# ---------------------------------------------------------------------- atomic writes


def test_atomic_write_crash_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "records" / "r.json"
    records.write_record(path, {"schema": records.SCHEMA, "v": 1})
    old = path.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        records.write_record(path, {"schema": records.SCHEMA, "v": 2, "big": "x" * 100000})
    assert path.read_bytes() == old
    assert json.loads(old)["v"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]

    new = tmp_path / "records" / "new.json"
    with pytest.raises(OSError):
        records.write_record(new, {"schema": records.SCHEMA})
    assert not new.exists()
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_atomic_write_crash_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """A crash while the bytes are being written (before the rename) never exposes partial JSON."""
    path = tmp_path / "x.json"
    real_fsync = os.fsync

    def die(fd):
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write

    monkeypatch.setattr(os, "fsync", die)
    with pytest.raises(KeyboardInterrupt):
        records.atomic_write_bytes(path, b'{"half": ')
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch, shared_data):
    """A crash while a checkpoint is written keeps the previous checkpoint; the run resumes from it."""
    import torch

    from harness.config import expand_profile, load_profile
    from harness.runner import SearchRun

    prof_path = tmp_path / "p.yaml"
    prof_path.write_text(yaml.safe_dump(TINY))
    cfg = expand_profile(load_profile(prof_path), methods=["darts-1st"])[0]
    out = tmp_path / "out"
    run = SearchRun(cfg, out, device=torch.device("cpu"))
    calls = {"n": 0}
    real = records.atomic_write_bytes

    def flaky(path, data):
        if str(path).endswith(".pt"):
            calls["n"] += 1
            if calls["n"] == 2:  # the 2nd checkpoint (after epoch 1) crashes
                real_replace = os.replace
                try:
                    os.replace = lambda a, b: (_ for _ in ()).throw(OSError(5, "I/O error"))  # type: ignore
                    return real(path, data)
                finally:
                    os.replace = real_replace
        return real(path, data)

    monkeypatch.setattr(records, "atomic_write_bytes", flaky)
    rec = run.run()
    # the write error fails this run (recorded with its reason; the matrix would go on), and no
    # partial checkpoint or temp file is left behind
    assert rec["status"] == "failed" and "I/O error" in rec["failure"]["reason"]
    _no_temp_files(out)
    assert json.loads((out / "records" / f"{run.run_id}.json").read_text())["status"] == "failed"
    assert not run.ckpt_path.exists()


def test_torn_checkpoint_restarts_the_run(tmp_path, shared_data):
    """A checkpoint that cannot be read (e.g. written by a tool without atomic writes) is ignored."""
    import torch

    from harness.config import expand_profile, load_profile
    from harness.runner import SearchRun

    prof_path = tmp_path / "p.yaml"
    prof_path.write_text(yaml.safe_dump(TINY))
    cfg = expand_profile(load_profile(prof_path), methods=["darts-1st"])[0]
    out = tmp_path / "out"
    run = SearchRun(cfg, out, device=torch.device("cpu"))
    run.ckpt_path.parent.mkdir(parents=True)
    run.ckpt_path.write_bytes(b"PK\x03\x04 torn")
    rec = run.run()
    assert rec["status"] == "ok" and len(rec["epochs"]) == cfg["epochs"]
    # never silent, never deleted: one warning line, the file moved aside, the event in the record
    (event,) = rec["events"]
    assert event["event"] == "checkpoint_unreadable" and event["action"] == "restarted from epoch 0"
    (kept,) = run.ckpt_path.parent.glob("*.unreadable-*")
    assert kept.read_bytes() == b"PK\x03\x04 torn" and event["moved_to"] == str(kept)


def test_unwritable_record_folder_is_one_clear_error(tmp_path):
    from harness.runner import check_output_dir

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(HarnessError, match="not writable"):
        check_output_dir(blocker / "out")
