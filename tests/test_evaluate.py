"""DARTS-space evaluation training (harness.evaluate): recipe config, selection, records, resume."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import eval_recipe as ER
from harness import evaluate as E
from harness import records
from harness import selection as S
from harness.config import load_profile
from harness.errors import ArchFormatError, ConfigError
from harness.spaces.darts import eval_params_millions, parse_genotype

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "recipe": "darts",
    "C": 4,
    "layers": 4,
    "image_size": 16,
    "n_train": 200,
    "n_test": 100,
    "epochs": 2,
    "batch_size": 50,
    "crop_pad": 2,
    "cutout": 8,
    "auxiliary": False,
}


def write_profile(tmp_path: Path, evaluate=None, name="tiny") -> Path:
    prof = {"name": name, "scale": "smoke", "seeds": [0], "parts": [{"space": "darts", "methods": ["darts-1st"]}]}
    if evaluate is not None:
        prof["evaluate"] = evaluate
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(prof))
    return path


def ns(profile, out, genotype="DARTS_V2", from_runs=None, method=None, seed=0, overrides=(), variant=(), run_id=None):
    return argparse.Namespace(
        genotype=None if from_runs else genotype,
        from_runs=from_runs,
        method=method,
        variant=list(variant),
        run_id=run_id,
        space="darts",
        profile=str(profile),
        seed=seed,
        out=Path(out),
        data_dir=None,
        device="cpu",
        overrides=list(overrides),
        download=False,
    )


def strip_times(epochs):
    return [{k: v for k, v in e.items() if k != "epoch_seconds"} for e in epochs]


# ------------------------------------------------------------------------------------------ recipe


def test_repo_profiles_resolve_and_paper_is_the_darts_recipe():
    for name in ("smoke", "cpu", "paper", "gpu-quick"):
        cfg = ER.resolve_eval_config(load_profile(name))
        ER.validate_eval_config(cfg)
    paper = ER.resolve_eval_config(load_profile("paper"))
    assert paper == ER.DARTS_RECIPE
    assert ER.eval_deviations(paper) == []
    assert (paper["epochs"], paper["batch_size"], paper["lr"], paper["lr_min"], paper["cutout"]) == (
        600,
        96,
        0.025,
        0.0,
        16,
    )
    repo = ER.resolve_eval_config(load_profile("paper"), {"recipe": "milenas-repo"})
    assert (repo["batch_size"], repo["lr"], repo["lr_min"]) == (64, 0.03, 0.001)
    assert any("milenas-repo" in d for d in ER.eval_deviations(repo))


def test_lr_and_drop_path_schedules():
    cfg = dict(ER.DARTS_RECIPE)
    assert ER.drop_path_at(cfg, 0) == 0.0
    assert ER.drop_path_at(cfg, 300) == pytest.approx(0.1)
    assert ER.drop_path_at(cfg, 599) == pytest.approx(0.2 * 599 / 600)
    assert ER.lr_at(cfg, 0) == pytest.approx(0.025)
    assert ER.lr_at(cfg, 300) == pytest.approx(0.0125)
    assert ER.lr_at(cfg, 600) == pytest.approx(0.0, abs=1e-12)
    repo = dict(cfg, **ER.RECIPES["milenas-repo"])
    assert ER.lr_at(repo, 300) == pytest.approx(0.001 + 0.029 / 2)


@pytest.mark.parametrize(
    "evaluate, overrides, match",
    [
        (dict(TINY, lr=-1), (), "lr must be positive"),
        (dict(TINY, bogus=1), (), "unknown key"),
        (dict(TINY, recipe="nope"), (), "recipe must be one of"),
        (dict(TINY, auxiliary=True), (), "auxiliary needs 32x32"),
        (dict(TINY, n_train=205), (), "multiple of 10"),
        (TINY, ("cutout=99",), "cutout must be in"),
        (TINY, ("epochs=two",), "epochs must be an integer"),
        (TINY, ("nokey=1",), "unknown key"),
        (None, (), "no 'evaluate:' section"),
    ],
)
def test_bad_config_raises_config_error(tmp_path, evaluate, overrides, match):
    prof = write_profile(tmp_path, evaluate)
    with pytest.raises(ConfigError, match=match):
        E.run_evaluate(ns(prof, tmp_path / "out", overrides=overrides))
    assert not (tmp_path / "out" / "records").exists()


def test_method_without_from_runs_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="only apply with --from-runs"):
        E.run_evaluate(ns(write_profile(tmp_path, TINY), tmp_path / "out", method="milenas"))


def test_malformed_genotype_raises_arch_format_error(tmp_path):
    prof = write_profile(tmp_path, TINY)
    for bad in ("Genotype(normal=[('sep_conv_3x3', 0)]", "NOT_A_ZOO_NAME", "Genotype(normal=[('bad_op', 0)])"):
        with pytest.raises(ArchFormatError):
            E.run_evaluate(ns(prof, tmp_path / "out", genotype=bad))


# ------------------------------------------------------------------------------------------ selection


def _fake_search(
    out: Path,
    method: str,
    seed: int,
    best: float,
    space="darts",
    status="ok",
    arch_best=None,
    variant=None,
    rule="best_val_reference",
):
    """A search record whose run selected epoch 1 (ref_val_acc ``best``) by ``rule``."""
    final_arch = str(parse_genotype("DARTS_V1"))
    epochs = [
        {"epoch": 0, "val_acc": best - 5, "ref_val_acc": best - 6, "arch": final_arch},
        {"epoch": 1, "val_acc": best - 9, "ref_val_acc": best, "arch": arch_best or final_arch},
        {"epoch": 2, "val_acc": best + 1, "ref_val_acc": best - 1, "arch": final_arch},
    ]
    chosen = epochs[1] if rule == "best_val_reference" else epochs[-1]
    variant = variant or {}
    rid = f"{space}__{method}{''.join(f'-{k}{v}' for k, v in variant.items())}__s{seed}"
    records.write_record(
        out / "records" / f"{rid}.json",
        {
            "schema": records.SCHEMA,
            "kind": "search",
            "run_id": rid,
            "label": method,
            "space": space,
            "method": method,
            "variant": variant,
            "seed": seed,
            "status": status,
            "epochs": epochs,
            "final": {
                "arch": chosen["arch"],
                "val_acc": best + 1,
                "best_val_acc": best + 1,
                "selection": {"rule": rule, "epoch": chosen["epoch"]},
            }
            if status == "ok"
            else None,
        },
    )


def test_from_runs_picks_the_best_reference_val_cell_of_method_and_variant(tmp_path):
    runs = tmp_path / "runs"
    v2 = str(parse_genotype("DARTS_V2"))
    _fake_search(runs, "milenas", 0, 60.0)
    _fake_search(runs, "milenas", 1, 70.0, arch_best=v2)
    _fake_search(runs, "milenas", 2, 95.0, variant={"lam": 0.1})  # a λ-sweep run: never the paper's cell
    _fake_search(runs, "darts-1st", 0, 80.0, rule="last")
    _fake_search(runs, "darts-1st", 1, 80.0, rule="last")  # tie with seed 0 -> seed 0 wins
    _fake_search(runs, "gdas", 0, 99.0, space="nb201")  # other space: ignored
    _fake_search(runs, "gdas", 1, 99.0, status="failed")  # failed: ignored

    sel = S.select_from_runs(runs, "milenas")
    assert sel["selected_run"] == "darts__milenas__s1"
    assert sel["best_val_acc"] == 70.0 and sel["arch_epoch"] == 1 and sel["score_metric"] == "ref_val_acc"
    assert parse_genotype(sel["arch"]) == parse_genotype("DARTS_V2")
    assert [c["run_id"] for c in sel["candidates"]] == ["darts__milenas__s1", "darts__milenas__s0"]

    sel = S.select_from_runs(runs, "milenas", {"lam": 0.1})
    assert sel["selected_run"] == "darts__milenas-lam0.1__s2"
    sel = S.select_from_runs(runs, run_id="darts__milenas__s0")
    assert sel["selected_run"] == "darts__milenas__s0"

    sel = S.select_from_runs(runs, "darts-1st")  # rule "last": the last epoch's cell and its accuracy
    assert sel["selected_run"] == "darts__darts-1st__s0" and "tie" in sel["reason"] and sel["best_val_acc"] == 79.0

    prof = write_profile(tmp_path, TINY)
    cfg = E.build_eval_config(ns(prof, tmp_path / "out", from_runs=runs, method="milenas"))
    assert cfg["method"] == "milenas"
    assert cfg["selection"]["selected_run"] == "darts__milenas__s1"
    assert cfg["genotype"] == str(parse_genotype("DARTS_V2"))
    assert cfg["run_id"].startswith("darts__eval__milenas-best-") and cfg["run_id"].endswith("__s0")
    cfg = E.build_eval_config(ns(prof, tmp_path / "out", from_runs=runs, method="milenas", variant=["lam=0.1"]))
    assert cfg["selection"]["selected_run"] == "darts__milenas-lam0.1__s2"
    assert cfg["run_id"].startswith("darts__eval__milenas-lam0.1-best-")

    with pytest.raises(Exception, match="no finished DARTS-space search runs"):
        S.select_from_runs(runs, "single-level")
    with pytest.raises(Exception, match="no finished DARTS-space search run 'nope'"):
        S.select_from_runs(runs, run_id="nope")


# ------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("eval")
    prof = write_profile(tmp, TINY)
    old = os.environ.get("HARNESS_DATA")
    os.environ["HARNESS_DATA"] = str(shared_data)
    try:
        import torch

        torch.set_num_threads(1)
        rec = E.run_evaluate(ns(prof, tmp / "out"))
    finally:
        if old is None:
            os.environ.pop("HARNESS_DATA", None)
        else:
            os.environ["HARNESS_DATA"] = old
    return tmp, prof, rec


def test_end_to_end_record(tiny_run):
    tmp, prof, rec = tiny_run
    path = tmp / "out" / "records" / "darts__eval__DARTS_V2__s0.json"
    assert path.is_file() and not (tmp / "out" / "checkpoints" / "darts__eval__DARTS_V2__s0.pt").exists()
    disk = records.read_record(path)
    assert disk["run_id"] == rec["run_id"] == "darts__eval__DARTS_V2__s0"
    assert disk["kind"] == "evaluation" and disk["status"] == "ok" and disk["failure"] is None
    assert disk["space"] == "darts" and disk["method"] == "given" and disk["scale"] == "smoke"
    assert disk["config_hash"] == records.config_hash(disk["config"])
    assert disk["params_M"] == pytest.approx(eval_params_millions("DARTS_V2", C=4, layers=4), abs=1e-6)
    assert disk["final"]["params_M"] == disk["params_M"]
    assert parse_genotype(disk["genotype"]) == parse_genotype("DARTS_V2")
    assert disk["provenance"]["split"].startswith("CIFAR-10 train (200 images) / test (100 images)")
    assert disk["provenance"]["dataset_sha256"] and disk["provenance"]["image_size"] == 16
    assert any("16x16" in d for d in disk["deviations"]) and any(
        "200 train / 100 test" in d for d in disk["deviations"]
    )
    ep = disk["epochs"]
    assert [e["epoch"] for e in ep] == [0, 1]
    assert [e["drop_path_prob"] for e in ep] == pytest.approx([0.0, 0.1])
    assert [e["lr"] for e in ep] == pytest.approx([0.025, 0.0125])
    assert all(e["steps"] == 4 for e in ep)
    for e in ep:
        for k in ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds"):
            assert isinstance(e[k], float)
        assert 0.0 <= e["test_acc"] <= 100.0
    f = disk["final"]
    assert f["test_acc"] == ep[-1]["test_acc"] and f["test_error"] == pytest.approx(100.0 - f["test_acc"])
    assert f["best_test_acc"] == max(e["test_acc"] for e in ep)
    assert f["train_seconds"] > 0 and f["peak_rss_mb"] > 0


def test_finished_record_is_not_recomputed(tiny_run, monkeypatch):
    tmp, prof, rec = tiny_run
    monkeypatch.setattr(E.EvalRun, "build", lambda self: pytest.fail("finished run recomputed"))
    again = E.run_evaluate(ns(prof, tmp / "out"))
    assert again["finished_at"] == rec["finished_at"] and again["final"] == rec["final"]
    # the same run id with another recipe is refused, not overwritten
    with pytest.raises(ConfigError, match="different config"):
        E.run_evaluate(ns(prof, tmp / "out", overrides=["lr=0.05"]))


def test_resume_from_mid_run_checkpoint_gives_same_numbers(tiny_run, tmp_path, monkeypatch):
    _, prof, full = tiny_run
    out = tmp_path / "out"
    rid = full["run_id"]

    def interrupt(run, epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(E.EvalRun, "before_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        E.run_evaluate(ns(prof, out))
    ckpt = out / "checkpoints" / f"{rid}.pt"
    rec_path = out / "records" / f"{rid}.json"
    partial = records.read_record(rec_path)
    assert ckpt.is_file() and partial["status"] == "running" and len(partial["epochs"]) == 1
    rec_path.unlink()  # only the checkpoint is left
    monkeypatch.setattr(E.EvalRun, "before_epoch", lambda run, epoch: None)
    resumed = E.run_evaluate(ns(prof, out))
    assert resumed["status"] == "ok" and not ckpt.exists()
    assert resumed["final"]["test_acc"] == full["final"]["test_acc"]
    assert strip_times(resumed["epochs"]) == strip_times(full["epochs"])
    # epoch 0 came from the checkpoint, not from a fresh start
    assert resumed["epochs"][0]["epoch_seconds"] == partial["epochs"][0]["epoch_seconds"]
    assert resumed["started_at"] == partial["started_at"]


def test_nan_loss_records_failure(tmp_path, shared_data, monkeypatch):
    prof = write_profile(tmp_path, dict(TINY, epochs=2))
    monkeypatch.setenv("HARNESS_FAULT_NAN", "darts__eval__DARTS_V1__s3@1")
    rec = E.run_evaluate(ns(prof, tmp_path / "out", genotype="DARTS_V1", seed=3))
    assert rec["status"] == "failed" and rec["final"] is None
    assert "non-finite" in rec["failure"]["reason"] and rec["failure"]["epoch"] == 1
    assert records.read_record(tmp_path / "out" / "records" / "darts__eval__DARTS_V1__s3.json")["status"] == "failed"
    assert not (tmp_path / "out" / "checkpoints" / "darts__eval__DARTS_V1__s3.pt").exists()


def test_auxiliary_head_at_32px(tmp_path, shared_data):
    ev = dict(
        TINY, C=4, layers=3, image_size=32, n_train=100, n_test=100, epochs=1, crop_pad=4, cutout=16, auxiliary=True
    )
    prof = write_profile(tmp_path, ev)
    rec = E.run_evaluate(ns(prof, tmp_path / "out", genotype="DARTS_V1"))
    assert rec["status"] == "ok"
    # params_M excludes the auxiliary head (quark0 count_parameters_in_MB)
    assert rec["params_M"] == pytest.approx(eval_params_millions("DARTS_V1", C=4, layers=3), abs=1e-6)
    assert not any("auxiliary" in d for d in rec["deviations"])


def test_cli_evaluate(tmp_path, shared_data):
    prof = write_profile(tmp_path, dict(TINY, epochs=1))
    env = dict(os.environ, HARNESS_DATA=str(shared_data), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "evaluate",
            "--genotype",
            "DARTS_V2",
            "--profile",
            str(prof),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((tmp_path / "out" / "records" / "darts__eval__DARTS_V2__s0.json").read_text())
    assert rec["status"] == "ok" and rec["kind"] == "evaluation" and len(rec["epochs"]) == 1
    assert "epoch 1/1" in proc.stderr

    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "evaluate",
            "--genotype",
            "Genotype(normal=[",
            "--profile",
            str(prof),
            "--out",
            str(tmp_path / "out2"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error:")
