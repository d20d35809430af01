"""The local executor: runs one after another in this process, or in a pool of worker processes.

On CUDA, or with one worker, runs go one after another in-process (all threads, or ``threads``).  On
CPU with N workers, a spawn-context process pool runs N at once with cores/N (or ``threads``) torch
threads each; progress
events come back through a manager queue.  Workers and the manager get SIGKILL when the matrix
process dies (Linux ``PR_SET_PDEATHSIG``), so a killed ``reproduce`` leaves no orphan still
writing records; its runs resume from their checkpoints next time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from harness.errors import ConfigError
from harness.executors.base import THREADS, ExecutorSpec

if TYPE_CHECKING:
    from harness.lifecycle import ProgressFn

#: ``make_run(cfg, out_dir, data_root, device, progress) -> Run``
RunFactory = Callable[..., Any]


def resolve_workers(value: str, device: str) -> int:
    """``--workers``: ``auto`` (1 on CUDA, else the number of cores) or a positive integer."""
    if value == "auto":
        import torch

        if device != "cpu" and torch.cuda.is_available():
            return 1
        return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"--workers must be 'auto' or a positive integer, not {value!r}") from None
    if n < 1:
        raise ConfigError(f"--workers must be a positive integer, not {n}")
    return n


def run_local(
    todo: List[Dict[str, Any]],
    make_run: RunFactory,
    out_dir: Path,
    data_root: Optional[Path],
    device: str,
    progress: "ProgressFn",
    workers: int = 1,
    threads: Optional[int] = None,
) -> List[Dict[str, Any]]:
    import torch

    from harness.lifecycle import pick_device, summary

    dev = pick_device(device)
    if workers <= 1 or dev.type == "cuda" or len(todo) <= 1:
        results = []
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            for cfg in todo:
                rec = make_run(cfg, out_dir, data_root, dev, progress).run()
                results.append(summary(rec))
                progress({"event": "run_done", **results[-1]})
        finally:
            torch.set_num_threads(before)
        return results
    return _run_pool(todo, make_run, out_dir, data_root, device, progress, workers, threads)


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    die_with_parent()


def _worker_run(
    make_run: RunFactory, cfg: Dict[str, Any], out_dir: str, data_root: Optional[str], device: str, queue
) -> Dict[str, Any]:
    from harness.lifecycle import pick_device, summary

    progress = queue.put if queue is not None else None
    run = make_run(cfg, Path(out_dir), Path(data_root) if data_root else None, pick_device(device), progress)
    return summary(run.run())


def _run_pool(todo, make_run, out_dir, data_root, device, progress, workers, threads=None) -> List[Dict[str, Any]]:
    import multiprocessing as mp
    import threading
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing.managers import SyncManager

    ctx = mp.get_context("spawn")
    manager = SyncManager(ctx=ctx)
    manager.start(die_with_parent)
    queue = manager.Queue()

    def pump():
        while True:
            ev = queue.get()
            if ev == "stop":
                return
            progress(ev)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    results = []
    try:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)
        ) as pool:
            futures = [
                pool.submit(
                    _worker_run, make_run, cfg, str(out_dir), str(data_root) if data_root else None, device, queue
                )
                for cfg in todo
            ]
            for fut in as_completed(futures):
                result = fut.result()
                queue.put({"event": "run_done", **result})
                results.append(result)
    finally:
        queue.put("stop")
        thread.join(timeout=5)
        manager.shutdown()
    return results


SPEC = ExecutorSpec(
    "local", "this machine: in-process, or a process pool on CPU (--workers)", run_local, flags=(THREADS,)
)
