"""The ray and slurm executors on real engines (a local Ray cluster; submitit's local executor: real
subprocesses running pickled jobs), against the local executor.

* the same matrix gives the same records (times aside) on every executor at one torch thread;
* a Ray worker killed with SIGKILL mid-run: Ray retries the task, it takes over the run's lock and
  resumes from the last epoch checkpoint; no run lost or done twice; records equal the uninterrupted run;
* a submitit task preempted (USR2, what Slurm sends) mid-run: requeued, resumed, same records;
* the Slurm dry-run plan, also on a machine without Slurm (no srun/sbatch on PATH: the sbatch script is
  still rendered); evaluation runs on an executor; bad executor input is one error line;
* against a real one-node Slurm cluster (CI starts one with ``.ci/slurm-cluster start`` and sets
  ``HARNESS_TEST_SLURM=1``; skipped elsewhere): the job array gives the same records, and a task that
  gets Slurm's preemption signal (``scancel --signal=USR2``) is requeued (``scontrol requeue``) and resumes.

Needs the `cluster` extra (ray, submitit); skipped without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from harness import records
from harness.runlock import read_lock
from tests.fixtures.harness_subprocess import harness_env, reproduce_cmd, start_reproduce
from tests.fixtures.records_compare import read_records, strip_volatile
from tests.test_evaluate import TINY as TINY_RECIPE

REPO = Path(__file__).resolve().parents[1]
METHODS = ["darts-1st", "milenas", "gdas"]
LABELS = {"darts-1st": "DARTS (1st order)", "milenas": "MiLeNAS", "gdas": "GDAS"}
EPOCHS = {"darts-1st": 4, "milenas": 4, "gdas": 5}
TINY = {
    "name": "tiny-exec",
    "scale": "custom",
    "seeds": [0],
    "parts": [
        {
            "space": "nb201",
            "methods": METHODS,
            "data": {"n_train": 160, "n_val": 160, "n_eval": 80, "image_size": 12, "batch_size": 32},
            "supernet": {"C": 4, "N": 1},
            "epochs": 4,
            "epochs_by_method": {"gdas": 5},
        }
    ],
}


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not _have("ray"), reason="ray not installed (pip install -e .[cluster])")
needs_submitit = pytest.mark.skipif(not _have("submitit"), reason="submitit not installed (pip install -e .[cluster])")


def _run(args, timeout: float = 600) -> subprocess.CompletedProcess:
    t0 = time.time()
    proc = subprocess.run(args, cwd=REPO, env=harness_env(), capture_output=True, text=True, timeout=timeout)
    proc.seconds = time.time() - t0  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _assert_same_records(out: Path, reference: Dict[str, Dict[str, Any]]) -> None:
    got = read_records(out)
    assert sorted(got) == sorted(reference)
    for rid, rec in reference.items():
        assert got[rid]["status"] == "ok", f"{rid}: {got[rid].get('failure')}"
        assert strip_volatile(got[rid]) == strip_volatile(rec), f"{rid}: record differs from the local executor's"
    assert not list((out / "checkpoints").glob("*.pt")) and not list((out / "locks").glob("*.lock"))


def _epoch_lines(stderr: str) -> Counter:
    """(label, epoch) -> how many times its progress line was printed."""
    return Counter(re.findall(r"^  nb201 (.+?)\s+seed \d+ \| epoch (\d+)/\d+", stderr, flags=re.M))


def _done_lines(stderr: str) -> Counter:
    return Counter(re.findall(r"^\[\d+/\d+ runs\] (\S+): (\S+)", stderr, flags=re.M))


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "tiny-exec.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def local_reference(tiny_profile, tmp_path_factory, shared_data):
    """The matrix on the local executor, in-process, one torch thread (data: ``shared_data``, as every test)."""
    out = tmp_path_factory.mktemp("local") / "store"
    proc = _run(reproduce_cmd(tiny_profile, out, "--workers", "1", "--threads", "1"))
    print(f"local executor: {proc.seconds:.1f} s")
    recs = read_records(out)
    assert sorted(recs) == sorted(f"nb201__{m}__s0" for m in METHODS)
    assert all(r["status"] == "ok" and r["provenance"]["threads"] == 1 for r in recs.values())
    return {"records": recs, "seconds": proc.seconds}


def _kill_mid_run(proc: subprocess.Popen, out: Path, run_id: str, sig: int, timeout: float = 240) -> int:
    """Once ``run_id`` has its first epoch checkpoint, send ``sig`` to the process holding its lock (the
    worker running it, never the driver).  Returns the pid signalled."""
    ckpt = out / "checkpoints" / f"{run_id}.pt"
    lock = out / "locks" / f"{run_id}.lock"
    t_end = time.time() + timeout
    while time.time() < t_end:
        if proc.poll() is not None:
            pytest.fail(f"the matrix ended before {run_id} could be interrupted:\n{proc.stderr.read()[-3000:]}")
        holder = read_lock(lock) if ckpt.is_file() else None
        if holder and holder.get("pid") and holder["pid"] != proc.pid:
            rec = records.read_record(out / "records" / f"{run_id}.json")
            assert rec["status"] == "running" and len(rec["epochs"]) < EPOCHS[run_id.split("__")[1]]
            os.kill(holder["pid"], sig)
            return holder["pid"]
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out waiting for the first checkpoint of {run_id}")


def _finish(proc: subprocess.Popen, timeout: float = 600):
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, stderr[-4000:]
    return stdout, stderr


def _assert_resumed(stderr: str, method: str) -> None:
    """The interrupted run resumed from its checkpoint: its first epoch (checkpointed before the
    interruption) was not computed again; at most the epoch in flight was printed twice."""
    lines = {e: n for (label, e), n in _epoch_lines(stderr).items() if label == LABELS[method]}
    assert lines.get("1") == 1, f"{method} restarted from scratch: {lines}"
    assert sorted(int(e) for e in lines) == list(range(1, EPOCHS[method] + 1)), lines
    assert sum(n - 1 for n in lines.values()) <= 1, lines


# ---------------------------------------------------------------------- ray


@needs_ray
def test_ray_local_cluster_gives_the_local_records(tiny_profile, local_reference, tmp_path):
    out = tmp_path / "ray"
    proc = _run(reproduce_cmd(tiny_profile, out, "--executor", "ray", "--threads", "1"))
    print(f"ray executor: {proc.seconds:.1f} s (local {local_reference['seconds']:.1f} s)")
    _assert_same_records(out, local_reference["records"])
    done = _done_lines(proc.stderr)
    assert done == Counter({(f"nb201__{m}__s0", "ok"): 1 for m in METHODS}), proc.stderr[-3000:]
    for m in METHODS:  # progress streamed back from the workers: every epoch's line, once
        assert sorted(int(e) for (label, e) in _epoch_lines(proc.stderr) if label == LABELS[m]) == list(
            range(1, EPOCHS[m] + 1)
        )


@needs_ray
def test_ray_worker_sigkill_is_retried_and_resumes(tiny_profile, local_reference, tmp_path):
    out = tmp_path / "ray-kill"
    t0 = time.time()
    proc = start_reproduce(tiny_profile, out, "--executor", "ray", "--ray-max-retries", "2")
    killed = _kill_mid_run(proc, out, "nb201__milenas__s0", signal.SIGKILL)
    _, stderr = _finish(proc)
    print(f"ray executor with a SIGKILLed worker (pid {killed}): {time.time() - t0:.1f} s")
    _assert_same_records(out, local_reference["records"])
    assert _done_lines(stderr) == Counter({(f"nb201__{m}__s0", "ok"): 1 for m in METHODS}), stderr[-3000:]
    _assert_resumed(stderr, "milenas")


# ---------------------------------------------------------------------- slurm (submitit)


@needs_submitit
def test_submitit_local_jobs_give_the_local_records_and_resume_after_preemption(
    tiny_profile, local_reference, tmp_path
):
    """The slurm executor's pickled jobs in real subprocesses (submitit's local executor); one task gets
    Slurm's preemption/timeout signal (USR2) mid-run: submitit checkpoints, requeues it, and the run
    resumes from its last epoch checkpoint."""
    out = tmp_path / "submitit"
    t0 = time.time()
    proc = start_reproduce(tiny_profile, out, "--executor", "slurm", "--slurm-cluster", "local")
    signalled = _kill_mid_run(proc, out, "nb201__milenas__s0", signal.SIGUSR2)
    _, stderr = _finish(proc)
    print(
        f"submitit local executor with a preempted task (pid {signalled}): {time.time() - t0:.1f} s "
        f"(local {local_reference['seconds']:.1f} s)"
    )
    _assert_same_records(out, local_reference["records"])
    assert _done_lines(stderr) == Counter({(f"nb201__{m}__s0", "ok"): 1 for m in METHODS}), stderr[-3000:]
    _assert_resumed(stderr, "milenas")
    logs = "".join(p.read_text() for p in (out / "slurm").glob("*_log.err"))
    assert "Caught signal SIGUSR2" in logs and "preempted" in logs, logs[-3000:]  # submitit's handler ran


@needs_submitit
def test_slurm_dry_run_plan(tmp_path, shared_data, capsys):
    from harness import config as C
    from harness.cli import main

    out = tmp_path / "paper"
    argv = [
        "reproduce",
        "--profile",
        "paper",
        "--out",
        str(out),
        "--executor",
        "slurm",
        "--dry-run",
        "--slurm-partition",
        "gpu",
        "--slurm-time",
        "1-12:00:00",
        "--slurm-mem-gb",
        "32",
        "--threads",
        "4",
        "--slurm-array-parallelism",
        "8",
        "--slurm-param",
        "constraint=a100",
        "--slurm-setup",
        "module load cuda",
    ]
    assert main(argv + ["--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    expected = [c for c in C.expand_profile(C.load_profile("paper"))]
    assert plan["n_tasks"] == 35 == len(expected)
    ids = [t["run_id"] for t in plan["tasks"]]
    assert ids[0] == "nb201__darts-1st__s0" and ids[-1] == "darts__single-level__s3" and len(set(ids)) == 35
    t = plan["tasks"][6]
    assert (t["run_id"], t["epochs"], t["iterations"]) == ("nb201__gdas__s0", 250, 250 * 391)
    assert t["command"] == f"python -m harness search --space nb201 --method gdas --seed 0 --profile paper --out {out}"
    r = plan["resources"]
    assert (r["timeout_min"], r["gpus_per_task"], r["cpus_per_task"], r["torch_threads"], r["mem_gb"]) == (
        2160,
        1,
        4,
        4,
        32.0,
    )
    assert (r["partition"], r["array_parallelism"], r["additional"]) == ("gpu", 8, {"constraint": "a100"})
    sbatch = plan["sbatch"]
    for line in (
        "#SBATCH --array=0-34%8",
        "#SBATCH --time=2160",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --constraint=a100",
        "#SBATCH --mem=32GB",
        "module load cuda",
        "submitit.core._submit",
    ):
        assert line in sbatch, line
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "nothing submitted" in text and "35 task(s)" in text and "darts__milenas__s3" in text
    assert "time limit 1-12:00:00" in text and "requeued" in text
    assert not (out / "slurm").exists() or not any((out / "slurm").iterdir()), "a dry run submits nothing"
    assert not (out / "runs.json").exists()

    # CPU tasks: no GPU, CPUs = threads; time from the default
    assert (
        main(
            [
                "reproduce",
                "--profile",
                "smoke",
                "--out",
                str(tmp_path / "s"),
                "--executor",
                "slurm",
                "--dry-run",
                "--json",
                "--device",
                "cpu",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    plan = json.loads(capsys.readouterr().out)
    assert plan["n_tasks"] == 10
    assert (
        plan["resources"]["gpus_per_task"],
        plan["resources"]["cpus_per_task"],
        plan["resources"]["timeout_min"],
    ) == (0, 2, 240)
    assert "--gpus-per-node" not in plan["sbatch"]

    # resources from the profile (`resources: {slurm: …}`); flags win over them
    prof = {
        **C.load_profile("smoke"),
        "name": "smoke-res",
        "resources": {
            "slurm": {"time": "2:30:00", "gpus_per_task": 2, "cpus_per_task": 6, "mem_gb": 12, "partition": "a100"}
        },
    }
    path = tmp_path / "smoke-res.yaml"
    path.write_text(yaml.safe_dump(prof))
    assert (
        main(
            [
                "reproduce",
                "--profile",
                str(path),
                "--out",
                str(tmp_path / "r"),
                "--executor",
                "slurm",
                "--dry-run",
                "--json",
                "--spaces",
                "nb201",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)["resources"]
    assert (r["timeout_min"], r["gpus_per_task"], r["cpus_per_task"], r["mem_gb"], r["partition"]) == (
        150,
        2,
        6,
        12,
        "a100",
    )
    assert (
        main(
            [
                "reproduce",
                "--profile",
                str(path),
                "--out",
                str(tmp_path / "r"),
                "--executor",
                "slurm",
                "--dry-run",
                "--json",
                "--spaces",
                "nb201",
                "--slurm-time",
                "45",
                "--gpus-per-task",
                "1",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)["resources"]
    assert (r["timeout_min"], r["gpus_per_task"]) == (45, 1)


SLURM_COMMANDS = {
    "srun",
    "sbatch",
    "squeue",
    "scancel",
    "scontrol",
    "sinfo",
    "sacct",
    "salloc",
    "sattach",
    "sbcast",
    "sstat",
    "sprio",
    "sshare",
    "sdiag",
    "strigger",
    "sacctmgr",
    "sreport",
    "slurmd",
    "slurmctld",
}


def _path_without_slurm(shadow_root: Path) -> str:
    """$PATH as on a machine without Slurm: a folder holding Slurm commands (on a CI node with its one-node
    cluster: /usr/bin) is replaced by links to everything in it but those commands."""
    dirs = [str(Path(sys.executable).parent)] + [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    out = []
    for i, d in enumerate(dirs):
        if not any(os.path.exists(os.path.join(d, c)) for c in SLURM_COMMANDS):
            out.append(d)
            continue
        shadow = shadow_root / f"path{i}"
        shadow.mkdir(parents=True)
        for entry in os.scandir(d):
            if entry.name not in SLURM_COMMANDS:
                (shadow / entry.name).symlink_to(entry.path)
        out.append(str(shadow))
    path = os.pathsep.join(out)
    assert shutil.which("srun", path=path) is None and shutil.which("sbatch", path=path) is None
    return path


@needs_submitit
def test_slurm_dry_run_without_slurm_prints_the_sbatch_script(tmp_path, shared_data):
    """Previewing a plan needs no Slurm: no srun/sbatch on PATH, no SLURM_CONF; submitit still renders the
    script (its SlurmExecutor refuses to start without srun, which the dry run does not need)."""
    env = harness_env(PATH=_path_without_slurm(tmp_path / "bin"))
    env.pop("SLURM_CONF", None)
    out = tmp_path / "laptop"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "reproduce",
            "--profile",
            "smoke",
            "--out",
            str(out),
            "--executor",
            "slurm",
            "--dry-run",
            "--slurm-partition",
            "gpu",
            "--slurm-time",
            "90",
            "--slurm-mem-gb",
            "16",
            "--slurm-param",
            "constraint=a100",
            "--device",
            "cpu",
            "--threads",
            "2",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sbatch = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("#SBATCH")]
    for line in (
        "#SBATCH --array=0-9%10",
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=16GB",
        "#SBATCH --partition=gpu",
        "#SBATCH --constraint=a100",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --job-name=harness",
        f"#SBATCH --output={out.resolve()}/slurm/%A_%a_0_log.out",
    ):
        assert line in sbatch, (line, sbatch)
    assert not any(ln.startswith("#SBATCH --gpus-per-node") for ln in sbatch), sbatch  # --device cpu: no GPU
    assert "not available" not in proc.stdout
    assert "-u -m submitit.core._submit" in proc.stdout and "10 task(s)" in proc.stdout
    assert not (out / "slurm").exists() and not (out / "runs.json").exists(), "a dry run writes no job files"


@needs_submitit
def test_submitting_without_slurm_is_one_error_line(tmp_path, capsys, monkeypatch):
    from harness.cli import main

    monkeypatch.setenv("PATH", _path_without_slurm(tmp_path / "bin"))
    code = main(["reproduce", "--profile", "smoke", "--out", str(tmp_path / "o"), "--executor", "slurm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        "error: --executor slurm: sbatch and srun not found on this machine (submit from a Slurm "
        "login node, or use --slurm-cluster local / --dry-run)"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "resources, needle",
    [
        ({"gpus_per_task": "two"}, "gpus_per_task must be an integer"),
        ({"time": "soon"}, "profile resources.slurm time must be minutes or [D-]HH:MM[:SS]"),
        ({"nodes": 2}, "nodes"),
    ],
)
def test_bad_profile_slurm_resources_are_one_error_line(resources, needle, tmp_path, capsys):
    from harness import config as C
    from harness.cli import main

    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump({**C.load_profile("smoke"), "name": "res", "resources": {"slurm": resources}}))
    code = main(["reproduce", "--profile", str(path), "--out", str(tmp_path / "o"), "--executor", "slurm", "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: profile resources.slurm") and needle in err[0], err
    assert not (tmp_path / "o").exists()


@needs_submitit
def test_evaluation_run_on_the_slurm_executor(tmp_path, shared_data):
    """`evaluate --executor slurm` runs the one evaluation run as a (local submitit) job: same record."""
    prof = {
        "name": "tiny-eval",
        "scale": "smoke",
        "seeds": [0],
        "parts": [{"space": "darts", "methods": ["darts-1st"]}],
        "evaluate": dict(TINY_RECIPE),
    }
    path = tmp_path / "tiny-eval.yaml"
    path.write_text(yaml.safe_dump(prof))
    base = [
        sys.executable,
        "-m",
        "harness",
        "evaluate",
        "--genotype",
        "DARTS_V2",
        "--profile",
        str(path),
        "--device",
        "cpu",
    ]
    _run(base + ["--out", str(tmp_path / "local")])
    proc = _run(base + ["--out", str(tmp_path / "job"), "--executor", "slurm", "--slurm-cluster", "local"])
    assert "epoch 2/2" in proc.stderr and "test acc" in proc.stderr
    a, b = read_records(tmp_path / "local"), read_records(tmp_path / "job")
    assert sorted(a) == sorted(b) == ["darts__eval__DARTS_V2__s0"]
    assert strip_volatile(a["darts__eval__DARTS_V2__s0"]) == strip_volatile(b["darts__eval__DARTS_V2__s0"])
    again = _run(base + ["--out", str(tmp_path / "job"), "--executor", "slurm", "--slurm-cluster", "local"])
    assert "already finished" in again.stderr


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--executor", "kubernetes"], "unknown executor 'kubernetes'; known executors: local, ray, slurm"),
        (["--executor", "slurm", "--slurm-time", "soon"], "--slurm-time must be minutes or [D-]HH:MM[:SS]"),
        (["--executor", "slurm", "--slurm-time", "0"], "--slurm-time must be at least one minute"),
        (["--executor", "slurm", "--threads", "0"], "--threads must be positive"),
        (["--executor", "slurm", "--slurm-cluster", "pbs"], "--slurm-cluster must be slurm or local"),
        (["--executor", "slurm", "--slurm-param", "constraint"], "--slurm-param expects KEY=VALUE"),
        (["--ray-address", "auto"], "--ray-address does not apply to --executor local"),
        (["--gpus-per-task", "1"], "--gpus-per-task does not apply to --executor local"),
        (["--executor", "ray", "--slurm-partition", "gpu"], "--slurm-partition does not apply to --executor ray"),
        (["--executor", "ray", "--dry-run"], "--dry-run does not apply to --executor ray"),
        (["--executor", "slurm", "--json"], "--json goes with --dry-run"),
        (["--executor", "slurm", "--slurm-mem-gb", "0"], "--slurm-mem-gb must be positive"),
        (["--executor", "slurm", "--slurm-array-parallelism", "many"], "--slurm-array-parallelism must be an integer"),
        (["--executor", "ray", "--ray-max-retries", "-1"], "--ray-max-retries must be >= 0"),
        (["--slurm-cluster", "local"], "--slurm-cluster does not apply to --executor local"),
    ],
)
def test_bad_executor_input_is_one_error_line(argv, needle, tmp_path, capsys):
    from harness.cli import main

    code = main(["reproduce", "--profile", "smoke", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not (tmp_path / "o").exists()


@needs_ray
def test_ray_address_where_nothing_answers_is_one_error_line(tmp_path, capsys):
    import socket

    from harness.cli import main

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(
        [
            "reproduce",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path / "o"),
            "--executor",
            "ray",
            "--ray-address",
            f"127.0.0.1:{port}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"--ray-address 127.0.0.1:{port}: no Ray cluster answers" in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("executor, package", [("ray", "ray"), ("slurm", "submitit")])
def test_missing_cluster_extra_is_one_error_line(executor, package, tmp_path, capsys, monkeypatch):
    from harness.cli import main

    monkeypatch.setitem(sys.modules, package, None)  # as if not installed: `import` raises ImportError
    code = main(["reproduce", "--profile", "smoke", "--out", str(tmp_path / "o"), "--executor", executor])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        f"error: --executor {executor} needs the '{package}' package, which is not installed: "
        "pip install -e '.[cluster]' (brings ray and submitit)"
    )
    code = main(["evaluate", "--genotype", "DARTS_V2", "--out", str(tmp_path / "e"), "--executor", executor])
    assert code == 2 and "pip install -e '.[cluster]'" in capsys.readouterr().err


# ---------------------------------------------------------------------- a real Slurm cluster

needs_slurm = pytest.mark.skipif(
    not os.environ.get("HARNESS_TEST_SLURM") or shutil.which("sbatch") is None or not _have("submitit"),
    reason="needs a Slurm cluster (.ci/slurm-cluster start DIR; SLURM_CONF; HARNESS_TEST_SLURM=1) and submitit",
)


def _squeue(job: str, fmt: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", fmt], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def _scontrol_that_dies_after_a_requeue(folder: Path) -> Path:
    """An ``scontrol`` that lingers 3 s after ``requeue`` did its work: the requeue's SIGTERM to the job step then
    kills it, as happens by chance on a fast machine (CI saw it), so submitit's ``check_call`` raises."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "scontrol"
    script.write_text(f'#!/bin/bash\n{shutil.which("scontrol")} "$@"; rc=$?\n[ "$1" = requeue ] && sleep 3\nexit $rc\n')
    script.chmod(0o755)
    return folder


@needs_slurm
@pytest.mark.parametrize("requeue_command", ["exits", "dies-after-requeue"])
def test_slurm_job_array_gives_the_local_records_and_requeues_a_preempted_task(
    tiny_profile, local_reference, tmp_path, monkeypatch, requeue_command
):
    if requeue_command == "dies-after-requeue":  # the tasks inherit the driver's PATH (sbatch --export=ALL)
        bin_dir = _scontrol_that_dies_after_a_requeue(tmp_path / "bin")
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "slurm"
    t0 = time.time()
    proc = start_reproduce(tiny_profile, out, "--executor", "slurm", "--slurm-time", "30")
    run_id = "nb201__milenas__s0"
    ckpt, lock = out / "checkpoints" / f"{run_id}.pt", out / "locks" / f"{run_id}.lock"
    job = None
    t_end = time.time() + 300
    while job is None and time.time() < t_end:
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read()[-3000:])
        holder = read_lock(lock) if ckpt.is_file() else None
        if holder and str(holder.get("job", "")).startswith("slurm:"):
            job = holder["job"].split(":", 1)[1]
        time.sleep(0.05)
    assert job, "no checkpoint of the MiLeNAS run appeared"
    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
    # Slurm holds a requeued job until its BeginTime (about two minutes): start it now to keep CI short
    while proc.poll() is None and time.time() < t_end + 300:
        if "BeginTime" in _squeue(job, "%r"):
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True, timeout=30)
        time.sleep(0.5)
    _, stderr = _finish(proc, timeout=60)
    print(
        f"slurm executor (one-node cluster) with a preempted task {job}: {time.time() - t0:.1f} s "
        f"(local {local_reference['seconds']:.1f} s)"
    )
    assert "submitted 3 task(s) as Slurm job array" in stderr
    _assert_same_records(out, local_reference["records"])
    assert _done_lines(stderr) == Counter({(f"nb201__{m}__s0", "ok"): 1 for m in METHODS}), stderr[-3000:]
    _assert_resumed(stderr, "milenas")
    logs = "".join(p.read_text() for p in (out / "slurm").glob("*_log.err"))
    assert "preempted" in logs and "DUE TO JOB REQUEUE" in logs, logs[-3000:]
    # the requeue command died: the attempt left without recording a failure, the next one resumed the run
    assert ("submitit's requeue raised CalledProcessError" in logs) == (requeue_command == "dies-after-requeue")


@needs_slurm
def test_slurm_dry_run_submits_nothing(tmp_path, shared_data):
    def jobs():
        return set(subprocess.run(["squeue", "-h", "-o", "%F"], capture_output=True, text=True).stdout.split())

    before = jobs()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "reproduce",
            "--profile",
            "paper",
            "--out",
            str(tmp_path / "p"),
            "--executor",
            "slurm",
            "--dry-run",
        ],
        cwd=REPO,
        env=harness_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "#SBATCH --array=0-34%35" in proc.stdout
    assert jobs() <= before, "a dry run submits nothing"


# ------------------------------------------------------------------------------ several runs on one GPU


def test_runs_per_gpu_on_cpu_is_one_error_line(tmp_path, capsys):
    from harness.cli import main

    code = main(
        ["reproduce", "--profile", "smoke", "--out", str(tmp_path / "o"), "--device", "cpu", "--runs-per-gpu", "2"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --runs-per-gpu applies to runs on a GPU"), err
    assert not list((tmp_path / "o").glob("records/*.json"))  # refused before any run


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--runs-per-gpu", "0"], "--runs-per-gpu must be positive"),
        (["--runs-per-gpu", "two"], "--runs-per-gpu must be an integer"),
        (["--calibration", "nowhere.json"], "--calibration nowhere.json: no such file"),
        pytest.param(
            ["--executor", "ray", "--runs-per-gpu", "2", "--gpus-per-task", "1"],
            "give --gpus-per-task or --runs-per-gpu, not both",
            marks=needs_ray,
        ),
        (["--executor", "ray", "--calibration", "c.json"], "--calibration does not apply to --executor ray"),
    ],
)
def test_bad_runs_per_gpu_input_is_one_error_line(argv, needle, tmp_path, capsys):
    from harness.cli import main

    code = main(["reproduce", "--profile", "smoke", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def _calibration(path: Path, kind: str, peaks: Dict[str, float]) -> Path:
    from harness import config as C

    _, configs = C.select_matrix("smoke", ["nb201"], None)
    rows = []
    for cfg in configs:
        if cfg["method"] in peaks:
            rows.append(
                {
                    "space": cfg["space"],
                    "method": cfg["method"],
                    "variant": cfg["variant"],
                    "space_cfg": cfg["space_cfg"],
                    "image_size": cfg["data"]["image_size"],
                    "batch_size": cfg["data"]["batch_size"],
                    "seconds_per_iteration": 0.01,
                    "peak_memory_mb": {"peak_rss_mb": 2000.0, "peak_gpu_mb": peaks[cfg["method"]]},
                    "device_kind": kind,
                }
            )
    path.write_text(json.dumps({"schema": "harness.calibration/1", "measurements": rows}))
    return path


def test_runs_per_gpu_default_comes_from_the_calibrated_peak_memory(tmp_path, monkeypatch):
    import torch

    from harness import config as C
    from harness import provenance
    from harness.executors import local

    monkeypatch.setattr(provenance, "device_description", lambda d: "cuda: NVIDIA H100 80GB HBM3 (80 GiB), CUDA 12.1")
    monkeypatch.setattr(local.os, "cpu_count", lambda: 64)
    _, todo = C.select_matrix("smoke", ["nb201"], ["darts-1st", "darts-2nd"])
    gpu = torch.device("cuda")
    kind = "cuda: NVIDIA H100 80GB HBM3"
    cal = _calibration(tmp_path / "cal.json", kind, {"darts-1st": 3000.0, "darts-2nd": 7000.0})
    n, why = local.runs_per_gpu_from_calibration(todo, gpu, [str(cal)], total_mb=81559.0)
    per_run = 7000.0 * local.PEAK_HEADROOM + local.CONTEXT_MB  # the largest peak of the runs to do
    assert n == int(81559.0 * local.GPU_MEMORY_USABLE // per_run) == 7 and "7000 MB peak" in why
    monkeypatch.setattr(local.os, "cpu_count", lambda: 4)
    assert local.runs_per_gpu_from_calibration(todo, gpu, [str(cal)], total_mb=81559.0)[0] == 4  # a core per run
    # a run without a measurement on this GPU model, another GPU model, no file: 1
    part = _calibration(tmp_path / "part.json", kind, {"darts-1st": 3000.0})
    n, why = local.runs_per_gpu_from_calibration(todo, gpu, [str(part)], total_mb=81559.0)
    assert n == 1 and "darts-2nd" in why
    other = _calibration(tmp_path / "a100.json", "cuda: NVIDIA A100", {"darts-1st": 1.0, "darts-2nd": 1.0})
    assert local.runs_per_gpu_from_calibration(todo, gpu, [str(other)], total_mb=81559.0)[0] == 1
    assert local.runs_per_gpu_from_calibration(todo, gpu, [], total_mb=81559.0) == (
        1,
        "default 1: no --calibration file measured the runs' GPU memory",
    )


def test_runs_per_gpu_on_cuda_runs_a_process_per_run(tmp_path, monkeypatch, capsys):
    """Without a GPU: the CUDA branch hands the runs to the process pool, N at once, cores/N threads each."""
    import torch

    from harness import lifecycle
    from harness.executors import local

    monkeypatch.setattr(lifecycle, "pick_device", lambda name="auto": torch.device("cuda"))
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    calls = []
    monkeypatch.setattr(
        local, "_run_pool", lambda todo, mk, out, data, dev, prog, n, threads: calls.append((n, threads))
    )
    todo = [{"seed": s} for s in range(3)]
    local.run_local(todo, None, tmp_path, None, "cuda", lambda e: None, runs_per_gpu=2)
    local.run_local(todo, None, tmp_path, None, "cuda", lambda e: None, runs_per_gpu=5, threads=1)
    assert calls == [(2, None), (3, 1)]  # never more processes than runs; threads: the pool's cores/N default
    assert "2 run(s) per GPU at once (--runs-per-gpu)" in capsys.readouterr().err


def test_ray_task_gpus():
    from harness.executors.ray_executor import task_gpus

    assert task_gpus(None, None, True) == 1 and task_gpus(None, None, False) == 0
    assert task_gpus(None, 4, True) == 0.25 and task_gpus(2, None, True) == 2
