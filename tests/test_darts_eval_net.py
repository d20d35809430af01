"""DARTS evaluation network, parameter counting, params_report (docs/spaces/darts.md#evaluation-network,
docs/spaces/darts.md#parameter-counting)."""

import pytest
import torch
from torch import nn

import harness.spaces.darts.eval_net as eval_net_mod
from harness.spaces.darts.eval_net import (
    EvalCell,
    NetworkCIFAR,
    NetworkImageNet,
    count_parameters_millions,
    eval_network,
    eval_params_millions,
    params_report,
)
from harness.spaces.darts.genotype import get_genotype, zoo_genotypes
from harness.spaces.darts.ops import GDASReductionCell, Identity
from harness.spaces.darts.zoo import zoo_entry


@pytest.mark.parametrize(
    "name, params",
    [
        ("DARTS_V2", 3.349342),
        ("DARTS_V1", 3.169414),
        ("GDAS_V1", 3.368782),
    ],
)
def test_reference_param_counts_exact(name, params):
    assert round(eval_params_millions(get_genotype(name)), 6) == params
    # the same through a real (allocated) model with the auxiliary head present but excluded
    if name == "DARTS_V2":
        model = NetworkCIFAR(get_genotype(name), C=36, layers=20, auxiliary=True)
        assert round(count_parameters_millions(model), 6) == params
        assert sum(p.numel() for p in model.parameters()) / 1e6 > params


@pytest.mark.parametrize(
    "name, params",
    [
        ("r101_e50_48_n7r3", 3.874),
        ("r118_e100_92_n4r1", 2.866),
        ("V2_r2_e100", 2.858),
        ("v2_r5_e200", 2.090),
        ("GDAS_F1", 2.543),  # GDAS_F1 normal + fixed reduction cell
        ("GDAS_MIXED_LEVEL1", 2.63),  # docs/methods/milenas-gumbel.md: 2.63 M / 4.03 M
        ("GDAS_MIXED_LEVEL2", 4.03),
    ],
)
def test_published_genotype_param_counts(name, params):
    decimals = len(str(params).split(".")[1])
    assert round(eval_params_millions(name), decimals) == params


def test_imagenet_param_count():
    assert round(eval_params_millions("DARTS_V2", C=48, layers=14, num_classes=1000, network="imagenet"), 4) == 4.7188


def test_gdas_v1_normal_with_fixed_reduction():
    g = get_genotype("GDAS_V1")
    frc = g._replace(reduce=None)
    assert round(eval_params_millions(frc), 3) == 3.000  # GDAS paper Table 5 (GDAS-N + FIX-R, 3.0 M)


@pytest.mark.parametrize("name", sorted(zoo_genotypes()))
def test_zoo_computed_params_recorded(name):
    assert round(eval_params_millions(name), 6) == pytest.approx(zoo_entry(name)["computed_params_M"], abs=1e-6)


def test_count_excludes_auxiliary_and_buffers():
    g = get_genotype("DARTS_V2")
    with_aux = NetworkCIFAR(g, C=4, layers=5, auxiliary=True)
    without = NetworkCIFAR(g, C=4, layers=5, auxiliary=False)
    assert count_parameters_millions(with_aux) == count_parameters_millions(without)
    total = sum(p.numel() for n, p in with_aux.named_parameters() if "auxiliary" not in n)
    assert count_parameters_millions(with_aux) == total / 1e6


def test_eval_cells_affine_no_pool_bn():
    net = NetworkCIFAR("DARTS_V2", C=4, layers=5, auxiliary=False)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [1, 3]
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.affine
    red = net.cells[1]
    assert isinstance(red, EvalCell)
    for op, (name, j) in zip(red._ops, get_genotype("DARTS_V2").reduce):
        if name == "max_pool_3x3":
            assert isinstance(op, nn.MaxPool2d) and op.stride == (2 if j < 2 else 1)
    for op in red._ops:
        assert not isinstance(op, nn.Sequential)  # pool ops are bare (no BN after pooling)


def x32(batch=2):
    torch.manual_seed(7)
    return torch.randn(batch, 3, 32, 32)


def test_forward_and_auxiliary_only_in_training():
    net = NetworkCIFAR("DARTS_V2", C=4, layers=5, num_classes=10, auxiliary=True)
    net.train()
    logits, aux = net(x32())
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    net.eval()
    logits, aux = net(x32())
    assert logits.shape == (2, 10) and aux is None
    net = NetworkCIFAR("DARTS_V2", C=4, layers=5, auxiliary=False)
    net.train()
    assert net(x32())[1] is None


def test_drop_path_identity_in_eval_active_in_train():
    net = NetworkCIFAR("DARTS_V2", C=4, layers=5, auxiliary=False, drop_path_prob=0.0)
    x = x32(4)
    net.eval()
    ref = net(x)[0]
    net.drop_path_prob = 0.5
    assert torch.allclose(net(x)[0], ref)  # eval: no drop path
    net.train()
    net.drop_path_prob = 0.0
    a, b = net(x)[0], net(x)[0]
    assert torch.allclose(a, b)  # train without drop path is deterministic
    net.drop_path_prob = 0.5
    torch.manual_seed(0)
    c = net(x)[0]
    torch.manual_seed(1)
    d = net(x)[0]
    assert not torch.allclose(c, d)


def test_drop_path_skips_identity_ops(monkeypatch):
    calls = []
    real = eval_net_mod.drop_path

    def spy(x, p):
        calls.append(p)
        return real(x, p)

    monkeypatch.setattr(eval_net_mod, "drop_path", spy)
    net = NetworkCIFAR("DARTS_V2", C=4, layers=5, auxiliary=False, drop_path_prob=0.2)
    net.train()
    net(x32())
    # DARTS_V2: the normal cell has 2 Identity ops (skip_connect, stride 1) of 8 -> 6 calls; the reduction
    # cell has 3 Identity ops (skip_connect from node 2) -> 5 calls; 3 normal + 2 reduction cells
    n_identity = sum(isinstance(op, Identity) for c in net.cells for op in c._ops)
    assert n_identity == 3 * 2 + 2 * 3
    assert len(calls) == 3 * 6 + 2 * 5 and all(p == 0.2 for p in calls)
    calls.clear()
    net.eval()
    net(x32())
    assert calls == []


def test_frc_eval_network():
    net = NetworkCIFAR("GDAS_F1", C=4, layers=5, auxiliary=True, drop_path_prob=0.1)
    assert isinstance(net.cells[1], GDASReductionCell) and isinstance(net.cells[3], GDASReductionCell)
    for m in net.cells[1].modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
        if isinstance(m, nn.BatchNorm2d):
            assert m.affine
    net.train()
    logits, aux = net(x32())
    assert logits.shape == (2, 10) and aux.shape == (2, 10)


def test_imagenet_network_builds():
    net = NetworkImageNet("DARTS_V2", C=8, layers=3, num_classes=5, auxiliary=True)
    assert net.classifier.out_features == 5 and hasattr(net, "auxiliary_head")
    assert isinstance(eval_network("DARTS_V2", C=8, layers=3, network="imagenet"), NetworkImageNet)
    with pytest.raises(ValueError):
        eval_network("DARTS_V2", network="mobile")


def test_params_report():
    rep = params_report("DARTS_V2")
    assert rep["params_M"] == 3.349342 and rep["name"] == "DARTS_V2"
    assert rep["settings"] == {"C": 36, "layers": 20, "num_classes": 10, "auxiliary": False, "network": "cifar"}
    assert rep["genotype"] == str(get_genotype("DARTS_V2"))
    assert rep["size_key"] == 60 and rep["fixed_reduction"] is False
    rep2 = params_report(rep["genotype"], auxiliary=True)
    assert rep2["name"] is None and rep2["params_M"] == 3.349342
    assert rep2["aux_params_M"] > 0 and rep2["total_params_M"] == pytest.approx(3.349342 + rep2["aux_params_M"])
    rep3 = params_report("DARTS", C=48, layers=14, num_classes=1000, network="imagenet")
    assert round(rep3["params_M"], 4) == 4.7188
    assert params_report("GDAS_F1")["fixed_reduction"] is True
