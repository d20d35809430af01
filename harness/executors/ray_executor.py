"""The ``ray`` executor: every run is a Ray task with declared resources.

* ``--ray-address ADDR`` joins an existing cluster (``auto``: the one ``ray start`` runs on this
  machine); without it a local cluster is started (no dashboard, a small object store) and shut
  down at the end: on a multi-GPU workstation that alone keeps every GPU busy.
* A task asks for 1 GPU when CUDA is used (``--device cuda``, or ``auto`` on a cluster that has
  GPUs; ``--gpus-per-task`` overrides; ``--runs-per-gpu N`` asks for 1/N GPU, so N runs share a GPU, each
  in its own worker process), else for ``--threads`` CPUs; it runs with that many torch
  threads.  Ray sets ``CUDA_VISIBLE_DEVICES`` per task, so each run sees "its" GPU as ``cuda``.
* A worker that dies (SIGKILL, OOM, a lost node) makes Ray retry the task (``--ray-max-retries``,
  default 3); the retry takes over the run's lock (same Ray task, or a dead pid on the same host)
  and resumes from the run's last epoch checkpoint.  Exceptions inside a run are not retried: the
  lifecycle records a failed run as on every executor.
* Progress events travel through a ``ray.util.queue.Queue`` actor and are printed by the driver.

Workers import ``harness`` from their own Python environment and read the data and run store at
the driver's absolute paths: on a multi-node cluster both must be installed / shared at the same
paths on every node (``HARNESS_*`` settings are passed to the workers).
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from harness.errors import ConfigError
from harness.executors.base import GPUS_PER_TASK, THREADS, ExecutorFlag, ExecutorSpec
from harness.executors.common import (
    RunFactory,
    absolute_paths,
    config_run_id,
    first_line,
    harness_env,
    lost_summary,
    run_one,
)
from harness.executors.local import RUNS_PER_GPU
from harness.schema import Option

if TYPE_CHECKING:
    from harness.lifecycle import ProgressFn
    from harness.trackers import TrackerSettings

OBJECT_STORE_MB = 200


def _ray_task(
    make_run: RunFactory, cfg: Dict[str, Any], out_dir: str, data_root: Optional[str], device: str, threads: int, queue
) -> Dict[str, Any]:
    import ray

    def progress(event: Dict[str, Any]) -> None:
        try:
            queue.put(event, timeout=30)
        except Exception:  # progress is informational: a lost queue never fails the run
            pass

    job = f"ray:{ray.get_runtime_context().get_task_id()}"
    return run_one(make_run, cfg, out_dir, data_root, device, threads, progress, job)


def task_gpus(gpus_per_task: Optional[float], runs_per_gpu: Optional[int], use_gpu: bool) -> float:
    """The GPUs one task asks Ray for: ``--gpus-per-task``, else 1/``--runs-per-gpu`` (Ray packs N such tasks
    onto one GPU), else 1 when CUDA is used, else 0."""
    if gpus_per_task is not None:
        return gpus_per_task
    if not use_gpu:
        return 0
    return 1.0 / runs_per_gpu if runs_per_gpu else 1


def probe_address(address: str, timeout: float = 10.0) -> None:
    """``ConfigError`` unless something listens at ``[ray://]HOST:PORT`` (Ray's own client retries for
    many minutes against an address where nothing answers).  ``auto`` and other forms are left to Ray."""
    import socket

    m = re.match(r"^(?:ray://)?\[?([^\]/]+?)\]?:(\d+)$", address.strip())
    if not m:
        return
    host, port = m.group(1), int(m.group(2))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise ConfigError(
            f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); start "
            "one with `ray start --head`, or leave --ray-address out to start a local one"
        ) from None


def _drain(queue, progress: "ProgressFn") -> None:
    from ray.util.queue import Empty

    while True:
        try:
            items = queue.get_nowait_batch(max(1, queue.qsize()))
        except Empty:
            return
        except Exception:
            return
        if not items:
            return
        for ev in items:
            progress(ev)


def run_ray(
    todo: List[Dict[str, Any]],
    make_run: RunFactory,
    out_dir,
    data_root,
    device: str,
    progress: "ProgressFn",
    workers: int = 1,
    *,
    address: Optional[str] = None,
    threads: Optional[int] = None,
    gpus_per_task: Optional[float] = None,
    max_retries: int = 3,
    num_cpus: Optional[int] = None,
    object_store_mb: int = OBJECT_STORE_MB,
    trackers: Optional["TrackerSettings"] = None,
    runs_per_gpu: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """Run ``todo`` as Ray tasks; returns one summary per run.  ``workers`` is not used: Ray's
    resources (CPUs, GPUs) decide how many runs execute at once.  ``trackers``: live trackers, logging from
    the tasks (``harness.trackers``)."""
    if not todo:
        return []
    from harness.trackers import wrap

    make_run = wrap(make_run, trackers)
    import ray
    from ray.util.queue import Queue

    out, data = absolute_paths(out_dir, data_root)
    init: Dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": True}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        probe_address(address)
        init["address"] = address
        init["runtime_env"] = {"env_vars": harness_env()}
    else:
        # "local": always a new local cluster, even when /tmp/ray/ray_current_cluster names one (e.g. a
        # `ray start` that has since died), which a bare ray.init() would try to join
        init["address"] = "local"
        init["num_cpus"] = num_cpus or os.cpu_count() or 1
        init["object_store_memory"] = object_store_mb * 2**20
    try:
        ray.init(**init)
    except Exception as exc:  # no cluster at that address, refused authentication…: one error line
        where = f"join the Ray cluster at {address}" if address else "start a local Ray cluster"
        hint = ""
        if "auth" in f"{exc} {exc.__cause__}".lower():
            hint = (
                " (the cluster uses token authentication: set RAY_AUTH_MODE=token and give its token in "
                "RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            )
        raise ConfigError(
            f"--executor ray: could not {where}: {type(exc).__name__}: {first_line(str(exc))}{hint}"
        ) from None
    results: List[Dict[str, Any]] = []
    try:
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        use_gpu = device.startswith("cuda") or (device == "auto" and cluster_gpus > 0)
        if runs_per_gpu is not None and not use_gpu:
            raise ConfigError("--runs-per-gpu applies to runs on GPUs, and these run on the CPU")
        gpus = task_gpus(gpus_per_task, runs_per_gpu, use_gpu)
        # a task sees only the GPU(s) Ray gave it (CUDA_VISIBLE_DEVICES): cuda:N on the driver is cuda there
        task_device = "cuda" if gpus and use_gpu else ("cpu" if device == "auto" else device.split(":")[0])
        n_threads = int(threads or 1)
        queue = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(_ray_task).options(
            num_cpus=n_threads, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False, name="harness-run"
        )
        refs = {task.remote(make_run, cfg, out, data, task_device, n_threads, queue): cfg for cfg in todo}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            _drain(queue, progress)
            for ref in ready:
                cfg = refs[ref]
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task failed for good (retries used up, or an error outside the run)
                    result = lost_summary(cfg, f"{type(exc).__name__}: {first_line(str(exc))}")
                if result.get("run_id") is None:
                    result["run_id"] = config_run_id(cfg)
                results.append(result)
                progress({"event": "run_done", **result})
        _drain(queue, progress)
    finally:
        ray.shutdown()
    return results


FLAGS = (
    THREADS,
    GPUS_PER_TASK,
    RUNS_PER_GPU,
    ExecutorFlag(
        "--ray-address",
        "address",
        Option("join this cluster (e.g. auto, or ray://HOST:10001); default: start a local one", kind=str),
    ),
    ExecutorFlag(
        "--ray-max-retries", "max_retries", Option("retries of a run whose worker died", kind=int, minimum=0, default=3)
    ),
)


def finish_options(options: Dict[str, Any], profile: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """A wrong ``--ray-address``, or ``--gpus-per-task`` with ``--runs-per-gpu``, is one error line before
    anything is written."""
    if options.get("runs_per_gpu") is not None and options.get("gpus_per_task") is not None:
        raise ConfigError("give --gpus-per-task or --runs-per-gpu, not both")
    if options["address"]:
        probe_address(options["address"])
    return options


SPEC = ExecutorSpec(
    "ray",
    "a Ray task per run, on a local or existing Ray cluster",
    run_ray,
    flags=FLAGS,
    package="ray",
    finish=finish_options,
)

__all__ = ["run_ray", "probe_address", "SPEC"]
