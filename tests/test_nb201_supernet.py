"""NB201Supernet: layout, BN flags, softmax/GDAS forward, α gradients, determinism, derive()."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from harness.spaces.base import Supernet
from harness.spaces.nb201 import NB201Space
from harness.spaces.nb201.arch import EDGE_KEYS, NB201Arch
from harness.spaces.nb201.ops import NB201_OPS, Identity, Pooling, ReLUConvBN, ResNetBasicblock, Zero
from harness.spaces.nb201.supernet import NB201SearchCell, NB201Supernet


def small(**kw) -> NB201Supernet:
    args = dict(C=4, N=1, num_classes=10)
    args.update(kw)
    return NB201Supernet(**args)


def search_cells(net):
    return [c for c in net.cells if isinstance(c, NB201SearchCell)]


@pytest.mark.parametrize("size", [16, 32])
def test_default_supernet_shapes(size):
    torch.manual_seed(0)
    net = NB201Supernet()
    assert isinstance(net, Supernet)
    assert len(net.cells) == 17 and len(search_cells(net)) == 15
    assert sum(p.numel() for p in net.parameters()) == 1692856  # = xautodl TinyNetworkDarts
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert net(x).shape == (2, 10)
        net.set_mode("gumbel", tau=10.0)
        assert net(x).shape == (2, 10)


def test_small_supernet_any_input_size():
    net = small(num_classes=7)
    for size in (8, 16, 24, 32):
        assert net(torch.randn(3, 3, size, size)).shape == (3, 7)


def test_alpha_and_parameter_split():
    torch.manual_seed(0)
    net = small()
    names = dict(net.named_parameters())
    assert names["arch_parameters"] is net.arch_parameters
    assert net.alphas() == [net.arch_parameters]
    assert net.arch_parameters.shape == (6, 5)
    assert net.arch_parameters.abs().max() < 0.01  # 1e-3·randn init
    w_ids = {id(p) for p in net.weights()}
    a_ids = {id(p) for p in net.alphas()}
    assert not (w_ids & a_ids)
    assert w_ids | a_ids == {id(p) for p in net.parameters()}
    assert len(net.weights()) + 1 == len(list(net.parameters()))
    # one α shared by all cells: no per-cell α parameters
    for cell in search_cells(net):
        assert not any("arch" in n for n, _ in cell.named_parameters())


def test_edge_order_and_ops():
    cell = search_cells(small())[0]
    assert cell.edge_keys == list(EDGE_KEYS) == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert cell.edge2index == {k: i for i, k in enumerate(EDGE_KEYS)}
    for key in EDGE_KEYS:
        ops = cell.edges[key]
        assert [type(o) for o in ops] == [Zero, Identity, ReLUConvBN, ReLUConvBN, Pooling]
        conv1, conv3 = ops[2].op[1], ops[3].op[1]
        assert conv1.kernel_size == (1, 1) and conv1.padding == (0, 0)
        assert conv3.kernel_size == (3, 3) and conv3.padding == (1, 1)
        assert isinstance(ops[2].op[0], nn.ReLU) and isinstance(ops[2].op[2], nn.BatchNorm2d)
        pool = ops[4].op
        assert isinstance(pool, nn.AvgPool2d) and pool.count_include_pad is False
        assert ops[4].preprocess is None and not list(ops[4].parameters())  # no BN after the pool
    assert NB201_OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("track", [False, True])
def test_bn_flags(affine, track):
    net = small(affine=affine, track_running_stats=track)
    for cell in search_cells(net):
        bns = [m for m in cell.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(bns) == 12  # 6 edges × 2 convs
        for bn in bns:
            assert bn.affine is affine and bn.track_running_stats is track
            assert (bn.running_mean is not None) is track
        for conv in (m for m in cell.modules() if isinstance(m, nn.Conv2d)):
            assert (conv.bias is not None) is (not affine)  # conv bias = not affine
    blocks = [c for c in net.cells if isinstance(c, ResNetBasicblock)]
    assert len(blocks) == 2
    for block in blocks:
        for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
            assert bn.affine and bn.track_running_stats
        assert isinstance(block.downsample[0], nn.AvgPool2d) and block.downsample[1].bias is None
    for bn in (net.stem[1], net.lastact[0]):
        assert bn.affine and bn.track_running_stats
    assert isinstance(net.lastact[1], nn.ReLU) and isinstance(net.global_pooling, nn.AdaptiveAvgPool2d)


def test_softmax_cell_is_weighted_sum_of_all_ops():
    torch.manual_seed(1)
    cell = search_cells(small(C=3))[0]
    x = torch.randn(2, 3, 8, 8)
    w = torch.softmax(torch.randn(6, 5), dim=-1)
    nodes = [x]
    for i in range(1, 4):
        total = 0
        for j in range(i):
            e = EDGE_KEYS.index(f"{i}<-{j}")
            total = total + sum(w[e, k] * cell.edges[EDGE_KEYS[e]][k](nodes[j]) for k in range(5))
        nodes.append(total)
    torch.testing.assert_close(cell(x, w), nodes[-1])


def _count_op_calls(net):
    calls = Counter()
    handles = []
    for c, cell in enumerate(search_cells(net)):
        for key in EDGE_KEYS:
            for k, op in enumerate(cell.edges[key]):
                handles.append(op.register_forward_hook(lambda m, i, o, c=c, key=key, k=k: calls.update([(c, key, k)])))
    return calls, handles


@pytest.mark.parametrize("form", ["xautodl", "sampled_only"])
def test_gumbel_runs_only_the_sampled_op(form):
    torch.manual_seed(3)
    net = small(N=2, gdas_edge_form=form)
    net.set_mode("gumbel", tau=5.0)
    calls, _ = _count_op_calls(net)
    logits = net(torch.randn(2, 3, 16, 16))
    hardwts, index = net.last_sample
    assert index.shape == (6, 1) and hardwts.shape == (6, 5)
    expected = Counter(
        {(c, key, int(index[e])): 1 for c in range(len(search_cells(net))) for e, key in enumerate(EDGE_KEYS)}
    )
    assert calls == expected  # exactly one op per edge, the same sampled op in every cell
    torch.testing.assert_close(hardwts, nn.functional.one_hot(index[:, 0], 5).float())
    logits.sum().backward()
    grad = net.arch_parameters.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_gumbel_edge_forms_same_forward_different_alpha_gradient():
    torch.manual_seed(4)
    a = small(gdas_edge_form="xautodl")
    b = small(gdas_edge_form="sampled_only")
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 3, 16, 16)
    outs, grads = [], []
    for net in (a, b):
        net.set_mode("gumbel", tau=2.0)
        torch.manual_seed(11)
        out = net(x)
        out.logsumexp(dim=1).mean().backward()
        outs.append(out.detach())
        grads.append(net.arch_parameters.grad.clone())
    assert torch.equal(a.last_sample[1], b.last_sample[1])
    torch.testing.assert_close(outs[0], outs[1])  # the extra scalars are exactly 0
    # ... but they change the α gradient (docs/methods/gdas.md#what-it-computes)
    assert not torch.allclose(grads[0], grads[1])


def test_softmax_gradient_reaches_alpha_and_weights():
    torch.manual_seed(5)
    net = small()
    net(torch.randn(2, 3, 16, 16)).square().mean().backward()
    assert net.arch_parameters.grad.abs().min() > 0  # every α entry contributes in softmax mode
    assert net.stem[0].weight.grad.abs().sum() > 0


def test_determinism_under_manual_seed():
    def run(seed):
        torch.manual_seed(seed)
        net = small()
        net.set_mode("gumbel", tau=1.0)
        x = torch.randn(2, 3, 16, 16)
        out = net(x)
        return net.arch_parameters.detach().clone(), net.last_sample[1].clone(), out.detach()

    a1, i1, o1 = run(7)
    a2, i2, o2 = run(7)
    assert torch.equal(a1, a2) and torch.equal(i1, i2) and torch.equal(o1, o2)
    # samples vary between forward calls (fresh noise each call)
    torch.manual_seed(8)
    net = small()
    net.set_mode("gumbel", tau=1.0)
    x = torch.randn(1, 3, 8, 8)
    seen = set()
    with torch.no_grad():
        for _ in range(10):
            net(x)
            seen.add(tuple(net.last_sample[1][:, 0].tolist()))
    assert len(seen) > 1


def test_derive_on_hand_set_alpha():
    net = small()
    target = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    with torch.no_grad():
        net.arch_parameters.zero_()
        for e, op in enumerate(target):
            net.arch_parameters[e, NB201_OPS.index(op)] = 1.0 + e
    arch = net.derive()
    assert isinstance(arch, NB201Arch) and list(arch) == target
    assert str(arch) == "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    probs = net.alpha_probabilities()
    assert list(probs) == ["alpha"] and len(probs["alpha"]) == 6
    assert all(len(r) == 5 and abs(sum(r) - 1) < 1e-6 for r in probs["alpha"])
    assert max(range(5), key=lambda k: probs["alpha"][0][k]) == NB201_OPS.index("nor_conv_3x3")


def test_set_mode_validation():
    net = small()
    with pytest.raises(ValueError):
        net.set_mode("hard")
    net.set_mode("gumbel", tau=0.5)
    assert net.mode == "gumbel" and net.tau == 0.5
    with pytest.raises(ValueError):
        small(gdas_edge_form="other")


def test_space_build_supernet():
    space = NB201Space()
    assert space.ops == NB201_OPS and space.name == "nb201"
    net = space.build_supernet({"C": 4, "N": 1, "gdas_edge_form": "sampled_only", "track_running_stats": True}, 100)
    assert net.classifier.out_features == 100 and net.gdas_edge_form == "sampled_only"
    assert net.track_running_stats is True and net.affine is False
    defaults = space.build_supernet({}, 10)
    assert (defaults._C, defaults._layerN, defaults.affine, defaults.track_running_stats) == (16, 5, False, False)
    for bad in (
        {"C": 4, "layers": 8},
        {"affine": "yes"},
        {"C": 0},
        {"max_nodes": 5},
        {"gdas_edge_form": "v2"},
        {"num_classes": 7},
    ):
        with pytest.raises(ConfigError):
            space.build_supernet(bad, 10)


def test_registered():
    from harness.registry import _SPACES

    assert _SPACES["nb201"] is NB201Space
