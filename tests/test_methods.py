"""Each method's update on a tiny supernet: what it changes, what it must not, and its exact α-gradient."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from baselines.darts import DartsSecondOrder
from baselines.gdas import gumbel_tau
from harness.config import load_protocol
from harness.methods import cosine_lr
from harness.registry import get_method, list_methods
from tests.conftest import ToySupernet, capture_alpha_grad, toy_batches

# every method's options from its NB201 protocol row (a new method is covered once it has a row)
METHOD_OPTS = {m: row.get("method", {}) for m, row in load_protocol("nb201")["methods"].items()}


def make(method, net, optim_cfg, **opts):
    cfg = {**optim_cfg, **METHOD_OPTS.get(method, {}), **opts}
    m = get_method(method)(net, cfg, epochs=4, steps_per_epoch=3)
    m.on_epoch_start(0)
    return m


def snapshot(params):
    return [p.detach().clone() for p in params]


def changed(before, params):
    return [not torch.equal(b, p.detach()) for b, p in zip(before, params)]


def test_registry_lists_the_five_methods_and_variants():
    assert {"darts-1st", "darts-2nd", "gdas", "milenas", "single-level"} <= set(list_methods())
    assert {"milenas-gumbel", "darts2-then-milenas"} <= set(list_methods())


@pytest.mark.parametrize("method", list_methods())
def test_alpha_step_changes_only_alpha_and_weight_step_only_weights(method, toy_net, optim_cfg):
    m = make(method, toy_net, optim_cfg)
    tr, va = toy_batches()
    w0, a0 = snapshot(m.weights), snapshot(m.alphas)
    stats = m.alpha_step(tr, va)
    assert all(changed(a0, m.alphas)), "the α step must move α"
    assert not any(changed(w0, m.weights)), "the α step must not touch the weights"
    assert all(torch.isfinite(v).all() for v in stats.values())
    w1, a1 = snapshot(m.weights), snapshot(m.alphas)
    stats = m.weight_step(*tr)
    assert not any(changed(a1, m.alphas)), "the w step must not touch α"
    assert any(changed(w1, m.weights)), "the w step must move the weights"
    assert int(stats["train_n"]) == tr[1].shape[0]


@pytest.mark.parametrize(
    "method,order",
    [("darts-1st", "w_first"), ("darts-1st", "alpha_first"), ("gdas", "w_first"), ("milenas", "alpha_first")],
)
def test_update_order(method, order, toy_net, optim_cfg):
    m = make(method, toy_net, optim_cfg, order=order)
    calls = []
    orig_a, orig_w = m.alpha_step, m.weight_step
    m.alpha_step = lambda *a: (calls.append("alpha"), orig_a(*a))[1]
    m.weight_step = lambda *a: (calls.append("w"), orig_w(*a))[1]
    m.step(*toy_batches())
    assert calls == (["w", "alpha"] if order == "w_first" else ["alpha", "w"])


def manual_alpha_grad(net, x, y):
    return torch.autograd.grad(F.cross_entropy(net(x), y), net.alphas())[0]


def test_darts_first_order_gradient_is_val_gradient(toy_net, optim_cfg):
    ref = copy.deepcopy(toy_net)
    m = make("darts-1st", toy_net, optim_cfg)
    seen = capture_alpha_grad(m)
    tr, va = toy_batches()
    m.alpha_step(tr, va)
    torch.testing.assert_close(seen["g"][0], manual_alpha_grad(ref, *va))


@pytest.mark.parametrize("lam,form", [(1.0, "paper"), (0.1, "paper"), (999.0, "paper"), (0.1, "code")])
def test_milenas_gradient_mixes_train_and_val(lam, form, toy_net, optim_cfg):
    ref = copy.deepcopy(toy_net)
    m = make("milenas", toy_net, optim_cfg, lam=lam, lambda_form=form)
    seen = capture_alpha_grad(m)
    tr, va = toy_batches()
    m.alpha_step(tr, va)
    g_tr, g_val = manual_alpha_grad(ref, *tr), manual_alpha_grad(ref, *va)
    expected = g_tr + lam * g_val if form == "paper" else g_val + lam * g_tr
    torch.testing.assert_close(seen["g"][0], expected)


def test_milenas_with_lambda_zero_is_single_level(toy_net, optim_cfg):
    net2 = copy.deepcopy(toy_net)
    a = make("milenas", toy_net, optim_cfg, lam=0.0)
    b = make("single-level", net2, optim_cfg)
    tr, va = toy_batches()
    a.step(tr, va)
    b.step(tr, va)
    for p, q in zip(toy_net.parameters(), net2.parameters()):
        torch.testing.assert_close(p, q)


def test_single_level_ignores_the_val_batch(toy_net, optim_cfg):
    net2 = copy.deepcopy(toy_net)
    a = make("single-level", toy_net, optim_cfg)
    b = make("single-level", net2, optim_cfg)
    tr, va = toy_batches(0)
    _, other_va = toy_batches(1)
    a.step(tr, va)
    b.step(tr, other_va)
    for p, q in zip(toy_net.parameters(), net2.parameters()):
        assert torch.equal(p, q)


def exact_unrolled_alpha_grad(net, m, tr, va, xi):
    """d/dα L_val(w − ξ(μ·b + ∇w L_tr(w, α) + λ_w·w), α), by autograd through the virtual step."""
    names = dict(net.named_parameters())
    w_names = [n for n, p in names.items() if all(p is not a for a in net.alphas())]
    weights = [names[n] for n in w_names]
    g = torch.autograd.grad(F.cross_entropy(net(tr[0]), tr[1]), weights, create_graph=True)
    mu, wd = m.cfg["momentum"], m.cfg["w_wd"]
    unrolled = {}
    for n, p, gp in zip(w_names, weights, g):
        buf = m.w_opt.state.get(p, {}).get("momentum_buffer")
        step = gp + wd * p + (mu * buf if buf is not None else 0)
        unrolled[n] = p - xi * step
    unrolled.update({n: b.clone() for n, b in net.named_buffers()})
    loss = F.cross_entropy(functional_call(net, unrolled, (va[0],)), va[1])
    return torch.autograd.grad(loss, net.alphas())[0]


@pytest.mark.parametrize("with_momentum", [False, True])
def test_darts_second_order_matches_exact_unrolled_gradient(with_momentum, optim_cfg):
    torch.manual_seed(0)
    net = ToySupernet().double()
    with torch.no_grad():
        net.arch.normal_(0, 0.5)
    m = make("darts-2nd", net, optim_cfg)
    tr, va = toy_batches(0, dtype=torch.float64)
    if with_momentum:
        m.weight_step(*toy_batches(3, dtype=torch.float64)[0])  # fills the momentum buffers
        assert m.w_opt.state[m.weights[0]]["momentum_buffer"] is not None
    exact = exact_unrolled_alpha_grad(net, m, tr, va, m.lr)
    w_before = snapshot(m.weights)
    grads, _, _ = m.unrolled_alpha_grad(tr, va)
    torch.testing.assert_close(grads[0], exact, rtol=1e-4, atol=1e-7)
    # the finite-difference passes restore the weights
    for b, p in zip(w_before, m.weights):
        torch.testing.assert_close(b, p.detach(), rtol=0, atol=1e-12)
    # and the second-order term is not negligible here (the check has teeth)
    first_order = manual_alpha_grad(net, *va)
    assert not torch.allclose(grads[0], first_order, rtol=1e-3, atol=1e-6)


def milenas_architect_alpha_grad(net, m, tr, va, xi):
    """chaoyanghe/MiLeNAS architect.py ``_backward_step_unrolled`` by hand, with the exact Hessian-vector product:
    θ = (w, α) all model parameters, θ' = θ − ξ(∇θ L_tr + λ_w·θ) (no momentum), v = ∇θ' L_val(θ'),
    g = ∇α' L_val(θ') − ξ·∇α(∇θ L_tr(θ) · v)."""
    names = dict(net.named_parameters())
    theta = list(names.values())
    g = torch.autograd.grad(F.cross_entropy(net(tr[0]), tr[1]), theta)
    unrolled = {
        n: (p - xi * (gp + m.cfg["w_wd"] * p)).detach().requires_grad_(True) for (n, p), gp in zip(names.items(), g)
    }
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    loss = F.cross_entropy(functional_call(net, {**unrolled, **buffers}, (va[0],)), va[1])
    v = torch.autograd.grad(loss, list(unrolled.values()))
    d_alpha = v[[n for n in names].index("arch")]
    g_tr = torch.autograd.grad(F.cross_entropy(net(tr[0]), tr[1]), theta, create_graph=True)
    hv = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g_tr, v)), net.alphas())[0]
    return d_alpha - xi * hv


@pytest.mark.parametrize("method", ["darts-2nd", "darts2-then-milenas"])
def test_milenas_architect_unrolled_gradient_by_hand(method, optim_cfg):
    torch.manual_seed(0)
    net = ToySupernet().double()
    with torch.no_grad():
        net.arch.normal_(0, 0.5)
    m = make(method, net, optim_cfg, unrolled_form="milenas_architect")
    tr, va = toy_batches(0, dtype=torch.float64)
    m.weight_step(*toy_batches(3, dtype=torch.float64)[0])  # momentum buffers exist: the Architect ignores them
    before = snapshot(m.weights + m.alphas)
    expected = milenas_architect_alpha_grad(copy.deepcopy(net), m, tr, va, m.lr)
    grads, _, _ = m.unrolled_alpha_grad(tr, va)
    torch.testing.assert_close(grads[0], expected, rtol=1e-4, atol=1e-7)
    for b, p in zip(before, m.weights + m.alphas):  # w and α restored after the finite differences
        torch.testing.assert_close(b, p.detach(), rtol=0, atol=1e-12)
    quark0 = make("darts-2nd", copy.deepcopy(net), optim_cfg).unrolled_alpha_grad(tr, va)[0][0]
    assert not torch.allclose(grads[0], quark0, rtol=1e-3, atol=1e-6)  # the two forms differ here


def test_unrolled_form_defaults_follow_each_methods_reference():
    d2, d2m = get_method("darts-2nd"), get_method("darts2-then-milenas")
    assert d2.options["unrolled_form"].default == "quark0"
    assert d2m.options["unrolled_form"].default == "milenas_architect"
    assert d2.option_deviations({}, {}) == [] and d2m.option_deviations({}, {}) == []
    assert any("MiLeNAS" in d for d in d2.option_deviations({"unrolled_form": "milenas_architect"}, {}))
    assert any("quark0" in d for d in d2m.option_deviations({"unrolled_form": "quark0"}, {}))


def test_darts_second_order_uses_current_lr_as_xi(optim_cfg):
    torch.manual_seed(0)
    net = ToySupernet().double()
    m = make("darts-2nd", net, optim_cfg)
    m.on_epoch_start(2)
    assert m.lr == pytest.approx(cosine_lr(2, 4, optim_cfg["w_lr"], optim_cfg["w_lr_min"]))
    seen = {}
    orig = m.virtual_step
    m.virtual_step = lambda x, y, xi: (seen.setdefault("xi", xi), orig(x, y, xi))[1]
    m.alpha_step(*toy_batches(0, dtype=torch.float64))
    assert seen["xi"] == m.lr


def test_darts2_then_milenas_switches_at_the_configured_epoch(toy_net, optim_cfg):
    m = make("darts2-then-milenas", toy_net, optim_cfg, switch_fraction=0.5, lam=1.0)
    assert m.switch_epoch == 2
    used = []
    m.unrolled_alpha_grad = lambda tr, va: (used.append("2nd"), DartsSecondOrder.unrolled_alpha_grad(m, tr, va))[1]
    orig = m.mixed_level_alpha_step
    m.mixed_level_alpha_step = lambda tr, va: (used.append("milenas"), orig(tr, va))[1]
    for epoch in range(4):
        m.on_epoch_start(epoch)
        m.alpha_step(*toy_batches())
    assert used == ["2nd", "2nd", "milenas", "milenas"]


def test_cosine_lr_matches_the_reference_values():
    assert cosine_lr(0, 50, 0.025, 0.001) == pytest.approx(0.025)
    assert cosine_lr(49, 50, 0.025, 0.001) == pytest.approx(1.023679e-03, rel=1e-5)  # quark0/darts issue #12


def test_gumbel_tau_schedules():
    assert gumbel_tau(0, 250, 10, 0.1, "nb201") == 10
    assert gumbel_tau(249, 250, 10, 0.1, "nb201") == pytest.approx(0.1)
    assert gumbel_tau(124, 250, 10, 0.1, "nb201") == pytest.approx(10 - 9.9 * 124 / 249)
    assert gumbel_tau(249, 250, 10, 1, "milenas") == pytest.approx(10 - 9 * 249 / 250)
    with pytest.raises(ValueError):
        gumbel_tau(0, 10, 10, 1, "linear")


def test_gdas_sets_tau_and_gumbel_mode_each_epoch(toy_net, optim_cfg):
    m = make("gdas", toy_net, optim_cfg)
    m.on_epoch_start(3)
    assert toy_net.mode == "gumbel" and toy_net.tau == pytest.approx(0.1)
    assert m.schedule_state()["tau"] == pytest.approx(0.1)


def sampled_ops(net, fn):
    net.calls = [[0, 0, 0], [0, 0, 0]]
    fn()
    return {(e, k) for e in range(2) for k in range(3) if net.calls[e][k] and k < 2}  # ops 0, 1 have weights


@pytest.mark.parametrize("alpha_backward", ["full", "alphas_only"])
def test_gdas_alpha_step_backward_writes_weight_grads_as_xautodl(alpha_backward, optim_cfg):
    """xautodl GDAS.py: arch_loss.backward() gives the ops sampled in the α step a weight gradient (which the next
    w step's in-place zero_grad turns into zeros); ``alphas_only`` leaves them None."""
    tr, va = toy_batches()
    for seed in range(50):  # a seed whose α step samples a weighted op the w step did not
        torch.manual_seed(seed)
        net = ToySupernet()
        m = make("gdas", net, optim_cfg, order="w_first", alpha_backward=alpha_backward)
        in_w = sampled_ops(net, lambda m=m: m.weight_step(*tr))
        in_a = sampled_ops(net, lambda m=m: m.alpha_step(tr, va))
        only_a = in_a - in_w
        if only_a:
            break
    assert only_a
    for e, k in only_a:
        grad = net.ops[e][k].weight.grad
        if alpha_backward == "alphas_only":
            assert grad is None
        else:
            assert grad is not None and grad.abs().sum() > 0
            m.w_opt.zero_grad(set_to_none=False)  # the next w step's zero_grad (PyTorch 1.x, in place)
            assert net.ops[e][k].weight.grad is not None and not net.ops[e][k].weight.grad.any()


def test_gdas_alpha_backward_forms_give_the_same_alpha_update(optim_cfg):
    """Same samples, same α-gradient (bit for bit); only the weights' .grad differ, and so later weight steps."""
    nets = []
    for form in ("full", "alphas_only"):
        torch.manual_seed(3)
        net = ToySupernet()
        m = make("gdas", net, optim_cfg, order="w_first", alpha_backward=form)
        torch.manual_seed(4)
        m.step(*toy_batches(0))
        nets.append(net)
    assert torch.equal(nets[0].arch, nets[1].arch)
    assert all(torch.equal(p, q) for p, q in zip(nets[0].weights(), nets[1].weights()))
    assert get_method("gdas").option_deviations({"alpha_backward": "alphas_only"}, {})
    assert get_method("gdas").option_deviations({}, {}) == []


def test_gdas_computes_only_the_sampled_op(toy_net, optim_cfg):
    m = make("gdas", toy_net, optim_cfg)
    toy_net.calls = [[0, 0, 0], [0, 0, 0]]
    m.alpha_step(*toy_batches())
    assert [sum(c) for c in toy_net.calls] == [1, 1]
    assert toy_net.arch.grad is not None


@pytest.mark.parametrize("target", ["weights", "weights+alphas", "alphas", "none"])
def test_grad_clip_targets(target, toy_net, optim_cfg):
    m = make("darts-1st", toy_net, optim_cfg, grad_clip_target=target, grad_clip=1.0)
    for p in m.weights + m.alphas:
        p.grad = torch.full_like(p, 10.0)
    m.clip_gradients()
    w_norm = torch.cat([p.grad.flatten() for p in m.weights]).norm()
    a_norm = torch.cat([p.grad.flatten() for p in m.alphas]).norm()
    all_norm = torch.cat([p.grad.flatten() for p in m.weights + m.alphas]).norm()
    if target == "weights":
        assert w_norm == pytest.approx(1.0, rel=1e-4) and a_norm > 1
    elif target == "weights+alphas":
        assert all_norm == pytest.approx(1.0, rel=1e-4)
    elif target == "alphas":
        assert a_norm == pytest.approx(1.0, rel=1e-4) and w_norm > 1
    else:
        assert w_norm > 1 and a_norm > 1


def test_state_dict_round_trip_resumes_identically(optim_cfg):
    torch.manual_seed(0)
    net_a = ToySupernet()
    net_b = copy.deepcopy(net_a)
    a = make("darts-2nd", net_a, optim_cfg)
    for i in range(2):
        a.step(*toy_batches(i))
    b = make("darts-2nd", net_b, optim_cfg)
    net_b.load_state_dict(net_a.state_dict())
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for i in range(2, 4):
        a.step(*toy_batches(i))
        b.step(*toy_batches(i))
    for p, q in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(p, q)
