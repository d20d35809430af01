"""Variable-size DARTS cells (Fair DARTS; docs/spaces/darts.md#variable-cells): the ``SparseGenotype`` value, the
threshold derivation rule and the evaluation cell that trains it.

Fair DARTS (xiaomi-automl/FairDARTS@270cfc9) keeps an op only when its sigmoid weight reaches a threshold, so a
node can end with 0, 1 or 2 inputs.  Its genotypes list triples ``(op, to, from)`` (fairdarts/genotypes.py:150-182)::

    Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_5x5', 2, 1), ('max_pool_3x3', 4, 0), ...],
             normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])

``parse_genotype`` (``harness.spaces.darts.genotype``) returns a ``SparseGenotype`` (defined there) for such text (a
third element that is an integer node index; AutoDL's third element is a float probability).  ``SparseGenotype`` is
a ``Genotype`` (same fields and printed form), so the space's tools (parameter counts, ``harness evaluate``, reports)
take it unchanged; the evaluation network builds a ``DCOCell`` for it.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from harness.errors import ConfigError
from harness.spaces.darts.genotype import SparseGenotype, Triple  # noqa: F401  (re-exported: the value lives there)
from harness.spaces.darts.ops import OPS, FactorizedReduce, ReLUConvBN, drop_path


def derive_sparse_cell(
    strengths: Sequence[Sequence[float]], steps: int, ops: Sequence[str], threshold: float
) -> List[Triple]:
    """Fair DARTS ``threshold_sparse`` (fairdarts/utils.py:143-189) on one cell's per-op strengths (σ(α); rows =
    edges in node order, columns = ``ops``): per node keep the top-2 inputs by their strongest op (stable sort, as
    quark0; every op counts, ``none`` excepted when present), and emit ``(op*, node, input)`` for each kept input
    only if its strongest op ``op*`` (first maximum) reaches ``threshold``."""
    none = list(ops).index("none") if "none" in ops else -1
    rows = [[float(v) for v in row] for row in strengths]
    gene: List[Triple] = []
    start, n = 0, 2
    for i in range(steps):
        W = rows[start : start + n]
        edges = sorted(range(n), key=lambda j: -max(W[j][k] for k in range(len(W[j])) if k != none))[:2]
        for j in edges:
            k_best: Optional[int] = None
            for k in range(len(W[j])):
                if k != none and (k_best is None or W[j][k] > W[j][k_best]):
                    k_best = k
            assert k_best is not None
            if W[j][k_best] >= threshold:
                gene.append((ops[k_best], i + 2, j))
        start += n
        n += 1
    return gene


class DCOCell(nn.Module):
    """Fair DARTS evaluation cell (xiaomi-automl/FairDARTS@270cfc9 fairdarts/model.py:60-117 ``DCOCell``).

    Nodes in order of first appearance in the triples; a node's output is the sum of its kept ops over the inputs
    present (an edge from an absent node is ignored); drop path is applied to each node's sum (not per op); the cell
    output concatenates every present intermediate node, so ``multiplier`` (= their number) varies per cell.
    A node none of whose inputs is present is left out (the reference would fail on it).
    """

    def __init__(
        self, triples: Sequence[Triple], C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
    ):
        super().__init__()
        if not triples:
            raise ConfigError("a Fair DARTS cell with no op above the threshold has nothing to evaluate")
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(C_prev_prev, C) if reduction_prev else ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        self._ops = nn.ModuleDict()
        for name, to, frm in triples:
            stride = 2 if reduction and frm < 2 else 1
            node = self._ops[str(to)] if str(to) in self._ops else nn.ModuleDict()
            if str(to) not in self._ops:
                self._ops[str(to)] = node
            if str(frm) not in node:
                node[str(frm)] = nn.ModuleList()
            node[str(frm)].append(OPS[name](C, stride, True))
        present = {"0", "1"}
        for to, node in self._ops.items():
            if any(frm in present for frm in node.keys()):
                present.add(to)
        #: the intermediate nodes with an input present, in order
        self._present = [to for to in self._ops.keys() if to in present]
        if not self._present:
            raise ConfigError("a Fair DARTS cell whose nodes have no present input has nothing to evaluate")
        self.multiplier = len(self._present)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = {"0": self.preprocess0(s0), "1": self.preprocess1(s1)}
        for to in self._present:
            h = [sum(op(states[frm]) for op in ops) for frm, ops in self._ops[to].items() if frm in states]
            out = h[0]
            for t in h[1:]:
                out = out + t
            if self.training and drop_prob > 0:
                out = drop_path(out, drop_prob)
            states[to] = out
        return torch.cat([states[to] for to in self._present], dim=1)
