"""DARTS search supernet (docs/spaces/darts.md#supernet, #derivation-rule), GDAS gumbel forward and
FRC (docs/spaces/darts.md#gdas-forward), DartsSpace."""

import pytest
import torch
from torch import nn

from harness.errors import ArchFormatError, ConfigError
from harness.registry import get_space
from harness.spaces.base import SearchSpace, Supernet
from harness.spaces.darts import DartsSpace
from harness.spaces.darts.genotype import Genotype, get_genotype
from harness.spaces.darts.ops import PRIMITIVES, GDASReductionCell
from harness.spaces.darts.supernet import DartsSupernet, MixedOp, SearchCell, gumbel_hard_sample


def tiny(**kw):
    args = dict(C=4, layers=5, num_classes=10)
    args.update(kw)
    return DartsSupernet(**args)


def x16(batch=2):
    torch.manual_seed(123)
    return torch.randn(batch, 3, 16, 16)


def test_default_param_count_and_alphas():
    net = DartsSupernet()
    assert isinstance(net, Supernet)
    assert sum(p.numel() for p in net.weights()) == 1930618  # docs/spaces/darts.md#supernet: 1.930618 M without α
    assert sum(p.numel() for p in net.parameters()) == 1930618 + 2 * 14 * 8
    a = net.alphas()
    assert len(a) == 2 and a[0] is net.alphas_normal and a[1] is net.alphas_reduce
    assert all(isinstance(t, nn.Parameter) and t.shape == (14, 8) for t in a)
    names = {n for n, _ in net.named_parameters()}
    assert {"alphas_normal", "alphas_reduce"} <= names  # registered
    w_ids, a_ids = {id(p) for p in net.weights()}, {id(p) for p in a}
    assert not w_ids & a_ids and w_ids | a_ids == {id(p) for p in net.parameters()}
    assert 0 < float(torch.cat([t.detach().flatten() for t in a]).abs().max()) < 1e-2  # 1e-3 · randn


def test_macro_structure():
    net = DartsSupernet()
    red = [i for i, c in enumerate(net.cells) if c.reduction]
    assert red == [2, 5] and len(net.cells) == 8
    assert net.stem[0].out_channels == 48 and net.stem[1].affine  # stem BN default affine
    assert net.classifier.in_features == 256
    cell = net.cells[0]
    assert len(cell._ops) == 14
    assert isinstance(net.cells[3].preprocess0, nn.Module)
    assert type(net.cells[3].preprocess0).__name__ == "FactorizedReduce"  # after a reduction cell


def test_affine_false_inside_cells_and_pool_bn():
    net = tiny()
    for cell in net.cells:
        for m in cell.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert not m.affine
    for m in net.modules():
        if isinstance(m, MixedOp):
            for name, op in zip(PRIMITIVES, m._ops):
                if "pool" in name:
                    assert isinstance(op, nn.Sequential) and isinstance(op[1], nn.BatchNorm2d)
                    assert not op[1].affine
                else:
                    assert not isinstance(op, nn.Sequential)  # no extra BN on non-pooling ops


def test_reduction_edges_stride():
    net = tiny()
    red = net.cells[1]
    assert red.reduction
    offset = 0
    for i in range(4):
        for j in range(2 + i):
            mp = red._ops[offset + j]._ops[PRIMITIVES.index("max_pool_3x3")][0]
            assert mp.stride == (2 if j < 2 else 1)
        offset += 2 + i


@pytest.mark.parametrize("mode", ["softmax", "gumbel"])
@pytest.mark.parametrize("fixed_reduction", [False, True])
def test_forward_shapes_and_grads(mode, fixed_reduction):
    torch.manual_seed(0)
    net = tiny(fixed_reduction=fixed_reduction)
    net.set_mode(mode, tau=10.0)
    out = net(x16())
    assert out.shape == (2, 10)
    out.sum().backward()
    for a in net.alphas():
        assert a.grad is not None and a.grad.abs().sum() > 0


def test_set_mode_validates():
    net = tiny()
    with pytest.raises(ValueError):
        net.set_mode("hard")
    net.set_mode("gumbel", 3)
    assert net.mode == "gumbel" and net.tau == 3.0


def _spy(net):
    """Count forward calls of every op of every MixedOp: {(cell, edge): [count per op]}."""
    counts = {}
    for ci, cell in enumerate(net.cells):
        if not isinstance(cell, SearchCell):
            continue
        for e, mixed in enumerate(cell._ops):
            counts[(ci, e)] = [0] * len(PRIMITIVES)
            for k, op in enumerate(mixed._ops):

                def hook(mod, inp, out, key=(ci, e), k=k):
                    counts[key][k] += 1

                op.register_forward_hook(hook)
    return counts


def test_softmax_runs_every_op_but_none():
    """``none`` (an exact zero times its weight) is skipped: the same values and α-gradients, one op less."""
    net = tiny()
    counts = _spy(net)
    net(x16())
    assert all(c == [0] + [1] * 7 for c in counts.values())


def test_gumbel_runs_only_sampled_op():
    torch.manual_seed(1)
    net = tiny()
    net.set_mode("gumbel", tau=5.0)
    counts = _spy(net)
    out = net(x16())
    for (ci, e), c in counts.items():
        idx = net.last_indices[ci][e]
        assert c == [1 if k == idx else 0 for k in range(8)], (ci, e, c, idx)
    assert out.shape == (2, 10)


def test_gumbel_edge_output_is_op_times_hardwt():
    torch.manual_seed(2)
    mixed = MixedOp(4, 1)
    mixed.eval()
    alpha = nn.Parameter(1e-3 * torch.randn(1, 8))
    hardwts, index = gumbel_hard_sample(alpha, 1.0)
    assert torch.allclose(hardwts.detach().sum(-1), torch.ones(1))
    assert hardwts[0, index[0]].item() == pytest.approx(1.0)
    x = torch.randn(2, 4, 8, 8)
    y = mixed(x, hardwts[0], index[0])
    assert torch.allclose(y, mixed._ops[index[0]](x))
    y.sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0  # straight-through gradient


def test_gumbel_sampler_distribution():
    torch.manual_seed(3)
    alpha = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    idx = [gumbel_hard_sample(alpha, 1.0)[1][0] for _ in range(3000)]
    freq = [idx.count(k) / len(idx) for k in range(3)]
    assert freq == pytest.approx([0.7, 0.2, 0.1], abs=0.04)


def test_gumbel_scope_network_shares_sample():
    torch.manual_seed(4)
    net = tiny(gumbel_scope="network")
    net.set_mode("gumbel", tau=1.0)
    net(x16())
    normal = [net.last_indices[i] for i, c in enumerate(net.cells) if not c.reduction]
    reduce = [net.last_indices[i] for i, c in enumerate(net.cells) if c.reduction]
    assert len(normal) == 3 and len(reduce) == 2
    assert all(n == normal[0] for n in normal) and reduce[0] == reduce[1]
    # the sample comes from the global RNG: normal first, then reduce (replay after x16's draw)
    x16()
    expected_normal = gumbel_hard_sample(net.alphas_normal, 1.0)[1]
    expected_reduce = gumbel_hard_sample(net.alphas_reduce, 1.0)[1]
    assert normal[0] == expected_normal and reduce[0] == expected_reduce


def test_gumbel_scope_cell_samples_each_cell():
    torch.manual_seed(5)
    net = tiny(gumbel_scope="cell")
    net.set_mode("gumbel", tau=1.0)
    net(x16())
    normal = [net.last_indices[i] for i, c in enumerate(net.cells) if not c.reduction]
    assert len({tuple(n) for n in normal}) == 3  # independent samples (equal with prob 8^-14)


def test_fixed_reduction():
    net = tiny(fixed_reduction=True)
    assert len(net.alphas()) == 1 and net.alphas()[0] is net.alphas_normal
    assert not hasattr(net, "alphas_reduce")
    assert "alphas_reduce" not in dict(net.named_parameters())
    assert [type(c) for c in net.cells].count(GDASReductionCell) == 2
    assert isinstance(net.cells[1], GDASReductionCell) and isinstance(net.cells[3], GDASReductionCell)
    for m in net.cells[1].modules():
        if isinstance(m, nn.BatchNorm2d):
            assert not m.affine
    g = net.derive()
    assert g.reduce is None and g.reduce_concat == [2, 3, 4, 5]
    assert set(net.alpha_probabilities()) == {"normal"}
    net.set_mode("gumbel")
    net(x16())
    assert net.last_indices[1] is None and net.last_indices[0] == net.last_indices[2]
    assert DartsSupernet(fixed_reduction=True).derive().reduce is None


def _alphas_for(genotype_cell, steps=4):
    """α rows that make the quark0 rule return exactly ``genotype_cell`` (first pair of a node stronger)."""
    a = torch.zeros(14, 8)
    offset = 0
    for i in range(steps):
        (op1, j1), (op2, j2) = genotype_cell[2 * i], genotype_cell[2 * i + 1]
        a[offset + j1, PRIMITIVES.index(op1)] = 4.0
        a[offset + j2, PRIMITIVES.index(op2)] = 3.0
        offset += 2 + i
    return a


@pytest.mark.parametrize("name", ["DARTS_V1", "DARTS_V2", "GDAS_V1", "r101_e50_48_n7r3"])
def test_derive_reproduces_genotypes(name):
    g = get_genotype(name)
    net = tiny(layers=3)
    with torch.no_grad():
        net.alphas_normal.copy_(_alphas_for(g.normal))
        net.alphas_reduce.copy_(_alphas_for(g.reduce))
    derived = net.derive()
    assert isinstance(derived, Genotype) and derived == g and str(derived) == str(g)
    probs = net.alpha_probabilities()
    assert set(probs) == {"normal", "reduce"} and len(probs["normal"]) == 14
    assert all(abs(sum(row) - 1) < 1e-6 for row in probs["normal"])


def test_derive_ignores_none_and_breaks_ties():
    net = tiny(layers=3)
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_reduce.zero_()
        # node 0: both inputs same max logit; ties keep input 0 first; `none` large is ignored
        net.alphas_normal[:, 0] = 5.0
    g = net.derive()
    assert g.normal[:2] == [("max_pool_3x3", 0), ("max_pool_3x3", 1)]


# ---- DartsSpace -------------------------------------------------------------------------


def test_space_registered():
    space_cls = get_space("darts")
    assert space_cls is DartsSpace and issubclass(space_cls, SearchSpace)
    space = space_cls()
    assert space.ops == PRIMITIVES


def test_build_supernet_config():
    space = DartsSpace()
    net = space.build_supernet({"C": 4, "layers": 3, "fixed_reduction": True, "gumbel_scope": "cell"}, 100)
    assert net.classifier.out_features == 100 and net.fixed_reduction and net.gumbel_scope == "cell"
    assert space.build_supernet({}, 10).classifier.in_features == 256
    with pytest.raises(ConfigError, match="unknown"):
        space.build_supernet({"C": 4, "width": 3}, 10)
    with pytest.raises(ConfigError):
        space.build_supernet({"C": 0}, 10)
    with pytest.raises(ConfigError):
        space.build_supernet({"gumbel_scope": "batch"}, 10)
    with pytest.raises(ConfigError):
        space.build_supernet({"fixed_reduction": "yes"}, 10)


def test_space_parse_and_info():
    space = DartsSpace()
    g = space.parse_arch("DARTS_V2")
    assert g == get_genotype("DARTS_V2")
    with pytest.raises(ArchFormatError):
        space.parse_arch("Genotype(normal=[]")
    info = space.arch_info(g)
    assert info["params_M"] == pytest.approx(3.349342, abs=1e-6)
    assert info["conv_counts"] == {"normal": 6, "reduce": 0}
    assert info["size_key"] == 60 and info["early_stop"] is True
    info = space.arch_info(str(get_genotype("GDAS_F1")))
    assert info["params_M"] == pytest.approx(2.543, abs=5e-4) and info["early_stop"] is False
    assert info["fixed_reduction"] is True
    net = space.build_supernet({"C": 4, "layers": 3}, 10)
    assert space.arch_info(net.derive())["conv_counts"]["normal"] >= 0
