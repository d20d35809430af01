"""`python -m harness plan`: iterations per run from the resolved config, seconds per iteration from
records and the shipped calibration table, per device kind; "no measurement" where there is none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import config as C
from harness import records
from harness.cli import main
from harness.plan import CALIBRATION, device_kind, estimate, iterations, load_calibration, measurements_from_runs


def _paper(space="nb201", method="darts-1st", seed=0):
    prof = C.load_profile("paper")
    return C.resolve(space, method, seed, prof, C.find_part(prof, space))


def _fake_record(folder: Path, cfg, device: str, spi: float, status: str = "ok", seed: int = 0) -> None:
    rid = f"{cfg['space']}__{cfg['method']}__s{seed}"
    rec = {
        "schema": records.SCHEMA,
        "kind": "search",
        "run_id": rid,
        "status": status,
        "config": cfg,
        "provenance": {"device": device},
        "epochs": [],
        "final": {"seconds_per_iteration_steady": spi, "seconds_per_iteration": spi * 1.1} if status == "ok" else None,
    }
    records.write_record(folder / "records" / f"{rid}.json", rec)


def test_iterations_from_the_resolved_config():
    assert iterations(_paper()) == {"epochs": 50, "steps_per_epoch": 391, "iterations": 19550}  # 25k / 64
    assert iterations(_paper(method="gdas"))["iterations"] == 250 * 391
    smoke = C.load_profile("smoke")
    cfg = C.resolve("nb201", "milenas", 0, smoke, C.find_part(smoke, "nb201"))
    assert iterations(cfg) == {"epochs": 3, "steps_per_epoch": 10, "iterations": 30}  # 640 / 64
    cfg["max_steps_per_epoch"] = 4
    assert iterations(cfg)["iterations"] == 12


def test_device_kinds():
    assert device_kind("cpu: AMD EPYC (2 cores), 2 torch thread(s)") == "cpu: AMD EPYC, 2 threads"
    assert device_kind("cpu: Intel Xeon (8 cores), 1 torch thread(s)") == "cpu: Intel Xeon, 1 thread"
    assert device_kind("cuda: NVIDIA A100-SXM4-80GB (79 GiB), CUDA 12.8") == "cuda: NVIDIA A100-SXM4-80GB"


def test_shipped_calibration_covers_the_paper_matrix_on_the_measured_cpu():
    doc = json.loads(CALIBRATION.read_text())
    assert "CPU step-cost measurements (2026-11)" in json.dumps(doc["device_kinds"])  # provenance stated in the file
    est = estimate(C.expand_profile(C.load_profile("paper")), load_calibration())
    assert est["device_kinds"] == ["cpu: AMD EPYC, 2 threads"]
    cpu = "cpu: AMD EPYC, 2 threads"
    by_id = {r["run_id"]: r for r in est["runs"]}
    assert len(by_id) == 35 and all(r["estimates"][cpu] for r in est["runs"])
    # NB201 C16 N5 32px DARTS-1st: 2.547 s/it (data/calibration/seconds_per_iteration.json) x 19550 iterations
    assert by_id["nb201__darts-1st__s0"]["estimates"][cpu]["hours"] == pytest.approx(19550 * 2.547 / 3600)
    # DARTS space C16 L8 32px DARTS-2nd: 38.969 s/it x 1.2 (real-loop factor)
    assert by_id["darts__darts-2nd__s0"]["estimates"][cpu]["hours"] == pytest.approx(
        19550 * 38.969 * 1.2 / 3600, rel=1e-3
    )
    assert est["totals"][cpu]["hours"] == pytest.approx(sum(r["estimates"][cpu]["hours"] for r in est["runs"]))


def test_records_give_measurements_that_win_over_the_table(tmp_path):
    runs = tmp_path / "runs" / "gpu"
    a100 = "cuda: NVIDIA A100-SXM4-80GB (79 GiB), CUDA 12.8"
    _fake_record(runs, _paper(), a100, 0.10, seed=0)
    _fake_record(runs, _paper(), a100, 0.30, seed=1)
    _fake_record(runs, _paper(), a100, 0.20, seed=2)
    _fake_record(runs, _paper(method="milenas"), a100, 9.0, status="failed")  # not a measurement
    _fake_record(runs, _paper(method="gdas"), "cpu: AMD EPYC (2 cores), 2 torch thread(s)", 1.0)
    ms = measurements_from_runs([runs])
    gpu = [m for m in ms if m["device_kind"] == "cuda: NVIDIA A100-SXM4-80GB"]
    assert len(gpu) == 1 and gpu[0]["seconds_per_iteration"] == pytest.approx(0.20) and gpu[0]["n"] == 3
    est = estimate(C.expand_profile(C.load_profile("paper"), spaces=["nb201"]), ms + load_calibration())
    by_id = {r["run_id"]: r for r in est["runs"]}
    g, cpu = "cuda: NVIDIA A100-SXM4-80GB", "cpu: AMD EPYC, 2 threads"
    assert by_id["nb201__darts-1st__s2"]["estimates"][g]["hours"] == pytest.approx(19550 * 0.2 / 3600)
    assert by_id["nb201__milenas__s0"]["estimates"][g] is None  # no measurement
    assert by_id["nb201__gdas__s0"]["estimates"][cpu]["seconds_per_iteration"] == 1.0  # the record, not 0.490
    assert est["totals"][g] == {"hours": pytest.approx(3 * 19550 * 0.2 / 3600), "runs_estimated": 3, "runs_without": 12}


def test_plan_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/*/records here: the shipped table only
    assert main(["plan", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "35 search run(s)" in out and "darts__single-level__s3" in out
    assert "[1] cpu: AMD EPYC, 2 threads: total" in out and "hours for 35 run(s)" in out
    assert "no measurement on a GPU" in out

    runs = tmp_path / "runs" / "a100"
    _fake_record(runs, _paper(), "cuda: NVIDIA A100-SXM4-80GB (79 GiB), CUDA 12.8", 0.25)
    assert main(["plan", "--profile", "paper", "--spaces", "nb201", "--no-calibration"]) == 0  # finds runs/*/records
    out = capsys.readouterr().out
    assert "[1] cuda: NVIDIA A100-SXM4-80GB: total 4.1 hours for 3 run(s); no measurement for 12 run(s)" in out
    assert "no measurement" in out.split("nb201__gdas__s0")[1].splitlines()[0]
    assert "no measurement on a GPU" not in out

    assert main(["plan", "--profile", "paper", "--json", "--from-runs", str(runs)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["profile"] == "paper" and len(doc["runs"]) == 35 and doc["total_iterations"] == 1231650
    assert set(doc["device_kinds"]) == {"cpu: AMD EPYC, 2 threads", "cuda: NVIDIA A100-SXM4-80GB"}


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["plan", "--profile", "nope"], "unknown profile 'nope'"),
        (["plan", "--from-runs", "/no/such/folder"], "--from-runs /no/such/folder: no such folder"),
        (["plan", "--methods", "darts-3rd"], "darts-3rd"),
    ],
)
def test_plan_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_the_size_key_names_the_dimensions_the_space_cost_model_asks_for():
    from harness.plan import size_key
    from harness.registry import get_space

    cfg = {"C": 16, "N": 5, "layers": 8, "affine": False}
    assert get_space("nb201").cost_model_keys == ("C", "N")
    assert size_key("nb201", "milenas", cfg, 32, 64) == "nb201 milenas (C=16, N=5, 32px, batch 64)"
    assert size_key("darts", "milenas", cfg, 32, 64) == "darts milenas (C=16, layers=8, 32px, batch 64)"
    # a space the registry does not know (an old calibration entry): every scalar key, sorted
    assert size_key("toy", "m", {"b": 2, "a": "x", "skip": [1]}, 8, 4) == "toy m (a=x, b=2, 8px, batch 4)"
