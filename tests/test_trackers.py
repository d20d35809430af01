"""Live trackers (harness.trackers, docs/trackers.md): what a tiny NB201 search logged is read back with each
tracker's own reader and compared with its record, epoch by epoch.

* TensorBoard: the event files, read with tensorboard's ``EventFileLoader``.
* W&B: the offline run folder; its ``.wandb`` file is wandb's record log (LevelDB log framing) of wandb's own
  protobuf ``Record`` messages (``wandb.proto.wandb_internal_pb2``), decoded here (wandb 0.2x+ ships no Python
  reader of its own).
* MLflow: a real ``mlflow server`` on 127.0.0.1 with a SQLite backend (one per module), read with ``MlflowClient``;
  stopped mid-run by the last test: one warning line, the run and its record complete.

A tracker is an observer: the run's config, hash and id are those of an untracked run.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch

from harness import config as C
from harness import records
from harness.cli import main
from harness.errors import ConfigError
from harness.runner import SearchRun, make_run, run_matrix
from harness.trackers import TrackerSettings, parse_names, require, settings_from_args, with_trackers, wrap
from harness.trackers.base import RunInfo, Tracker, TrackerSet, scalars

TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"


def tiny_cfg(epochs: int = 3) -> Dict[str, Any]:
    """GDAS on NB201 (τ is logged), 2 iterations per epoch."""
    prof = C.load_profile(TINY)
    part = copy.deepcopy(C.find_part(prof, "nb201"))
    part.update(epochs=epochs, max_steps_per_epoch=2)
    return C.resolve("nb201", "gdas", 0, prof, part)


@pytest.fixture(autouse=True)
def _tracker_env(monkeypatch, tmp_path):
    """W&B offline with its caches in the test folder; MLflow requests short and without retries."""
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(key, raising=False)
    for key in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(key, str(tmp_path / "wandb-home" / key.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


# ------------------------------------------------------------------------------------------ readers


def tb_events(out: Path) -> Dict[str, List[tuple]]:
    """tag -> [(step, value)] of every TensorBoard event under ``out/tb`` (scalars: float; text, images: kind)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    found: Dict[str, List[tuple]] = {}
    for path in sorted((out / "tb").rglob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                plugin = v.metadata.plugin_data.plugin_name
                if plugin == "scalars":
                    found.setdefault(v.tag, []).append((event.step, float(make_ndarray(v.tensor))))
                elif plugin == "images":
                    found.setdefault(v.tag, []).append((event.step, "image"))
                elif plugin == "text":
                    text = make_ndarray(v.tensor).item().decode()
                    found.setdefault(v.tag.removesuffix("/text_summary"), []).append((event.step, text))
                elif plugin == "hparams":
                    found.setdefault("<hparams>", []).append((event.step, v.tag))
    return found


def wandb_records(path: Path):
    """wandb's own protobuf ``Record`` messages from a ``.wandb`` file (7-byte file header ``:W&B`` + magic +
    version, then 32 KiB blocks of records: crc32 (4), length (2, little-endian), type (1: full, 2 first,
    3 middle, 4 last))."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0:  # zero padding at a block's end
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(pending)
            pending = b""
            yield rec


def wandb_history(out: Path) -> Dict[str, Any]:
    """Per offline run folder: its history rows (step -> {key: value}) and its config."""
    folders = sorted((out / "wandb" / "wandb").glob("offline-run-*"))
    runs = []
    for folder in folders:
        rows: Dict[int, Dict[str, Any]] = {}
        config: Dict[str, Any] = {}
        run: Dict[str, Any] = {}
        for rec in wandb_records(next(folder.glob("*.wandb"))):
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                items = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item}
                rows[int(rec.history.step.num)] = items
            elif kind == "config":
                config.update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.config.update})
            elif kind == "run":
                run = {"id": rec.run.run_id, "name": rec.run.display_name, "group": rec.run.run_group}
                run["tags"] = list(rec.run.tags)
                config.update(
                    {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.run.config.update}
                )
        runs.append({"folder": folder, "rows": rows, "config": config, "run": run})
    return {"runs": runs}


# ------------------------------------------------------------------------------------------ the MLflow server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("mlflow")
        cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "mlflow"]
        cmd += ["server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        cmd += ["--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.log = open(folder / "server.log", "wb")
        # a session of its own: stop() ends the server and the uvicorn worker it starts, by process group
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("mlflow server did not answer within 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self.log.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    pytest.importorskip("mlflow", reason="the track extra (mlflow) is not installed")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def mlflow_runs_of(uri: str, run_id: str, out: Path):
    """The MLflow runs of harness run ``run_id`` in run store ``out`` (found by its ``harness_run_key`` tag)."""
    c = client(uri)
    exp = c.get_experiment_by_name("nas-harness")
    key = RunInfo(run_id, out, TrackerSettings()).key
    return c, c.search_runs([exp.experiment_id], filter_string=f"tags.harness_run_key = '{key}'")


def need(*packages: str) -> None:
    for p in packages:
        pytest.importorskip(p, reason=f"the track extra ({p}) is not installed")


# ------------------------------------------------------------------------------------------ choosing trackers


def test_names_unknown_and_missing_packages_are_one_error_line(monkeypatch, tmp_path, capsys):
    assert parse_names(["tensorboard,wandb", "mlflow", "wandb"]) == ["tensorboard", "wandb", "mlflow"]
    assert parse_names(["none"]) == [] and parse_names([]) == []
    for bad, needle in ((["nope"], "unknown tracker 'nope'"), (["none,wandb"], "cannot be combined")):
        with pytest.raises(ConfigError, match=needle) as exc:
            parse_names(bad)
        assert "\n" not in str(exc.value)
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"\.\[track\]"):
        require(["wandb"])
    rc = main(
        ["search", "--space", "nb201", "--method", "gdas", "--profile", str(TINY), "--out", str(tmp_path / "o")]
        + ["--tracker", "wandb"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: --tracker wandb") and "[track]" in err[0]
    assert not (tmp_path / "o").exists()  # nothing written


def test_search_reproduce_evaluate_and_hypergrad_take_the_tracker_flags(tmp_path, capsys):
    from harness.cli import build_parser

    flags = ["--tracker", "tensorboard,mlflow", "--tracker", "wandb", "--mlflow-uri", "sqlite:///x.db"]
    for argv in (
        ["search", "--space", "nb201", "--method", "gdas", "--out", "o"],
        ["reproduce", "--out", "o"],
        ["evaluate", "--genotype", "DARTS_V2", "--out", "o"],
        ["hypergrad", "--out", "o"],
    ):
        args = build_parser().parse_args(argv + flags)
        assert parse_names(args.tracker) == ["tensorboard", "mlflow", "wandb"] and args.mlflow_uri == "sqlite:///x.db"
        assert build_parser().parse_args(argv).tracker == []  # default: none
    rc = main(["reproduce", "--profile", str(TINY), "--out", str(tmp_path / "r"), "--tracker", "tensorbored"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [err[0]] and err[0].startswith("error: unknown tracker 'tensorbored'")
    assert not (tmp_path / "r").exists()


def test_settings_come_from_the_command_line_or_the_profile(monkeypatch, tmp_path, capsys):
    need("tensorboard")

    class Args:
        tracker: List[str] = []
        mlflow_uri = None

    assert settings_from_args(Args(), {"trackers": ["tensorboard"]}).names == ("tensorboard",)
    Args.tracker = ["none"]  # the command line wins over the profile
    assert not settings_from_args(Args(), {"trackers": ["tensorboard", "mlflow"], "mlflow_uri": "sqlite:///x.db"})
    Args.tracker = []
    with pytest.raises(ConfigError, match="trackers must be a list"):
        settings_from_args(Args(), {"name": "p", "trackers": {"tensorboard": 1}})
    Args.tracker, Args.mlflow_uri = ["tensorboard"], "http://127.0.0.1:1"
    with pytest.raises(ConfigError, match="needs --tracker mlflow"):
        settings_from_args(Args(), {})
    need("wandb")
    Args.tracker, Args.mlflow_uri = ["wandb"], None
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_MODE", "online")  # asked online, but no login here: offline, one warning line
    assert settings_from_args(Args(), {}).wandb_mode == "offline"
    assert "warning: tracker wandb" in capsys.readouterr().err
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert settings_from_args(Args(), {}).wandb_mode == "online"


def test_a_failing_tracker_is_one_warning_and_the_others_go_on(capsys):
    seen: List[str] = []

    class Good(Tracker):
        name = "good"

        def open(self, record):
            return -1

        def log_epoch(self, record, entry, image):
            seen.append(f"good{entry['epoch']}")

    class Bad(Good):
        name = "bad"

        def log_epoch(self, record, entry, image):
            raise OSError(28, "No space left on device")

    tset = TrackerSet([Bad(None), Good(None)])  # type: ignore[arg-type]
    record: Dict[str, Any] = {"epochs": []}
    tset.open(record)
    for epoch in range(3):
        tset.epoch(record, {"epoch": epoch, "train_loss": 1.0})
    tset.close(record)
    lines = capsys.readouterr().err.strip().splitlines()
    assert seen == ["good0", "good1", "good2"]
    assert len(lines) == 1 and lines[0].startswith("warning: tracker bad: OSError") and "run goes on" in lines[0]


def test_the_run_factory_carries_the_settings_to_any_worker():
    settings = TrackerSettings(names=("tensorboard", "mlflow"), mlflow_uri="http://127.0.0.1:5000")
    assert wrap(make_run, TrackerSettings()) is make_run  # no tracker: the factory itself
    factory = pickle.loads(pickle.dumps(wrap(make_run, settings)))  # how the pool, Ray and submitit ship it
    assert isinstance(factory, with_trackers) and factory.settings == settings and factory.make_run is make_run


def test_scalars_are_the_entry_numbers_flattened():
    entry = {
        "epoch": 2,
        "lr": 0.1,
        "tau": 9.0,
        "alpha_steps": True,
        "arch": "|x|",
        "alpha_probs": {"alpha": [[0.5, 0.5]]},
        "arch_info": {"index": 7, "benchmark": {"cifar10_test_200ep": 90.5}, "benchmark_source": "t"},
        "hooks": {"h": {"cos": 0.5, "nan": float("nan")}},
        "epoch_seconds": 2.0,
        "iterations": 4,
    }
    assert scalars(entry) == {
        "lr": 0.1,
        "tau": 9.0,
        "alpha_steps": 1.0,
        "arch_info/index": 7.0,
        "arch_info/benchmark/cifar10_test_200ep": 90.5,
        "hooks/h/cos": 0.5,
        "epoch_seconds": 2.0,
        "iterations": 4.0,
        "seconds_per_iteration": 0.5,
    }


# ------------------------------------------------------------------------------------------ a tiny search, read back


def test_every_epoch_reaches_all_three_trackers(shared_data, tmp_path, mlflow_server):
    need("tensorboard", "wandb", "mlflow")
    cfg = tiny_cfg(epochs=3)
    out = tmp_path / "out"
    settings = TrackerSettings(names=("tensorboard", "wandb", "mlflow"), mlflow_uri=mlflow_server.uri)
    [summary] = run_matrix([cfg], out, shared_data, "cpu", executor_options={"trackers": settings})
    rec = records.read_record(out / "records" / f"{summary['run_id']}.json")
    assert rec["status"] == "ok" and len(rec["epochs"]) == 3
    # an observer: the config, its hash and the run id are an untracked run's
    assert rec["config"] == cfg and rec["config_hash"] == records.config_hash(cfg) and "trackers" not in rec["config"]
    assert rec["provenance"]["attempts"][-1]["trackers"] == ["tensorboard", "wandb", "mlflow"]
    expected = {e["epoch"]: scalars(e) for e in rec["epochs"]}
    assert {"tau", "lr", "train_loss", "val_acc", "seconds_per_iteration"} <= set(expected[0])
    assert "arch_info/benchmark/cifar10_test_200ep" in expected[0]

    tb = tb_events(out)
    for epoch, values in expected.items():
        for key, value in values.items():
            assert [v for s, v in tb[key] if s == epoch] == [value], key  # float64, exactly
        assert [v for s, v in tb["arch"] if s == epoch] == [rec["epochs"][epoch]["arch"]]
        assert [v for s, v in tb["alpha"] if s == epoch] == ["image"]
    assert tb["<hparams>"]
    assert next(iter((out / "tb").rglob("events.*"))).parent.name == rec["run_id"]

    [wb] = wandb_history(out)["runs"]
    assert wb["run"]["name"] == rec["run_id"] and wb["run"]["group"] == "nb201/gdas/default"
    assert "seed=0" in wb["run"]["tags"] and wb["config"]["config_hash"] == rec["config_hash"]
    assert sorted(wb["rows"]) == [0, 1, 2]
    for epoch, values in expected.items():
        row = wb["rows"][epoch]
        assert {k: row[k] for k in values} == values
        assert row["arch"] == rec["epochs"][epoch]["arch"] and row["alpha/_type"] == "image-file"
        assert (wb["folder"] / "files" / row["alpha/path"]).is_file()  # the heat-map PNG

    c, [run] = mlflow_runs_of(mlflow_server.uri, rec["run_id"], out)
    assert run.info.status == "FINISHED" and run.info.run_name == rec["run_id"]
    assert run.data.params["config_hash"] == rec["config_hash"] and run.data.tags["scale"] == rec["scale"]
    assert run.data.tags["group"] == "nb201/gdas/default" and run.data.tags["arch"] == rec["epochs"][-1]["arch"]
    for key in set().union(*expected.values()):  # hook results: on the epochs their hook ran
        history = {m.step: m.value for m in c.get_metric_history(run.info.run_id, key)}
        assert history == {e: v[key] for e, v in expected.items() if key in v}, key
    arch0 = Path(c.download_artifacts(run.info.run_id, "arch/epoch_000.txt", str(tmp_path))).read_text()
    assert arch0 == rec["epochs"][0]["arch"]


def test_an_evaluation_run_logs_through_its_profile_trackers(shared_data, tmp_path):
    """``evaluate`` with the tracker from the profile's top-level ``trackers`` (no flag): the epoch entries of an
    evaluation run (no α, no cell) reach TensorBoard through the local executor."""
    need("tensorboard")
    import yaml

    from tests.test_evaluate import TINY as RECIPE

    prof = {
        "name": "tiny-eval",
        "scale": "smoke",
        "seeds": [0],
        "parts": [{"space": "darts", "methods": ["darts-1st"]}],
    }
    prof.update(evaluate={**RECIPE, "n_train": 100, "n_test": 50}, trackers=["tensorboard"])
    path = tmp_path / "tiny-eval.yaml"
    path.write_text(yaml.safe_dump(prof))
    out = tmp_path / "out"
    argv = ["evaluate", "--genotype", "DARTS_V2", "--space", "darts", "--profile", str(path), "--out", str(out)]
    assert main(argv + ["--device", "cpu", "--data-dir", str(shared_data)]) == 0
    [path] = (out / "records").glob("*.json")
    rec = records.read_record(path)
    assert rec["kind"] == "evaluation" and rec["provenance"]["attempts"][-1]["trackers"] == ["tensorboard"]
    tb = tb_events(out)
    for entry in rec["epochs"]:
        assert [v for s, v in tb["test_acc"] if s == entry["epoch"]] == [entry["test_acc"]]
        assert [v for s, v in tb["lr"] if s == entry["epoch"]] == [entry["lr"]]
    assert "alpha" not in tb and "arch" not in tb


def test_a_resumed_run_continues_its_tracker_runs(shared_data, tmp_path, mlflow_server, monkeypatch):
    need("tensorboard", "wandb", "mlflow")
    cfg = tiny_cfg(epochs=4)
    out = tmp_path / "out"
    settings = TrackerSettings(names=("tensorboard", "wandb", "mlflow"), mlflow_uri=mlflow_server.uri)
    real = SearchRun.before_epoch

    def interrupt(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        real(self, epoch)

    def go():
        run = SearchRun(cfg, out, shared_data, torch.device("cpu"))
        run.trackers = settings
        return run.run()

    monkeypatch.setattr(SearchRun, "before_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        go()
    monkeypatch.setattr(SearchRun, "before_epoch", real)
    rec = go()
    assert rec["status"] == "ok" and [e["epoch"] for e in rec["epochs"]] == [0, 1, 2, 3]
    assert [a["first_epoch"] for a in rec["provenance"]["attempts"]] == [0, 2]

    tb = tb_events(out)  # one folder, two event files, every epoch once
    assert len(list((out / "tb").rglob("events.*"))) == 2
    assert sorted(s for s, _ in tb["train_loss"]) == [0, 1, 2, 3]
    assert [v for _, v in sorted(tb["train_loss"])] == [pytest.approx(e["train_loss"]) for e in rec["epochs"]]

    c, [run] = mlflow_runs_of(mlflow_server.uri, rec["run_id"], out)  # one MLflow run, found again on resume
    steps = sorted(m.step for m in c.get_metric_history(run.info.run_id, "train_loss"))
    assert steps == [0, 1, 2, 3] and run.info.status == "FINISHED"  # no epoch twice

    runs = wandb_history(out)["runs"]  # offline: a folder per attempt, one W&B id, every epoch once
    assert len(runs) == 2 and runs[0]["run"]["id"] == runs[1]["run"]["id"]
    logged = sorted(s for r in runs for s in r["rows"])
    assert logged == [0, 1, 2, 3]


def test_a_server_stopped_mid_run_is_a_warning_and_the_record_is_complete(shared_data, tmp_path, mlflow_server, capsys):
    """Runs last in this module: it stops the module's server."""
    need("mlflow")
    cfg = tiny_cfg(epochs=3)
    out = tmp_path / "out"
    run = SearchRun(cfg, out, shared_data, torch.device("cpu"), progress=lambda ev: None)
    run.trackers = TrackerSettings(names=("mlflow",), mlflow_uri=mlflow_server.uri)
    real = run.before_epoch

    def stop_after_first(epoch):
        if epoch == 1:
            mlflow_server.stop()  # epoch 0 is logged; the server goes down
        real(epoch)

    run.before_epoch = stop_after_first  # type: ignore[method-assign]
    t0 = time.perf_counter()
    rec = run.run()
    seconds = time.perf_counter() - t0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert rec["status"] == "ok" and [e["epoch"] for e in rec["epochs"]] == [0, 1, 2]
    assert records.read_record(out / "records" / f"{rec['run_id']}.json") == rec
    assert len(err) == 1 and err[0].startswith("warning: tracker mlflow:") and "run goes on" in err[0]
    assert seconds < 60  # never blocked on the dead server
