"""DARTS evaluation networks (quark0/darts:cnn/model.py; docs/spaces/darts.md#evaluation-network) and parameter counting
(docs/spaces/darts.md#parameter-counting).

``NetworkCIFAR`` / ``NetworkImageNet`` build cells from a ``Genotype`` (all BN affine, no BN after
pooling), apply drop path to non-Identity op outputs in training, and return ``(logits, logits_aux)``
(``logits_aux`` only in training with ``auxiliary=True``).  FRC genotypes (``reduce is None``) use the
GDAS fixed reduction cell (affine) for the reduction cells.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from harness.errors import ConfigError
from harness.spaces.base import count_parameters_millions
from harness.spaces.darts.genotype import Genotype, parse_genotype
from harness.spaces.darts.ops import OPS, FactorizedReduce, GDASReductionCell, Identity, ReLUConvBN, drop_path
from harness.spaces.darts.sparse import DCOCell, SparseGenotype


class EvalCell(nn.Module):
    """A cell compiled from a genotype (quark0 ``model.Cell``): node i = op(2i) + op(2i+1)."""

    def __init__(
        self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
    ):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        op_names, indices = zip(*pairs)
        self._steps = len(op_names) // 2
        self._concat = list(concat)
        self.multiplier = len(concat)
        self._ops = nn.ModuleList()
        for name, index in zip(op_names, indices):
            stride = 2 if reduction and index < 2 else 1
            self._ops.append(OPS[name](C, stride, True))
        self._indices = list(indices)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        for i in range(self._steps):
            op1, op2 = self._ops[2 * i], self._ops[2 * i + 1]
            h1 = op1(states[self._indices[2 * i]])
            h2 = op2(states[self._indices[2 * i + 1]])
            if self.training and drop_prob > 0.0:
                if not isinstance(op1, Identity):
                    h1 = drop_path(h1, drop_prob)
                if not isinstance(op2, Identity):
                    h2 = drop_path(h2, drop_prob)
            states.append(h1 + h2)
        return torch.cat([states[i] for i in self._concat], dim=1)


def _make_cell(
    genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
) -> nn.Module:
    if reduction and genotype.reduce is None:
        return GDASReductionCell(C_prev_prev, C_prev, C, reduction_prev, affine=True)
    if isinstance(genotype, SparseGenotype):  # Fair DARTS variable cell (harness.spaces.darts.sparse)
        triples = genotype.reduce if reduction else genotype.normal
        return DCOCell(triples, C_prev_prev, C_prev, C, reduction, reduction_prev)
    return EvalCell(genotype, C_prev_prev, C_prev, C, reduction, reduction_prev)


class AuxiliaryHeadCIFAR(nn.Module):
    """Auxiliary tower for 8×8 inputs (quark0)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class AuxiliaryHeadImageNet(nn.Module):
    """Auxiliary tower for 14×14 inputs (quark0; the BN after the 2×2 conv is omitted as in quark0)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


def _as_genotype(genotype: Any) -> Genotype:
    return parse_genotype(genotype, steps=None)


class _EvalNetwork(nn.Module):
    """What NetworkCIFAR and NetworkImageNet share: the cell stack, auxiliary tap, head and forward."""

    aux_head_cls: type = AuxiliaryHeadCIFAR

    def _init_common(self, genotype: Any, layers: int, auxiliary: bool, drop_path_prob: float) -> Genotype:
        genotype = _as_genotype(genotype)
        self.genotype = genotype
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)
        return genotype

    def _build_cells(
        self, genotype: Genotype, C_prev_prev: int, C_prev: int, C_curr: int, reduction_prev: bool, num_classes: int
    ) -> None:
        """Cells with reductions at layers//3 and 2·layers//3; auxiliary head after cell 2·layers//3."""
        self.cells = nn.ModuleList()
        C_to_auxiliary = None
        for i in range(self._layers):
            reduction = i in (self._layers // 3, 2 * self._layers // 3)
            if reduction:
                C_curr *= 2
            cell = _make_cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == 2 * self._layers // 3:
                C_to_auxiliary = C_prev
        if self._auxiliary:
            self.auxiliary_head = self.aux_head_cls(C_to_auxiliary, num_classes)
        self._C_prev = C_prev

    def stems(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        logits_aux = None
        s0, s1 = self.stems(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        logits = self.classifier(out.view(out.size(0), -1))
        return logits, logits_aux


class NetworkCIFAR(_EvalNetwork):
    """quark0 ``NetworkCIFAR``: stem 3×3 conv → BN(3C), cells, global average pool, linear."""

    aux_head_cls = AuxiliaryHeadCIFAR

    def __init__(
        self,
        genotype: Any,
        C: int = 36,
        layers: int = 20,
        num_classes: int = 10,
        auxiliary: bool = True,
        drop_path_prob: float = 0.0,
    ):
        super().__init__()
        genotype = self._init_common(genotype, layers, auxiliary, drop_path_prob)
        C_stem = 3 * C  # stem_multiplier 3
        self.stem = nn.Sequential(nn.Conv2d(3, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        self._build_cells(genotype, C_stem, C_stem, C, reduction_prev=False, num_classes=num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self._C_prev, num_classes)

    def stems(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s


class NetworkImageNet(_EvalNetwork):
    """quark0 ``NetworkImageNet`` (mobile setting: C=48, 14 cells, 224×224 inputs, 1000 classes)."""

    aux_head_cls = AuxiliaryHeadImageNet

    def __init__(
        self,
        genotype: Any,
        C: int = 48,
        layers: int = 14,
        num_classes: int = 1000,
        auxiliary: bool = True,
        drop_path_prob: float = 0.0,
    ):
        super().__init__()
        genotype = self._init_common(genotype, layers, auxiliary, drop_path_prob)
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self._build_cells(genotype, C, C, C, reduction_prev=True, num_classes=num_classes)
        self.global_pooling = nn.AvgPool2d(7)
        self.classifier = nn.Linear(self._C_prev, num_classes)

    def stems(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


NETWORKS = {"cifar": NetworkCIFAR, "imagenet": NetworkImageNet}


def eval_network(
    genotype: Any,
    C: int = 36,
    layers: int = 20,
    num_classes: int = 10,
    auxiliary: bool = True,
    drop_path_prob: float = 0.0,
    network: str = "cifar",
) -> nn.Module:
    """Build the evaluation network (``network`` = "cifar" or "imagenet")."""
    if network not in NETWORKS:
        raise ConfigError(f"unknown evaluation network {network!r}; expected one of {', '.join(NETWORKS)}")
    return NETWORKS[network](
        genotype, C=C, layers=layers, num_classes=num_classes, auxiliary=auxiliary, drop_path_prob=drop_path_prob
    )


def _meta_device():
    try:
        return torch.device("meta")  # parameters without storage: counting only
    except Exception:  # pragma: no cover - very old torch
        return contextlib.nullcontext()


def eval_params_millions(
    genotype: Any, C: int = 36, layers: int = 20, num_classes: int = 10, network: str = "cifar"
) -> float:
    """Evaluation-network parameter count in millions (auxiliary head excluded), built on the meta device."""
    genotype = _as_genotype(genotype)
    with _meta_device():
        model = eval_network(genotype, C=C, layers=layers, num_classes=num_classes, auxiliary=False, network=network)
    return count_parameters_millions(model)


def params_report(
    text_or_name: Any,
    C: int = 36,
    layers: int = 20,
    num_classes: int = 10,
    auxiliary: bool = False,
    network: str = "cifar",
) -> Dict[str, Any]:
    """What ``python -m harness darts params GENOTYPE`` prints.

    ``params_M`` follows quark0's convention (auxiliary head excluded); with ``auxiliary=True`` the
    report adds ``aux_params_M`` (the auxiliary head alone) and ``total_params_M``.
    """
    from harness.spaces.darts.genotype import conv_counts, size_key
    from harness.spaces.darts.zoo import zoo_names

    name = text_or_name.strip() if isinstance(text_or_name, str) and text_or_name.strip() in zoo_names() else None
    genotype = parse_genotype(text_or_name, steps=None)
    with _meta_device():
        model = eval_network(
            genotype, C=C, layers=layers, num_classes=num_classes, auxiliary=auxiliary, network=network
        )
    params = count_parameters_millions(model)
    report: Dict[str, Any] = {
        "name": name,
        "genotype": str(genotype),
        "params_M": round(params, 6),
        "settings": {"C": C, "layers": layers, "num_classes": num_classes, "auxiliary": auxiliary, "network": network},
        "fixed_reduction": genotype.reduce is None,
        "conv_counts": conv_counts(genotype),
        "size_key": size_key(genotype),
    }
    if auxiliary:
        total = sum(p.numel() for p in model.parameters()) / 1e6
        report["aux_params_M"] = round(total - params, 6)
        report["total_params_M"] = round(total, 6)
    return report
