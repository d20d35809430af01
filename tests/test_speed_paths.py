"""The speed paths (README.md#speed), each checked against the eager FP32 reference path on CPU.

Stated tolerances:

* ``memory_format: contiguous`` — bit-identical to xautodl's supernets (logits, α-gradient, every weight
  gradient): the mixed op only drops ``none``'s exact zero and Python's leading ``0 +``.
* ``memory_format: channels_last`` (the default) — oneDNN's NHWC kernels round differently: logits within
  rtol = atol = 1e-5, α-gradient within rtol 1e-4 / atol 1e-6, every weight gradient (conv biases before an
  affine-free BN aside: their true gradient is 0, so both sides are rounding noise) within 1e-4 of its norm.
* ``autocast: bf16`` — at initialisation (NB201 C=8, N=1, 16 px, batch 32) the α-gradient is within 40 % of
  the FP32 one (relative L2) with cosine > 0.9, the weight update within 40 % (relative L2): bfloat16 keeps
  8 mantissa bits, and through the cells' convolutions and batch norms the gradients of a freshly initialised
  supernet (small differences of large terms) lose 10–40 % (measured: C=8..16, 16–32 px, batch 64; worse
  on smaller batches).  That is why it is
  opt-in and a deviation.  DARTS-2nd's virtual step, unrolled pass and finite differences run with autocast
  disabled (asserted per forward), so its α-gradient equals the FP32 one exactly.
* ``fused`` MiLeNAS / single-level: the α update equals the reference's exactly; the weight update is SGD on
  ∇w L_tr at α before the α step; 2 (MiLeNAS) and 1 (single-level) forward passes per iteration.
* No host sync in an iteration: no Python-level ``item``/``tolist``/``bool``/``int``/``float`` on a tensor
  other than the optimizers' CPU step counters, except GDAS's one index list per forward.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import config as C
from harness.errors import ConfigError
from harness.methods import SPEED_DEFAULTS
from harness.registry import get_method
from harness.spaces.nb201.supernet import NB201Supernet

SMALL = {"name": "t", "scale": "custom"}


def resolved(method, space="nb201", variant=None, C_=4, px=8, bs=8, **over):
    part = {
        "space": space,
        "supernet": {"C": C_, "N": 1} if space == "nb201" else {"C": C_, "layers": 3},
        "data": {"image_size": px, "batch_size": bs},
    }
    return C.resolve(space, {"method": method, "variant": dict(variant or {})}, 0, SMALL, part, over)


def build(method, space="nb201", variant=None, seed=0, C_=4, **over):
    from harness.registry import get_space

    cfg = resolved(method, space, variant, C_, **over)
    torch.manual_seed(seed)
    net = get_space(space)().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    m = get_method(method)(net, {**cfg["optim"], **cfg["method_cfg"]}, cfg["epochs"], 10, speed=cfg["speed"])
    m.on_epoch_start(0)  # installs the method's edge weighting
    assert net.mode == m.forward_mode
    net.train()
    return m


def batches(seed=0, n=8, px=8):
    g = torch.Generator().manual_seed(seed)
    mk = lambda: (torch.randn(n, 3, px, px, generator=g), torch.randint(0, 10, (n,), generator=g))  # noqa: E731
    return mk(), mk()


def rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# ------------------------------------------------------------------------------ config


def test_speed_defaults_are_in_the_config_and_validated():
    cfg = resolved("darts-1st")
    assert cfg["speed"] == SPEED_DEFAULTS == {"memory_format": "channels_last", "autocast": "none", "compile": False}
    assert not any(d.startswith("speed.") for d in cfg["deviations"])
    bf = resolved("darts-1st", **{"speed.autocast": "bf16"})
    assert any(d.startswith("speed.autocast=bf16") for d in bf["deviations"])
    for key, bad in (("speed.memory_format", "nhwc"), ("speed.autocast", "fp16"), ("speed.compile", "yes")):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            resolved("darts-1st", **{key: bad})


def test_channels_last_is_applied_to_the_supernet():
    m = build("darts-1st")
    convs = [mod for mod in m.net.modules() if isinstance(mod, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    m2 = build("darts-1st", **{"speed.memory_format": "contiguous"})
    assert all(c.weight.is_contiguous() for c in m2.net.modules() if isinstance(c, nn.Conv2d))


def test_fused_is_an_option_of_milenas_and_single_level_only():
    for method in ("milenas", "single-level"):
        cfg = resolved(method, variant={"fused": True})
        assert cfg["method_cfg"]["fused"] is True and any("fused step" in d for d in cfg["deviations"])
        assert not any("fused step" in d for d in resolved(method)["deviations"])
    with pytest.raises(ConfigError, match="unknown option"):
        resolved("darts-1st", variant={"fused": True})


# ------------------------------------------------------------------------------ xautodl: exact / tolerance


def _xautodl_pair(name, seed=1):
    xm = pytest.importorskip("xautodl.models")
    config = dict(
        name=name,
        C=8,
        N=2,
        max_nodes=4,
        num_classes=10,
        space=["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
        affine=False,
        track_running_stats=False,
    )
    torch.manual_seed(0)
    xnet = xm.get_cell_based_tiny_net(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        xnet.arch_parameters.copy_(torch.randn(xnet.arch_parameters.shape, generator=g))
        for mod in xnet.modules():
            if isinstance(mod, nn.BatchNorm2d) and mod.affine:
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
    ours = NB201Supernet(C=8, N=2, num_classes=10)
    ours.load_state_dict(xnet.state_dict())
    return xnet, ours


def _grads_after(net, x, seed=None):
    net.zero_grad()
    if seed is not None:
        torch.manual_seed(seed)
    out = net(x)
    logits = out[1] if isinstance(out, tuple) else out
    logits.logsumexp(1).sum().backward()
    return logits.detach(), {n: p.grad.detach().clone() for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("train", [True, False])
def test_contiguous_softmax_is_bit_identical_to_xautodl(train):
    xnet, ours = _xautodl_pair("DARTS-V1")
    xnet.train(train)
    ours.train(train)
    x = torch.randn(4, 3, 16, 16)
    xl, xg = _grads_after(xnet, x)
    ol, og = _grads_after(ours, x)
    assert torch.equal(ol, xl)
    assert xg.keys() == og.keys()
    assert all(torch.equal(og[k], xg[k]) for k in xg), [k for k in xg if not torch.equal(og[k], xg[k])][:3]


def test_contiguous_gdas_is_bit_identical_to_xautodl():
    xnet, ours = _xautodl_pair("GDAS", seed=2)
    xnet.set_tau(0.7)
    ours.set_mode("gumbel", tau=0.7)
    x = torch.randn(4, 3, 16, 16)
    for seed in range(3):
        xl, xg = _grads_after(xnet, x, seed=100 + seed)
        ol, og = _grads_after(ours, x, seed=100 + seed)
        assert torch.equal(ol, xl)
        assert all(torch.equal(og[k], xg[k]) for k in xg)


@pytest.mark.parametrize("name", ["DARTS-V1", "GDAS"])
def test_channels_last_matches_xautodl_within_the_stated_tolerance(name):
    xnet, ours = _xautodl_pair(name, seed=3)
    ours.set_memory_format(torch.channels_last)
    if name == "GDAS":
        xnet.set_tau(1.0)
        ours.set_mode("gumbel", tau=1.0)
    x = torch.randn(4, 3, 16, 16)
    xl, xg = _grads_after(xnet, x, seed=7)
    ol, og = _grads_after(ours, x, seed=7)
    torch.testing.assert_close(ol, xl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(og["arch_parameters"], xg["arch_parameters"], rtol=1e-4, atol=1e-6)
    for k in xg:
        if k.endswith(".bias") and ".edges." in k:  # conv bias before an affine-free BN: true gradient 0
            continue
        assert float((og[k] - xg[k]).norm()) <= 1e-4 * float(xg[k].norm()) + 1e-12, k


# ------------------------------------------------------------------------------ GDAS device-side guard


def test_gdas_sampler_guard_needs_no_redraw(monkeypatch):
    net = NB201Supernet(C=4, N=1)
    net.set_mode("gumbel", tau=1.0)
    orig = torch.Tensor.exponential_

    def zero_draw(self, *a, **k):
        out = orig(self, *a, **k)
        out.view(-1)[0] = 0.0  # an Exp(1) draw of 0 would make g = +inf (xautodl redraws)
        return out

    monkeypatch.setattr(torch.Tensor, "exponential_", zero_draw)
    hardwts, index = net.sample_gumbel()
    assert torch.isfinite(hardwts).all() and int(index[0, 0]) == 0  # the clamped draw wins its row
    assert float(hardwts.detach().sum()) == pytest.approx(6.0)


# ------------------------------------------------------------------------------ bf16 autocast


@pytest.mark.parametrize("method", ["darts-1st", "milenas", "single-level"])
def test_bf16_alpha_gradient_and_weight_update_within_tolerance(method):
    tr, va = batches(n=32, px=16)
    ref = build(method, C_=8)
    amp = build(method, C_=8, **{"speed.autocast": "bf16"})
    amp.net.load_state_dict(ref.net.state_dict())
    seen = {}
    for tag, m in (("fp32", ref), ("bf16", amp)):
        orig = m.apply_alpha_grad
        m.apply_alpha_grad = lambda g, tag=tag, orig=orig: (seen.__setitem__(tag, [t.clone() for t in g]), orig(g))[1]
        w0 = [p.detach().clone() for p in m.weights]
        m.step(tr, va)
        seen[tag + "_dw"] = torch.cat([(p.detach() - w).reshape(-1) for p, w in zip(m.weights, w0)])
    g32, g16 = seen["fp32"][0], seen["bf16"][0]
    assert rel(g16, g32) < 0.4 and F.cosine_similarity(g16.reshape(1, -1), g32.reshape(1, -1)).item() > 0.9
    assert rel(seen["bf16_dw"], seen["fp32_dw"]) < 0.4


def test_bf16_gdas_weight_update_within_tolerance():
    tr, va = batches(1, n=32, px=16)
    ref = build("gdas", C_=8)
    amp = build("gdas", C_=8, **{"speed.autocast": "bf16"})
    amp.net.load_state_dict(ref.net.state_dict())
    dws = []
    for m in (ref, amp):
        w0 = [p.detach().clone() for p in m.weights]
        torch.manual_seed(5)  # the same Gumbel sample on both sides
        m.weight_step(*tr)
        dws.append(torch.cat([(p.detach() - w).reshape(-1) for p, w in zip(m.weights, w0)]))
    assert rel(dws[1], dws[0]) < 0.4


def test_darts_second_order_alpha_step_stays_fp32_under_bf16():
    m = build("darts-2nd", **{"speed.autocast": "bf16"})
    tr, va = batches(2)
    seen = []
    hook = m.net.register_forward_pre_hook(lambda mod, inp: seen.append(torch.is_autocast_enabled("cpu")))
    m.alpha_step(tr, va)
    assert seen == [False, False, False, False]  # virtual step, unrolled val pass, w⁺, w⁻
    seen.clear()
    m.weight_step(*tr)
    assert seen == [True]
    hook.remove()
    # and the second-order α-gradient equals the FP32 run's up to rounding (the α step itself is FP32)
    ref = build("darts-2nd")
    ref.net.load_state_dict(m.net.state_dict())
    m2 = build("darts-2nd", **{"speed.autocast": "bf16"})
    m2.net.load_state_dict(m.net.state_dict())
    g_ref, _, _ = ref.unrolled_alpha_grad(tr, va)
    g_amp, _, _ = m2.unrolled_alpha_grad(tr, va)
    torch.testing.assert_close(g_amp[0], g_ref[0], rtol=0, atol=0)


# ------------------------------------------------------------------------------ fused MiLeNAS / single level


def _count_forwards(m):
    calls = []
    m.net.register_forward_pre_hook(lambda mod, inp: calls.append(1))
    return calls


@pytest.mark.parametrize("method,passes", [("milenas", (3, 2)), ("single-level", (2, 1))])
def test_fused_alpha_update_is_the_references_and_saves_a_pass(method, passes):
    tr, va = batches(3)
    ref = build(method, **{"speed.memory_format": "contiguous"})
    fused = build(method, variant={"fused": True}, **{"speed.memory_format": "contiguous"})
    fused.net.load_state_dict(ref.net.state_dict())
    start = copy.deepcopy(ref.net)
    n_ref, n_fused = _count_forwards(ref), _count_forwards(fused)
    ref.step(tr, va)
    fused.step(tr, va)
    assert (len(n_ref), len(n_fused)) == passes
    # α: the same Adam step on the same gradient at the same (w, α)
    assert torch.equal(fused.net.arch_parameters, ref.net.arch_parameters)
    # w: SGD on ∇w L_tr at the *old* α (before this iteration's α step)
    probe = build(method, **{"speed.memory_format": "contiguous"})
    probe.net.load_state_dict(start.state_dict())
    for a in probe.alphas:
        a.grad = None
    loss = F.cross_entropy(probe.net(tr[0]), tr[1])
    loss.backward()
    if method == "milenas":  # the clip norm (weights+alphas) sees α-step gradient + ∇α L_tr, as the reference's
        g_val = torch.autograd.grad(F.cross_entropy(probe.net(va[0]), va[1]), probe.alphas)[0]
        probe.alphas[0].grad = probe.alphas[0].grad * 2 + g_val
    else:
        probe.alphas[0].grad = probe.alphas[0].grad * 2
    probe.clip_gradients()
    probe.w_opt.step()
    for p, q in zip(fused.weights, probe.weights):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert not all(torch.equal(p, q) for p, q in zip(ref.weights, fused.weights))  # the reference's w differs


def test_fused_milenas_records_train_and_val_stats():
    m = build("milenas", variant={"fused": True})
    stats = m.step(*batches(4))
    assert {"train_loss_sum", "train_correct", "train_n", "val_loss_sum", "val_correct", "val_n"} <= set(stats)


# ------------------------------------------------------------------------------ memory: no deepcopy per step


def test_darts_second_order_never_copies_the_supernet(monkeypatch):
    m = build("darts-2nd")
    tr, va = batches(5)

    def no_copy(*a, **k):
        raise AssertionError("deepcopy during a DARTS-2nd step")

    monkeypatch.setattr(copy, "deepcopy", no_copy)
    m.step(tr, va)


# ------------------------------------------------------------------------------ no host sync in an iteration


class SyncSpy:
    """Python-level host reads of tensor values (item/tolist/bool/int/float), optimizer step counters aside."""

    NAMES = ("item", "tolist", "__bool__", "__int__", "__float__")

    def __init__(self, monkeypatch, allowed_ids):
        self.calls = []
        for name in self.NAMES:
            orig = getattr(torch.Tensor, name)

            def spy(t, *a, _orig=orig, _name=name, **k):
                if id(t) not in allowed_ids:
                    self.calls.append((_name, tuple(t.shape)))
                return _orig(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, spy)


@pytest.mark.parametrize("method", ["darts-1st", "darts-2nd", "milenas", "single-level", "gdas"])
def test_no_host_sync_inside_an_iteration(method, monkeypatch):
    m = build(method)
    tr, va = batches(6)
    m.step(tr, va)  # optimizer state exists now
    steps = {id(s["step"]) for opt in (m.w_opt, m.a_opt) for s in opt.state.values() if "step" in s}
    spy = SyncSpy(monkeypatch, steps)
    m.step(tr, va)
    monkeypatch.undo()
    if method == "gdas":  # the one transfer a sampled forward needs: which op each edge runs (w and α pass)
        assert spy.calls == [("tolist", (6,)), ("tolist", (6,))]
    else:
        assert spy.calls == []


# ------------------------------------------------------------------------------ compile (opt-in, slow)


@pytest.mark.slow
def test_compile_warm_up_is_timed_apart_and_matches_eager():
    tr, va = batches(7, n=4, px=8)
    eager = build("darts-1st")
    comp = build("darts-1st", **{"speed.compile": True})
    comp.net.load_state_dict(eager.net.state_dict())
    assert eager.warm_up([4], 8) is None
    seconds = comp.warm_up([4], 8)
    assert seconds is not None and seconds > 0 and comp.warm_up([4], 8) == 0.0
    eager.step(tr, va)
    comp.step(tr, va)
    torch.testing.assert_close(comp.net.arch_parameters, eager.net.arch_parameters, rtol=1e-4, atol=1e-6)
    for p, q in zip(comp.weights, eager.weights):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_is_refused_on_a_gpu_without_bfloat16(monkeypatch):
    from harness.errors import ConfigError
    from harness.precision import check_bf16

    check_bf16(torch.device("cpu"))  # every CPU runs bfloat16 autocast
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-32GB")
    with pytest.raises(ConfigError, match="V100-SXM2-32GB has no bfloat16 support; use speed.autocast=none"):
        check_bf16(torch.device("cuda:0"))


# ------------------------------------------------------------------------------ DARTS-2nd: multi-tensor ops


def _virtual_step_per_tensor(weights, grads, buffers, xi, momentum, weight_decay):
    """The per-tensor virtual step as it was written before the multi-tensor form (the reference formula)."""
    out = []
    for w, g, buf in zip(weights, grads, buffers):
        step = g + weight_decay * w.detach()
        if buf is not None:
            step = step + momentum * buf
        out.append((w.detach() - xi * step).detach())
    return out


def _hvp_per_tensor(m, v, x_tr, y_tr, params=None):
    """DARTS-2nd's finite differences as written before the multi-tensor form (clone, copy_ per tensor)."""
    params = m.weights if params is None else params
    R = float(m.cfg.get("fd_radius", 0.01)) / torch.cat([t.reshape(-1) for t in v]).norm()
    original = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, w, t in zip(params, original, v):
            p.copy_(w + R * t)
    g_pos, _, _ = m.alpha_grad(x_tr, y_tr, amp=False)
    with torch.no_grad():
        for p, w, t in zip(params, original, v):
            p.copy_(w - R * t)
    g_neg, _, _ = m.alpha_grad(x_tr, y_tr, amp=False)
    with torch.no_grad():
        for p, w in zip(params, original):
            p.copy_(w)
    return [(gp - gn) / (2 * R) for gp, gn in zip(g_pos, g_neg)]


def test_multi_tensor_virtual_step_is_bit_identical_to_the_per_tensor_formula():
    from baselines.darts import virtual_step_weights

    g = torch.Generator().manual_seed(3)
    shapes = [(8, 4, 3, 3), (8,), (16, 8, 1, 1), (10, 16), (1,), (4, 4, 5, 5)]
    ws = [torch.randn(s, generator=g).requires_grad_(True) for s in shapes]
    ws[0] = ws[0].detach().to(memory_format=torch.channels_last).requires_grad_(True)
    grads = [torch.randn(s, generator=g) * 10 ** float(torch.randint(-6, 2, (1,), generator=g)) for s in shapes]
    bufs = [torch.randn(s, generator=g) if i % 3 else None for i, s in enumerate(shapes)]
    for xi, mu, wd in [(0.025, 0.9, 3e-4), (0.1, 0.0, 5e-4), (1e-3, 0.9, 0.0)]:
        for buffers in (bufs, [None] * len(bufs)):
            ours = virtual_step_weights(ws, grads, buffers, xi, mu, wd)
            ref = _virtual_step_per_tensor(ws, grads, buffers, xi, mu, wd)
            assert all(torch.equal(a, b) for a, b in zip(ours, ref))
            assert not any(t.requires_grad or t.grad_fn is not None for t in ours)


@pytest.mark.parametrize(
    "space,form", [("nb201", "quark0"), ("nb201", "milenas_architect"), ("darts", "quark0")], ids=str
)
def test_multi_tensor_unrolled_alpha_grad_is_bit_identical_to_the_per_tensor_one(space, form, monkeypatch):
    """The whole second-order α-gradient (virtual step, unrolled pass with copied BN buffers, finite
    differences) equals the per-tensor computation bit for bit, with momentum buffers present; the weights
    and the real network's BN statistics come back exactly."""
    import baselines.darts as D

    ours = build("darts-2nd", space, variant={"unrolled_form": form})
    ref = build("darts-2nd", space, variant={"unrolled_form": form})
    ref.net.load_state_dict(ours.net.state_dict())
    tr, va = batches(11)
    for m in (ours, ref):  # SGD momentum buffers exist now
        m.weight_step(*tr)
    ref.load_state_dict(copy.deepcopy(ours.state_dict()))
    monkeypatch.setattr(
        ref, "hessian_vector_product", lambda v, x, y, params=None: _hvp_per_tensor(ref, v, x, y, params)
    )
    before = {k: v.clone() for k, v in ours.net.state_dict().items()}
    for _ in range(2):  # the second call reuses the scratch copies
        with monkeypatch.context() as mp:
            mp.setattr(D, "virtual_step_weights", _virtual_step_per_tensor)
            mp.setattr(D.ScratchCopies, "fill", lambda self, ts: [t.detach().clone() for t in ts])
            g_ref, loss_ref, _ = ref.unrolled_alpha_grad(tr, va)
        g_ours, loss_ours, _ = ours.unrolled_alpha_grad(tr, va)
        assert torch.equal(loss_ours, loss_ref)
        assert all(torch.equal(a, b) for a, b in zip(g_ours, g_ref))
        after_ref = ref.net.state_dict()
        for k, v in ours.net.state_dict().items():
            assert torch.equal(v, after_ref[k]), k
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
                assert torch.equal(v, before[k]), k  # weights and α restored exactly


# ------------------------------------------------------------------------------ compile mode (CUDA graphs)


def test_compile_mode_validates_is_recorded_and_reaches_torch_compile(monkeypatch):
    plain = resolved("darts-1st", **{"speed.compile": True})
    assert "compile_mode" not in plain["speed"]  # absent = default: configs written before it keep their hash
    graphs = resolved("darts-1st", **{"speed.compile": True, "speed.compile_mode": "reduce-overhead"})
    assert graphs["speed"]["compile_mode"] == "reduce-overhead"
    assert [d for d in graphs["deviations"] if d.startswith("speed.compile_mode=reduce-overhead")]
    assert not [d for d in plain["deviations"] if "compile_mode" in d]
    with pytest.raises(ConfigError, match="speed.compile_mode must be one of"):
        resolved("darts-1st", **{"speed.compile_mode": "max-autotune"})
    seen = []

    def fake_compile(module, **kw):
        seen.append(kw)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    for method, speed in (("darts-1st", plain), ("milenas", graphs)):
        m = build(method, **{f"speed.{k}": v for k, v in speed["speed"].items()})
        m.warm_up([4], 8)
        tr, va = batches(2, n=4)
        g, _, _ = m.alpha_grad(*va)  # reduce-overhead: own copies, never a CUDA graph's output buffer
        assert all(t.grad_fn is None for t in g)
    assert seen == [{"dynamic": False, "mode": "default"}, {"dynamic": False, "mode": "reduce-overhead"}]
