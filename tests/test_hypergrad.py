"""Hypergradient measurement: estimators against closed forms, HVPs against the autograd Hessian, the methods'
own α-directions (``SearchMethod.alpha_directions``) against their steps, the hook's record, resume, the CLI,
the report's claim in Markdown, HTML and PDF."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch

from harness.cli import main as cli_main
from harness.hypergrad import estimators as E
from harness.hypergrad import measure as M
from harness.registry import get_method, get_space
from tests.conftest import ToySupernet, capture_alpha_grad, toy_batches

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# a bilevel problem with a closed-form hypergradient: ridge regression, α = per-feature log strength
#   L_tr(w, α)  = ½‖X_tr w − y_tr‖²/n + ½ Σ_i exp(α_i) w_i²
#   L_val(w, α) = ½‖X_val w − y_val‖²/m + c·‖α‖²          (a direct α term, so both IFT terms matter)


class Ridge:
    def __init__(self, d=6, n=40, m=30, seed=0, c=0.05):
        g = torch.Generator().manual_seed(seed)
        self.Xt = torch.randn(n, d, generator=g, dtype=torch.float64)
        self.Xv = torch.randn(m, d, generator=g, dtype=torch.float64)
        w_true = torch.randn(d, generator=g, dtype=torch.float64)
        self.yt = self.Xt @ w_true + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
        self.yv = self.Xv @ w_true + 0.3 * torch.randn(m, generator=g, dtype=torch.float64)
        self.alpha = [0.5 * torch.randn(d, generator=g, dtype=torch.float64)]
        self.c = c
        self.d = d

    def f_tr(self, w, a):
        return 0.5 * ((self.Xt @ w[0] - self.yt) ** 2).mean() + 0.5 * (a[0].exp() * w[0] ** 2).sum()

    def f_val(self, w, a):
        return 0.5 * ((self.Xv @ w[0] - self.yv) ** 2).mean() + self.c * (a[0] ** 2).sum()

    def grad_val_w(self, w):
        return self.Xv.T @ (self.Xv @ w - self.yv) / len(self.yv)

    def closed_form(self, l2=0.0, delta=0.0, anchor=None):
        """w*(α) and dL_val(w*(α), α)/dα of min_w L_tr + (l2/2)‖w‖² + (δ/2)‖w − anchor‖²."""
        a = self.alpha[0]
        n = len(self.yt)
        A = self.Xt.T @ self.Xt / n + torch.diag(a.exp()) + (l2 + delta) * torch.eye(self.d, dtype=torch.float64)
        rhs = self.Xt.T @ self.yt / n + (delta * anchor if anchor is not None else 0.0)
        w_star = torch.linalg.solve(A, rhs)
        # dw*/dα_i = −A⁻¹ e_i exp(α_i) w*_i  →  dL/dα = 2cα − exp(α) ⊙ w* ⊙ A⁻¹ ∇w L_val(w*)
        u = torch.linalg.solve(A, self.grad_val_w(w_star))
        return w_star, 2 * self.c * a - a.exp() * w_star * u


@pytest.mark.parametrize("l2,delta", [(0.0, 0.0), (1e-2, 0.0), (0.0, 0.5)])
def test_ift_reference_matches_ridge_closed_form(l2, delta):
    pb = Ridge()
    w0 = [torch.randn(pb.d, generator=torch.Generator().manual_seed(11), dtype=torch.float64)]  # away from w*
    inner = E.minimise_inner(pb.f_tr, w0, pb.alpha, l2=l2, tol=1e-12, max_iters=200, proximal=delta, newton_steps=3)
    assert inner.converged and inner.grad_norm < 1e-12 and inner.grad_norm_start > 1e-2
    ift = E.ift_hypergradient(
        pb.f_tr, pb.f_val, inner.w, pb.alpha, l2=l2, cg_tol=1e-13, cg_max_iters=100, proximal=delta
    )
    w_star, h = pb.closed_form(l2, delta, anchor=w0[0])
    assert ift.cg.converged and not ift.cg.negative_curvature and ift.cg.relative_residual < 1e-12
    assert torch.allclose(inner.w[0], w_star, atol=1e-10, rtol=0)
    err = (ift.hypergradient[0] - h).abs().max().item()
    assert err < 1e-6 * max(1.0, h.abs().max().item()), (err, h)
    assert E.relative_error(ift.hypergradient, [h]) < 1e-6
    assert E.cosine(ift.hypergradient, [h]) > 1 - 1e-10


def test_unconverged_reference_is_flagged():
    pb = Ridge()
    inner = E.minimise_inner(
        pb.f_tr, [torch.zeros(pb.d, dtype=torch.float64)], pb.alpha, tol=1e-12, max_iters=1, solver="gd", lr=1e-3
    )
    assert not inner.converged and inner.iterations == 1 and inner.grad_norm > 1e-12


def _probe(pb, w, buf=None, xi=0.0, mu=0.0, wd=0.0):
    return M.DirectionProbe(pb.f_tr, pb.f_val, M.SearchPoint(w, pb.alpha, buf or [None] * len(w), xi, mu, wd))


@pytest.mark.parametrize("hvp", ["exact", "fd"])
def test_darts_second_order_matches_its_own_closed_form_on_ridge(hvp):
    """DARTS-2nd's own formula (``alpha_directions`` of darts-2nd) is the exact α-gradient of the one-step unrolled
    objective L_val(w′(α), α), w′ = w − ξ(μb + ∇w L_tr(w, α) + λ_w w):  d/dα = 2cα − ξ·exp(α) ⊙ w ⊙ ∇w L_val(w′)."""
    pb = Ridge(seed=1)
    g = torch.Generator().manual_seed(3)
    w = [torch.randn(pb.d, generator=g, dtype=torch.float64)]
    buf = [torch.randn(pb.d, generator=g, dtype=torch.float64)]
    xi, mu, wd = 0.07, 0.9, 3e-4
    parts = get_method("darts-2nd").alpha_directions(_probe(pb, w, buf, xi, mu, wd), {"fd_radius": 0.01})
    direction = parts["exact" if hvp == "exact" else ""]
    a = pb.alpha[0]
    w_unrolled = w[0] - xi * (mu * buf[0] + pb.Xt.T @ (pb.Xt @ w[0] - pb.yt) / len(pb.yt) + a.exp() * w[0] + wd * w[0])
    closed = 2 * pb.c * a - xi * a.exp() * w[0] * pb.grad_val_w(w_unrolled)
    # ∇α L_tr is quadratic in w, so the central difference is exact up to rounding
    assert torch.allclose(direction[0], closed, atol=1e-9, rtol=1e-9)
    # and autograd straight through the virtual step agrees
    a_ = a.clone().requires_grad_(True)
    w_ = w[0].clone().requires_grad_(True)
    gw = torch.autograd.grad(pb.f_tr([w_], [a_]), w_, create_graph=True)[0]
    w1 = w[0] - xi * (mu * buf[0] + gw + wd * w[0])
    auto = torch.autograd.grad(pb.f_val([w1], [a_]), a_)[0]
    assert torch.allclose(direction[0], auto, atol=1e-10)


def test_mixed_level_and_single_level_forms():
    pb = Ridge(seed=2)
    w = [torch.randn(pb.d, dtype=torch.float64)]
    probe = _probe(pb, w)
    g_tr, g_val = E.grad_a(pb.f_tr, w, pb.alpha), E.grad_a(pb.f_val, w, pb.alpha)
    milenas = get_method("milenas")
    paper = milenas.alpha_directions(probe, {"lam": 0.1, "lambda_form": "paper"})[""]
    code = milenas.alpha_directions(probe, {"lam": 0.1, "lambda_form": "code"})[""]
    assert torch.allclose(paper[0], g_tr[0] + 0.1 * g_val[0])
    assert torch.allclose(code[0], g_val[0] + 0.1 * g_tr[0])
    assert torch.allclose(milenas.alpha_directions(probe, {})[""][0], g_tr[0] + g_val[0])
    assert torch.allclose(get_method("single-level").alpha_directions(probe, {})[""][0], g_tr[0])
    assert torch.allclose(get_method("darts-1st").alpha_directions(probe, {})[""][0], g_val[0])
    assert get_method("gdas").alpha_directions(probe, {}) is None  # a sampled-path method is not measurable
    with pytest.raises(ValueError):
        milenas.alpha_directions(probe, {"lambda_form": "other"})


# ------------------------------------------------------------------------------------------------
# Hessian–vector products on a tiny network vs the full autograd Hessian


def _toy_objective(net, batches):
    wn, an = M.parameter_names(net)
    return M.SupernetObjective(net, wn, an, batches), wn, an


def test_exact_and_fd_hvps_match_autograd_hessian_on_a_tiny_network():
    torch.manual_seed(0)
    net = ToySupernet().double()
    (xt, yt), _ = toy_batches(seed=1, n=16, dtype=torch.float64)
    f, wn, an = _toy_objective(net, [(xt, yt)])
    w = [p.detach().clone() for p in net.weights()]
    a = [p.detach().clone() for p in net.alphas()]
    sizes = [t.numel() for t in w + a]
    n_w = sum(sizes[: len(w)])

    def flat_f(theta):
        parts = list(torch.split(theta, sizes))
        shaped = [p.reshape(t.shape) for p, t in zip(parts, w + a)]
        return f(shaped[: len(w)], shaped[len(w) :])

    theta = torch.cat([t.reshape(-1) for t in w + a])
    H = torch.autograd.functional.hessian(flat_f, theta)
    assert torch.allclose(H, H.T, atol=1e-10)
    H_ww, H_aw = H[:n_w, :n_w], H[n_w:, :n_w]
    g = torch.Generator().manual_seed(5)
    u = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in w]
    u_flat = torch.cat([t.reshape(-1) for t in u])

    l2, shift = 3e-4, 0.2
    hu = E.WeightHessian(f, w, a, l2=l2, shift=shift)(u)
    expected = H_ww @ u_flat + (l2 + shift) * u_flat
    assert torch.allclose(torch.cat([t.reshape(-1) for t in hu]), expected, atol=1e-10, rtol=1e-8)
    assert torch.allclose(
        torch.cat([t.reshape(-1) for t in E.hessian_ww_product(f, w, a, u)]), H_ww @ u_flat, atol=1e-10, rtol=1e-8
    )

    mixed = torch.cat([t.reshape(-1) for t in E.mixed_hessian_product(f, w, a, u)])
    assert torch.allclose(mixed, H_aw @ u_flat, atol=1e-10, rtol=1e-8)
    # DARTS-2nd's own finite-difference product (its ``hvp`` part) against the exact one, on its own v
    probe = M.DirectionProbe(f, f, M.SearchPoint(w, a, [None] * len(w), 0.05, 0.0, 0.0))
    fine = get_method("darts-2nd").alpha_directions(probe, {"fd_radius": 1e-3})
    coarse = get_method("darts-2nd").alpha_directions(probe, {"fd_radius": 1.0})
    assert E.relative_error(fine["hvp-exact"], coarse["hvp-exact"]) < 1e-12  # same v, same exact product
    assert E.relative_error(fine["hvp"], fine["hvp-exact"]) < 1e-5  # central differences: O(R²) in float64
    assert E.relative_error(coarse["hvp"], coarse["hvp-exact"]) > E.relative_error(fine["hvp"], fine["hvp-exact"])


def test_conjugate_gradient_solves_spd_and_reports_negative_curvature():
    g = torch.Generator().manual_seed(0)
    Q = torch.randn(12, 12, generator=g, dtype=torch.float64)
    A = Q @ Q.T + 0.5 * torch.eye(12, dtype=torch.float64)
    b = [torch.randn(12, generator=g, dtype=torch.float64)]
    res = E.conjugate_gradient(lambda u: [A @ u[0]], b, tol=1e-12, max_iters=100)
    assert res.converged and res.relative_residual < 1e-12 and not res.negative_curvature
    assert torch.allclose(res.x[0], torch.linalg.solve(A, b[0]), atol=1e-9)
    damped = E.conjugate_gradient(lambda u: [A @ u[0]], b, tol=1e-12, max_iters=100, damping=2.0)
    assert torch.allclose(damped.x[0], torch.linalg.solve(A + 2 * torch.eye(12, dtype=torch.float64), b[0]), atol=1e-9)
    indefinite = -A
    bad = E.conjugate_gradient(lambda u: [indefinite @ u[0]], b, tol=1e-12, max_iters=100)
    assert bad.negative_curvature and not bad.converged


# ------------------------------------------------------------------------------------------------
# the directions equal what the baselines' own code computes


def _tiny_nb201(seed=0):
    torch.manual_seed(seed)
    return get_space("nb201")().build_supernet({"C": 4, "N": 1}, num_classes=10)


def _image_batches(seed, n=8, size=8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)) for _ in range(2)]


def _method(name, net, optim_cfg, **opts):
    cfg = {**optim_cfg, **opts}
    m = get_method(name)(net, cfg, epochs=4, steps_per_epoch=3)
    m.on_epoch_start(1)
    return m


def test_darts_second_order_direction_equals_baseline_unrolled_alpha_grad(optim_cfg):
    net = _tiny_nb201()
    m = _method("darts-2nd", net, optim_cfg, order="alpha_first", fd_radius=0.01)
    for s in range(2):  # a couple of steps: the SGD momentum buffers exist and enter the virtual step
        m.step(*_image_batches(10 + s))
    tr, va = _image_batches(99)
    point = M.SearchPoint.from_method(m)
    assert all(b is not None for b in point.momentum_buffers)
    specs = [M.DirectionSpec("darts-2nd", "darts-2nd", {}, {"fd_radius": 0.01})]
    ours = M.method_directions(*_objectives(net, [tr], [va]), point, specs)
    w_before = [p.detach().clone() for p in m.weights]
    theirs, _, _ = m.unrolled_alpha_grad(tr, va)
    assert all(torch.equal(a, b) for a, b in zip(w_before, m.weights))
    for o, t in zip(ours["darts-2nd"], theirs):
        assert torch.allclose(o, t, rtol=1e-4, atol=1e-6), (o - t).abs().max()
    # On the ReLU supernet the FD difference (radius 0.01) crosses activation kinks, so the FD and the exact
    # (almost-everywhere) products differ a lot; on the Softplus surrogate both versions of the formula agree.
    smooth = M.smoothed_copy(net, {"kind": "softplus", "beta": 20.0}, torch.float64)
    wn, an = M.parameter_names(net)
    f_tr, f_val = M.SupernetObjective(smooth, wn, an, [tr]), M.SupernetObjective(smooth, wn, an, [va])
    on_smooth = M.method_directions(f_tr, f_val, point.to(torch.float64), specs)
    assert E.cosine(on_smooth["darts-2nd"], on_smooth["darts-2nd-exact"]) > 0.99


def _objectives(net, train, val):
    copy32 = M.smoothed_copy(net, None, torch.float32)
    wn, an = M.parameter_names(net)
    return M.SupernetObjective(copy32, wn, an, train), M.SupernetObjective(copy32, wn, an, val)


@pytest.mark.parametrize(
    "method,opts,name",
    [
        ("darts-1st", {}, "darts-1st"),
        ("milenas", {"lam": 1.0, "lambda_form": "paper"}, "milenas"),
        ("milenas", {"lam": 0.1, "lambda_form": "paper"}, "milenas-lam0.1-lambda_formpaper"),
        ("milenas", {"lam": 0.1, "lambda_form": "code"}, "milenas-lam0.1-lambda_formcode"),
        ("single-level", {}, "single-level"),
    ],
)
def test_first_order_directions_equal_the_methods_alpha_step(method, opts, name, optim_cfg):
    net = _tiny_nb201(1)
    m = _method(method, net, optim_cfg, order="alpha_first", **opts)
    tr, va = _image_batches(7)
    point = M.SearchPoint.from_method(m)
    variant = {"lam": opts["lam"], "lambda_form": opts["lambda_form"]} if opts.get("lam", 1.0) != 1.0 else {}
    assert M.direction_name(method, variant) == name
    ours = M.method_directions(*_objectives(net, [tr], [va]), point, [M.DirectionSpec(name, method, variant, opts)])
    seen = capture_alpha_grad(m)
    m.alpha_step(tr, va)
    for o, t in zip(ours[name], seen["g"]):
        assert torch.allclose(o, t, rtol=1e-5, atol=1e-7)


def test_smoothed_copy_replaces_relu_and_leaves_the_supernet_alone():
    net = _tiny_nb201(2)
    before = copy.deepcopy(net.state_dict())
    sm = M.smoothed_copy(net, {"kind": "softplus", "beta": 20.0}, torch.float64)
    assert not any(isinstance(mod, torch.nn.ReLU) for mod in sm.modules())
    assert any(isinstance(mod, torch.nn.ReLU) for mod in net.modules())
    assert next(sm.parameters()).dtype == torch.float64 and next(net.parameters()).dtype == torch.float32
    assert M.parameter_names(sm) == M.parameter_names(net)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


# ------------------------------------------------------------------------------------------------
# the hook on a search run: its record, the trajectory, resume, the CLI, the report

TINY = """
name: tiny
scale: smoke
seeds: [0]
parts:
  - space: nb201
    methods: [darts-1st]
    data: {n_train: 60, n_val: 60, n_eval: 60, image_size: 8, batch_size: 30}
    supernet: {C: 2, N: 1}
    epochs: 2
    hooks:
      hypergrad:
        epochs: null
        batches: 1
        smooth_activation: {kind: softplus, beta: 20.0}
        inner: {tol: 1.0e-5, max_iters: 30, proximal: [10.0, 3.0]}
        cg: {tol: 1.0e-6, max_iters: 40}
"""
RUN_ID = "nb201__darts-1st__s0"


def _data_or_skip() -> Path:
    from tests.conftest import SHARED_DATA  # the one place that knows where the offline data is

    if not (SHARED_DATA / "cifar10-jpeg" / "train.zip").is_file():
        pytest.skip(f"offline data not found at {SHARED_DATA} (set HARNESS_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    _data_or_skip()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("hg")
    prof = folder / "tiny.yaml"
    prof.write_text(TINY)
    out = folder / "out"
    t0 = time.perf_counter()
    code = cli_main(["hypergrad", "--profile", str(prof), "--out", str(out), "--device", "cpu"])
    from harness.records import read_record

    rec = read_record(out / "records" / f"{RUN_ID}.json")
    return {
        "code": code,
        "out": out,
        "seconds": time.perf_counter() - t0,
        "profile": prof,
        "folder": folder,
        "record": rec,
    }


def test_tiny_run_writes_a_record_whose_epochs_carry_the_measurements(tiny_run):
    from harness.hypergrad.hook import series

    assert tiny_run["code"] == 0
    rec = tiny_run["record"]
    assert rec["status"] == "ok" and rec["kind"] == "search" and rec["scale"] == "smoke"
    assert rec["config"]["hooks"]["hypergrad"]["inner"]["weight_decay"] == rec["config"]["optim"]["w_wd"]
    for e in rec["epochs"]:
        h = e["hooks"]["hypergrad"]
        for key in (
            "alpha",
            "cosine",
            "rel_error",
            "hvp_error",
            "objective_comparisons",
            "reference",
            "references",
            "cosine_minibatch",
            "cosine_by_proximal",
            "surrogate_cosine",
            "directions",
            "fixed_batches",
        ):
            assert key in h, key
        assert e["hook_seconds"]["hypergrad"] > 0  # hook time recorded apart from the epoch's search time
    assert not (tiny_run["out"] / "checkpoints" / f"{RUN_ID}.pt").exists()
    doc = series(rec)
    assert doc["epochs"] == [0, 1]
    expected = {"darts-1st", "darts-2nd", "darts-2nd-exact", "milenas", "single-level"}
    assert set(doc["cosine"]) == expected == set(doc["rel_error"])
    assert doc["directions"]["darts-2nd-exact"] == {"method": "darts-2nd", "variant": {}, "estimator": "exact"}
    for m in expected:
        assert len(doc["cosine"][m]) == 2 and all(-1.0 - 1e-9 <= c <= 1.0 + 1e-9 for c in doc["cosine"][m])
        assert all(r >= 0 for r in doc["rel_error"][m])
        assert all(s > 0.5 for s in doc["surrogate_cosine"][m])  # Softplus(20) stays close to the ReLU supernet
    hvp = doc["hvp_error"]["darts-2nd"]
    assert len(hvp["float32"]) == 2
    # float32 exact products agree with float64 ones; the FD product is far more accurate on the smooth
    # surrogate than on the ReLU supernet (whose FD difference crosses activation kinks)
    assert all(e < 1e-3 for e in hvp["exact_float32"])
    assert all(s < r for s, r in zip(hvp["float64_surrogate"], hvp["float64"]))
    assert set(doc["cosine_by_proximal"][0]) == {"10.0", "3.0"}
    # the K-batch MiLeNAS direction is the exact gradient of its own objective (float32 rounding aside)
    assert all(c > 1 - 1e-5 for c in doc["objective_comparisons"]["milenas"]["cosine_vs_objective_gradient"])
    assert doc["alpha_distance_to_final"][-1] == 0.0 and doc["alpha_distance_to_final"][0] > 0
    ref = doc["reference"][0]
    assert ref["proximal"] == 3.0 and ref["inner"]["weight_decay"] == rec["config"]["optim"]["w_wd"]
    assert {"grad_norm", "iterations", "converged"} <= set(ref["inner"])
    assert {"relative_residual", "iterations", "negative_curvature"} <= set(ref["cg"])
    assert rec["provenance"]["dataset"] and rec["provenance"]["commit"]
    assert (tiny_run["out"] / "hypergrad.png").stat().st_size > 0
    assert (tiny_run["out"] / "hypergrad.svg").stat().st_size > 0
    from reports.figure_rules import figure_rule_violations
    from reports.hypergrad_figure import make_figure

    assert figure_rule_violations(make_figure(doc)) == []  # the report's figure rules hold here too


def test_tiny_run_follows_the_harness_search_trajectory(tiny_run, tmp_path):
    """α along the measured search equals α of the same search without the hook (measuring does not disturb it)."""
    from harness.runner import SearchRun

    cfg = copy.deepcopy(tiny_run["record"]["config"])
    cfg.pop("hooks")
    rec = SearchRun(cfg, tmp_path, None, torch.device("cpu")).run()
    assert rec["status"] == "ok"
    for ours, theirs in zip(tiny_run["record"]["epochs"], rec["epochs"]):
        assert ours["arch"] == theirs["arch"] and ours["train_loss"] == theirs["train_loss"]
        assert ours["alpha_probs"] == theirs["alpha_probs"]


def test_finished_run_is_not_measured_again(tiny_run, capsys, monkeypatch):
    from harness.hypergrad.hook import HypergradHook

    def boom(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(HypergradHook, "after_epoch", boom)
    code = cli_main(
        ["hypergrad", "--profile", str(tiny_run["profile"]), "--out", str(tiny_run["out"]), "--device", "cpu"]
    )
    assert code == 0 and "already finished" in capsys.readouterr().err


def test_killed_run_resumes_without_remeasuring_finished_epochs(tmp_path, monkeypatch):
    """Kill after epoch 0's checkpoint; the resumed run measures epoch 1 only and keeps epoch 0's measurement."""
    from harness.hypergrad.cli import load_profile, resolve_config
    from harness.hypergrad.hook import HypergradHook
    from harness.runner import SearchRun

    data = _data_or_skip()
    prof = tmp_path / "tiny.yaml"
    prof.write_text(
        TINY.replace("proximal: [10.0, 3.0]", "proximal: [3.0]")
        .replace("max_iters: 40", "max_iters: 5")
        .replace("max_iters: 30", "max_iters: 5")
    )
    cfg = resolve_config(load_profile(prof))
    calls = []
    orig = HypergradHook.after_epoch

    def counting(self, state):
        calls.append(state.epoch)
        return orig(self, state)

    monkeypatch.setattr(HypergradHook, "after_epoch", counting)
    run = SearchRun(cfg, tmp_path / "o", data, torch.device("cpu"))
    save = run.save_checkpoint

    def save_then_die(record, next_epoch, *a):
        save(record, next_epoch, *a)
        raise KeyboardInterrupt

    run.save_checkpoint = save_then_die
    with pytest.raises(KeyboardInterrupt):
        run.run()
    state = torch.load(run.ckpt_path, weights_only=False)  # the checkpoint holds the record up to epoch 0
    first = state["record"]["epochs"][0]["hooks"]["hypergrad"]
    assert calls == [0]
    resumed = SearchRun(cfg, tmp_path / "o", data, torch.device("cpu")).run()
    assert calls == [0, 1] and resumed["status"] == "ok"
    assert resumed["epochs"][0]["hooks"]["hypergrad"]["cosine"] == first["cosine"]
    assert "cosine" in resumed["epochs"][1]["hooks"]["hypergrad"]


def _one_error(code, err, *needles):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--profile", "no-such-profile"], "unknown hypergrad profile"),
        (["--method", "not-a-method"], "unknown search method"),
        (["--method", "gdas"], "softmax"),
        (["--variant", "lam=-1", "--method", "milenas"], "lam"),
        (["--set", "hooks.hypergrad.batches=0"], "batches"),
    ],
)
def test_cli_bad_input_is_one_error_line(extra, needle, tmp_path, capsys):
    code = cli_main(["hypergrad", "--out", str(tmp_path / "o"), *extra])
    _one_error(code, capsys.readouterr().err, needle)
    assert not (tmp_path / "o").exists()  # nothing is created on bad input


def test_cli_unwritable_out_and_bad_profile_values(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = cli_main(["hypergrad", "--out", str(blocker / "sub")])
    _one_error(code, capsys.readouterr().err, "not writable")
    bad = tmp_path / "bad.yaml"
    for old, new, needle in (
        ("batches: 1", "batches: 0", "batches"),
        ("proximal: [10.0, 3.0]", "proximal: 3.0", "proximal"),
        ("epochs: null", "epochs: [5]", "epochs"),
        ("batches: 1", "batches: 1\n        no_such_setting: 1", "no_such_setting"),
        ("cg: {tol: 1.0e-6", "cg: {tol: -1.0", "tol"),
    ):
        bad.write_text(TINY.replace(old, new))
        code = cli_main(["hypergrad", "--profile", str(bad), "--out", str(tmp_path / "o")])
        _one_error(code, capsys.readouterr().err, needle)
    assert not (tmp_path / "o").exists()


def _pdf_text(ctx, path) -> str:
    """The text the PDF typesets: every paragraph and table cell of the story ``reports.pdf.render`` builds."""
    from reports import pdf as PDF

    texts = []

    def walk(f):
        if hasattr(f, "getPlainText"):
            texts.append(f.getPlainText())
        for cell_row in getattr(f, "_cellvalues", []) or []:
            for cell in cell_row:
                for c in cell if isinstance(cell, (list, tuple)) else [cell]:
                    walk(c) if not isinstance(c, str) else texts.append(c)
        for sub in getattr(f, "_content", []) or []:
            walk(sub)

    orig = PDF._Doc.build

    def build(self, story, *a, **k):
        for f in story:
            walk(f)
        return orig(self, story, *a, **k)

    PDF._Doc.build = build
    try:
        PDF.render(ctx, path)
    finally:
        PDF._Doc.build = orig
    return "\n".join(texts)


def test_report_has_the_claim_in_markdown_html_and_pdf(tiny_run):
    from reports import build as B
    from reports import hypergrad as RH
    from reports import runs as R
    from reports import verdicts as V

    runs = tiny_run["out"]
    out = tiny_run["folder"] / "report"
    written = B.build_report(runs, out)
    import html as _html

    md, html = written["md"].read_text(), _html.unescape(written["html"].read_text())
    for text in (md, html):
        assert RH.CLAIM in text and RH.SHORT in text
        assert "Hypergradient measurement 1" in text and "DARTS (2nd order) (exact HVP)" in text
    assert "<table" in html and "data:image/png;base64," in html
    assert (out / "hypergrad-1.png").is_file() and (out / "hypergrad-1-cosine.csv").is_file()
    assert "hypergrad" not in html.split("</body>")[-1]  # nothing spliced after the page
    ctx = B.build_context(R.load(runs), runs)
    v = next(v for v in ctx["verdicts"] if v.claim == RH.CLAIM)
    assert v.scale == "smoke" and (v.verdict == V.SMOKE_CAP or v.verdict.startswith("inconclusive"))
    pdf_text = _pdf_text(ctx, tiny_run["folder"] / "check.pdf")
    assert RH.CLAIM in pdf_text and "Hypergradient measurement 1" in pdf_text
    assert written["pdf"].stat().st_size > 0
    import matplotlib.pyplot as plt

    for f in ctx["figures"]:
        plt.close(f["fig"])


def _synthetic(cosines, scale="cpu", ok=None):
    n = len(cosines)
    epochs = [
        {
            "epoch": i,
            "hooks": {
                "hypergrad": {
                    "alpha": [float(i)],
                    "cosine": {"darts-2nd": c, "darts-1st": c},
                    "reference": {"ok": True if ok is None else ok[i]},
                    "hvp_error": {"darts-2nd": {"float32": 0.1}},
                }
            },
        }
        for i, c in enumerate(cosines)
    ]
    return {
        "kind": "search",
        "space": "nb201",
        "method": "darts-1st",
        "scale": scale,
        "status": "ok",
        "seed": 0,
        "epochs": epochs,
        "config": {},
        "provenance": {"dataset": "CIFAR-10 (JPEG q75 copy)"},
        "run_id": f"x{n}",
    }


def test_verdict_rule_on_synthetic_trends():
    from reports import hypergrad as RH
    from reports import published as P
    from reports import verdicts as V

    rho, p_pos, p_neg = RH.spearman_test([3, 2, 1, 0], [0.9, 0.8, 0.7, 0.6])
    assert rho == pytest.approx(1.0) and p_pos == pytest.approx(1 / 24) and p_neg == pytest.approx(1.0)
    claim = lambda recs: V.hypergrad_error(recs, {}, "nb201")  # noqa: E731
    # cosine falls as α approaches its final value: the paper's statement
    falling = claim([_synthetic([0.95, 0.9, 0.8, 0.6, 0.4])])
    assert falling.raw == V.REPRODUCED and falling.verdict == "reproduced at reduced scale (cpu)"
    rising = claim([_synthetic([0.3, 0.5, 0.6, 0.8, 0.9])])
    assert rising.raw == V.NOT_REPRODUCED and rising.verdict.startswith("not reproduced at reduced scale")
    flat = claim([_synthetic([0.5, 0.9, 0.4, 0.8, 0.6])])
    assert flat.verdict.startswith("inconclusive")
    unconverged = claim([_synthetic([0.95, 0.9, 0.8, 0.6, 0.4], ok=[True, False, False, True, True])])
    assert unconverged.verdict.startswith("inconclusive (only 3 epochs")
    assert claim([_synthetic([0.95, 0.9, 0.8, 0.6, 0.4], scale="smoke")]).verdict == V.SMOKE_CAP
    assert claim([_synthetic([0.95, 0.9, 0.8, 0.6, 0.4], scale="custom")]).verdict.endswith("(custom)")
    both = [
        v
        for v in V.verdicts(
            [_synthetic([0.9, 0.8, 0.7, 0.6]), _synthetic([0.9, 0.8, 0.7, 0.6], scale="smoke")], P.load_published()
        )
        if v.claim == RH.CLAIM
    ]
    assert [v.scale for v in both] == ["smoke", "cpu"]
    assert not [v for v in V.verdicts([], P.load_published()) if v.claim == RH.CLAIM]  # no measurements: no row


@pytest.mark.slow
def test_smoke_profile_finishes_within_ten_minutes(tmp_path):
    from harness.hypergrad.hook import series
    from harness.records import read_record

    t0 = time.perf_counter()
    code = cli_main(["hypergrad", "--profile", "smoke", "--out", str(tmp_path / "hg")])
    seconds = time.perf_counter() - t0
    assert code == 0
    assert seconds < 600, seconds
    rec = read_record(tmp_path / "hg" / "records" / f"{RUN_ID}.json")
    assert series(rec)["epochs"] == [0, 1, 2, 3] and rec["scale"] == "smoke"
