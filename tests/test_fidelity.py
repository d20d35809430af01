"""The fidelity fixes of the review (docs/deviations.md, docs/protocols/darts.md), one test each:
precision policy, GDAS zero_grad semantics, the Fig. 5 GDAS variant, the clip-target deviation,
λ-variant-safe selection (in test_evaluate.py), reference-style cell selection, and --data-dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness import config as C
from harness import paths
from harness.registry import get_method, get_space
from harness.runner import SearchRun
from harness.selection import select_epoch

TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"


def tiny_cfg(space="nb201", method="milenas", seed=0, **over):
    prof = C.load_profile(TINY)
    return C.resolve(space, method, seed, prof, C.find_part(prof, space), over)


# ------------------------------------------------------------------ 1. precision policy


def test_precision_policy_is_applied_and_recorded(shared_data, tmp_path):
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's own default for cuDNN
    torch.backends.cuda.matmul.allow_tf32 = True
    rec = SearchRun(tiny_cfg(), tmp_path / "a", shared_data, torch.device("cpu")).run()
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False
    prec = rec["provenance"]["precision"]
    assert prec["cudnn_allow_tf32"] is False and prec["matmul_allow_tf32"] is False
    assert prec["float32_matmul_precision"] == "highest"
    assert rec["config"]["precision"] == {"allow_tf32": False}
    assert not any("TF32" in d for d in rec["deviations"])

    cfg = tiny_cfg(**{"precision.allow_tf32": True})
    assert any("TF32 allowed" in d for d in cfg["deviations"])
    rec = SearchRun(cfg, tmp_path / "b", shared_data, torch.device("cpu")).run()
    assert rec["provenance"]["precision"]["cudnn_allow_tf32"] is True
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def test_bad_precision_value_is_one_config_error():
    with pytest.raises(C.ConfigError, match="precision.allow_tf32 must be true or false"):
        tiny_cfg(**{"precision.allow_tf32": "yes"})


# ------------------------------------------------------------------ 2. GDAS zero_grad semantics


def _gdas_steps(zero_grad: str, steps: int = 40):
    torch.manual_seed(0)
    profile = {
        "name": "t",
        "scale": "smoke",
        "parts": [{"space": "nb201", "methods": ["gdas"], "data": {"image_size": 16}, "supernet": {"C": 4, "N": 1}}],
    }
    cfg = C.resolve("nb201", "gdas", 0, profile, profile["parts"][0], {"method_cfg.zero_grad": zero_grad})
    net = get_space("nb201")().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    m = get_method("gdas")(net, {**cfg["optim"], **cfg["method_cfg"]}, epochs=2, steps_per_epoch=steps)
    m.on_epoch_start(0)
    g = torch.Generator().manual_seed(1)

    def batch():
        return torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)

    for _ in range(steps):
        m.step(batch(), batch())
    before = [w.detach().clone() for w in net.weights()]
    m.step(batch(), batch())
    moved = [not torch.equal(b, w) for b, w in zip(before, net.weights())]
    return moved, cfg


def test_gdas_keeps_decaying_unsampled_ops_as_pytorch_1x():
    moved, cfg = _gdas_steps("zero")
    assert cfg["method_cfg"].get("zero_grad", "zero") == "zero"
    assert all(moved), f"{moved.count(False)} weight tensors did not move in one more GDAS step"
    moved_none, cfg_none = _gdas_steps("none")
    assert not all(moved_none)  # set_to_none: ops not sampled this step skip decay and momentum
    assert any("zero_grad=none" in d for d in cfg_none["deviations"])


def test_default_zero_grad_is_the_reference_semantics():
    for method in ("gdas", "milenas-gumbel", "darts-1st", "milenas"):
        assert get_method(method).options["zero_grad"].default == "zero"


# ------------------------------------------------------------------ 3. Fig. 5 like for like


def test_fig5_gdas_variant_matches_the_milenas_repo_runs():
    paper = C.load_profile("paper-figures")
    cfgs = {c["method"]: c for c in C.expand_profile(paper, spaces=["darts"])}
    gdas, mg = cfgs["gdas-milenas-repo"], cfgs["milenas-gumbel"]
    for c in (gdas, mg):
        assert c["space_cfg"]["gumbel_scope"] == "cell"
        assert c["method_cfg"]["order"] == "alpha_first"
        assert c["data"]["batch_size"] == 128
        assert (c["method_cfg"]["tau_max"], c["method_cfg"]["tau_min"]) == (10.0, 1.0)
    assert gdas["epochs"] == 250 and mg["epochs"] == 300
    # the plain gdas row stays the AutoDL algorithm: one sample per network, w -> alpha
    plain = C.resolve("darts", "gdas", 0, paper, C.find_part(paper, "darts"))
    assert plain["space_cfg"].get("gumbel_scope", "network") == "network"
    assert plain["method_cfg"]["order"] == "w_first"
    assert get_method("gdas-milenas-repo").label != get_method("gdas").label  # the record says which one ran


# ------------------------------------------------------------------ 4. clip target recorded as a deviation


@pytest.mark.parametrize("method", ["milenas", "single-level", "milenas-gumbel", "gdas-milenas-repo"])
def test_darts_space_clip_target_difference_is_a_recorded_deviation(method):
    prof = C.load_profile("paper")
    cfg = C.resolve("darts", method, 0, prof, C.find_part(prof, "darts"))
    assert cfg["optim"]["grad_clip_target"] == "weights"
    assert any("grad_clip_target=weights" in d and "alphas" in d for d in cfg["deviations"])
    same = C.resolve("darts", method, 0, prof, C.find_part(prof, "darts"), {"optim.grad_clip_target": "alphas"})
    assert not any("reference code uses" in d for d in same["deviations"])
    quark0 = C.resolve("darts", "darts-2nd", 0, prof, C.find_part(prof, "darts"))
    assert not any("grad_clip_target" in d for d in quark0["deviations"])


def test_clip_deviation_reaches_the_record(shared_data, tmp_path):
    rec = SearchRun(tiny_cfg("darts", "gdas-milenas-repo"), tmp_path, shared_data, torch.device("cpu")).run()
    assert rec["status"] == "ok"
    assert any("grad_clip_target" in d for d in rec["deviations"])


# ------------------------------------------------------------------ 6. cell selection


def test_both_val_accuracies_per_epoch_and_the_reference_selection_rule(shared_data, tmp_path):
    cfg = tiny_cfg("nb201", "milenas")
    assert cfg["selection"] == "best_val_reference"  # MiLeNAS §4.1
    assert tiny_cfg("nb201", "darts-1st")["selection"] == "last"  # xautodl: genotypes[epoch] after training
    assert tiny_cfg("darts", "darts-1st")["selection"] == "last_logged"  # quark0 logs at the start of an epoch
    assert tiny_cfg("darts", "darts-2nd")["selection"] == "last_logged"
    rec = SearchRun(cfg, tmp_path, shared_data, torch.device("cpu")).run()
    for e in rec["epochs"]:
        assert 0 <= e["val_acc"] <= 100 and 0 <= e["ref_val_acc"] <= 100
    chosen = max(rec["epochs"], key=lambda e: (e["ref_val_acc"], -e["epoch"]))
    sel = rec["final"]["selection"]
    assert sel == {"rule": "best_val_reference", "epoch": chosen["epoch"], "last_epoch_arch": rec["epochs"][-1]["arch"]}
    assert rec["final"]["arch"] == chosen["arch"]


def test_darts_space_reference_measurement_is_eval_mode_on_augmented_batches(shared_data, tmp_path):
    cfg = tiny_cfg("darts", "gdas")
    assert cfg["data"]["reference_eval_augment"] is True and cfg["selection"] == "last"
    rec = SearchRun(cfg, tmp_path, shared_data, torch.device("cpu")).run()
    e = rec["epochs"][-1]
    # eval mode uses the running BN statistics of a barely trained supernet: a different number
    assert e["ref_val_acc"] != e["val_acc"] or e["ref_val_loss"] != e["val_loss"]
    assert rec["final"]["arch"] == e["arch"]


def test_select_epoch_rules():
    eps = [
        {"epoch": 0, "val_acc": 50, "ref_val_acc": 40, "arch": "a"},
        {"epoch": 1, "val_acc": 60, "ref_val_acc": 45, "arch": "b"},
        {"epoch": 2, "val_acc": 55, "ref_val_acc": 45, "arch": "c"},
    ]
    assert select_epoch(eps, "last")["arch"] == "c"
    assert select_epoch(eps, "last_logged")["arch"] == "b"  # quark0: the cell after E − 1 epochs
    assert select_epoch(eps[:1], "last_logged")["arch"] == "a"
    assert select_epoch(eps, "best_val_reference")["arch"] == "b"  # first of equal bests
    assert select_epoch(eps, "best_val_batchstats")["arch"] == "b"
    with pytest.raises(C.ConfigError):
        select_epoch(eps, "best")


def test_selection_override_is_a_deviation():
    cfg = tiny_cfg("nb201", "darts-1st", selection="best_val_reference")
    assert any("cell selection" in d for d in cfg["deviations"])
    with pytest.raises(C.ConfigError, match="selection must be one of"):
        tiny_cfg("nb201", "darts-1st", selection="best")


# ------------------------------------------------------------------ 7. --data-dir reaches the benchmark lookup


def test_data_dir_reaches_the_nb201_lookup_without_env_or_sibling(shared_data, tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path / "project")  # no ../shared beside it
    monkeypatch.chdir(tmp_path)  # ./data is empty
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    from harness.spaces import nb201

    nb201._BENCH_CACHE.clear()
    assert paths.data_dir(None) == Path("data")
    rec = SearchRun(tiny_cfg("nb201", "darts-1st"), tmp_path / "out", shared_data, torch.device("cpu")).run()
    assert rec["status"] == "ok"
    assert rec["final"]["arch_info"]["benchmark"] is not None
    assert rec["provenance"]["benchmark_source"]
    nb201._BENCH_CACHE.clear()
