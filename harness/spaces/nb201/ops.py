"""NAS-Bench-201 candidate operations and fixed blocks (D-X-Y/AutoDL-Projects xautodl/models/cell_operations.py;
docs/spaces/nb201.md#operations).

Built the way D-X-Y/AutoDL-Projects (``xautodl/models/cell_operations.py``) builds them, with the
same submodule names, so that a state dict of xautodl's ``TinyNetworkDarts`` / ``TinyNetworkGDAS``
loads into :class:`harness.spaces.nb201.supernet.NB201Supernet` unchanged:

* ``none``          -> :class:`Zero` (``x * 0``; no parameters)
* ``skip_connect``  -> :class:`Identity` (stride 1, C_in == C_out: always the case inside a cell)
* ``nor_conv_1x1``  -> :class:`ReLUConvBN` 1×1 (ReLU -> Conv(bias = not affine) -> BN)
* ``nor_conv_3x3``  -> :class:`ReLUConvBN` 3×3, padding 1
* ``avg_pool_3x3``  -> :class:`Pooling` (AvgPool 3×3, stride 1, pad 1, count_include_pad=False, no BN)
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

#: α column order (xautodl ``NAS_BENCH_201``)
NB201_OPS: Tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class ReLUConvBN(nn.Module):
    """ReLU -> Conv2d (bias = not affine) -> BatchNorm2d(affine, track_running_stats)."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int = 1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=not affine),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Pooling(nn.Module):
    """3×3 average pooling, stride ``stride``, pad 1, ``count_include_pad=False``; no BN after it.

    (xautodl adds a 1×1 ReLUConvBN before the pool only when C_in != C_out, which never happens in
    NAS-Bench-201 cells; it is kept here for completeness.)
    """

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.preprocess = None if C_in == C_out else ReLUConvBN(C_in, C_out, 1, 1, 0, 1, affine, track_running_stats)
        self.op = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` operation: a zero tensor of the output shape (``x * 0`` like xautodl)."""

    is_zero = True

    def __init__(self, C_in: int, C_out: int, stride: int):
        super().__init__()
        self.C_in, self.C_out, self.stride = C_in, C_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.C_in == self.C_out:
            if self.stride == 1:
                return x.mul(0.0)
            return x[:, :, :: self.stride, :: self.stride].mul(0.0)
        shape = list(x.shape)
        shape[1] = self.C_out
        return x.new_zeros(shape)

    def extra_repr(self) -> str:
        return f"C_in={self.C_in}, C_out={self.C_out}, stride={self.stride}"


def make_op(name: str, C_in: int, C_out: int, stride: int, affine: bool, track_running_stats: bool) -> nn.Module:
    """Build one candidate operation by its NAS-Bench-201 name."""
    if name == "none":
        return Zero(C_in, C_out, stride)
    if name == "skip_connect":
        if stride == 1 and C_in == C_out:
            return Identity()
        raise ValueError(
            "skip_connect with stride/channel change (FactorizedReduce) does not occur in NAS-Bench-201 cells"
        )
    if name == "nor_conv_1x1":
        return ReLUConvBN(C_in, C_out, 1, stride, 0, 1, affine, track_running_stats)
    if name == "nor_conv_3x3":
        return ReLUConvBN(C_in, C_out, 3, stride, 1, 1, affine, track_running_stats)
    if name == "avg_pool_3x3":
        return Pooling(C_in, C_out, stride, affine, track_running_stats)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}; expected one of {NB201_OPS}")


class ResNetBasicblock(nn.Module):
    """The fixed NB201 reduction block: ReLUConvBN 3×3 stride 2 -> ReLUConvBN 3×3 stride 1,
    shortcut AvgPool 2×2 stride 2 -> Conv 1×1 (no BN); output = shortcut + residual.

    Always ``affine=True`` with running statistics, whatever the cells use (as in xautodl, whose
    supernets build it with its defaults).
    """

    def __init__(self, inplanes: int, planes: int, stride: int, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"invalid stride {stride}")
        self.conv_a = ReLUConvBN(inplanes, planes, 3, stride, 1, 1, affine, track_running_stats)
        self.conv_b = ReLUConvBN(planes, planes, 3, 1, 1, 1, affine, track_running_stats)
        if stride == 2:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=1, padding=0, bias=False),
            )
        elif inplanes != planes:
            self.downsample = ReLUConvBN(inplanes, planes, 1, 1, 0, 1, affine, track_running_stats)
        else:
            self.downsample = None
        self.in_dim, self.out_dim, self.stride = inplanes, planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x))
        residual = self.downsample(x) if self.downsample is not None else x
        return residual + out
