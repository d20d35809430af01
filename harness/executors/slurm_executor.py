"""The ``slurm`` executor: the matrix as one Slurm job array, through submitit.

* One array task per run (``%`` parallelism: ``--slurm-array-parallelism``), each task one node,
  one process: ``--gpus-per-task`` GPUs (default 1, 0 with ``--device cpu``), ``--slurm-cpus-per-task``
  CPUs (default ``--threads``, default 1; the run uses that many torch threads), ``--slurm-mem-gb``,
  ``--slurm-time`` (minutes or ``[D-]HH:MM[:SS]``; default the profile's ``resources.slurm.time`` or
  4 hours), ``--slurm-partition``, ``--slurm-account``, ``--slurm-qos``, ``--slurm-param KEY=VALUE``
  (any other sbatch option), ``--slurm-setup CMD`` (lines run before the task, e.g. ``module load``).
* A task is ``RunJob`` (``slurm_job.py``): the run lifecycle of its config (``harness.lifecycle.Run.run``), exactly
  what ``python -m harness search …`` does for that run.  It is ``Checkpointable``: when Slurm
  signals a timeout or a preemption (submitit asks for ``USR2`` 90 s before the limit), submitit
  requeues the task (up to ``--slurm-max-requeue`` times); the requeued task takes over its own lock
  and resumes from the run's last epoch checkpoint.  Nothing but the run store carries state.  If the requeue
  itself raises, the run stays unfinished and resumable, never "failed" (``slurm_job.guard_preemption_handler``).
* The driver waits for the array and prints each run's epochs as they finish (tasks append progress
  events to ``OUT/slurm/progress/<run_id>.jsonl``), unless ``--no-wait``.  Job files and logs:
  ``OUT/slurm/<job id>_<task>_*`` (``--slurm-folder``).
* ``--dry-run`` prints the array plan (tasks, resources, the sbatch script and what each task runs)
  and submits nothing; ``--json`` prints it as JSON.  It needs no Slurm on the machine (no ``srun``,
  ``sbatch``): the script is rendered by submitit's own template.
* ``--slurm-cluster local`` runs the same pickled jobs with submitit's local executor (one
  subprocess per run on this machine): for tests, or to try a plan without Slurm.

Every node must see the run store and data at the driver's paths and run the driver's Python
(``sys.executable``), as usual on a Slurm cluster with a shared file system.  Without Slurm
accounting (``sacct``), finished tasks are recognised by their result files and lost ones by
leaving the queue (``squeue``).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from harness.errors import ConfigError
from harness.executors.base import GPUS_PER_TASK, THREADS, ExecutorFlag, ExecutorSpec, key_value_pairs, path_value
from harness.executors.common import ProgressTail, RunFactory, absolute_paths, config_run_id, first_line, lost_summary
from harness.schema import Option, validate_section

if TYPE_CHECKING:
    from harness.lifecycle import ProgressFn

DEFAULT_TIME_MIN = 240
DEFAULT_MAX_REQUEUE = 20
LOST_AFTER_S = 60.0  # a task that left the queue this long ago without a result file is lost
POLL_S = 1.0
SQUEUE_EVERY_S = 10.0

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_slurm_time(value: Any, flag: str = "--slurm-time") -> int:
    """Minutes from a Slurm time limit: ``MINUTES``, ``HH:MM:SS``, ``MM:SS``, ``D-HH[:MM[:SS]]``."""
    text = str(value).strip()
    m = _TIME.match(text)
    if not m:
        raise ConfigError(f"{flag} must be minutes or [D-]HH:MM[:SS] (Slurm's format), not {text!r}")
    days, a, b, c = m.groups()
    if days is None and b is None:
        minutes = int(a)  # MINUTES
    elif days is None and c is None:
        minutes = int(a) + (1 if int(b) else 0)  # MM:SS, rounded up
    elif days is None:
        minutes = int(a) * 60 + int(b) + (1 if int(c) else 0)  # HH:MM:SS
    else:
        minutes = int(days) * 1440 + int(a) * 60 + int(b or 0) + (1 if int(c or 0) else 0)
    if minutes < 1:
        raise ConfigError(f"{flag} must be at least one minute, not {text!r}")
    return minutes


# ------------------------------------------------------------------------------ options

FLAGS = (
    THREADS,
    GPUS_PER_TASK,
    ExecutorFlag(
        "--slurm-cluster",
        "cluster",
        Option(
            "'slurm' (sbatch), or 'local': the same pickled jobs as subprocesses here (submitit's local executor)",
            kind=str,
            choices=("slurm", "local"),
            default="slurm",
        ),
    ),
    ExecutorFlag(
        "--slurm-partition",
        "partition",
        Option("partition (default: the profile's resources.slurm.partition, else Slurm's)", kind=str),
    ),
    ExecutorFlag(
        "--slurm-time",
        "time_min",
        Option(
            "time limit per task, minutes or [D-]HH:MM[:SS] (default: the profile's resources.slurm.time, else "
            "4:00:00); a task that hits it is requeued and resumes",
            kind=int,
            minimum=1,
        ),
        parse=parse_slurm_time,
    ),
    ExecutorFlag(
        "--slurm-cpus-per-task", "cpus_per_task", Option("CPUs per task (default --threads)", kind=int, minimum=1)
    ),
    ExecutorFlag("--slurm-mem-gb", "mem_gb", Option("memory per task in GB", kind=float, minimum=0, exclusive=True)),
    ExecutorFlag(
        "--slurm-array-parallelism",
        "array_parallelism",
        Option("tasks running at once (default all)", kind=int, minimum=1),
    ),
    ExecutorFlag("--slurm-account", "account", Option("account to charge", kind=str)),
    ExecutorFlag("--slurm-qos", "qos", Option("quality of service", kind=str)),
    ExecutorFlag(
        "--slurm-param",
        "params",
        Option("any other sbatch option, e.g. --slurm-param constraint=a100", kind=dict),
        parse=key_value_pairs,
        action="append",
        metavar="KEY=VALUE",
    ),
    ExecutorFlag(
        "--slurm-setup",
        "setup",
        Option("shell line run before each task, e.g. 'module load cuda'", kind=list, item_kind=str),
        action="append",
        metavar="CMD",
    ),
    ExecutorFlag(
        "--slurm-max-requeue",
        "max_requeue",
        Option("requeues per task on timeout/preemption", kind=int, minimum=0, default=DEFAULT_MAX_REQUEUE),
    ),
    ExecutorFlag(
        "--slurm-folder", "folder", Option("job files and logs (default OUT/slurm)", kind=Path), parse=path_value
    ),
    ExecutorFlag(
        "--no-wait",
        "no_wait",
        Option("submit and return (then: python -m harness report OUT)", kind=bool),
        action="store_true",
    ),
    ExecutorFlag(
        "--dry-run",
        "dry_run",
        Option(
            "print the job array plan (tasks, resources, the sbatch script, "
            "commands) and submit nothing; works without Slurm",
            kind=bool,
        ),
        action="store_true",
    ),
    ExecutorFlag("--json", "as_json", Option("with --dry-run: the plan as JSON", kind=bool), action="store_true"),
)

#: a profile's ``resources: {slurm: …}``: defaults of the flags above for that profile
PROFILE_RESOURCES = {
    "time": Option("time limit per task, minutes or [D-]HH:MM[:SS]", kind=str),
    "gpus_per_task": Option("GPUs per task", kind=int, minimum=0),
    "cpus_per_task": Option("CPUs per task", kind=int, minimum=1),
    "mem_gb": Option("memory per task in GB", kind=float, minimum=0, exclusive=True),
    "partition": Option("partition", kind=str),
}


def profile_resources(profile: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The profile's ``resources.slurm`` defaults, checked (``ConfigError`` naming the bad key)."""
    where = "profile resources.slurm"
    resources = ((profile or {}).get("resources") or {}).get("slurm") or {}
    if not isinstance(resources, Mapping):
        raise ConfigError(f"{where} must be a mapping ({', '.join(PROFILE_RESOURCES)}), not {resources!r}")
    resources = dict(resources)
    if isinstance(resources.get("time"), int) and not isinstance(resources["time"], bool):
        resources["time"] = str(resources["time"])  # plain minutes
    validate_section(resources, PROFILE_RESOURCES, where)
    if "time" in resources:
        parse_slurm_time(resources["time"], f"{where} time")
    return resources


def require_slurm_commands() -> None:
    """``ConfigError`` unless this machine can submit (``sbatch``; submitit's SlurmExecutor also wants ``srun``)."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if missing:
        raise ConfigError(
            f"--executor slurm: {' and '.join(missing)} not found on this machine (submit from a Slurm "
            "login node, or use --slurm-cluster local / --dry-run)"
        )


def finish_options(options: Dict[str, Any], profile: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Checks across the flags, the profile's defaults, and ``--no-wait`` as ``wait``; submitting to Slurm
    from a machine without it is refused before anything is written."""
    if options["as_json"] and not options["dry_run"]:
        raise ConfigError("--json goes with --dry-run")
    if options["cluster"] == "slurm" and not options["dry_run"]:
        require_slurm_commands()
    out = dict(options)
    out["wait"] = not out.pop("no_wait")
    out["profile_resources"] = profile_resources(profile)
    return out


# ------------------------------------------------------------------------------ task resources


def _run_id(cfg: Dict[str, Any]) -> str:
    return config_run_id(cfg)


def slurm_parameters(
    device: str,
    threads: Optional[int],
    partition: Optional[str],
    time_min: Optional[int],
    gpus_per_task: Optional[int],
    cpus_per_task: Optional[int],
    mem_gb: Optional[float],
    array_parallelism: Optional[int],
    account: Optional[str],
    qos: Optional[str],
    params: Optional[Dict[str, Any]],
    setup: Optional[List[str]],
    n_tasks: int,
    profile_resources: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """submitit AutoExecutor parameters of one task, and how many torch threads it uses."""
    prof = dict(profile_resources or {})
    if time_min is None and prof.get("time") is not None:
        time_min = parse_slurm_time(prof["time"])
    gpus = gpus_per_task if gpus_per_task is not None else prof.get("gpus_per_task")
    if gpus is None:
        gpus = 0 if device == "cpu" else 1
    cpus = cpus_per_task or prof.get("cpus_per_task") or threads or 1
    mem = mem_gb if mem_gb is not None else prof.get("mem_gb")
    p: Dict[str, Any] = {
        "timeout_min": int(time_min or DEFAULT_TIME_MIN),
        "nodes": 1,
        "tasks_per_node": 1,
        "cpus_per_task": int(cpus),
        "gpus_per_node": int(gpus),
        "name": "harness",
        "slurm_array_parallelism": int(array_parallelism or n_tasks),
    }
    if mem is not None:
        p["mem_gb"] = float(mem)
    for key, value in (
        ("slurm_partition", partition or prof.get("partition")),
        ("slurm_account", account),
        ("slurm_qos", qos),
    ):
        if value:
            p[key] = value
    if params:
        p["slurm_additional_parameters"] = dict(params)
    if setup:
        p["slurm_setup"] = list(setup)
    return p


def _submitit_parameters(params: Dict[str, Any], cluster: str) -> Dict[str, Any]:
    """``params`` as given to submitit: no GPU request for CPU tasks; ``slurm_*`` only for Slurm."""
    out = {k: v for k, v in params.items() if not (k == "gpus_per_node" and not v)}
    if cluster != "slurm":
        out = {k: v for k, v in out.items() if not k.startswith("slurm_")}
    return out


def _executor(folder: Path, cluster: str, params: Dict[str, Any], max_requeue: int):
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=max_requeue)
    ex.update_parameters(**_submitit_parameters(params, cluster))
    return ex


def _sbatch_text(folder: Path, params: Dict[str, Any], n: int, max_requeue: int) -> str:
    """The sbatch script submitit writes for this array, rendered by submitit's own ``SlurmExecutor`` on any
    machine.  ``SlurmExecutor.__init__`` refuses to start unless ``srun`` is on PATH (its ``affinity``, the
    check that picks a cluster); rendering needs no Slurm, so a subclass that never submits says it may start
    (facebookincubator/submitit submitit/slurm/slurm.py: ``SlurmExecutor``, ``_make_sbatch_string``)."""
    try:
        return _render_sbatch(folder, params, n, max_requeue)
    except (AttributeError, TypeError, ValueError, ImportError) as exc:  # submitit internals moved
        return f"(sbatch script not available from this submitit version: {type(exc).__name__}: {exc})"


def _render_sbatch(folder: Path, params: Dict[str, Any], n: int, max_requeue: int) -> str:
    from submitit.slurm.slurm import SlurmExecutor

    class PreviewSlurmExecutor(SlurmExecutor):
        @classmethod
        def affinity(cls) -> int:
            return 1

        def _submit_command(self, command: str):  # pragma: no cover - never called by a dry run
            raise RuntimeError("a dry-run executor submits nothing")

    ex = PreviewSlurmExecutor(folder=folder, max_num_timeout=max_requeue)
    given = _submitit_parameters(params, "slurm")
    # what AutoExecutor(cluster="slurm") does: generic names renamed (timeout_min -> time, mem_gb -> mem "32GB"),
    # slurm_* taken without the prefix
    native = ex._convert_parameters({k: v for k, v in given.items() if not k.startswith("slurm_")})
    native.update({k[len("slurm_") :]: v for k, v in given.items() if k.startswith("slurm_")})
    ex.update_parameters(**native)
    ex.parameters["map_count"] = n
    return ex._make_submission_file_text(ex._submitit_command_str, "dry-run")


def equivalent_command(cfg: Dict[str, Any], out_dir: str) -> str:
    """The command line that runs the same run by hand (what the task does)."""
    if cfg.get("kind") == "evaluation":
        return (
            f"python -m harness evaluate --genotype {shlex.quote(cfg['genotype_name'])} --profile "
            f"{cfg['profile']} --seed {cfg['seed']} --out {shlex.quote(out_dir)}"
        )
    parts = [
        "python -m harness search",
        f"--space {cfg['space']}",
        f"--method {cfg['method']}",
        f"--seed {cfg['seed']}",
        f"--profile {cfg['profile']}",
    ]
    parts += [f"--variant {k}={v}" for k, v in sorted((cfg.get("variant") or {}).items())]
    parts.append(f"--out {shlex.quote(out_dir)}")
    return " ".join(parts)


def dry_run_plan(
    todo: List[Dict[str, Any]],
    out: str,
    folder: Path,
    params: Dict[str, Any],
    threads: int,
    device: str,
    max_requeue: int,
    cluster: str,
) -> Dict[str, Any]:
    from harness.plan import iterations

    tasks = []
    for i, cfg in enumerate(todo):
        it = iterations(cfg) if cfg.get("kind") != "evaluation" else None
        tasks.append(
            {
                "task": i,
                "run_id": _run_id(cfg),
                "space": cfg.get("space"),
                "method": cfg.get("method"),
                "seed": cfg.get("seed"),
                "epochs": it["epochs"] if it else cfg["evaluate"]["epochs"],
                "iterations": it["iterations"] if it else None,
                "command": equivalent_command(cfg, out),
            }
        )
    resources = {
        "timeout_min": params["timeout_min"],
        "gpus_per_task": params["gpus_per_node"],
        "cpus_per_task": params["cpus_per_task"],
        "torch_threads": threads,
        "mem_gb": params.get("mem_gb"),
        "partition": params.get("slurm_partition"),
        "account": params.get("slurm_account"),
        "qos": params.get("slurm_qos"),
        "additional": params.get("slurm_additional_parameters") or {},
        "setup": params.get("slurm_setup") or [],
        "array_parallelism": params["slurm_array_parallelism"],
        "max_requeue": max_requeue,
        "device": device,
    }
    return {
        "cluster": cluster,
        "tasks": tasks,
        "n_tasks": len(tasks),
        "folder": str(folder),
        "run_store": out,
        "resources": resources,
        "sbatch": _sbatch_text(folder, params, len(todo), max_requeue) if cluster == "slurm" else None,
    }


def _minutes_text(m: int) -> str:
    d, rest = divmod(int(m), 1440)
    h, mi = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{mi:02d}:00"


def print_plan(plan: Dict[str, Any], stream=None) -> None:
    stream = stream or sys.stdout  # looked up per call (a default bound at import outlives a replaced stdout)
    r = plan["resources"]
    n = plan["n_tasks"]
    w = lambda *a: print(*a, file=stream)  # noqa: E731
    w(f"Slurm job array plan (dry run: nothing submitted): {n} task(s), array 0-{n - 1}%{r['array_parallelism']}")
    w(f"  run store   {plan['run_store']}  (records, checkpoints, locks: the source of truth)")
    w(f"  job folder  {plan['folder']}  (submitit pickles and logs)")
    gpu = f"{r['gpus_per_task']} GPU" if r["gpus_per_task"] else "no GPU"
    mem = f", {r['mem_gb']:g} GB memory" if r["mem_gb"] else ""
    w(
        f"  per task    1 node, 1 process, {gpu}, {r['cpus_per_task']} CPU(s) ({r['torch_threads']} torch thread(s))"
        f"{mem}, time limit {_minutes_text(r['timeout_min'])} ({r['timeout_min']} min), device {r['device']}"
    )
    extra = [
        f"partition {r['partition']}" if r["partition"] else "",
        f"account {r['account']}" if r["account"] else "",
        f"qos {r['qos']}" if r["qos"] else "",
    ] + [f"--{k}={v}" for k, v in r["additional"].items()]
    if any(extra):
        w("  sbatch      " + ", ".join(x for x in extra if x))
    w(
        f"  on timeout or preemption a task is requeued (at most {r['max_requeue']} times) and resumes from its last"
        " epoch checkpoint"
    )
    w("")
    w(f"  {'task':>4}  {'run id':<34} {'epochs':>6} {'iterations':>10}")
    for t in plan["tasks"]:
        its = f"{t['iterations']:>10}" if t["iterations"] is not None else f"{'-':>10}"
        w(f"  {t['task']:>4}  {t['run_id']:<34} {t['epochs']:>6} {its}")
    w("")
    w(
        "Each task runs harness.executors.slurm_job.RunJob on its resolved config: the run lifecycle, the same as"
        " (with this command's --set / --data-dir / --device options)"
    )
    for t in plan["tasks"]:
        w(f"  [{t['task']}] {t['command']}")
    if plan.get("sbatch"):
        w("")
        w("sbatch script (submitit writes one for the array; %A/%a/%j are filled in by Slurm):")
        for line in plan["sbatch"].splitlines():
            w("  " + line)
    w("")
    w("Cost estimate per run: python -m harness plan --profile <profile>")


# ------------------------------------------------------------------------------ waiting


def _in_queue(array_id: str) -> Optional[bool]:
    """Whether any task of the array is still pending or running (None: squeue unavailable)."""
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", array_id], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return False if "Invalid job id" in out.stderr else None
    return bool(out.stdout.strip())


def _result(job, cfg: Dict[str, Any]) -> Dict[str, Any]:
    try:
        res = job.result()
    except Exception as exc:
        return lost_summary(cfg, f"Slurm task {job.job_id}: {type(exc).__name__}: {first_line(str(exc))}")
    if not isinstance(res, dict):
        return lost_summary(cfg, f"Slurm task {job.job_id} returned {res!r}")
    return res


def wait_for(
    jobs: List[Any], todo: List[Dict[str, Any]], cluster: str, tail: ProgressTail, progress: "ProgressFn"
) -> List[Dict[str, Any]]:
    results: List[Dict[str, Any]] = []
    pending = list(zip(jobs, todo))
    array_id = str(jobs[0].job_id).split("_")[0] if jobs else ""
    last_seen = time.time()
    last_check = 0.0
    while pending:
        tail.pump(progress)
        still = []
        for job, cfg in pending:
            done = job.paths.result_pickle.exists() or (cluster == "local" and job.done())
            if done:
                tail.pump(progress)
                res = _result(job, cfg)
                results.append(res)
                progress({"event": "run_done", **res})
            else:
                still.append((job, cfg))
        pending = still
        if pending and cluster == "slurm" and time.time() - last_check > SQUEUE_EVERY_S:
            last_check = time.time()
            queued = _in_queue(array_id)
            if queued or queued is None:
                last_seen = time.time()
            elif time.time() - last_seen > LOST_AFTER_S:
                for job, cfg in pending:
                    res = lost_summary(
                        cfg,
                        f"Slurm task {job.job_id} left the queue without a result "
                        f"(see {job.paths.stderr}); run the command again to resume it",
                    )
                    results.append(res)
                    progress({"event": "run_done", **res})
                pending = []
        if pending:
            time.sleep(POLL_S)
    return results


# ------------------------------------------------------------------------------ the executor


def run_slurm(
    todo: List[Dict[str, Any]],
    make_run: RunFactory,
    out_dir,
    data_root,
    device: str,
    progress: "ProgressFn",
    workers: int = 1,
    *,
    cluster: str = "slurm",
    threads: Optional[int] = None,
    partition: Optional[str] = None,
    time_min: Optional[int] = None,
    gpus_per_task: Optional[int] = None,
    cpus_per_task: Optional[int] = None,
    mem_gb: Optional[float] = None,
    array_parallelism: Optional[int] = None,
    account: Optional[str] = None,
    qos: Optional[str] = None,
    params: Optional[Dict[str, Any]] = None,
    setup: Optional[List[str]] = None,
    max_requeue: int = DEFAULT_MAX_REQUEUE,
    folder: Optional[Path] = None,
    dry_run: bool = False,
    as_json: bool = False,
    wait: bool = True,
    profile_resources: Optional[Dict[str, Any]] = None,
    trackers: Optional[Any] = None,
) -> List[Dict[str, Any]]:
    """Submit ``todo`` as one job array (or print its plan); wait and return one summary per run.
    ``workers`` is not used: ``array_parallelism`` caps the tasks running at once.  ``trackers``: live
    trackers (``harness.trackers.TrackerSettings``), logging from the tasks."""
    from harness.trackers import wrap

    make_run = wrap(make_run, trackers)
    if cluster not in ("slurm", "local"):
        raise ConfigError(f"--slurm-cluster must be slurm or local, not {cluster!r}")
    out, data = absolute_paths(out_dir, data_root)
    folder = Path(folder).resolve() if folder else Path(out) / "slurm"
    params_ = slurm_parameters(
        device,
        threads,
        partition,
        time_min,
        gpus_per_task,
        cpus_per_task,
        mem_gb,
        array_parallelism,
        account,
        qos,
        params,
        setup,
        max(1, len(todo)),
        profile_resources,
    )
    n_threads = int(threads or params_["cpus_per_task"])
    if dry_run and not todo:
        print("Slurm job array plan (dry run): nothing to submit, every run of the matrix is finished")
        return []
    if dry_run:
        plan = dry_run_plan(todo, out, folder, params_, n_threads, device, max_requeue, cluster)
        if as_json:
            print(json.dumps(plan, indent=1))
        else:
            print_plan(plan)
        return []
    if not todo:
        return []
    if cluster == "slurm":
        require_slurm_commands()
    # a task sees only the GPU(s) Slurm allocated to it: cuda:N on the submitting machine is cuda there
    task_device = "cpu" if params_["gpus_per_node"] == 0 and device == "auto" else device.split(":")[0]
    progress_dir = Path(out) / "slurm" / "progress"
    progress_dir.mkdir(parents=True, exist_ok=True)
    pfiles = [progress_dir / f"{_run_id(cfg)}.jsonl" for cfg in todo]
    tail = ProgressTail(pfiles)
    from harness.executors.slurm_job import RunJob

    ex = _executor(folder, cluster, params_, max_requeue)
    fn = RunJob()
    try:
        jobs = ex.map_array(
            fn,
            [make_run] * len(todo),
            todo,
            [out] * len(todo),
            [data] * len(todo),
            [task_device] * len(todo),
            [n_threads] * len(todo),
            [str(p) for p in pfiles],
        )
    except Exception as exc:  # sbatch refused the array (bad partition, account, time limit…)
        raise ConfigError(
            f"the job array was not submitted: {type(exc).__name__}: {first_line(str(exc)).strip()}"
        ) from None
    array_id = str(jobs[0].job_id).split("_")[0]
    print(
        f"submitted {len(jobs)} task(s) as {'Slurm job array' if cluster == 'slurm' else 'local submitit jobs'} "
        f"{array_id if cluster == 'slurm' else ', '.join(j.job_id for j in jobs)} (logs: {folder})",
        file=sys.stderr,
        flush=True,
    )
    if not wait:
        return [
            {"run_id": _run_id(cfg), "status": "submitted", "failure": None, "job": j.job_id}
            for j, cfg in zip(jobs, todo)
        ]
    return wait_for(jobs, todo, cluster, tail, progress)


SPEC = ExecutorSpec(
    "slurm", "a Slurm job array through submitit", run_slurm, flags=FLAGS, package="submitit", finish=finish_options
)

__all__ = ["run_slurm", "dry_run_plan", "print_plan", "slurm_parameters", "parse_slurm_time", "SPEC"]
