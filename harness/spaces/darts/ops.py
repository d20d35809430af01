"""Operations of the DARTS search space (quark0/darts:cnn/operations.py; docs/spaces/darts.md#operations).

``PRIMITIVES`` is the α column order.  ``OPS[name](C, stride, affine)`` builds one operation with
``C`` channels in and out; every convolution is bias-free and every BatchNorm gets ``affine``.
``GDASReductionCell`` is the fixed reduction cell of GDAS (FRC) from
D-X-Y/AutoDL-Projects:xautodl/models/cell_operations.py ``GDAS_Reduction_Cell`` (docs/spaces/darts.md#gdas-forward).
"""

from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: the search space's op sets (supernet option ``op_set``; docs/spaces/darts.md#op-sets): ``darts`` the 8 ops above;
#: ``no_none`` the 7 without ``none``, as DrNAS (xiangning-chen/DrNAS@f2caa4d DARTS-space/genotypes.py:5-14), SDARTS
#: (``s5``, xiangning-chen/SmoothDARTS@d3dbfed sota/cnn/spaces.py:80-92) and Fair DARTS
#: (xiaomi-automl/FairDARTS@270cfc9 fairdarts/genotypes.py:8-16) search it; same order, α columns follow it
OP_SETS: Dict[str, tuple] = {"darts": PRIMITIVES, "no_none": tuple(p for p in PRIMITIVES if p != "none")}

#: index of the first convolution primitive; ops with index >= this count as convolutions
#: (chaoyanghe/MiLeNAS search_space/model_search.py genotype();
#: docs/spaces/darts.md#model-size-keys-and-early-stopping-milenas)
FIRST_CONV_INDEX = PRIMITIVES.index("sep_conv_3x3")


class ReLUConvBN(nn.Module):
    """ReLU -> Conv k×k (stride, padding) -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU -> depthwise k×k conv (dilated) -> pointwise 1×1 conv -> BN, applied once."""

    def __init__(
        self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int, affine: bool = True
    ):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=C_in, bias=False
            ),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """The DilConv pattern with dilation 1 applied twice (the stride only in the first half)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """``none``: zeros shaped like the (strided) input."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU -> two 1×1 stride-2 convs (on x and on x shifted by one pixel) -> concat -> BN."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2 != 0:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        out = torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)
        return self.bn(out)


OPS: Dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
}


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Per-sample drop path (quark0/darts:cnn/utils.py): keep each sample with prob 1-p, divide by 1-p.

    Not in place (quark0 uses ``div_``/``mul_``); the values are the same.
    """
    if drop_prob > 0.0:
        keep_prob = 1.0 - drop_prob
        mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep_prob)
        x = x / keep_prob * mask
    return x


def _factorized_branch(C: int, affine: bool) -> nn.Sequential:
    # conv bias = not affine, exactly as xautodl's GDAS_Reduction_Cell
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, (1, 3), stride=(1, 2), padding=(0, 1), groups=8, bias=not affine),
        nn.Conv2d(C, C, (3, 1), stride=(2, 1), padding=(1, 0), groups=8, bias=not affine),
        nn.BatchNorm2d(C, affine=affine),
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, 1, stride=1, padding=0, bias=not affine),
        nn.BatchNorm2d(C, affine=affine),
    )


class GDASReductionCell(nn.Module):
    """GDAS fixed reduction cell (FRC), xautodl ``GDAS_Reduction_Cell``.

    Preprocess like a DARTS cell; branches A (on s0) and B (on s1): ReLU -> 1×3 conv stride (1,2)
    groups 8 -> 3×1 conv stride (2,1) groups 8 -> BN -> ReLU -> 1×1 conv -> BN; branches C (on s0) and
    D (on s1): 3×3 max-pool stride 2 -> BN.  Output concat [A, B, C, D] (multiplier 4).  Drop path on
    all four branches in training (when ``drop_prob > 0``).  Convolutions carry a bias iff
    ``affine`` is False (as in xautodl).  ``C`` must be divisible by 8.
    """

    multiplier = 4
    reduction = True

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction_prev: bool, affine: bool = True):
        super().__init__()
        if C % 8 != 0:
            raise ValueError(f"the GDAS fixed reduction cell needs channels divisible by 8 (groups=8), got {C}")
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=affine)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=affine)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=affine)
        self.ops1 = nn.ModuleList([_factorized_branch(C, affine), _factorized_branch(C, affine)])
        self.ops2 = nn.ModuleList(
            [
                nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.BatchNorm2d(C, affine=affine)),
                nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.BatchNorm2d(C, affine=affine)),
            ]
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        x0 = self.ops1[0](s0)
        x1 = self.ops1[1](s1)
        x2 = self.ops2[0](s0)
        x3 = self.ops2[1](s1)
        if self.training and drop_prob > 0.0:
            x0, x1, x2, x3 = (drop_path(x, drop_prob) for x in (x0, x1, x2, x3))
        return torch.cat([x0, x1, x2, x3], dim=1)
