"""Hypergradient measurement (issue 12): estimators against closed forms, HVPs against the autograd
Hessian, equivalence with the baselines' own α-gradients, the run's JSON, the CLI, the report section."""
from __future__ import annotations

import copy
import os
import json
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
    inner = E.minimise_inner(pb.f_tr, w0, pb.alpha, l2=l2, tol=1e-12, max_iters=200, proximal=delta,
                             newton_steps=3)
    assert inner.converged and inner.grad_norm < 1e-12 and inner.grad_norm_start > 1e-2
    ift = E.ift_hypergradient(pb.f_tr, pb.f_val, inner.w, pb.alpha, l2=l2, cg_tol=1e-13, cg_max_iters=100,
                              proximal=delta)
    w_star, h = pb.closed_form(l2, delta, anchor=w0[0])
    assert ift.cg.converged and not ift.cg.negative_curvature and ift.cg.relative_residual < 1e-12
    assert torch.allclose(inner.w[0], w_star, atol=1e-10, rtol=0)
    err = (ift.hypergradient[0] - h).abs().max().item()
    assert err < 1e-6 * max(1.0, h.abs().max().item()), (err, h)
    assert E.relative_error(ift.hypergradient, [h]) < 1e-6
    assert E.cosine(ift.hypergradient, [h]) > 1 - 1e-10


def test_unconverged_reference_is_flagged():
    pb = Ridge()
    inner = E.minimise_inner(pb.f_tr, [torch.zeros(pb.d, dtype=torch.float64)], pb.alpha, tol=1e-12, max_iters=1,
                             solver="gd", lr=1e-3)
    assert not inner.converged and inner.iterations == 1 and inner.grad_norm > 1e-12


@pytest.mark.parametrize("hvp", ["exact", "fd"])
def test_darts_second_order_matches_its_own_closed_form_on_ridge(hvp):
    """The DARTS-2nd formula is the exact α-gradient of the one-step unrolled objective L_val(w′(α), α),
    w′ = w − ξ(μb + ∇w L_tr(w, α) + λ_w w):  d/dα = 2cα − ξ·exp(α) ⊙ w ⊙ ∇w L_val(w′)."""
    pb = Ridge(seed=1)
    g = torch.Generator().manual_seed(3)
    w = [torch.randn(pb.d, generator=g, dtype=torch.float64)]
    buf = [torch.randn(pb.d, generator=g, dtype=torch.float64)]
    xi, mu, wd = 0.07, 0.9, 3e-4
    parts = E.darts_second_order(pb.f_tr, pb.f_val, w, pb.alpha, xi, mu, buf, wd, hvp=hvp, fd_radius=0.01)
    a = pb.alpha[0]
    w_unrolled = w[0] - xi * (mu * buf[0] + pb.Xt.T @ (pb.Xt @ w[0] - pb.yt) / len(pb.yt) + a.exp() * w[0]
                              + wd * w[0])
    closed = 2 * pb.c * a - xi * a.exp() * w[0] * pb.grad_val_w(w_unrolled)
    assert torch.allclose(parts.w_unrolled[0], w_unrolled, atol=1e-13)
    # ∇α L_tr is quadratic in w, so the central difference is exact up to rounding
    assert torch.allclose(parts.direction[0], closed, atol=1e-9, rtol=1e-9)
    # and autograd straight through the virtual step agrees
    a_ = a.clone().requires_grad_(True)
    w_ = w[0].clone().requires_grad_(True)
    gw = torch.autograd.grad(pb.f_tr([w_], [a_]), w_, create_graph=True)[0]
    w1 = w[0] - xi * (mu * buf[0] + gw + wd * w[0])
    auto = torch.autograd.grad(pb.f_val([w1], [a_]), a_)[0]
    assert torch.allclose(parts.direction[0], auto, atol=1e-10)


def test_mixed_level_and_single_level_forms():
    pb = Ridge(seed=2)
    w = [torch.randn(pb.d, dtype=torch.float64)]
    g_tr, g_val = E.grad_a(pb.f_tr, w, pb.alpha), E.grad_a(pb.f_val, w, pb.alpha)
    paper = E.mixed_level(pb.f_tr, pb.f_val, w, pb.alpha, lam=0.1, form="paper")
    code = E.mixed_level(pb.f_tr, pb.f_val, w, pb.alpha, lam=0.1, form="code")
    assert torch.allclose(paper[0], g_tr[0] + 0.1 * g_val[0])
    assert torch.allclose(code[0], g_val[0] + 0.1 * g_tr[0])
    assert torch.allclose(E.single_level(pb.f_tr, w, pb.alpha)[0], g_tr[0])
    assert torch.allclose(E.darts_first_order(pb.f_val, w, pb.alpha)[0], g_val[0])
    with pytest.raises(ValueError):
        E.mixed_level(pb.f_tr, pb.f_val, w, pb.alpha, form="other")


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
    n_w = sum(sizes[:len(w)])

    def flat_f(theta):
        parts = list(torch.split(theta, sizes))
        shaped = [p.reshape(t.shape) for p, t in zip(parts, w + a)]
        return f(shaped[:len(w)], shaped[len(w):])

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
    assert torch.allclose(torch.cat([t.reshape(-1) for t in E.hessian_ww_product(f, w, a, u)]), H_ww @ u_flat,
                          atol=1e-10, rtol=1e-8)

    mixed = torch.cat([t.reshape(-1) for t in E.mixed_hessian_product(f, w, a, u)])
    assert torch.allclose(mixed, H_aw @ u_flat, atol=1e-10, rtol=1e-8)
    fd = torch.cat([t.reshape(-1) for t in E.fd_mixed_hessian_product(f, w, a, u, radius=1e-3)])
    # central differences: O(R²) error in float64
    assert (fd - H_aw @ u_flat).norm() / (H_aw @ u_flat).norm() < 1e-5
    fd_coarse = torch.cat([t.reshape(-1) for t in E.fd_mixed_hessian_product(f, w, a, u, radius=1.0)])
    assert (fd_coarse - H_aw @ u_flat).norm() > (fd - H_aw @ u_flat).norm()


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
    ours = M.method_directions(*_objectives(net, [tr], [va]), point, [(1.0, "paper")], fd_radius=0.01)
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
    on_smooth = M.method_directions(f_tr, f_val, point.to(torch.float64), [(1.0, "paper")], fd_radius=0.01)
    assert E.cosine(on_smooth["darts-2nd"], on_smooth["darts-2nd-exact"]) > 0.99


def _objectives(net, train, val):
    copy32 = M.smoothed_copy(net, None, torch.float32)
    wn, an = M.parameter_names(net)
    return M.SupernetObjective(copy32, wn, an, train), M.SupernetObjective(copy32, wn, an, val)


@pytest.mark.parametrize("method,opts,name", [
    ("darts-1st", {}, "darts-1st"),
    ("milenas", {"lam": 1.0, "lambda_form": "paper"}, "milenas"),
    ("milenas", {"lam": 0.1, "lambda_form": "paper"}, "milenas-lam0.1"),
    ("milenas", {"lam": 0.1, "lambda_form": "code"}, "milenas-lam0.1-code"),
    ("single-level", {}, "single-level"),
])
def test_first_order_directions_equal_the_methods_alpha_step(method, opts, name, optim_cfg):
    net = _tiny_nb201(1)
    m = _method(method, net, optim_cfg, order="alpha_first", **opts)
    tr, va = _image_batches(7)
    point = M.SearchPoint.from_method(m)
    lams = [(1.0, "paper")] + ([(opts["lam"], opts["lambda_form"])] if opts.get("lam", 1.0) != 1.0 else [])
    ours = M.method_directions(*_objectives(net, [tr], [va]), point, lams, fd_radius=0.01)
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
# the run: JSON schema, trajectory = the harness's own search, CLI, report section

TINY = """
name: tiny
scale: smoke
method: darts-1st
seed: 0
search:
  data: {n_train: 60, n_val: 60, n_eval: 60, image_size: 8, batch_size: 30}
  supernet: {C: 2, N: 1}
  epochs: 2
measure:
  epochs: all
  batches: 1
  smooth_activation: {kind: softplus, beta: 20.0}
  inner: {tol: 1.0e-5, max_iters: 30, proximal: [10.0, 3.0]}
  cg: {tol: 1.0e-6, max_iters: 40}
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    data = Path(os.environ.get("HARNESS_DATA", REPO.parent / "shared" / "data"))
    if not (data / "cifar10-jpeg" / "train.zip").is_file():
        pytest.skip("offline data not found (set HARNESS_DATA)")
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("hg")
    prof = folder / "tiny.yaml"
    prof.write_text(TINY)
    out = folder / "out"
    t0 = time.perf_counter()
    code = cli_main(["hypergrad", "--profile", str(prof), "--out", str(out), "--device", "cpu"])
    return {"code": code, "out": out, "seconds": time.perf_counter() - t0, "profile": prof, "folder": folder}


def test_tiny_run_writes_the_documented_json(tiny_run):
    assert tiny_run["code"] == 0
    doc = json.loads((tiny_run["out"] / "hypergrad.json").read_text())
    for key in ("epochs", "cosine", "rel_error", "fd_hvp_rel_error", "settings", "provenance", "scale",
                "milenas_comparisons", "alpha_distance_to_final", "reference", "reference_ok", "cosine_minibatch",
                "cosine_by_proximal", "surrogate_cosine", "trajectory"):
        assert key in doc, key
    assert doc["schema"] == "harness.hypergrad/1" and doc["scale"] == "smoke"
    assert doc["epochs"] == [0, 1]
    expected = {"darts-1st", "darts-2nd", "darts-2nd-exact", "milenas", "single-level"}
    assert set(doc["cosine"]) == expected == set(doc["rel_error"])
    for m in expected:
        assert len(doc["cosine"][m]) == 2 and all(-1.0 - 1e-9 <= c <= 1.0 + 1e-9 for c in doc["cosine"][m])
        assert all(r >= 0 for r in doc["rel_error"][m])
        assert all(s > 0.5 for s in doc["surrogate_cosine"][m])   # Softplus(20) stays close to the ReLU supernet
    assert len(doc["fd_hvp_rel_error"]) == 2
    # float32 exact products agree with float64 ones; the FD product is far more accurate on the smooth
    # surrogate than on the ReLU supernet (whose FD difference crosses activation kinks)
    assert all(e < 1e-3 for e in doc["exact_hvp_float32_rel_error"])
    assert all(s < r for s, r in zip(doc["fd_hvp_rel_error_surrogate"], doc["fd_hvp_rel_error_float64"]))
    assert set(doc["cosine_by_proximal"]) == {"10.0", "3.0"}
    # the K-batch MiLeNAS direction is the exact gradient of its own objective (float32 rounding aside)
    assert all(c > 1 - 1e-5 for c in doc["milenas_comparisons"]["milenas"]["cosine_vs_objective_gradient"])
    assert doc["alpha_distance_to_final"][-1] == 0.0 and doc["alpha_distance_to_final"][0] > 0
    ref = doc["reference"][0]
    assert ref["proximal"] == 3.0 and ref["inner"]["weight_decay"] == doc["trajectory"]["config"]["optim"]["w_wd"]
    assert {"grad_norm", "iterations", "converged"} <= set(ref["inner"])
    assert {"relative_residual", "iterations", "negative_curvature"} <= set(ref["cg"])
    assert doc["provenance"]["dataset"] and doc["provenance"]["commit"]
    assert (tiny_run["out"] / "hypergrad.png").stat().st_size > 0
    assert (tiny_run["out"] / "hypergrad.svg").stat().st_size > 0


def test_tiny_run_follows_the_harness_search_trajectory(tiny_run, tmp_path):
    """α along the measured trajectory equals α of ``SearchRun`` with the same config (measuring does not
    disturb the search)."""
    from harness.runner import SearchRun

    doc = json.loads((tiny_run["out"] / "hypergrad.json").read_text())
    cfg = doc["trajectory"]["config"]
    rec = SearchRun(cfg, tmp_path, None, torch.device("cpu")).run()
    assert rec["status"] == "ok"
    for ours, theirs in zip(doc["trajectory"]["epochs"], rec["epochs"]):
        assert ours["arch"] == theirs["arch"]
        assert torch.allclose(torch.tensor(ours["alpha_probs"]["alpha"]), torch.tensor(theirs["alpha_probs"]["alpha"]),
                              atol=1e-7, rtol=0)


def _one_error(code, err, *needles):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize("extra,needle", [
    (["--profile", "no-such-profile"], "unknown hypergrad profile"),
    (["--method", "not-a-method"], "unknown search method"),
    (["--method", "gdas"], "softmax"),
    (["--variant", "lam=-1", "--method", "milenas"], "lam"),
])
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
    bad.write_text(TINY.replace("batches: 1", "batches: 0"))
    code = cli_main(["hypergrad", "--profile", str(bad), "--out", str(tmp_path / "o")])
    _one_error(code, capsys.readouterr().err, "measure.batches")
    bad.write_text(TINY.replace("proximal: [10.0, 3.0]", "proximal: 3.0"))
    code = cli_main(["hypergrad", "--profile", str(bad), "--out", str(tmp_path / "o")])
    _one_error(code, capsys.readouterr().err, "proximal")
    bad.write_text(TINY.replace("epochs: all", "epochs: [5]"))
    code = cli_main(["hypergrad", "--profile", str(bad), "--out", str(tmp_path / "o")])
    _one_error(code, capsys.readouterr().err, "measure.epochs")


def test_report_section_reads_the_run(tiny_run):
    from reports import hypergrad as RH

    runs = tiny_run["folder"]
    found = RH.find_hypergrad_files(runs)
    assert found == [tiny_run["out"] / "hypergrad.json"]
    docs = RH.load_all(runs)
    v = RH.verdict(docs)
    assert v.verdict == RH.SMOKE_CAP and v.scale == "smoke"
    md = RH.markdown_section(runs, tiny_run["folder"] / "report")
    assert "DARTS 2nd (FD)" in md and "MiLeNAS compared three ways" in md and RH.SMOKE_CAP in md
    assert (tiny_run["folder"] / "report" / "hypergrad-1.png").is_file()
    html = RH.html_section(runs)
    assert "<table" in html and "data:image/png;base64," in html


def _synthetic(cosines, scale="cpu", ok=None):
    n = len(cosines)
    return {"schema": "harness.hypergrad/1", "scale": scale, "epochs": list(range(n)),
            "alpha_distance_to_final": [float(n - 1 - i) for i in range(n)],
            "cosine": {"darts-2nd": list(cosines), "darts-1st": list(cosines)},
            "reference_ok": ok or [True] * n, "fd_hvp_rel_error": [0.1] * n,
            "provenance": {"dataset": "CIFAR-10 (JPEG q75 copy)"}, "_path": "x/hypergrad.json"}


def test_verdict_rule_on_synthetic_trends():
    from reports import hypergrad as RH

    rho, p_pos, p_neg = RH.spearman_test([3, 2, 1, 0], [0.9, 0.8, 0.7, 0.6])
    assert rho == pytest.approx(1.0) and p_pos == pytest.approx(1 / 24) and p_neg == pytest.approx(1.0)
    # cosine falls as α approaches its final value: the paper's statement
    falling = RH.verdict([_synthetic([0.95, 0.9, 0.8, 0.6, 0.4])])
    assert falling.raw == RH.REPRODUCED and falling.verdict == "reproduced at reduced scale (cpu)"
    rising = RH.verdict([_synthetic([0.3, 0.5, 0.6, 0.8, 0.9])])
    assert rising.raw == RH.NOT_REPRODUCED and rising.verdict.startswith("not reproduced at reduced scale")
    flat = RH.verdict([_synthetic([0.5, 0.9, 0.4, 0.8, 0.6])])
    assert flat.verdict.startswith("inconclusive")
    unconverged = RH.verdict([_synthetic([0.95, 0.9, 0.8, 0.6, 0.4], ok=[True, False, False, True, True])])
    assert unconverged.verdict.startswith("inconclusive (only 3 epochs")
    assert RH.verdict([_synthetic([0.95, 0.9, 0.8, 0.6, 0.4], scale="smoke")]).verdict == RH.SMOKE_CAP
    both = RH.verdicts_by_scale([_synthetic([0.9, 0.8, 0.7, 0.6]), _synthetic([0.9, 0.8, 0.7, 0.6], scale="smoke")])
    assert [v.scale for v in both] == ["smoke", "cpu"]


@pytest.mark.slow
def test_smoke_profile_finishes_within_ten_minutes(tmp_path):
    t0 = time.perf_counter()
    code = cli_main(["hypergrad", "--profile", "smoke", "--out", str(tmp_path / "hg")])
    seconds = time.perf_counter() - t0
    assert code == 0
    assert seconds < 600, seconds
    doc = json.loads((tmp_path / "hg" / "hypergrad.json").read_text())
    assert doc["epochs"] == [0, 1, 2, 3] and doc["scale"] == "smoke"
