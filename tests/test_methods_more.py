"""The field's baselines (DrNAS, SDARTS-RS/ADV, β-DARTS, Fair DARTS): one iteration of each against the same
iteration written out by hand from the reference code's rule (docs/methods/<name>.md), on tiny supernets of
both spaces; their selection rules, published cells and bad input."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.distributions import Dirichlet, kl_divergence

from harness import config as C
from harness.errors import ConfigError
from harness.registry import get_method, get_space, list_methods
from harness.spaces.base import EdgeWeighting, EdgeWeights

NEW = ("drnas", "sdarts-rs", "sdarts-adv", "beta-darts", "fair-darts")
TINY = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}}
EPOCH, EPOCHS = 2, 4
PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "published"


def resolved(space, method, **over):
    part = {"space": space, "supernet": TINY[space], "data": {"image_size": 8, "batch_size": 6}}
    return C.resolve(space, {"method": method, "variant": {}}, 0, {"name": "t", "scale": "custom"}, part, over)


def setup(space, method, **opts):
    """(method object, the hand-written side's copy of the supernet, the run's config) at epoch ``EPOCH``."""
    cfg = resolved(space, method)
    torch.manual_seed(0)
    net = get_space(space)().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    hand = copy.deepcopy(net)
    mcfg = {**cfg["optim"], **cfg["method_cfg"], **opts}
    m = get_method(method)(net, mcfg, EPOCHS, 5, speed={"memory_format": "contiguous"})
    m.on_epoch_start(EPOCH)
    net.train()
    hand.train()
    return m, hand, mcfg


def batches(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    mk = lambda: (torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))  # noqa: E731
    return mk(), mk()


class Given(EdgeWeighting):
    """The hand-written side's mixing weights: exactly the tensors given, per α tensor."""

    name = "given-by-hand"
    scope = "network"

    def __init__(self, net, weights):
        self.table = {id(a): w for a, w in zip(net.alphas(), weights)}

    def __call__(self, alpha):
        return EdgeWeights(self.table[id(alpha)])


def ce(net, x, y, weights):
    net.set_weighting(Given(net, weights))
    return F.cross_entropy(net(x), y)


def lr_at(cfg):
    """η(e) of the quark0 cosine (main spec §2.1), written out."""
    return cfg["w_lr_min"] + 0.5 * (cfg["w_lr"] - cfg["w_lr_min"]) * (1 + math.cos(math.pi * EPOCH / EPOCHS))


def optimizers(net, cfg):
    alpha_ids = {id(a) for a in net.alphas()}
    weights = [p for p in net.parameters() if id(p) not in alpha_ids]
    sgd = torch.optim.SGD(
        weights, lr=lr_at(cfg), momentum=cfg["momentum"], nesterov=bool(cfg["nesterov"]), weight_decay=cfg["w_wd"]
    )
    adam = torch.optim.Adam(net.alphas(), lr=cfg["a_lr"], betas=tuple(cfg["a_betas"]), weight_decay=cfg["a_wd"])
    return weights, sgd, adam


def clip_and_step(net, weights, sgd, cfg):
    params = weights + list(net.alphas()) if cfg["grad_clip_target"] == "weights+alphas" else weights
    torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
    sgd.step()


def assert_same(m, hand):
    for (name, p), q in zip(m.net.named_parameters(), hand.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6, msg=name)


def alpha_step_by_hand(hand, adam, weights, x, y, extra=None):
    """Adam.zero_grad; loss (+ extra); backward; Adam step (the weights' gradients are zeroed by the w step)."""
    adam.zero_grad()
    loss = ce(hand, x, y, weights)
    if extra is not None:
        loss = loss + extra()
    loss.backward()
    adam.step()


def sdarts_clip(p):
    """SmoothDARTS model_search.py ``clip``: per row remember argmax, clamp [0, 1], an all-zero row gets 1 at the
    argmax, divide by the row sum."""
    rows = []
    for row in p:
        k = int(row.argmax())
        r = row.clamp(0, 1)
        if float(r.sum()) == 0:
            r = r.clone()
            r[k] = 1.0
        rows.append(r / r.sum())
    return torch.stack(rows)


# ------------------------------------------------------------------------------------------------ one iteration


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("reg_type", ["l2", "kl"])
def test_drnas_iteration_by_hand(space, reg_type):
    m, hand, cfg = setup(space, "drnas", reg_type=reg_type)
    tr, va = batches()
    weights, sgd, adam = optimizers(hand, cfg)
    if reg_type == "kl":
        for g in adam.param_groups:
            g["weight_decay"] = 0.0

    def dirichlet():  # utils.py process_step_vector: one rsample per row, elu(α)+1
        return [torch.stack([Dirichlet(F.elu(r) + 1).rsample() for r in a]) for a in hand.alphas()]

    def kl():
        return cfg["reg_scale"] * sum(
            kl_divergence(Dirichlet(F.elu(a) + 1), Dirichlet(torch.ones_like(a))).sum() for a in hand.alphas()
        )

    torch.manual_seed(7)
    m.step(tr, va)
    torch.manual_seed(7)
    alpha_step_by_hand(hand, adam, dirichlet(), *va, extra=kl if reg_type == "kl" else None)
    sgd.zero_grad()
    ce(hand, *tr, dirichlet()).backward()
    clip_and_step(hand, weights, sgd, cfg)
    assert_same(m, hand)
    assert m.net.mode == "dirichlet"


def sdarts_weight_step_by_hand(hand, weights, sgd, cfg, tr, perturb):
    sgd.zero_grad()
    for a in hand.alphas():
        a.grad = None
    with torch.no_grad():
        p = [F.softmax(a, dim=-1) for a in hand.alphas()]
    p = [t.detach().requires_grad_(True) for t in perturb(p)]
    ce(hand, *tr, p).backward()
    for a, t in zip(hand.alphas(), p):  # α.data was p̃ in the reference: its gradient lands in α.grad
        a.grad = t.grad
    clip_and_step(hand, weights, sgd, cfg)


def eps_at(cfg):
    return cfg["epsilon_min"] + (cfg["epsilon_max"] - cfg["epsilon_min"]) * EPOCH / EPOCHS


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_sdarts_rs_iteration_by_hand(space):
    m, hand, cfg = setup(space, "sdarts-rs")
    tr, va = batches()
    weights, sgd, adam = optimizers(hand, cfg)
    eps = eps_at(cfg)
    assert m.eps == pytest.approx(eps)
    torch.manual_seed(3)
    m.step(tr, va)
    torch.manual_seed(3)
    alpha_step_by_hand(hand, adam, [F.softmax(a, -1) for a in hand.alphas()], *va)
    rs = lambda p: [sdarts_clip(t + torch.zeros_like(t).uniform_(-eps, eps)) for t in p]  # noqa: E731
    sdarts_weight_step_by_hand(hand, weights, sgd, cfg, tr, rs)
    assert_same(m, hand)


def pgd_by_hand(hand, tr, eps, steps):
    """attacker/perturb.py Linf_PGD_alpha as the spec reads it: eval mode, random start, sign steps 2ε/steps,
    projection on the ε-ball around p and Π, discarded when the loss did not rise."""

    def attack(p):
        hand.eval()
        with torch.no_grad():
            before = ce(hand, *tr, p)
        adv = [sdarts_clip(t + torch.zeros_like(t).uniform_(-eps, eps)) for t in p]
        for _ in range(steps):
            adv = [t.detach().requires_grad_(True) for t in adv]
            g = torch.autograd.grad(ce(hand, *tr, adv), adv)
            with torch.no_grad():
                adv = [
                    sdarts_clip(t0 + torch.clamp(t + 2 * eps / steps * gi.sign() - t0, -eps, eps))
                    for t0, t, gi in zip(p, adv, g)
                ]
        with torch.no_grad():
            after = ce(hand, *tr, adv)
        hand.train()
        attack.rejected = bool(before > after)
        return p if attack.rejected else adv

    return attack


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_sdarts_adv_iteration_by_hand(space):
    m, hand, cfg = setup(space, "sdarts-adv")
    tr, va = batches()
    weights, sgd, adam = optimizers(hand, cfg)
    torch.manual_seed(5)
    m.step(tr, va)
    torch.manual_seed(5)
    alpha_step_by_hand(hand, adam, [F.softmax(a, -1) for a in hand.alphas()], *va)
    attack = pgd_by_hand(hand, tr, eps_at(cfg), cfg["pgd_steps"])
    sdarts_weight_step_by_hand(hand, weights, sgd, cfg, tr, attack)
    assert_same(m, hand)
    assert int(m.rejected) == int(attack.rejected)
    assert m.net.training and m.net.mode == "softmax"


def test_sdarts_adv_discards_an_attack_without_gain(monkeypatch):
    """The no-gain fallback: when the attacked loss is not above the clean one, the weights train on p itself."""
    m, hand, cfg = setup("nb201", "sdarts-adv")
    tr, _ = batches()
    probs = [F.softmax(a.detach(), -1) for a in m.alphas]
    calls = []
    orig = m._loss_at
    # the first loss (before the attack) is made huge: no attack can beat it
    monkeypatch.setattr(
        m, "_loss_at", lambda x, y, p: (calls.append(1), orig(x, y, p) + (1e6 if not calls[1:] else 0))[1]
    )
    out = m.pgd(*tr, probs, 0.2)
    assert all(torch.equal(o, p) for o, p in zip(out, probs)) and int(m.rejected) == 1


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_beta_darts_iteration_by_hand(space):
    m, hand, cfg = setup(space, "beta-darts")
    tr, va = batches()
    weights, sgd, adam = optimizers(hand, cfg)
    lam = 50 * EPOCH / 100  # architect.py: 0 + 50 * epoch / 100
    assert m.lam() == pytest.approx(lam)

    def beta_decay():  # mlc_loss: mean over edges of logsumexp
        return lam * torch.cat([torch.logsumexp(a, dim=-1) for a in hand.alphas()]).mean()

    torch.manual_seed(1)
    m.step(tr, va)
    alpha_step_by_hand(hand, adam, [F.softmax(a, -1) for a in hand.alphas()], *va, extra=beta_decay)
    sdarts_weight_step_by_hand(hand, weights, sgd, cfg, tr, lambda p: p)
    assert_same(m, hand)


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_fair_darts_iteration_by_hand(space):
    m, hand, cfg = setup(space, "fair-darts")
    tr, va = batches()
    with torch.no_grad():
        for a in hand.alphas():
            a.zero_()  # model_search.py:125-126
    assert all(not a.any() for a in m.alphas)
    weights, sgd, adam = optimizers(hand, cfg)

    def zero_one():  # separate_loss.py ConvSeparateLoss: -mean((σ - ½)²) over both cells, × aux_loss_weight
        s = torch.cat([torch.sigmoid(a).view(-1) for a in hand.alphas()])
        return 10.0 * -F.mse_loss(s, torch.full_like(s, 0.5))

    m.step(tr, va)
    alpha_step_by_hand(hand, adam, [torch.sigmoid(a) for a in hand.alphas()], *va, extra=zero_one)
    sgd.zero_grad()
    (ce(hand, *tr, [torch.sigmoid(a) for a in hand.alphas()]) + zero_one()).backward()
    clip_and_step(hand, weights, sgd, cfg)
    assert_same(m, hand)


# ------------------------------------------------------------------------------------------------ selection


def test_fair_darts_derives_a_variable_cell_by_threshold():
    m, _, _ = setup("darts", "fair-darts")
    net = m.net
    with torch.no_grad():
        for a in net.alphas():
            a.fill_(-5.0)  # σ ≈ 0.007 everywhere
        net.alphas_normal[0, 3] = 3.0  # node 2 ← input 0: σ = 0.95 ≥ 0.85
        net.alphas_normal[1, 4] = 1.0  # node 2 ← input 1: σ = 0.73 < 0.85: dropped
        net.alphas_reduce[2, 0] = 2.0  # node 3 ← input 0: σ = 0.88
    g = net.derive()
    assert type(g).__name__ == "SparseGenotype"
    ops = net.ops
    assert g.normal == [(ops[3], 2, 0)] and g.reduce == [(ops[0], 3, 0)]
    sp = get_space("darts")()
    assert sp.parse_arch(str(g)) == g
    strengths = net.derive_strengths()
    assert strengths is not None and strengths["normal"][0][3] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def test_fair_darts_on_nb201_maps_edges_below_the_threshold_to_none():
    m, _, _ = setup("nb201", "fair-darts")
    with torch.no_grad():
        m.net.arch_parameters.fill_(-4.0)
        m.net.arch_parameters[0, 3] = 2.5  # σ = 0.92
        m.net.arch_parameters[1, 2] = 1.0  # σ = 0.73 < 0.85
    arch = m.net.derive()
    assert arch[0] == m.net.op_names[3] and arch[1] == "none" and all(op == "none" for op in arch[2:])


def test_no_none_op_set_drops_none_from_the_darts_supernet_and_its_rule():
    cfg = resolved("darts", "sdarts-rs")
    assert cfg["space_cfg"]["op_set"] == "no_none"
    net = get_space("darts")().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    assert "none" not in net.ops and net.alphas_normal.shape[1] == 7
    assert all(op != "none" for op, _ in net.derive().normal)


def fair_darts_cells():
    return (yaml.safe_load((PUBLISHED / "fair-darts.yaml").read_text()) or {})["genotypes"]


@pytest.mark.parametrize("name", sorted(fair_darts_cells()))
def test_fair_darts_published_cells_match_their_published_parameter_counts(name):
    """fairdarts/genotypes.py counts: six include the auxiliary head (quark0's convention excludes it), one does not
    (``aux_head`` in data/published/fair-darts.yaml)."""
    from harness.spaces.darts.eval_net import params_report

    cell = fair_darts_cells()[name]
    report = params_report(cell["genotype"], auxiliary=True)
    ours = report["total_params_M"] if cell["aux_head"] else report["params_M"]
    assert abs(ours - cell["params_M"]) <= 0.05, report


def test_a_fair_darts_cell_trains_in_the_evaluation_network():
    from harness.spaces.darts.eval_net import NetworkCIFAR

    net = NetworkCIFAR(
        fair_darts_cells()["FairDARTS_a"]["genotype"], C=4, layers=3, auxiliary=False, drop_path_prob=0.2
    )
    net.train()
    logits, _ = net(torch.randn(2, 3, 8, 8))
    F.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert logits.shape == (2, 10) and all(p.grad is not None for p in net.parameters())


# ------------------------------------------------------------------------------------------------ metadata, bad input


def test_the_five_are_registered_with_docs_and_published_numbers():
    assert set(NEW) <= set(list_methods())
    for name in NEW:
        assert (Path(__file__).resolve().parents[1] / "docs" / "methods" / f"{name}.md").is_file()
    assert {"drnas", "sdarts", "beta-darts", "fair-darts"} <= {p.stem for p in PUBLISHED.glob("*.yaml")}


@pytest.mark.parametrize(
    "over,match",
    [
        ({"method_cfg.reg_type": "entropy"}, "reg_type"),
        ({"space_cfg.op_set": "six"}, "op_set"),
    ],
)
def test_unknown_option_values_are_one_config_error(over, match):
    method = "drnas"
    with pytest.raises(ConfigError, match=match) as e:
        resolved("darts", method, **over)
    assert "\n" not in str(e.value)


def test_an_unsupported_space_is_one_config_error(monkeypatch):
    monkeypatch.setattr(get_method("fair-darts"), "spaces", ("darts",))
    with pytest.raises(ConfigError, match="does not search space nb201") as e:
        resolved("nb201", "fair-darts")
    assert "\n" not in str(e.value)
    assert resolved("darts", "fair-darts")["method"] == "fair-darts"


def test_reconstructed_rows_record_their_deviations():
    assert any("progressive" in d for d in resolved("darts", "drnas")["deviations"])
    assert any("no NAS-Bench-201 reference" in d for d in resolved("nb201", "fair-darts")["deviations"])
