"""DARTS search supernet (quark0/darts:cnn/model_search.py; docs/spaces/darts.md#supernet) with a GDAS forward.

Edge weights come from the weighting a search method installs (``Supernet.set_weighting``; see
``harness.spaces.base``):

* a mixture (``EdgeWeights.index`` None): every edge computes Σ_k w[e, k] · op_k(x) (DARTS: softmax(α), all 8 ops);
* a sampled op per edge (``index`` given; GDAS's hard Gumbel-softmax straight-through sample,
  docs/methods/gdas.md#what-it-computes): only the sampled op runs and the edge output is ``op_idx(x) · w[idx]``
  (the DARTS-space ``MixedOp.forward_gdas`` form).

When the weighting is asked: scope ``network`` once per forward per α tensor (normal, then reduce), shared by all
cells of that type (AutoDL GDAS); scope ``cell`` afresh for every cell (MiLeNAS-Gumbel,
chaoyanghe/MiLeNAS search_space/model_search_gumbel_softmax.py).  A weighting without a scope of its own follows the
space config ``gumbel_scope`` (``Supernet.default_scope``); docs/spaces/darts.md#gdas-forward.

``fixed_reduction=True`` is GDAS-FRC (docs/spaces/darts.md#gdas-forward): the reduction cells are the fixed GDAS
cell and only ``alphas_normal`` exists.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.spaces.base import WEIGHTING_SCOPES, Supernet, chain_sum, hard_gumbel_softmax
from harness.spaces.darts.genotype import Genotype, derive_cell
from harness.spaces.darts.ops import OP_SETS, OPS, PRIMITIVES, FactorizedReduce, GDASReductionCell, ReLUConvBN
from harness.spaces.darts.sparse import SparseGenotype, derive_sparse_cell
from harness.spaces.partial import check_partial, init_beta, node_softmax, partial_edge

GUMBEL_SCOPES = WEIGHTING_SCOPES  #: values of the space config ``gumbel_scope``


def gumbel_hard_sample(alpha: torch.Tensor, tau: float) -> Tuple[torch.Tensor, List[int]]:
    """GDAS sampler (``harness.spaces.base.hard_gumbel_softmax``) with the sampled index of every row as a host
    list: the one host transfer of a sampled forward (which op each edge runs)."""
    hardwts, index = hard_gumbel_softmax(alpha, tau)
    return hardwts, index.view(-1).tolist()


class MixedOp(nn.Module):
    """The op set's primitives on one edge (all 8 by default); pooling ops get an extra BN(affine=False) (search
    model only)."""

    def __init__(self, C: int, stride: int, primitives: Tuple[str, ...] = PRIMITIVES):
        super().__init__()
        self._ops = nn.ModuleList()
        #: ops the mixture computes: all but ``none`` (its output is an exact zero)
        self._live = [k for k, p in enumerate(primitives) if p != "none"]
        for primitive in primitives:
            op = OPS[primitive](C, stride, False)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: Optional[int] = None) -> torch.Tensor:
        if index is None:  # softmax mixture over all ops but ``none`` (bit-identical: see NB201SearchCell.forward)
            out: Optional[torch.Tensor] = None
            for k in self._live:
                term = weights[k] * self._ops[k](x)
                out = term if out is None else out + term
            return out if out is not None else self._ops[0](x) * weights[0]
        return self._ops[index](x) * weights[index]  # GDAS: only the sampled op


class PartialMixedOp(nn.Module):
    """PC-DARTS partial-channel edge (``harness.spaces.partial.partial_edge``): a ``MixedOp`` on C/K channels, the
    other channels bypass it (max-pooled on a stride-2 edge), then a channel shuffle in K groups."""

    def __init__(self, C: int, stride: int, primitives: Tuple[str, ...], k: int):
        super().__init__()
        self.k, self.stride = int(k), int(stride)
        self.mixed = MixedOp(C // self.k, stride, primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: Optional[int] = None) -> torch.Tensor:
        return partial_edge(x, self.k, self.stride, lambda h: self.mixed(h, weights, index))


class SearchCell(nn.Module):
    """quark0 search cell: preprocess (affine=False), ``steps`` nodes over all previous states."""

    def __init__(
        self,
        steps: int,
        multiplier: int,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        primitives: Tuple[str, ...] = PRIMITIVES,
        partial: int = 1,
    ):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._steps = steps
        self.multiplier = multiplier
        self._ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self._ops.append(
                    MixedOp(C, stride, primitives) if partial <= 1 else PartialMixedOp(C, stride, primitives, partial)
                )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        indices: Optional[List[int]] = None,
        edge_scale: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``edge_scale``: β̃ per edge (PC-DARTS edge normalisation, node = Σ_j β̃_j·edge_j) or None."""
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        offset = 0
        rows = weights.unbind(0)
        for _ in range(self._steps):
            outs = [
                self._ops[offset + j](h, rows[offset + j], None if indices is None else indices[offset + j])
                for j, h in enumerate(states)
            ]
            if edge_scale is not None:
                outs = [edge_scale[offset + j] * o for j, o in enumerate(outs)]
            s = chain_sum(outs)
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier :], dim=1)


class DartsSupernet(Supernet):
    """The DARTS search network (defaults: C=16, 8 cells, 4 nodes; 1.930618 M weights)."""

    def __init__(
        self,
        C: int = 16,
        layers: int = 8,
        steps: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        num_classes: int = 10,
        fixed_reduction: bool = False,
        gumbel_scope: str = "network",
        op_set: str = "darts",
        partial_channels: int = 1,
        edge_norm: bool = False,
    ):
        super().__init__()
        if op_set not in OP_SETS:
            raise ConfigError(f"op_set must be one of {tuple(OP_SETS)}, got {op_set!r}")
        self.op_set = op_set
        #: the α column order (``OP_SETS[op_set]``)
        self.ops: Tuple[str, ...] = tuple(OP_SETS[op_set])
        if gumbel_scope not in GUMBEL_SCOPES:
            raise ConfigError(f"gumbel_scope must be one of {GUMBEL_SCOPES}, got {gumbel_scope!r}")
        if not (1 <= multiplier <= steps):
            raise ConfigError(f"multiplier must be in 1..steps={steps}, got {multiplier}")
        if layers < 1 or C < 1 or steps < 1 or num_classes < 1:
            raise ConfigError("C, layers, steps and num_classes must be positive")
        if fixed_reduction and multiplier != 4:
            raise ConfigError("fixed_reduction (GDAS FRC) needs multiplier 4 (the fixed cell outputs 4 branches)")
        self._C = C
        self._layers = layers
        self._steps = steps
        self._multiplier = multiplier
        self._num_classes = num_classes
        self.fixed_reduction = bool(fixed_reduction)
        self.gumbel_scope = gumbel_scope
        self.default_scope = gumbel_scope  # when a weighting without a scope of its own is asked
        #: PC-DARTS partial channels K and edge normalisation β (``harness.spaces.partial``)
        self.partial_channels, self.edge_norm = int(partial_channels), bool(edge_norm)
        check_partial(self.partial_channels, [C, 2 * C, 4 * C], "darts supernet")

        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            if reduction and self.fixed_reduction:
                cell = GDASReductionCell(C_prev_prev, C_prev, C_curr, reduction_prev, affine=False)
            else:
                cell = SearchCell(
                    steps,
                    multiplier,
                    C_prev_prev,
                    C_prev,
                    C_curr,
                    reduction,
                    reduction_prev,
                    self.ops,
                    self.partial_channels,
                )
            reduction_prev = reduction
            self.cells.append(cell)
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

        k = sum(2 + i for i in range(steps))
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(k, len(self.ops)))
        if not self.fixed_reduction:
            self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(k, len(self.ops)))
        #: β per cell type (edge normalisation only), after α in ``alphas()``: one Adam covers both (PC-DARTS)
        self.betas_normal: Optional[nn.Parameter] = None
        self.betas_reduce: Optional[nn.Parameter] = None
        if self.edge_norm:
            self.betas_normal = nn.Parameter(init_beta(k))
            if not self.fixed_reduction:
                self.betas_reduce = nn.Parameter(init_beta(k))
        #: β indices of each node's incoming edges ([0:2], [2:5], [5:9], [9:14] for 4 nodes)
        self.node_edges = [
            list(range(sum(2 + j for j in range(i)), sum(2 + j for j in range(i + 1)))) for i in range(steps)
        ]
        #: sampled op indices of every cell in the last sampled forward (None for FRC cells and mixtures)
        self.last_indices: List[Optional[List[int]]] = []

    # ---- α ---------------------------------------------------------------------------------
    def alphas(self) -> List[nn.Parameter]:
        return self.op_alphas() + [b for b in (self.betas_normal, self.betas_reduce) if b is not None]

    def op_alphas(self) -> List[nn.Parameter]:
        if self.fixed_reduction:
            return [self.alphas_normal]
        return [self.alphas_normal, self.alphas_reduce]

    def edge_scales(self) -> Dict[str, Optional[torch.Tensor]]:
        """β̃ per cell type ("normal", "reduce"): a softmax over each node's incoming edges; None without β."""
        out: Dict[str, Optional[torch.Tensor]] = {}
        for name, beta in (("normal", self.betas_normal), ("reduce", self.betas_reduce)):
            out[name] = None if beta is None else node_softmax(beta, self.node_edges)
        return out

    arch_parameters = alphas  # quark0 name

    def _alpha_of(self, cell: nn.Module) -> torch.Tensor:
        return self.alphas_reduce if cell.reduction else self.alphas_normal

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.as_input(x)
        s0 = s1 = self.stem(x)
        per_cell = self._edge_weights_per_cell()
        self.last_indices = [None if p is None else p[1] for p in per_cell]
        scales = self.edge_scales()
        for cell, p in zip(self.cells, per_cell):
            scale = scales["reduce" if getattr(cell, "reduction", False) else "normal"]
            s0, s1 = s1, (cell(s0, s1) if p is None else cell(s0, s1, p[0], p[1], scale))
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1))

    def _edge_weights_per_cell(self) -> List[Optional[Tuple[torch.Tensor, Optional[List[int]]]]]:
        """Every search cell's (op weights, sampled op per edge or None for a mixture) for this forward; None for a
        fixed (FRC) cell.  The weighting is asked in the contract's order — scope ``network``: once per α tensor in
        ``alphas()`` order (normal, then reduce: AutoDL's order); scope ``cell``: once per cell, in cell order — all
        before any cell runs (the cells draw no random numbers, so the draws are those of asking cell by cell), and
        the sampled indices of every cell reach the host in ONE transfer: a sampled forward's only host sync."""
        searched = [None if isinstance(c, GDASReductionCell) else self._alpha_of(c) for c in self.cells]
        if self.weighting_scope == "network":
            shared = {id(a): self.edge_weights(a) for a in self.op_alphas()}
            asked = [None if a is None else shared[id(a)] for a in searched]
        else:
            asked = [None if a is None else self.edge_weights(a) for a in searched]
        sampled = {id(ew): ew.index for ew in asked if ew is not None and ew.index is not None}
        host: Dict[int, List[int]] = {}
        if sampled:
            flat = torch.cat([index.reshape(-1) for index in sampled.values()]).tolist()
            for key, index in sampled.items():
                n = index.numel()
                host[key], flat = flat[:n], flat[n:]
        return [None if ew is None else (ew.weights, host.get(id(ew))) for ew in asked]

    # ---- architecture ----------------------------------------------------------------------
    def alpha_probabilities(self) -> Dict[str, List[List[float]]]:
        with torch.no_grad():
            out = {"normal": F.softmax(self.alphas_normal, dim=-1).cpu().tolist()}
            if not self.fixed_reduction:
                out["reduce"] = F.softmax(self.alphas_reduce, dim=-1).cpu().tolist()
        return out

    def derive(self) -> Genotype:
        """quark0 rule on softmax(α) (docs/spaces/darts.md#derivation-rule); FRC genotypes have ``reduce=None``.

        The installed weighting's ``cell_rule`` (``harness.spaces.base.CellRule``) says which strengths are ranked
        and, with a threshold, gives the variable cell of Fair DARTS (``SparseGenotype``,
        docs/spaces/darts.md#variable-cells)."""
        rule = self.weighting.cell_rule
        probs = self.alpha_probabilities() if rule.strength == "softmax" else self.derive_strengths() or {}
        probs = self.edge_normalised(probs)
        concat = list(range(2 + self._steps - self._multiplier, self._steps + 2))
        if rule.threshold is not None and not self.fixed_reduction:
            normal_t = derive_sparse_cell(probs["normal"], self._steps, self.ops, rule.threshold)
            reduce_t = derive_sparse_cell(probs["reduce"], self._steps, self.ops, rule.threshold)
            return SparseGenotype(normal_t, concat, reduce_t, concat)
        normal = derive_cell(probs["normal"], self._steps, self.ops)
        reduce = None if self.fixed_reduction else derive_cell(probs["reduce"], self._steps, self.ops)
        reduce_concat = [2, 3, 4, 5] if self.fixed_reduction else concat  # FRC: the fixed cell's 4 branches
        return Genotype(normal=normal, normal_concat=concat, reduce=reduce, reduce_concat=reduce_concat)

    def edge_normalised(self, probs: Dict[str, List[List[float]]]) -> Dict[str, List[List[float]]]:
        """With edge normalisation, each row times its β̃ (PC-DARTS model_search.py:186-231: W = softmax(α)·β̃): β̃
        changes which inputs a node keeps, never the op of an edge.  Unchanged without β."""
        scales = self.edge_scales()
        out = dict(probs)
        for name, scale in scales.items():
            if scale is not None and name in out:
                s = scale.detach().float().cpu().tolist()
                out[name] = [[v * s[e] for v in row] for e, row in enumerate(out[name])]
        return out

    genotype = derive  # quark0 name
