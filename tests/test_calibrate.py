"""``harness calibrate``: measured on CPU, written with provenance, read back by ``plan``."""

from __future__ import annotations

import json

import pytest
import torch

from harness import config as C
from harness import plan as P
from harness.calibrate import AtenOpCounter, calibrate, one_per_variant, write_calibration


@pytest.fixture(scope="module")
def tiny_configs():
    prof = C.load_profile("smoke")
    over = {"data.n_train": 40, "data.n_val": 40, "data.n_eval": 20, "data.image_size": 8, "data.batch_size": 8}
    return C.expand_profile(prof, spaces=["nb201"], methods=["darts-1st", "gdas"], overrides=over)


def test_calibration_file_is_read_by_plan(tiny_configs, tmp_path):
    doc = calibrate(
        tiny_configs, torch.device("cpu"), warmup=1, iterations=2, profile="smoke", progress=lambda line: None
    )
    assert doc["schema"] == "harness.calibration/1"
    ((kind, info),) = doc["device_kinds"].items()
    assert kind.startswith("cpu: ") and info["provenance"]["versions"]["torch"] == torch.__version__
    assert {m["method"] for m in doc["measurements"]} == {"darts-1st", "gdas"}
    for m in doc["measurements"]:
        assert m["seconds_per_iteration"] > 0 and m["timed_iterations"] == 2
        assert m["aten_ops_per_iteration"] > 100 and m["peak_memory_mb"]["peak_rss_mb"] > 0
    path = write_calibration(doc, tmp_path / "cal.json")
    rows = P.load_calibration(path)
    est = P.estimate(tiny_configs[:1], rows)
    (per,) = est["runs"][0]["estimates"].values()
    assert per["seconds_per_iteration"] == pytest.approx(
        json.loads(path.read_text())["measurements"][0]["seconds_per_iteration"]
    )


def test_one_config_per_variant_whatever_the_seeds(tiny_configs):
    more = [dict(c, seed=s) for c in tiny_configs for s in (0, 1)]
    assert len(one_per_variant(more)) == len(one_per_variant(tiny_configs)) == 2


def test_aten_op_counter_counts_dispatched_ops():
    x = torch.ones(3)
    with AtenOpCounter() as counter:
        (x + 1).mul(2).sum()
    assert counter.count == 3
