"""Differential tests against the official xautodl package (D-X-Y/AutoDL-Projects, PyPI xautodl 1.0.0).

xautodl's ``TinyNetworkDarts`` / ``TinyNetworkGDAS`` are built with the same config, their state
(weights + α) is loaded into ``NB201Supernet`` (same state-dict keys and parameter order), and the
outputs, α gradients and derived arch strings are compared.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from harness.spaces.nb201.arch import NB201Arch, all_archs
from harness.spaces.nb201.ops import NB201_OPS
from harness.spaces.nb201.supernet import NB201SearchCell, NB201Supernet

pytestmark = pytest.mark.xautodl
xautodl_models = pytest.importorskip("xautodl.models")

C, N = 8, 1


def _xautodl_net(name: str):
    """Build via get_cell_based_tiny_net and check the BN flags were really applied: its bare
    ``except:`` silently retries without affine/track_running_stats."""
    config = dict(
        name=name, C=C, N=N, max_nodes=4, num_classes=10, space=list(NB201_OPS), affine=False, track_running_stats=False
    )
    net = xautodl_models.get_cell_based_tiny_net(config)
    from xautodl.models.cell_searchs.search_cells import NAS201SearchCell

    cell_bns = [
        m
        for cell in net.cells
        if isinstance(cell, NAS201SearchCell)
        for m in cell.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    assert len(cell_bns) == 12 * 2 * N + 12 * N  # 3 stages × N cells × 12 BNs
    assert all(not bn.affine and not bn.track_running_stats for bn in cell_bns), "xautodl BN flags not applied"
    return net


def _ours_from(xnet, **kw) -> NB201Supernet:
    ours = NB201Supernet(C=C, N=N, num_classes=10, affine=False, track_running_stats=False, **kw)
    x_params = [(n, tuple(p.shape)) for n, p in xnet.named_parameters()]
    o_params = [(n, tuple(p.shape)) for n, p in ours.named_parameters()]
    assert o_params == x_params  # same parameter order, names and shapes
    assert list(ours.state_dict()) == list(xnet.state_dict())  # buffers too
    ours.load_state_dict(xnet.state_dict(), strict=True)
    # weights()/alphas() split agrees with xautodl get_weights()/get_alphas()
    assert [id(p) for p in xnet.get_alphas()] == [id(dict(xnet.named_parameters())["arch_parameters"])]
    assert len(ours.weights()) == len(xnet.get_weights())
    return ours


def _randomize(net, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.arch_parameters.copy_(torch.randn(net.arch_parameters.shape, generator=g))
        for m in net.modules():  # non-trivial BN affine params / running stats in the fixed blocks
            if isinstance(m, nn.BatchNorm2d) and m.affine:
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


@pytest.mark.parametrize("train", [True, False])
def test_darts_softmax_logits_match(train):
    torch.manual_seed(0)
    xnet = _xautodl_net("DARTS-V1")
    _randomize(xnet, 1)
    ours = _ours_from(xnet)
    xnet.train(train)
    ours.train(train)
    x = torch.randn(4, 3, 16, 16)
    _, x_logits = xnet(x)
    o_logits = ours(x)
    torch.testing.assert_close(o_logits, x_logits, rtol=1e-5, atol=1e-5)
    # gradients w.r.t. α and a weight agree too
    x_logits.logsumexp(1).sum().backward()
    o_logits.logsumexp(1).sum().backward()
    torch.testing.assert_close(ours.arch_parameters.grad, xnet.arch_parameters.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.stem[0].weight.grad, xnet.stem[0].weight.grad, rtol=1e-4, atol=1e-6)


def test_derived_arch_strings_match():
    torch.manual_seed(0)
    xnet = _xautodl_net("DARTS-V2")
    ours = _ours_from(xnet)
    for seed in range(20):
        _randomize(xnet, seed)
        ours.load_state_dict(xnet.state_dict())
        assert str(ours.derive()) == xnet.genotype().tostr()
    with torch.no_grad():  # `none` wins where its logit is largest (argmax over all 5 ops)
        xnet.arch_parameters.zero_()
        xnet.arch_parameters[:, 0] = 1.0
    ours.load_state_dict(xnet.state_dict())
    assert str(ours.derive()) == xnet.genotype().tostr() == str(NB201Arch(["none"] * 6))


@pytest.mark.parametrize("tau", [10.0, 0.5])
def test_gdas_same_sample_same_outputs_and_alpha_grad(tau):
    """Seeding torch identically makes both draw the same Gumbel noise: same sampled ops, same
    logits and, for the default "xautodl" edge form, the same α gradient."""
    torch.manual_seed(0)
    xnet = _xautodl_net("GDAS")
    _randomize(xnet, 2)
    xnet.set_tau(tau)
    ours = _ours_from(xnet, gdas_edge_form="xautodl")
    ours.set_mode("gumbel", tau=tau)
    x = torch.randn(4, 3, 16, 16)
    for seed in range(3):
        xnet.zero_grad()
        ours.zero_grad()
        torch.manual_seed(100 + seed)
        _, x_logits = xnet(x)
        torch.manual_seed(100 + seed)
        o_logits = ours(x)
        torch.testing.assert_close(o_logits, x_logits, rtol=1e-5, atol=1e-5)
        x_logits.logsumexp(1).sum().backward()
        o_logits.logsumexp(1).sum().backward()
        torch.testing.assert_close(ours.arch_parameters.grad, xnet.arch_parameters.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ours.stem[0].weight.grad, xnet.stem[0].weight.grad, rtol=1e-4, atol=1e-6)


def test_gdas_sample_matches_xautodl_draw():
    """Given the same α and RNG state, our sampler returns xautodl's (hardwts, index)."""
    torch.manual_seed(0)
    xnet = _xautodl_net("GDAS")
    _randomize(xnet, 3)
    xnet.set_tau(1.0)
    ours = _ours_from(xnet)
    ours.set_mode("gumbel", tau=1.0)
    alpha = xnet.arch_parameters
    for seed in range(5):
        torch.manual_seed(seed)  # xautodl's draw, written out from TinyNetworkGDAS.forward
        gumbels = -torch.empty_like(alpha).exponential_().log()
        probs = nn.functional.softmax((alpha.log_softmax(dim=1) + gumbels) / 1.0, dim=1)
        index = probs.max(-1, keepdim=True)[1]
        torch.manual_seed(seed)
        hardwts, o_index = ours.sample_gumbel()
        assert torch.equal(o_index, index)
        torch.testing.assert_close(hardwts.detach(), torch.zeros_like(probs).scatter_(-1, index, 1.0))


def test_gdas_sampled_only_form_same_forward_other_alpha_grad():
    torch.manual_seed(0)
    xnet = _xautodl_net("GDAS")
    _randomize(xnet, 4)
    xnet.set_tau(1.0)
    ours = _ours_from(xnet, gdas_edge_form="sampled_only")
    ours.set_mode("gumbel", tau=1.0)
    x = torch.randn(4, 3, 16, 16)
    torch.manual_seed(9)
    _, x_logits = xnet(x)
    torch.manual_seed(9)
    o_logits = ours(x)
    torch.testing.assert_close(o_logits, x_logits, rtol=1e-5, atol=1e-5)
    x_logits.logsumexp(1).sum().backward()
    o_logits.logsumexp(1).sum().backward()
    assert not torch.allclose(ours.arch_parameters.grad, xnet.arch_parameters.grad)


def test_index_order_equals_xautodl_generation():
    """meta_archs as generate_meta_info builds it: Structure.gen_all + random.seed(88); random.shuffle."""
    from xautodl.models.cell_searchs.genotypes import Structure

    archs = Structure.gen_all(list(NB201_OPS), 4, False)
    state = random.getstate()
    try:
        random.seed(88)
        random.shuffle(archs)
    finally:
        random.setstate(state)
    strings = [a.tostr() for a in archs]
    assert strings == [str(NB201Arch(t)) for t in all_archs()]
    for text in strings[:50]:
        assert tuple(op for node in Structure.str2structure(text).nodes for op, _ in node) == NB201Arch.parse(text)


def test_search_cell_structure_matches():
    from xautodl.models.cell_searchs.search_cells import NAS201SearchCell

    xcell = NAS201SearchCell(C, C, 1, 4, list(NB201_OPS), False, False)
    ocell = NB201SearchCell(C, C, 4, NB201_OPS, False, False)
    assert ocell.edge2index == xcell.edge2index
    o_mods, x_mods = dict(ocell.named_modules()), dict(xcell.named_modules())
    assert list(o_mods) == list(x_mods)  # same module tree
    for name, m in x_mods.items():  # same torch leaf layers with the same settings
        if type(m).__module__.startswith("torch.nn") and not list(m.children()):
            o = o_mods[name]
            assert type(o) is type(m) and o.extra_repr() == m.extra_repr(), name
            if isinstance(m, nn.AvgPool2d):
                assert o.count_include_pad is m.count_include_pad is False
    assert [o_mods[n].__class__.__name__ for n in o_mods if n.endswith(".0")][:1] == ["Zero"]
    ocell.load_state_dict(xcell.state_dict(), strict=True)
