"""The command line, end to end, in subprocesses (as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.records_compare import read_records, strip_volatile

REPO = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def harness(*args, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_list():
    out = harness("list")
    assert out.returncode == 0
    for name in ("milenas", "darts-1st", "darts-2nd", "gdas", "single-level", "nb201", "darts", "smoke", "paper"):
        assert name in out.stdout


def test_nb201_lookup_all_skip_cell(shared_data):
    out = harness("nb201", "lookup", ALL_SKIP)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["index"] == 1835 and info["arch"] == ALL_SKIP
    assert info["benchmark"]["cifar10_test_200ep"] == pytest.approx(54.2967)
    assert info["benchmark"]["cifar100_test_200ep"] == pytest.approx(15.6067)
    assert info["benchmark"]["imagenet16_120_test_200ep"] == pytest.approx(16.3222)
    by_index = json.loads(harness("nb201", "lookup", "1835").stdout)
    assert by_index["arch"] == ALL_SKIP


def test_darts_params():
    out = harness("darts", "params", "DARTS_V2")
    assert out.returncode == 0 and out.stdout.startswith("3.349342 M")
    text = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
        "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
        "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
    )
    assert harness("darts", "params", text).stdout.startswith("3.349342 M")
    imagenet = harness("darts", "params", "DARTS_V2", "--C", "48", "--layers", "14", "--classes", "1000")
    assert imagenet.returncode == 0


def test_search_then_no_recompute(shared_data, tmp_path):
    out = harness(
        "search", "--space", "nb201", "--method", "milenas", "--seed", "0", "--profile", TINY, "--out", tmp_path
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok" and summary["arch"].startswith("|")
    assert summary["dataset"] == "CIFAR-10 (JPEG q75 copy)" and summary["scale"] == "smoke"
    assert "epoch 2/2" in out.stderr  # progress display
    rec = json.loads((tmp_path / "records" / "nb201__milenas__s0.json").read_text())
    again = harness(
        "search", "--space", "nb201", "--method", "milenas", "--seed", "0", "--profile", TINY, "--out", tmp_path
    )
    assert again.returncode == 0 and "already finished" in again.stderr
    assert json.loads((tmp_path / "records" / "nb201__milenas__s0.json").read_text()) == rec


def test_reproduce_tiny_profile_with_workers_and_report(shared_data, tmp_path):
    out = harness("reproduce", "--profile", TINY, "--out", tmp_path, "--workers", "2")
    assert out.returncode == 0, out.stderr
    recs = sorted(p.name for p in (tmp_path / "records").glob("*.json"))
    assert recs == ["darts__gdas__s0.json", "nb201__darts-1st__s0.json", "nb201__milenas__s0.json"]
    for name in ("report.html", "report.pdf", "report.md"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    md = (tmp_path / "report" / "report.md").read_text()
    assert "SMOKE SCALE" in md and "MiLeNAS" in md and "CIFAR-10 (JPEG q75 copy)" in md
    manifest = json.loads((tmp_path / "runs.json").read_text())
    assert len(manifest["runs"]) == 3
    # a pool of one-thread workers writes the records one in-process worker with 1 thread writes (CI runs the
    # smoke profile with 2 workers against a baseline recorded in-process): only the thread count sets the rounding
    inproc = harness(
        "reproduce", "--profile", TINY, "--out", tmp_path / "inproc", "--workers", "1", "--threads", "1", "--no-report"
    )
    assert inproc.returncode == 0, inproc.stderr
    pool, one = read_records(tmp_path), read_records(tmp_path / "inproc")
    assert strip_volatile(pool) == strip_volatile(one)


@pytest.mark.slow
def test_reproduce_smoke_profile(shared_data, tmp_path):
    """The CI job itself: every method on both spaces; about 4 minutes on 2 cores."""
    out = harness("reproduce", "--profile", "smoke", "--out", tmp_path, timeout=1200)
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "records").glob("*.json"))) == 10
    assert (tmp_path / "report" / "report.pdf").is_file()


@pytest.mark.slow
def test_search_compile_end_to_end(shared_data, tmp_path):
    """``search --compile`` through the real command: the torch.compile warm-up is recorded apart
    (``compile_seconds``, not inside ``search_seconds`` or any epoch's seconds), the record lists the
    deviation, and the run's numbers match an eager run of the same seed closely (the compiled graph
    fuses kernels, so bit-identity is not expected)."""
    eager, comp = tmp_path / "eager", tmp_path / "comp"
    for out, extra in ((eager, ()), (comp, ("--compile",))):
        res = harness(
            "search",
            "--space",
            "nb201",
            "--method",
            "darts-1st",
            "--seed",
            "0",
            "--profile",
            TINY,
            "--out",
            out,
            *extra,
            timeout=1800,
        )
        assert res.returncode == 0, res.stderr
    e = json.loads((eager / "records" / "nb201__darts-1st__s0.json").read_text())
    c = json.loads((comp / "records" / "nb201__darts-1st__s0.json").read_text())
    assert c["config"]["speed"]["compile"] is True and e["config"]["speed"]["compile"] is False
    assert any("speed.compile=true" in d for d in c["deviations"])
    assert "compile_seconds" not in e["final"]
    warm = c["final"]["compile_seconds"]
    assert warm > 0 and warm == pytest.approx(sum(ep.get("compile_seconds") or 0.0 for ep in c["epochs"]))
    # the warm-up happens once (shapes cached for the next epoch) and outside the timed loop
    assert c["epochs"][0]["compile_seconds"] == warm and all(ep["compile_seconds"] == 0.0 for ep in c["epochs"][1:])
    assert c["final"]["search_seconds"] == pytest.approx(sum(ep["epoch_seconds"] for ep in c["epochs"]))
    for ep_e, ep_c in zip(e["epochs"], c["epochs"]):
        assert ep_c["train_loss"] == pytest.approx(ep_e["train_loss"], rel=1e-3)
