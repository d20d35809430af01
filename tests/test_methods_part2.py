"""PC-DARTS, R-DARTS (DARTS-ES, L2) and iDARTS: each iteration against a hand-written reference iteration, the
partial-channel supernet against the PC-DARTS formulas, the DARTS-ES rule against a transcription of RobustDARTS'
``EVLocalAvg`` and in a run that stops early, and the iDARTS hypergradient against closed forms."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.idarts import idarts_hypergradient, neumann_series
from baselines.rdarts import es_decision
from harness import config as C
from harness.hypergrad import estimators as E
from harness.registry import get_method, get_space
from harness.runner import SearchRun
from harness.spaces.partial import channel_shuffle, node_softmax, partial_edge
from tests.test_hypergrad import Ridge

TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"


def batch(seed, n=6, size=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def build(space, method, epochs=2, space_cfg=None, method_cfg=None, seed=0):
    prof = {"name": "t", "scale": "smoke", "parts": [{"space": space, "methods": [method]}]}
    cfg = C.resolve(space, method, 0, prof, prof["parts"][0])
    torch.manual_seed(seed)
    sc = {**cfg["space_cfg"], **{"C": 4, "N": 1, "layers": 3}, **(space_cfg or {})}
    sc = {k: v for k, v in sc.items() if k in get_space(space).supernet_options}
    net = get_space(space)().build_supernet(sc, num_classes=10)
    m = get_method(method)(net, {**cfg["optim"], **cfg["method_cfg"], **(method_cfg or {})}, epochs, steps_per_epoch=2)
    return net, m, cfg


# ------------------------------------------------------------------------------------------------ PC-DARTS


def test_channel_shuffle_and_partial_edge_follow_the_reference_formulas():
    x = torch.arange(2 * 8 * 2 * 2, dtype=torch.float32).view(2, 8, 2, 2)
    out = channel_shuffle(x, 4)
    for c in range(8):  # c' = (c mod C/K)·K + ⌊c/(C/K)⌋ with C/K = 2
        assert torch.equal(out[:, (c % 2) * 4 + c // 2], x[:, c])
    y = partial_edge(x, 4, 1, lambda h: 10 * h)  # ops on the first C/K channels only
    ref = channel_shuffle(torch.cat([10 * x[:, :2], x[:, 2:]], 1), 4)
    assert torch.equal(y, ref)
    y2 = partial_edge(x, 4, 2, lambda h: F.avg_pool2d(h, 2, 2))  # stride 2: the bypass is max-pooled
    assert torch.equal(
        y2, channel_shuffle(torch.cat([F.avg_pool2d(x[:, :2], 2, 2), F.max_pool2d(x[:, 2:], 2, 2)], 1), 4)
    )
    beta = torch.randn(14)
    bt = node_softmax(beta, [[0, 1], [2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12, 13]])
    for a, b in ((0, 2), (2, 5), (5, 9), (9, 14)):
        assert torch.allclose(bt[a:b], torch.softmax(beta[a:b], 0))


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_partial_channel_supernet_shapes_and_off_by_default(space):
    net, _, _ = build(space, "pc-darts")
    assert net.partial_channels == 4 and net.edge_norm
    assert len(net.alphas()) == len(net.op_alphas()) + (1 if space == "nb201" else 2)
    assert all(b.dim() == 1 for b in net.alphas()[len(net.op_alphas()) :])
    plain = get_space(space)().build_supernet({"C": 4, "N": 1} if space == "nb201" else {"C": 4, "layers": 3}, 10)
    assert plain.alphas() == plain.op_alphas()
    with pytest.raises(Exception) as exc:
        get_space(space)().build_supernet({"C": 6, "partial_channels": 4, **({"N": 1} if space == "nb201" else {})}, 10)
    assert "partial_channels" in str(exc.value)


def test_darts_derivation_ranks_inputs_by_softmax_alpha_times_beta():
    net, _, _ = build("darts", "pc-darts")
    with torch.no_grad():
        for a in net.op_alphas():
            a.zero_()
            a[:, 4] = 1.0  # sep_conv_3x3 everywhere, equal strength
        net.betas_normal.zero_()
        net.betas_normal[5 + 3] = 5.0  # node 2 (edges 5..8): input 3 strongest by β
        net.betas_normal[5 + 2] = 4.0
    normal = net.derive().normal
    assert sorted(j for _, j in normal[4:6]) == [2, 3]  # β̃ picks node 2's inputs
    assert all(op == "sep_conv_3x3" for op, _ in normal)  # never an edge's op
    with torch.no_grad():
        net.betas_normal.zero_()
    assert sorted(j for _, j in net.derive().normal[4:6]) == [0, 1]  # ties: the smaller inputs (quark0 rule)


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_pc_darts_iteration_is_warmup_then_darts_first_order(space):
    """Hand-written reference: warm-up epoch = one SGD step on the weights, α/β untouched; afterwards the α step is
    DARTS 1st order on α and β together (the same Adam), then the weight step."""
    net, m, _ = build(space, "pc-darts", method_cfg={"warmup_epochs": 1})
    ref_net = copy.deepcopy(net)
    ref_w = torch.optim.SGD(
        list(ref_net.weights()),
        lr=m.cfg["w_lr"],
        momentum=m.cfg["momentum"],
        weight_decay=m.cfg["w_wd"],
        nesterov=bool(m.cfg["nesterov"]),
    )
    ref_a = torch.optim.Adam(
        list(ref_net.alphas()), lr=m.cfg["a_lr"], betas=tuple(m.cfg["a_betas"]), weight_decay=m.cfg["a_wd"]
    )
    a0 = [a.detach().clone() for a in net.alphas()]
    for epoch in range(2):
        m.on_epoch_start(epoch)
        tb, vb = batch(2 * epoch), batch(2 * epoch + 1)
        stats = m.step(tb, vb)
        assert ("val_n" in stats) == (epoch >= 1)
        if epoch >= 1:  # the α step (reference: architect.step, first order)
            ref_a.zero_grad()
            loss = F.cross_entropy(ref_net(vb[0]), vb[1])
            grads = torch.autograd.grad(loss, list(ref_net.alphas()))
            for a, g in zip(ref_net.alphas(), grads):
                a.grad = g
            ref_a.step()
        for group in ref_w.param_groups:
            group["lr"] = m.lr
        ref_w.zero_grad()
        F.cross_entropy(ref_net(tb[0]), tb[1]).backward()
        torch.nn.utils.clip_grad_norm_(list(ref_net.weights()), m.cfg["grad_clip"])
        ref_w.step()
        if epoch == 0:
            assert all(torch.equal(a, b) for a, b in zip(a0, net.alphas()))
    for p, q in zip(net.parameters(), ref_net.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)
    assert not all(torch.equal(a, b) for a, b in zip(a0, net.alphas()))


def test_pc_darts_warmup_default_scales_15_of_50():
    cls = get_method("pc-darts")
    for epochs, expected in ((50, 15), (3, 0), (10, 3), (100, 30)):
        _, m, _ = build("nb201", "pc-darts", epochs=epochs)
        assert m.warmup_epochs == expected
    assert cls.options["warmup_epochs"].nullable


# ------------------------------------------------------------------------------------------------ R-DARTS


class EVLocalAvgTranscript:
    """automl/RobustDARTS@3dec3fe src/utils.py:31-140, transcribed (update + early_stop), for comparison."""

    def __init__(self, window=5, ev_freq=2, total_epochs=50):
        self.window, self.ev_freq, self.epochs = window, ev_freq, total_epochs
        self.stop_search, self.stop_epoch = False, total_epochs - 1
        self.ev, self.ev_local_avg, self.la_epochs = [], [], {}
        self.la_start_idx, self.la_end_idx = 0, window

    def update(self, epoch, ev):
        self.ev.append(ev)
        if len(self.ev) >= int(np.ceil(self.window / 2)) and epoch < self.epochs - 1:
            if len(self.ev) < self.window:
                self.ev_local_avg.append(np.mean(self.ev))
            else:
                self.ev_local_avg.append(np.mean(self.ev[self.la_start_idx : self.la_end_idx]))
                self.la_start_idx += 1
                self.la_end_idx += 1
            self.la_epochs[epoch] = int(epoch - int(self.ev_freq * np.floor(self.window / 2)))
        elif len(self.ev) < int(np.ceil(self.window / 2)):
            self.la_epochs[epoch] = -1

    def early_stop(self, epoch, factor=1.3, es_start_epoch=10, delta=4):
        if int(self.la_epochs[epoch] - self.ev_freq * delta) >= es_start_epoch:
            if self.ev_local_avg[-1] / self.ev_local_avg[-1 - delta] > factor:
                self.stop_search = True
                self.stop_epoch = int(self.la_epochs[epoch] - self.ev_freq * delta)


def test_darts_es_rule_matches_the_reference_transcript():
    rng = random.Random(0)
    for trial in range(200):
        growth = rng.choice([0.0, 0.02, 0.05, 0.1, 0.2])
        values = [1.0 + growth * i * i + rng.random() * 0.3 for i in range(26)]
        epochs = list(range(0, 50, 2)) + [49]
        ref = EVLocalAvgTranscript()
        ours = None
        for i, (t, v) in enumerate(zip(epochs, values)):
            ref.update(t, v)
            if t != 49:
                ref.early_stop(t)
            ours = es_decision(epochs[: i + 1], values[: i + 1], 50, 2)
            assert (ours is not None) == ref.stop_search, (trial, t)
            if ref.stop_search:
                assert ours == ref.stop_epoch
                break
    # spec sanity numbers: the earliest stop is at epoch 22 and reports epoch 10's cell
    steep = [1.0] * 6 + [100.0] * 20
    stops = [es_decision(list(range(0, 2 * k + 1, 2)), steep[: k + 1], 50, 2) for k in range(25)]
    first = next(k for k, s in enumerate(stops) if s is not None)
    assert 2 * first >= 22 and stops[first] == 2 * first - 12
    assert es_decision(list(range(0, 50, 2)), [1.0] * 25, 50, 2) is None


def es_cfg(tmp_rules):
    prof = C.load_profile(TINY)
    part = copy.deepcopy(C.find_part(prof, "nb201"))
    part["epochs"] = 4
    part["hooks"] = {"collapse": {"every": 1}}
    part["method_overrides"] = {"darts-es": tmp_rules}
    return C.resolve("nb201", "darts-es", 0, prof, part)


def test_a_darts_es_run_that_stops_says_so_and_reports_the_earlier_cell(shared_data, tmp_path):
    # constants that fire at the first possible check: window 1, δ 1, start 0, factor 0 (any ratio > 0)
    cfg = es_cfg({"window": 1, "delta": 1, "factor": 0.0, "es_start_epoch": 0})
    rec = SearchRun(cfg, tmp_path, shared_data, torch.device("cpu")).run()
    assert rec["status"] == "ok"
    stop = rec["final"]["early_stop"]
    assert stop["stopped"] and stop["stopped_at_epoch"] == 1 and stop["reported_epoch"] == 0
    assert len(rec["epochs"]) == 2 and rec["early_stop"]["reported_epoch"] == 0
    assert rec["final"]["selection"] == {"rule": "early_stop", "epoch": 0, "last_epoch_arch": rec["epochs"][1]["arch"]}
    assert rec["final"]["arch"] == rec["epochs"][0]["arch"]
    never = SearchRun(
        es_cfg({"factor": 1e9, "window": 1, "delta": 1, "es_start_epoch": 0}),
        tmp_path / "n",
        shared_data,
        torch.device("cpu"),
    ).run()
    assert never["final"]["early_stop"] == {"stopped": False} and len(never["epochs"]) == 4


def test_rdarts_l2_is_darts_second_order_with_its_weight_decay():
    net, m, cfg = build("nb201", "rdarts-l2", method_cfg={"weight_decay": 0.0081})
    assert all(g["weight_decay"] == 0.0081 for g in m.w_opt.param_groups) and m.cfg["w_wd"] == 0.0081
    ref_net = copy.deepcopy(net)
    ref = get_method("darts-2nd")(ref_net, {**cfg["optim"], **cfg["method_cfg"], "w_wd": 0.0081}, 2, 2)
    for epoch in range(2):
        m.on_epoch_start(epoch)
        ref.on_epoch_start(epoch)
        m.step(batch(epoch), batch(10 + epoch))
        ref.step(batch(epoch), batch(10 + epoch))
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), ref_net.parameters()))
    assert get_method("rdarts-l2").display_label({"weight_decay": 0.0243}) == "R-DARTS (L2) (wd=0.0243)"


# ------------------------------------------------------------------------------------------------ iDARTS


def test_idarts_neumann_hypergradient_converges_to_the_ridge_closed_form():
    """At w* with many Neumann terms, the iDARTS formula is the IFT hypergradient: equal to the ridge closed form
    and to the harness's float64 CG-based IFT reference (harness.hypergrad.estimators.ift_hypergradient)."""
    pb = Ridge()
    w_star, closed = pb.closed_form()
    w = [w_star]
    ift = E.ift_hypergradient(pb.f_tr, pb.f_val, w, pb.alpha, cg_tol=1e-13, cg_max_iters=100)
    H = (pb.Xt.T @ pb.Xt / len(pb.yt) + torch.diag(pb.alpha[0].exp())).numpy()
    gamma = 1.0 / np.linalg.eigvalsh(H).max()
    for mixed in ("exact", "fd"):  # ∇α L_tr is quadratic in w: the central difference is exact up to rounding
        g = idarts_hypergradient(pb.f_tr, pb.f_val, w, pb.alpha, gamma, terms=3000, mixed=mixed)["hypergradient"][0]
        assert torch.allclose(g, closed, atol=1e-8, rtol=1e-6), (mixed, g, closed)
        assert torch.allclose(g, ift.hypergradient[0], atol=1e-8, rtol=1e-6)


def test_idarts_two_terms_match_the_hand_written_formula():
    """K = 2, γ = η (the reference's setting) at a w away from w*: g = 2cα − γ·exp(α)⊙w⊙(v + (I−γH)v + (I−γH)²v)."""
    pb = Ridge(seed=2)
    w = [torch.randn(pb.d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)]
    a = pb.alpha[0]
    Hm = pb.Xt.T @ pb.Xt / len(pb.yt) + torch.diag(a.exp())
    v = pb.grad_val_w(w[0])
    eta = 0.05
    M = torch.eye(pb.d, dtype=torch.float64) - eta * Hm
    s = v + M @ v + M @ M @ v
    expected = 2 * pb.c * a - eta * a.exp() * w[0] * s
    res = idarts_hypergradient(pb.f_tr, pb.f_val, w, pb.alpha, eta, terms=2, mixed="fd", fd_radius=0.01)
    assert torch.allclose(res["series"][0], s, atol=1e-12)
    assert torch.allclose(res["hypergradient"][0], expected, atol=1e-9)
    assert float(res["R"]) == pytest.approx(0.01 / float(v.norm()))
    assert torch.allclose(neumann_series(lambda u: [Hm @ u[0]], [v], eta, 0)[0], v)


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_idarts_method_step_is_weight_steps_then_the_implicit_alpha_step(space):
    """Hand-written reference iteration: T = 2 SGD steps on the weights, then Adam on α with the iDARTS
    hypergradient (exact mixed product, float64 not needed: same formula, same float32 inputs)."""
    net, m, _ = build(space, "idarts", method_cfg={"inner_steps": 2, "mixed_product": "exact"})
    ref_net = copy.deepcopy(net)
    ref_m = get_method("darts-1st")(ref_net, dict(m.cfg), 2, 2)  # its weight_step and Adam: the shared pieces
    m.on_epoch_start(0)
    ref_m.on_epoch_start(0)
    a0 = [a.detach().clone() for a in net.alphas()]
    s1 = m.step(batch(0), batch(1))
    assert "val_n" not in s1 and all(torch.equal(x, y) for x, y in zip(a0, net.alphas()))
    s2 = m.step(batch(2), batch(3))
    assert "val_n" in s2
    ref_m.weight_step(*batch(0))
    ref_m.weight_step(*batch(2))
    f_tr = ref_objective(ref_net, *batch(2))
    f_val = ref_objective(ref_net, *batch(3))
    res = idarts_hypergradient(
        f_tr, f_val, [p.detach() for p in ref_m.weights], [a.detach() for a in ref_m.alphas], ref_m.lr, 2, "exact"
    )
    ref_m.apply_alpha_grad(res["hypergradient"])
    for p, q in zip(net.parameters(), ref_net.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)
    assert not all(torch.equal(x, y) for x, y in zip(a0, net.alphas()))


def ref_objective(net, x, y):
    from torch.func import functional_call

    named = dict(net.named_parameters())
    ids = {id(p): n for n, p in named.items()}
    wn = [ids[id(p)] for p in net.weights()]
    an = [ids[id(a)] for a in net.alphas()]
    buffers = {n: b.clone() for n, b in net.named_buffers()}

    def f(w, a):
        return F.cross_entropy(functional_call(net, {**dict(zip(wn, w)), **dict(zip(an, a)), **buffers}, (x,)), y)

    return f


def test_idarts_notebook_weight_steps_leave_the_weights_alone():
    net, m, cfg = build("nb201", "idarts", method_cfg={"weight_steps": "notebook"})
    w0 = [w.detach().clone() for w in net.weights()]
    m.on_epoch_start(0)
    m.step(batch(0), batch(1))
    assert all(torch.equal(a, b) for a, b in zip(w0, net.weights()))
    devs = get_method("idarts").option_deviations({"weight_steps": "real", "inner_steps": 1}, {})
    assert any("weight_steps=real" in d for d in devs)


def test_published_numbers_of_the_new_methods_load():
    from reports import published as P

    pub = P.load_published()
    assert pub["pc-darts"]["evaluation"]["rows"][0]["error_mean"] == 2.57
    assert pub["idarts"]["benchmark"]["rows"][0]["c10_test"] == [93.58, 0.32]
    assert pub["rdarts"]["evaluation"]["rows"][0]["error_mean"] == 2.95
