"""A lock per run in the run store, so that two executors never run the same run at once.

``OUT/locks/<run_id>.lock`` is created atomically (``O_CREAT | O_EXCL``) by the process that runs
the run, and removed when the run ends (finished, failed, interrupted).  It holds JSON::

    {"run_id", "token", "host", "pid", "pid_start", "job", "started_at", "heartbeat", "heartbeat_unix"}

``job`` names the scheduler's attempt identity when there is one (``slurm:<array job>_<task>``,
``local:<controller pid>`` for submitit's local executor, ``ray:<task id>``); ``None`` for the local
executor.  The holder refreshes ``heartbeat`` after every epoch and from a background thread every
``HARNESS_LOCK_HEARTBEAT_SECONDS`` (default 30 s), so a long epoch does not look dead.

A lock is **stale** (and taken over) when

1. it was written by an earlier attempt of the same scheduler job (Slurm and Ray run one attempt
   of a job at a time, so a requeued or retried task may take over its own lock at once), or
2. its holder ran on this host and that process is gone (pid not alive, or alive but started at
   another time: a reused pid), or
3. its heartbeat is older than ``HARNESS_LOCK_STALE_SECONDS`` (default 600 s: 20 missed beats),
   which covers a holder on another host that crashed; or the file is unreadable and older than
   60 s (a holder killed between creating and writing it).

Otherwise the run is **running elsewhere**: this executor skips it and says so.  Taking over a stale
lock happens under a short-lived ``<run_id>.lock.break`` file (also ``O_EXCL``), so two executors
that find the same stale lock do not both take it.  A holder that finds its lock taken over (its
token gone: it was judged stale, e.g. after a long suspend) raises ``LockLost`` at its next epoch
and stops without writing.

Assumptions: the run store's file system makes ``O_CREAT | O_EXCL`` atomic across hosts (local
file systems; NFSv3 and later, Lustre, GPFS, BeeGFS; not NFSv2) and ``rename`` atomic within a
folder; hosts' clocks agree to well within the stale timeout (NTP); host names are unique among
the machines that share the folder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

RUNNING_ELSEWHERE = "running-elsewhere"
BREAK_STALE_SECONDS = 60.0
UNREADABLE_GRACE_SECONDS = 60.0

_job_identity: Optional[str] = None


class LockLost(RuntimeError):
    """This process's lock on a run was taken over by another executor (it judged this holder dead)."""

    def __init__(self, run_id: str, holder: Optional[Dict[str, Any]]):
        super().__init__(f"lock on run {run_id} was taken over by {describe_holder(holder)}")
        self.holder = holder


def stale_seconds() -> float:
    return float(os.environ.get("HARNESS_LOCK_STALE_SECONDS", "600"))


def heartbeat_seconds() -> float:
    return float(os.environ.get("HARNESS_LOCK_HEARTBEAT_SECONDS", "30"))


def set_job_identity(job: Optional[str]) -> None:
    """Executors call this in the process that runs a run: the scheduler's id of this attempt's job."""
    global _job_identity
    _job_identity = job


def job_identity() -> Optional[str]:
    return _job_identity or os.environ.get("HARNESS_JOB_ID") or None


def _now_iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def process_start(pid: int) -> Optional[str]:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc/<pid>/stat`` field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int, start: Optional[str] = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the pid now belongs to another process
    return True


def describe_holder(holder: Optional[Dict[str, Any]]) -> str:
    if not holder:
        return "another process"
    age = time.time() - float(holder.get("heartbeat_unix") or 0)
    job = f", job {holder['job']}" if holder.get("job") else ""
    return (
        f"host {holder.get('host')} pid {holder.get('pid')}{job}, since {holder.get('started_at')}, "
        f"heartbeat {age:.0f} s ago"
    )


def read_lock(path: Path) -> Optional[Dict[str, Any]]:
    """The lock's content; ``{}`` when it exists but cannot be parsed; None when absent."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def stale_reason(holder: Dict[str, Any], path: Path, now: Optional[float] = None) -> Optional[str]:
    """Why ``holder`` (the content of the lock at ``path``) is stale, or None when it is live."""
    now = time.time() if now is None else now
    if not holder:
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            return "lock removed"
        return f"unreadable lock file {age:.0f} s old" if age > UNREADABLE_GRACE_SECONDS else None
    me = job_identity()
    if me and holder.get("job") == me:
        return f"written by an earlier attempt of this job ({me})"
    if holder.get("host") == socket.gethostname():
        pid = holder.get("pid")
        if not isinstance(pid, int) or not pid_alive(pid, holder.get("pid_start")):
            return f"holder pid {pid} on this host is gone"
    age = now - float(holder.get("heartbeat_unix") or 0)
    if age > stale_seconds():
        return f"heartbeat {age:.0f} s old (stale after {stale_seconds():.0f} s)"
    return None


class RunLock:
    """``acquire()`` → True (this process now holds the run) or False (``holder`` says who does)."""

    def __init__(self, out_dir: Path, run_id: str):
        self.run_id = run_id
        self.dir = Path(out_dir) / "locks"
        self.path = self.dir / f"{run_id}.lock"
        self.token = uuid.uuid4().hex
        self.holder: Optional[Dict[str, Any]] = None
        self.took_over: Optional[str] = None  # why a stale lock was taken over, if one was
        self.held = False
        self._lost: Optional[Dict[str, Any]] = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started = time.time()

    # ------------------------------------------------------------------ content
    def _content(self) -> bytes:
        now = time.time()
        pid = os.getpid()
        return (
            json.dumps(
                {
                    "run_id": self.run_id,
                    "token": self.token,
                    "host": socket.gethostname(),
                    "pid": pid,
                    "pid_start": process_start(pid),
                    "job": job_identity(),
                    "started_at": _now_iso(self._started),
                    "heartbeat": _now_iso(now),
                    "heartbeat_unix": now,
                }
            )
            + "\n"
        ).encode()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._content())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> bool:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._clean_heartbeat_temps()
        for _ in range(5):
            if self._create():
                return self._got_it()
            holder = read_lock(self.path)
            if holder is None:
                continue  # released between our two looks: try again
            reason = stale_reason(holder, self.path)
            if reason is None:
                self.holder = holder
                return False
            if self._break(holder, reason):
                return self._got_it()
        self.holder = read_lock(self.path)
        return False

    def _got_it(self) -> bool:
        self.held = True
        self.holder = None
        self._thread = threading.Thread(target=self._beat_forever, name=f"lock-heartbeat-{self.run_id}", daemon=True)
        self._thread.start()
        return True

    def _break(self, stale: Dict[str, Any], reason: str) -> bool:
        """Take over a stale lock, under the break file; True when this process now holds the lock."""
        brk = self.path.with_name(self.path.name + ".break")
        try:
            fd = os.open(brk, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.close(fd)
        except FileExistsError:
            try:
                if time.time() - brk.stat().st_mtime > BREAK_STALE_SECONDS:
                    brk.unlink()  # a breaker died holding it
            except FileNotFoundError:
                pass
            return False
        try:
            current = read_lock(self.path)
            if current is not None and current.get("token") != stale.get("token"):
                return False  # someone else took it over meanwhile: look again
            if current is not None:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
            if self._create():
                self.took_over = f"{reason}; was {describe_holder(stale)}"
                return True
            return False
        finally:
            try:
                brk.unlink()
            except FileNotFoundError:
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.held:
            return
        self.held = False
        with self._mutex:
            current = read_lock(self.path)
            if current is not None and current.get("token") == self.token:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass

    # ------------------------------------------------------------------ heartbeat
    def _write_heartbeat(self) -> None:
        with self._mutex:
            if not self.held or self._lost is not None:
                return
            current = read_lock(self.path)
            if current is None or current.get("token") != self.token:
                self._lost = current or {}
                return
            # a kill mid-write leaves `<run>.lock.hb-<host>-<pid>`: removed at the next acquire on this host
            tmp = self.path.with_name(f"{self.path.name}.hb-{socket.gethostname()}-{os.getpid()}")
            try:
                tmp.write_bytes(self._content())
                os.replace(tmp, self.path)
            except OSError:
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def _beat_forever(self) -> None:
        while not self._stop.wait(heartbeat_seconds()):
            self._write_heartbeat()

    def beat(self) -> None:
        """Refresh the heartbeat (after every epoch); ``LockLost`` if another executor took the run over."""
        if not self.held:
            return
        self._write_heartbeat()
        if self._lost is not None:
            raise LockLost(self.run_id, self._lost)

    def _clean_heartbeat_temps(self) -> None:
        prefix = f"{self.run_id}.lock.hb-{socket.gethostname()}-"
        for tmp in self.dir.glob(f"{self.run_id}.lock.hb-*"):
            if not tmp.name.startswith(prefix):
                continue
            try:
                pid = int(tmp.name[len(prefix) :])
            except ValueError:
                continue
            if not pid_alive(pid):
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def elsewhere_summary(run_id: str, holder: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """What ``Run.run`` returns for a run another executor is running: nothing is written."""
    return {"run_id": run_id, "status": RUNNING_ELSEWHERE, "failure": None, "holder": describe_holder(holder)}


__all__ = [
    "RunLock",
    "LockLost",
    "RUNNING_ELSEWHERE",
    "elsewhere_summary",
    "set_job_identity",
    "job_identity",
    "read_lock",
    "stale_reason",
    "describe_holder",
    "stale_seconds",
    "heartbeat_seconds",
]
