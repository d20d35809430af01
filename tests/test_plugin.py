"""A method from outside the repository: the example plugin (examples/harness-plugin-example, docs/plugins.md)
installed into a temporary folder and run end to end through the command line, as its author would.

The package is installed with ``pip install --no-deps --no-build-isolation --no-index --target TMP`` (offline,
nothing written into the shared environment or the repository) and found through ``PYTHONPATH``: its
``harness.plugins`` entry point registers ``darts-1st-noisy``, its ``harness.protocols`` entry point supplies
its protocol rows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.records import config_hash

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "harness-plugin-example"
METHOD = "darts-1st-noisy"
TINY = {
    "name": "tiny-plugin",
    "scale": "smoke",
    "seeds": [0],
    "parts": [
        {
            "space": "nb201",
            "methods": ["darts-1st"],
            "data": {"n_train": 40, "n_val": 40, "image_size": 8},
            "supernet": {"C": 4, "N": 1},
            "epochs": 1,
            "max_steps_per_epoch": 2,
        }
    ],
}


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """(site folder holding the installed plugin, a tiny profile file)."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--target",
            str(root / "site"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    profile = root / "tiny.yaml"
    profile.write_text(yaml.safe_dump(TINY))
    return root / "site", profile


def harness(site: Path, *args):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    }
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _record(out: Path, seed: int = 0, variant: str = "") -> dict:
    return json.loads((out / "records" / f"nb201__{METHOD}{variant}__s{seed}.json").read_text())


def test_list_shows_the_plugin_method(plugin):
    site, _ = plugin
    out = harness(site, "list")
    assert out.returncode == 0, out.stderr
    assert METHOD in out.stdout


def test_the_plugin_method_runs_with_its_own_protocol_rows(plugin, shared_data, tmp_path):
    site, profile = plugin
    out = tmp_path / "search"
    proc = harness(
        site,
        "search",
        "--space",
        "nb201",
        "--method",
        METHOD,
        "--profile",
        profile,
        "--out",
        out,
        "--variant",
        "sigma=1e-1",
        "--set",
        "optim.a_lr=1e-3",
    )
    assert proc.returncode == 0, proc.stderr
    rec = _record(out, variant="-sigma0.1")
    cfg = rec["config"]
    # its own row (noisy_darts/protocols/nb201.yaml): w_first as DARTS-1st's row, not the default alpha_first
    assert cfg["method_cfg"] == {"order": "w_first", "zero_grad": "zero", "sigma": 0.1}
    assert cfg["optim"]["a_lr"] == 0.001 and cfg["variant"] == {"sigma": 0.1}
    prov = cfg["protocol_provenance"]
    assert prov["method_row"] == {"package": "harness-plugin-example", "file": "noisy_darts/protocols/nb201.yaml"}
    assert prov["settings"] == {"package": "milenas-harness", "file": "harness/protocols/nb201.yaml"}
    text = " | ".join(cfg["deviations"])
    assert "noisy_darts/protocols/nb201.yaml (harness-plugin-example)" in text
    assert "no NAS-Bench-201 reference implementation" in text and "optim.a_lr=0.001" in text


def test_reproduce_adds_the_plugin_method_and_the_report_shows_it(plugin, shared_data, tmp_path):
    site, profile = plugin
    out = tmp_path / "matrix"
    proc = harness(
        site, "reproduce", "--profile", profile, "--methods", METHOD, "--out", out, "--workers", "1", "--no-report"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "records").glob("*.json")) == [f"nb201__{METHOD}__s0.json"]
    rec = _record(out)
    # the default sigma is in the resolved config, hence in its hash
    assert rec["config"]["method_cfg"]["sigma"] == 0.01
    assert rec["config_hash"] == config_hash(rec["config"])
    assert (
        config_hash({**rec["config"], "method_cfg": {**rec["config"]["method_cfg"], "sigma": 0.02}})
        != rec["config_hash"]
    )
    proc = harness(site, "report", out)
    assert proc.returncode == 0, proc.stderr
    md = (out / "report" / "report.md").read_text()
    label = "DARTS (1st order, noisy α-gradient)"
    rows = [ln for ln in md.splitlines() if ln.startswith(f"| {label} |")]
    assert rows and all("missing" not in ln for ln in rows)
    assert not [ln for ln in md.splitlines() if "missing" in ln and label in ln]


def test_an_extra_method_is_never_expected(plugin):
    site, _ = plugin
    code = (
        "from reports.runs import expected_methods; from harness.registry import get_method; "
        f"print(get_method({METHOD!r}).role, {METHOD!r} in expected_methods('nb201') + expected_methods('darts'))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["extra", "False"]
