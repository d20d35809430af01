"""DARTS primitives and their parameter formulas (docs/spaces/darts.md#operations, #parameter-counting)."""

import pytest
import torch
from torch import nn

from harness.spaces.darts.ops import (
    OPS,
    PRIMITIVES,
    DilConv,
    FactorizedReduce,
    GDASReductionCell,
    Identity,
    ReLUConvBN,
    SepConv,
    Zero,
    drop_path,
)

C = 8


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_primitive_order():
    assert PRIMITIVES == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert set(OPS) == set(PRIMITIVES)


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_output_shape(name, stride):
    op = OPS[name](C, stride, True)
    x = torch.randn(2, C, 16, 16)
    size = 16 // stride
    assert op(x).shape == (2, C, size, size)


def expected_params(name: str, stride: int, affine: bool, c: int = C) -> int:
    bn = 2 * c if affine else 0
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return 2 * (k * k * c + c * c) + 2 * bn  # 2(k²C + C² + 2C) with affine BN
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return k * k * c + c * c + bn  # k²C + C² + 2C
    if name == "skip_connect" and stride == 2:
        return c * c + bn  # FactorizedReduce: C² + 2C
    return 0  # none, pools, identity


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_param_formula(name, stride, affine):
    assert n_params(OPS[name](C, stride, affine)) == expected_params(name, stride, affine)


def test_formulas_at_eval_width():
    c = 36
    assert n_params(OPS["sep_conv_3x3"](c, 1, True)) == 2 * (9 * c + c * c + 2 * c)
    assert n_params(OPS["dil_conv_5x5"](c, 2, True)) == 25 * c + c * c + 2 * c
    assert n_params(ReLUConvBN(3 * c, c, 1, 1, 0)) == 3 * c * c + 2 * c  # preprocess: C_in·C + 2C


def test_op_types():
    assert isinstance(OPS["none"](C, 1, True), Zero)
    assert isinstance(OPS["skip_connect"](C, 1, True), Identity)
    assert isinstance(OPS["skip_connect"](C, 2, True), FactorizedReduce)
    assert isinstance(OPS["sep_conv_5x5"](C, 1, True), SepConv)
    assert isinstance(OPS["dil_conv_3x3"](C, 1, True), DilConv)
    avg = OPS["avg_pool_3x3"](C, 1, True)
    assert isinstance(avg, nn.AvgPool2d) and avg.count_include_pad is False
    mp = OPS["max_pool_3x3"](C, 2, True)
    assert isinstance(mp, nn.MaxPool2d) and mp.stride == 2 and mp.padding == 1


def test_avg_pool_excludes_padding():
    y = OPS["avg_pool_3x3"](1, 1, True)(torch.ones(1, 1, 4, 4))
    assert torch.allclose(y, torch.ones_like(y))  # corners average over 4 real pixels, not 9


def test_convs_bias_free_and_affine_flag():
    for name in ("sep_conv_3x3", "dil_conv_5x5", "skip_connect"):
        for affine in (True, False):
            op = OPS[name](C, 2, affine)
            for m in op.modules():
                if isinstance(m, nn.Conv2d):
                    assert m.bias is None
                if isinstance(m, nn.BatchNorm2d):
                    assert m.affine is affine


def test_sepconv_applies_twice_dilconv_once():
    sep = OPS["sep_conv_3x3"](C, 2, True)
    dil = OPS["dil_conv_3x3"](C, 2, True)
    sep_convs = [m for m in sep.modules() if isinstance(m, nn.Conv2d)]
    dil_convs = [m for m in dil.modules() if isinstance(m, nn.Conv2d)]
    assert len(sep_convs) == 4 and len(dil_convs) == 2
    assert sep_convs[0].stride == (2, 2) and sep_convs[2].stride == (1, 1)
    assert dil_convs[0].dilation == (2, 2) and dil_convs[0].groups == C
    assert OPS["dil_conv_5x5"](C, 1, True).op[1].padding == (4, 4)


def test_zero_and_identity():
    x = torch.randn(2, C, 16, 16)
    assert torch.equal(OPS["skip_connect"](C, 1, True)(x), x)
    z = OPS["none"](C, 2, True)(x)
    assert z.shape == (2, C, 8, 8) and not z.any()


def test_factorized_reduce_needs_even_channels():
    with pytest.raises(ValueError):
        FactorizedReduce(C, 7)


def test_gdas_reduction_cell():
    cell = GDASReductionCell(3 * C, 3 * C, C, reduction_prev=False, affine=True)
    out = cell(torch.randn(2, 3 * C, 16, 16), torch.randn(2, 3 * C, 16, 16))
    assert out.shape == (2, 4 * C, 8, 8) and cell.multiplier == 4
    convs = [m for m in cell.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is None for m in convs)
    grouped = [m for m in convs if m.groups == 8]
    assert len(grouped) == 4
    # affine=False (search): BN without affine, convs of the branches carry a bias (xautodl: bias=not affine)
    search = GDASReductionCell(3 * C, 3 * C, C, reduction_prev=True, affine=False)
    assert isinstance(search.preprocess0, FactorizedReduce)
    assert all(not m.affine for m in search.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(m.bias is not None for m in search.ops1.modules() if isinstance(m, nn.Conv2d))
    # params (affine): 2 preprocess + 2 branches (2 grouped convs, 2 BN, 1×1 conv) + 2 BN after pools
    pre = 2 * (3 * C * C + 2 * C)
    branch = 2 * (3 * C * (C // 8)) + C * C + 4 * C
    assert n_params(cell) == pre + 2 * branch + 2 * 2 * C
    with pytest.raises(ValueError):
        GDASReductionCell(12, 12, 12, False)


def test_drop_path():
    torch.manual_seed(0)
    x = torch.randn(64, 2, 3, 3)
    assert torch.equal(drop_path(x, 0.0), x)
    y = drop_path(x, 0.5)
    kept = [bool(y[i].abs().sum() > 0) for i in range(64)]
    assert 0 < sum(kept) < 64
    for i, k in enumerate(kept):
        assert torch.allclose(y[i], x[i] / 0.5) if k else not y[i].any()
