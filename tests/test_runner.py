"""The search loop: records, determinism, resume from a checkpoint, failure recording."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from harness import config as C
from harness import records
from harness.runner import SearchRun, plan, steady_seconds_per_iteration
from tests.fixtures.records_compare import strip_volatile

TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"


def tiny_cfg(space="nb201", method="milenas", seed=0, **over):
    prof = C.load_profile(TINY)
    return C.resolve(space, method, seed, prof, C.find_part(prof, space), over)


@pytest.fixture
def run_tiny(shared_data, tmp_path):
    def go(cfg, out):
        return SearchRun(cfg, tmp_path / out, shared_data, torch.device("cpu")).run()

    return go


def test_record_has_the_documented_fields(run_tiny, tmp_path):
    rec = run_tiny(tiny_cfg(), "a")
    assert rec["status"] == "ok" and rec["schema"] == records.SCHEMA
    assert (tmp_path / "a" / "records" / "nb201__milenas__s0.json").is_file()
    assert not (tmp_path / "a" / "checkpoints" / "nb201__milenas__s0.pt").exists()
    assert len(rec["epochs"]) == 2
    e = rec["epochs"][-1]
    for key in (
        "lr",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "arch",
        "arch_info",
        "alpha_probs",
        "epoch_seconds",
        "iterations",
        "search_val_batch_acc",
    ):
        assert key in e
    assert e["arch_info"]["index"] >= 0 and e["arch_info"]["benchmark"]["cifar10_test_200ep"] > 0
    prov = rec["provenance"]
    assert prov["dataset"] == "CIFAR-10 (JPEG q75 copy)" and prov["benchmark_source"]
    assert prov["commit"] and prov["versions"]["torch"] and prov["device"].startswith("cpu")
    f = rec["final"]
    assert f["iterations"] == 8 and f["search_seconds"] > 0 and f["arch"] == e["arch"]
    assert rec["config_hash"] == records.config_hash(rec["config"])


def test_same_seed_same_record(run_tiny):
    a = run_tiny(tiny_cfg(), "a")
    b = run_tiny(tiny_cfg(), "b")
    assert strip_volatile(a) == strip_volatile(b)
    c = run_tiny(tiny_cfg(seed=1), "c")
    assert strip_volatile(c)["epochs"] != strip_volatile(a)["epochs"]


@pytest.mark.parametrize("space,method", [("darts", "gdas"), ("nb201", "darts-1st")])
def test_resume_from_checkpoint_gives_the_same_record(run_tiny, shared_data, tmp_path, space, method):
    # GDAS: zero gradients of ops sampled once carry decay and momentum; NB201 darts-1st: α.grad enters the clip
    cfg = tiny_cfg(space, method, epochs=3)
    full = run_tiny(cfg, "full")
    run = SearchRun(cfg, tmp_path / "part", shared_data, torch.device("cpu"))
    # stop after the first epoch, as a kill would: keep the checkpoint, drop the process
    orig = run.save_checkpoint

    def save_then_die(record, next_epoch, *a):
        orig(record, next_epoch, *a)
        raise KeyboardInterrupt

    run.save_checkpoint = save_then_die
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert run.ckpt_path.is_file()
    assert records.read_record(run.record_path)["status"] == "running"
    resumed = SearchRun(cfg, tmp_path / "part", shared_data, torch.device("cpu")).run()
    assert strip_volatile(resumed) == strip_volatile(full)


def test_failed_run_is_recorded_and_not_rerun(run_tiny, tmp_path, monkeypatch):
    cfg = tiny_cfg()
    monkeypatch.setenv("HARNESS_FAULT_NAN", "nb201__milenas__s0@1")
    rec = run_tiny(cfg, "x")
    assert rec["status"] == "failed" and "non-finite" in rec["failure"]["reason"] and rec["failure"]["epoch"] == 1
    assert len(rec["epochs"]) == 1
    assert plan([cfg], tmp_path / "x") == []
    assert plan([cfg], tmp_path / "x", retry_failed=True) == [cfg]


def test_plan_refuses_a_different_config_under_the_same_run_id(run_tiny, tmp_path):
    cfg = tiny_cfg()
    run_tiny(cfg, "y")
    assert plan([cfg], tmp_path / "y") == []
    other = copy.deepcopy(cfg)
    other["optim"]["w_lr"] = 0.5
    with pytest.raises(C.ConfigError, match="different config"):
        plan([other], tmp_path / "y")


def test_steady_time_skips_the_first_epoch():
    eps = [
        {"epoch_seconds": 10.0, "iterations": 5},
        {"epoch_seconds": 2.0, "iterations": 5},
        {"epoch_seconds": 3.0, "iterations": 5},
    ]
    assert steady_seconds_per_iteration(eps) == pytest.approx(0.5)
    assert steady_seconds_per_iteration(eps[:1]) is None


def test_retry_failed_runs_the_failed_run_again_and_keeps_the_old_record(shared_data, tmp_path, monkeypatch):
    from harness.runner import run_matrix

    cfg = tiny_cfg()
    monkeypatch.setenv("HARNESS_FAULT_NAN", "nb201__milenas__s0@1")
    run_matrix([cfg], tmp_path, shared_data, device="cpu", progress=lambda ev: None)
    assert records.read_record(tmp_path / "records" / "nb201__milenas__s0.json")["status"] == "failed"
    monkeypatch.delenv("HARNESS_FAULT_NAN")
    assert run_matrix([cfg], tmp_path, shared_data, device="cpu", progress=lambda ev: None) == []  # not rerun
    done = run_matrix([cfg], tmp_path, shared_data, device="cpu", retry_failed=True, progress=lambda ev: None)
    assert [d["status"] for d in done] == ["ok"]
    assert records.read_record(tmp_path / "records" / "nb201__milenas__s0.json")["status"] == "ok"
    kept = list((tmp_path / "failed").glob("nb201__milenas__s0.failed-*.json"))
    assert len(kept) == 1 and records.read_record(kept[0])["status"] == "failed"


def _interrupted_after(run, epochs_done: int):
    """Run ``run`` until ``epochs_done`` epochs have their checkpoints, then stop it as a kill would."""
    orig = run.save_checkpoint

    def save_then_maybe_die(record, next_epoch, *a):
        orig(record, next_epoch, *a)
        if next_epoch >= epochs_done:
            raise KeyboardInterrupt

    run.save_checkpoint = save_then_maybe_die
    with pytest.raises(KeyboardInterrupt):
        run.run()


def test_truncated_newest_checkpoint_resumes_from_the_previous_one(run_tiny, shared_data, tmp_path, capsys):
    cfg = tiny_cfg("nb201", "darts-1st", epochs=4)
    full = run_tiny(cfg, "full")
    run = SearchRun(cfg, tmp_path / "part", shared_data, torch.device("cpu"))
    _interrupted_after(run, 3)  # checkpoints before epochs 3 (newest) and 2 (previous)
    newest, previous = run.ckpt_path, run.ckpt_path.with_name(run.ckpt_path.stem + ".prev.pt")
    assert newest.is_file() and previous.is_file()
    newest.write_bytes(newest.read_bytes()[:1000])  # a node's disk or a requeue left half a file
    resumed = SearchRun(cfg, tmp_path / "part", shared_data, torch.device("cpu")).run()
    err = capsys.readouterr().err
    assert f"warning: checkpoint {newest} is unreadable" in err and "resuming from the checkpoint before epoch 2" in err
    (event,) = resumed["events"]
    assert event["action"] == "resumed at epoch 2" and len(list(newest.parent.glob("*.unreadable-*"))) == 1
    assert {k: v for k, v in strip_volatile(resumed).items() if k != "events"} == strip_volatile(full)
    assert not newest.exists() and not previous.exists()  # a finished run keeps no checkpoint
    attempts = resumed["provenance"]["attempts"]
    assert [a["first_epoch"] for a in attempts] == [0, 2] and attempts[1]["device"] == resumed["provenance"]["device"]


def test_cuda_rng_state_is_the_runs_own_gpu_whatever_the_visible_count(monkeypatch):
    """Checkpoints keep one CUDA RNG state (the run's GPU); older ones kept one per visible GPU. Restoring either
    under another GPU count never fails (a Ray/Slurm requeue may see 1 GPU where the first attempt saw 8)."""
    from harness import lifecycle as L

    calls = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda idx: torch.tensor([idx], dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, idx: calls.append((state.tolist(), idx)))
    gen = torch.Generator()
    state = L.rng_states(gen, torch.device("cuda:3"))
    assert state["cuda_rng"].tolist() == [3]  # one state, of the run's device
    L.restore_rng_states(state, gen, torch.device("cuda:3"))
    eight = [torch.tensor([i], dtype=torch.uint8) for i in range(8)]  # an older checkpoint, 8 GPUs visible
    L.restore_rng_states({**state, "cuda_rng": eight}, gen, torch.device("cuda:5"))
    L.restore_rng_states({**state, "cuda_rng": eight[:1]}, gen, torch.device("cuda"))  # now 1 visible
    L.restore_rng_states({**state, "cuda_rng": eight[:1]}, gen, torch.device("cuda:2"))  # index beyond the list
    assert calls == [([3], 3), ([5], 5), ([0], 0), ([0], 2)]
