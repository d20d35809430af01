"""The local executor: runs one after another in this process, or in a pool of worker processes.

On CUDA, or with one worker, runs go one after another in-process (all threads, or ``threads``).  On
CPU with N workers, a spawn-context process pool runs N at once with cores/N (or ``threads``) torch
threads each.  On CUDA, ``--runs-per-gpu N`` shares the GPU between N runs at once, each in its own pool
process (its own CUDA context; a run is never split across processes or GPUs), with cores/N (or
``threads``) torch threads each; without the flag, N comes from the peak GPU memory a calibration file
(``--calibration FILE``, written by ``python -m harness calibrate`` on this GPU model) measured for every run
to be done (``runs_per_gpu_from_calibration``), else 1.  On CPU ``--runs-per-gpu`` is refused (one error
line): ``--workers`` sets how many CPU runs go at once.  Progress
events come back through a manager queue.  Workers and the manager get SIGKILL when the matrix
process dies (Linux ``PR_SET_PDEATHSIG``), so a killed ``reproduce`` leaves no orphan still
writing records; its runs resume from their checkpoints next time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from harness.errors import ConfigError
from harness.executors.base import THREADS, ExecutorFlag, ExecutorSpec
from harness.schema import Option

if TYPE_CHECKING:
    from harness.lifecycle import ProgressFn
    from harness.trackers import TrackerSettings

#: ``make_run(cfg, out_dir, data_root, device, progress) -> Run``
RunFactory = Callable[..., Any]

#: shared by ``local`` and ``ray`` (one flag on the command line)
RUNS_PER_GPU = ExecutorFlag(
    "--runs-per-gpu",
    "runs_per_gpu",
    Option(
        "CUDA: runs sharing one GPU at once, one process (CUDA context) each, a run never split; local default: "
        "from a --calibration file's peak GPU memory per run, else 1; ray: each task asks for 1/N GPU; "
        "refused on CPU (use --workers)",
        kind=int,
        minimum=1,
        nullable=True,
    ),
    metavar="N",
)
CALIBRATION = ExecutorFlag(
    "--calibration",
    "calibration",
    Option(
        "local on CUDA: a `python -m harness calibrate` file of this GPU model; the peak GPU memory it measured "
        "for every run sets the --runs-per-gpu default",
        kind=str,
        nullable=True,
    ),
    metavar="FILE",
)
#: the share of the GPU's memory the runs may fill together, the allocator's headroom over a run's measured
#: peak allocation (``torch.cuda.max_memory_allocated`` does not count cached blocks and fragmentation) and the
#: memory of one process's CUDA context with its cuDNN/cuBLAS handles (outside PyTorch's allocator): assumed
#: allowances, not measured by this project (no GPU was available to it)
GPU_MEMORY_USABLE = 0.9
PEAK_HEADROOM = 1.25
CONTEXT_MB = 1024.0


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
    trackers: Optional["TrackerSettings"] = None,
    runs_per_gpu: Optional[int] = None,
    calibration: Optional[str] = None,
) -> List[Dict[str, Any]]:
    import torch

    from harness.lifecycle import pick_device, summary
    from harness.trackers import wrap

    make_run = wrap(make_run, trackers)  # live trackers ride with the run factory, into pool workers too
    dev = pick_device(device)
    if dev.type != "cuda" and runs_per_gpu is not None:
        raise ConfigError(
            f"--runs-per-gpu applies to runs on a GPU, and these run on {dev.type}; "
            "--workers sets how many CPU runs go at once"
        )
    if dev.type == "cuda":
        if runs_per_gpu is None:
            runs_per_gpu, why = runs_per_gpu_from_calibration(todo, dev, [calibration] if calibration else [])
        else:
            why = "--runs-per-gpu"
        if len(todo) > 1:
            print(f"{runs_per_gpu} run(s) per GPU at once ({why})", file=sys.stderr, flush=True)
        if runs_per_gpu > 1 and len(todo) > 1:
            n = min(runs_per_gpu, len(todo))
            return _run_pool(todo, make_run, out_dir, data_root, device, progress, n, threads)
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


def peak_gpu_memory(files: Sequence[str], device_kind: str) -> Dict[str, float]:
    """Peak allocated GPU memory (MB) per measurement key (``harness.plan.size_key``) that the calibration
    ``files`` measured on ``device_kind`` (the largest where several did)."""
    from harness.plan import load_calibration, size_key

    out: Dict[str, float] = {}
    for f in files:
        load_calibration(Path(f), rank=0)  # a missing or malformed file: one error line
        for m in json.loads(Path(f).read_text()).get("measurements", []):
            mb = (m.get("peak_memory_mb") or {}).get("peak_gpu_mb")
            if m.get("device_kind") != device_kind or mb is None:
                continue
            key = size_key(m["space"], m["method"], m["space_cfg"], m["image_size"], m["batch_size"])
            out[key] = max(out.get(key, 0.0), float(mb))
    return out


def runs_per_gpu_from_calibration(
    todo: Sequence[Mapping[str, Any]], device: Any, files: Sequence[str], total_mb: Optional[float] = None
) -> Tuple[int, str]:
    """How many of ``todo`` fit on the GPU ``device`` at once, and why: ⌊usable memory / (largest measured peak ×
    headroom + one CUDA context)⌋ when ``files`` measured every run's peak GPU memory on this GPU model, else 1.
    Capped by the CPU cores (every run needs one).  ``total_mb``: the GPU's memory (default: asked of CUDA)."""
    from harness.plan import cfg_key, device_kind
    from harness.provenance import device_description

    if not files:
        return 1, "default 1: no --calibration file measured the runs' GPU memory"
    kind = device_kind(device_description(device))
    peaks = peak_gpu_memory(files, kind)
    missing = sorted({cfg_key(dict(c)) for c in todo} - set(peaks))
    if missing:
        return 1, f"default 1: no peak GPU memory measured on {kind} for {missing[0]}" + (
            f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        )
    if total_mb is None:
        import torch

        idx = device.index if device.index is not None else torch.cuda.current_device()
        total_mb = torch.cuda.get_device_properties(idx).total_memory / 2**20
    peak = max(peaks[cfg_key(dict(c))] for c in todo)
    per_run = peak * PEAK_HEADROOM + CONTEXT_MB
    n = max(1, min(int(total_mb * GPU_MEMORY_USABLE // per_run), os.cpu_count() or 1))
    return n, (
        f"from the calibration: {GPU_MEMORY_USABLE:.0%} of {total_mb:.0f} MB / ({peak:.0f} MB peak x "
        f"{PEAK_HEADROOM} + {CONTEXT_MB:.0f} MB per CUDA context)"
    )


def finish_options(options: Dict[str, Any], profile: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """A calibration file that cannot be read is one error line before anything runs."""
    if options.get("calibration"):
        from harness.plan import load_calibration

        if not Path(options["calibration"]).is_file():
            raise ConfigError(f"--calibration {options['calibration']}: no such file")
        load_calibration(Path(options["calibration"]), rank=0)
    return options


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
    "local",
    "this machine: in-process, or a process pool on CPU (--workers) or sharing a GPU (--runs-per-gpu)",
    run_local,
    flags=(THREADS, RUNS_PER_GPU, CALIBRATION),
    finish=finish_options,
)
