"""Collapse diagnostics (harness.diagnostics): the α-Hessian eigenvalue solvers against the full Hessian of a tiny
supernet, the default-on ``collapse`` hook's record (every method's search carries the eigenvalue series) without
disturbing the search, the space metadata it asks (parameter-free ops), and the report figure."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from harness import config as C
from harness.diagnostics import collapse as CO
from harness.diagnostics import hessian as HS
from harness.registry import get_space
from harness.runner import SearchRun

TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"


def tiny_objective(space="nb201", cfg=None, seed=0):
    torch.manual_seed(seed)
    net = get_space(space)().build_supernet(cfg or {"C": 4, "N": 1}, num_classes=10)
    with torch.no_grad():
        for a in net.op_alphas():
            a.normal_(0, 0.5)  # away from uniform: a non-trivial Hessian
    net.train()
    g = torch.Generator().manual_seed(seed + 1)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)
    named = dict(net.named_parameters())
    names = [n for n, p in named.items() if any(p is a for a in net.op_alphas())]

    def f(alphas):
        return F.cross_entropy(functional_call(net, dict(zip(names, alphas)), (x,)), y)

    return f, [named[n] for n in names]


def autograd_hessian(f, alphas):
    """The full Hessian by torch.autograd.functional.hessian on the flattened α (independent of AlphaHessian)."""
    shapes = [a.shape for a in alphas]
    sizes = [a.numel() for a in alphas]
    flat0 = torch.cat([a.detach().reshape(-1) for a in alphas])

    def g(flat):
        return f([t.view(s) for t, s in zip(flat.split(sizes), shapes)])

    return torch.autograd.functional.hessian(g, flat0).double().numpy()


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_solvers_match_the_full_hessian_of_a_tiny_supernet(l2):
    f, alphas = tiny_objective()
    full = autograd_hessian(f, alphas) + l2 * np.eye(30)
    assert np.allclose(full, full.T, atol=1e-5)
    lam = float(np.linalg.eigvalsh((full + full.T) / 2).max())
    H = HS.AlphaHessian(f, alphas, l2)
    assert np.allclose(HS.full_hessian(H), full, atol=1e-5)
    exact = HS.exact_eigenvalue(HS.AlphaHessian(f, alphas, l2))
    assert exact.products == 30 and exact.eigenvalue == pytest.approx(lam, rel=1e-4, abs=1e-6)
    lz = HS.lanczos(HS.AlphaHessian(f, alphas, l2), iters=30, tol=1e-12)
    assert lz.eigenvalue == pytest.approx(lam, rel=1e-4, abs=1e-6)
    # the default budget (10 products, tol 1e-2) is already close on this problem
    quick = HS.lanczos(HS.AlphaHessian(f, alphas, l2), iters=10, tol=1e-2)
    assert quick.products <= 10 and quick.eigenvalue == pytest.approx(lam, rel=0.05)


@pytest.mark.slow
def test_power_iteration_matches_the_full_hessian_of_a_tiny_supernet():
    f, alphas = tiny_objective()
    lam = float(np.linalg.eigvalsh(autograd_hessian(f, alphas)).max())
    pw = HS.power_iteration(HS.AlphaHessian(f, alphas), iters=200, tol=1e-12)  # a negative one dominates: shifted
    assert pw.eigenvalue == pytest.approx(lam, rel=1e-3, abs=1e-5)


def test_power_iteration_finds_the_largest_algebraic_eigenvalue_when_a_negative_one_dominates():
    D = torch.diag(torch.tensor([-5.0, 1.0, 2.0, 0.5], dtype=torch.float64))
    f = lambda a: 0.5 * (a[0] @ D @ a[0])  # noqa: E731 - Hessian D
    a0 = [torch.zeros(4, dtype=torch.float64)]
    assert HS.power_iteration(HS.AlphaHessian(f, a0), iters=500, tol=1e-12).eigenvalue == pytest.approx(2.0, rel=1e-6)
    assert HS.lanczos(HS.AlphaHessian(f, a0), iters=4, tol=1e-12).eigenvalue == pytest.approx(2.0, rel=1e-9)


def test_mixing_entropy_and_parameter_free_counts_ask_the_spaces():
    uniform = torch.full((6, 5), 0.2)
    assert HS.mixing_entropy([uniform]) == pytest.approx(np.log(5))
    assert HS.mixing_entropy([torch.eye(5)]) == pytest.approx(0.0, abs=1e-12)
    nb = get_space("nb201")
    all_skip = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    assert nb.parameter_free_count(all_skip) == 6
    assert nb.parameter_free_count(all_skip.replace("skip_connect~2", "none~2")) == 5  # none is no op
    darts = get_space("darts")
    g = darts().parse_arch("DARTS_V2")
    free = {"max_pool_3x3", "avg_pool_3x3", "skip_connect"}
    assert darts.parameter_free_count(str(g)) == sum(op in free for op, _ in list(g.normal) + list(g.reduce)) == 10


def cfg_with(hooks=None, method="darts-1st", epochs=3, space="nb201"):
    prof = C.load_profile(TINY)
    part = copy.deepcopy(C.find_part(prof, space))
    part["epochs"] = epochs
    if hooks is not None:
        part["hooks"] = hooks
    return C.resolve(space, method, 0, prof, part)


def test_collapse_is_on_by_default_and_validated():
    cfg = cfg_with()
    assert cfg["hooks"]["collapse"]["every"] == CO.DEFAULT_EVERY == 2
    assert cfg["hooks"]["collapse"]["solver"] == "lanczos"
    assert cfg_with({"collapse": {"every": 3}})["hooks"]["collapse"]["every"] == 3
    with pytest.raises(Exception) as exc:
        cfg_with({"collapse": {"solver": "qr"}})
    assert "solver" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(Exception) as exc:
        cfg_with({"collapse": {"every": 0}}, method="darts-es")
    assert "darts-es" in str(exc.value)


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collapse")
    rec = SearchRun(cfg_with(), tmp / "a", shared_data, torch.device("cpu")).run()
    off = SearchRun(cfg_with({"collapse": {"every": 0}}), tmp / "b", shared_data, torch.device("cpu")).run()
    return rec, off


def test_every_epoch_carries_the_diagnostics_without_disturbing_the_search(runs):
    rec, off = runs
    assert rec["status"] == off["status"] == "ok"
    s = CO.series(rec)
    assert s["epochs"] == [0, 2] and len(s["eigenvalue"]) == 2 and all(np.isfinite(s["eigenvalue"]))
    assert s["all_epochs"] == [0, 1, 2] and all(isinstance(n, int) for n in s["param_free_ops"])
    assert all(0 <= h <= np.log(5) + 1e-9 for h in s["mixing_entropy"])
    assert CO.final_eigenvalue(rec) == s["eigenvalue"][-1] and CO.final_eigenvalue(off) is None
    e0 = rec["epochs"][0]["hooks"]["collapse"]["eigen"]
    assert e0["solver"] == "lanczos" and 1 <= e0["products"] <= 10 and e0["dim"] == 30
    assert s["seconds"] == [rec["epochs"][e]["hook_seconds"]["collapse"] for e in (0, 2)]
    assert CO.eigenvalue_seconds([rec]) > 0
    for a, b in zip(rec["epochs"], off["epochs"]):  # the measurement works on a copy, RNG forked
        assert a["arch"] == b["arch"] and a["alpha_probs"] == b["alpha_probs"] and a["train_loss"] == b["train_loss"]


def test_report_draws_one_eigenvalue_figure_per_space_by_the_figure_rules(runs):
    from reports import collapse as RC
    from reports.figure_rules import figure_rule_violations

    rec, off = runs
    other = copy.deepcopy(rec)
    other["seed"], other["run_id"] = 1, rec["run_id"] + "-s1"
    for e in other["epochs"]:
        if "eigenvalue" in e["hooks"]["collapse"]:
            e["hooks"]["collapse"]["eigenvalue"] *= 1.5
    specs = RC.figure_specs([rec, other, off])
    assert [s.key for s in specs] == ["collapse-nb201"]
    assert figure_rule_violations(specs[0].fig) == []
    assert "s per evaluation" in specs[0].caption
    assert RC.measured([rec, off]) == [rec] and RC.collapse_value(rec) == CO.final_eigenvalue(rec)
