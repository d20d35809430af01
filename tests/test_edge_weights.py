"""The edge-weight contract (harness.spaces.base): a method supplies per-edge op weights, the space combines them.

Weightings defined here — fixed uniform weights, independent sigmoids, a fixed sampled op — run on both spaces'
tiny supernets with no change to any space; a method's α-loss terms reach the α step.
"""

from __future__ import annotations

import copy
from typing import List

import pytest
import torch

from baselines.darts import DartsFirstOrder
from harness.spaces.base import EdgeWeighting, EdgeWeights, GumbelWeighting, SoftmaxWeighting
from harness.spaces.darts.supernet import DartsSupernet, MixedOp, SearchCell
from harness.spaces.nb201.supernet import NB201SearchCell, NB201Supernet
from tests.conftest import ToySupernet, toy_batches


class UniformWeighting(EdgeWeighting):
    """Every op weighted 1/K, no gradient to α: the softmax mixture at α = 0."""

    name = "uniform"
    scope = "network"

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        return EdgeWeights(torch.full_like(alpha, 1.0 / alpha.shape[-1]))


class SigmoidWeighting(EdgeWeighting):
    """Fair DARTS style: independent sigmoids; records every α it was asked for."""

    name = "sigmoid"

    def __init__(self, scope=None):
        self.scope = scope
        self.asked: List[torch.Tensor] = []

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        self.asked.append(alpha)
        return EdgeWeights(torch.sigmoid(alpha))


class FixedOpWeighting(EdgeWeighting):
    """Every edge runs op ``k`` only, weight 1 (straight-through of a softmax, so α still gets a gradient)."""

    name = "fixed-op"

    def __init__(self, k: int):
        self.k = k

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        soft = torch.softmax(alpha, dim=-1)
        index = torch.full((alpha.shape[0], 1), self.k, dtype=torch.long, device=alpha.device)
        hard = torch.zeros_like(soft).scatter_(-1, index, 1.0) - soft.detach() + soft
        return EdgeWeights(hard, index)


def nb201() -> NB201Supernet:
    torch.manual_seed(0)
    return NB201Supernet(C=4, N=1, num_classes=10)


def darts() -> DartsSupernet:
    torch.manual_seed(0)
    return DartsSupernet(C=4, layers=5, num_classes=10)


def search_cells(net) -> int:
    return sum(isinstance(c, (NB201SearchCell, SearchCell)) for c in net.cells)


SPACES = {"nb201": nb201, "darts": darts}


def batch(seed=0, n=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g)


@pytest.mark.parametrize("space", SPACES)
def test_uniform_weighting_is_the_softmax_mixture_at_zero_alpha(space):
    net = SPACES[space]()
    ref = copy.deepcopy(net)
    with torch.no_grad():
        for a in ref.alphas():
            a.zero_()
    x = batch()
    net.set_weighting(UniformWeighting())
    assert net.mode == "uniform"
    out = net(x)
    torch.testing.assert_close(out, ref(x), rtol=1e-6, atol=1e-6)  # ref: the default SoftmaxWeighting
    out.sum().backward()
    assert all(a.grad is None for a in net.alphas())  # the weights do not depend on α


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("scope", ["network", "cell"])
def test_sigmoid_weighting_runs_per_scope_and_trains_alpha(space, scope):
    net = SPACES[space]()
    w = SigmoidWeighting(scope)
    net.set_weighting(w)
    out = net(batch())
    asked = len(net.alphas()) if scope == "network" else search_cells(net)
    assert len(w.asked) == asked
    assert {id(a) for a in w.asked} == {id(a) for a in net.alphas()}
    softmax_out = copy.deepcopy(net)
    softmax_out.set_weighting(SoftmaxWeighting())
    assert not torch.allclose(out, softmax_out(batch()))  # sigmoids do not sum to 1: another mixture
    out.square().sum().backward()
    for a in net.alphas():
        assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_a_weighting_without_scope_follows_the_space_config():
    net = DartsSupernet(C=4, layers=5, num_classes=10, gumbel_scope="cell")
    w = SigmoidWeighting(scope=None)
    net.set_weighting(w)
    net(batch())
    assert net.weighting_scope == "cell" and len(w.asked) == search_cells(net)


@pytest.mark.parametrize("space", SPACES)
def test_a_sampled_index_runs_only_that_op(space):
    net = SPACES[space]()
    net.set_weighting(FixedOpWeighting(3))
    ran = set()
    mixed = [m for m in net.modules() if isinstance(m, MixedOp)]
    edges = [ops for c in net.cells if isinstance(c, NB201SearchCell) for ops in c.edges.values()]
    for ops in [m._ops for m in mixed] + edges:
        for k, op in enumerate(ops):
            op.register_forward_hook(lambda mod, inp, out, k=k: ran.add(k))
    net(batch()).sum().backward()
    assert ran == {3}
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.alphas())


def test_a_weighting_of_the_wrong_shape_is_refused():
    class Bad(EdgeWeighting):
        name = "bad"

        def __call__(self, alpha):
            return EdgeWeights(alpha[:, :2])

    net = nb201()
    net.set_weighting(Bad())
    with pytest.raises(ValueError, match="shape"):
        net(batch())
    with pytest.raises(TypeError):
        net.set_weighting("softmax")  # type: ignore[arg-type]


def test_builtin_gumbel_weighting_is_hard_gumbel_softmax():
    net = nb201()
    torch.manual_seed(5)
    net.set_weighting(GumbelWeighting(2.0))
    net(batch())
    torch.manual_seed(5)
    hardwts, index = net.sample_gumbel()
    assert torch.equal(net.last_sample[1], index) and torch.equal(net.last_sample[0], hardwts.detach())


class L2AlphaDarts(DartsFirstOrder):
    """DARTS 1st order with an extra α-loss term c·Σα² (as β-DARTS / Fair DARTS add theirs)."""

    coefficient = 0.7

    def alpha_loss_terms(self):
        return {"l2": self.coefficient * sum((a**2).sum() for a in self.alphas)}


def test_alpha_loss_terms_add_their_gradient_to_the_alpha_step(optim_cfg):
    torch.manual_seed(0)
    net = ToySupernet().double()
    with torch.no_grad():
        net.arch.normal_(0, 0.5)
    plain_net = copy.deepcopy(net)
    cfg = {**optim_cfg, "order": "alpha_first"}
    m = L2AlphaDarts(net, cfg, epochs=4, steps_per_epoch=3)
    plain = DartsFirstOrder(plain_net, cfg, epochs=4, steps_per_epoch=3)
    for method in (m, plain):
        method.on_epoch_start(0)
    alpha0 = net.arch.detach().clone()
    _, va = toy_batches(0, dtype=torch.float64)
    m.alpha_step(None, va)
    plain.alpha_step(None, va)
    # α.grad keeps what Adam stepped on: the CE gradient plus d/dα c·Σα² = 2cα
    torch.testing.assert_close(net.arch.grad, plain_net.arch.grad + 2 * L2AlphaDarts.coefficient * alpha0)
    assert not torch.equal(net.arch, plain_net.arch)


def test_a_method_installs_its_own_weighting_each_epoch(optim_cfg):
    class SigmoidDarts(DartsFirstOrder):
        forward_mode = "sigmoid"

        def edge_weighting(self):
            return SigmoidWeighting("network")

    net = nb201()
    m = SigmoidDarts(net, {**optim_cfg, "order": "alpha_first"}, epochs=2, steps_per_epoch=1)
    m.on_epoch_start(0)
    assert net.mode == m.forward_mode == "sigmoid"
    alpha0 = net.arch_parameters.detach().clone()
    g = torch.Generator().manual_seed(1)
    tr = (torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g))
    va = (torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g))
    stats = m.step(tr, va)
    assert all(torch.isfinite(v).all() for v in stats.values())
    assert not torch.equal(alpha0, net.arch_parameters)
