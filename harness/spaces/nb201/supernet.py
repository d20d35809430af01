"""NAS-Bench-201 search supernet (D-X-Y/AutoDL-Projects xautodl/models/cell_searchs/; docs/spaces/nb201.md#supernet;
GDAS sampling: docs/methods/gdas.md#what-it-computes).

Mirrors D-X-Y/AutoDL-Projects ``TinyNetworkDarts`` / ``TinyNetworkGDAS`` with
``NAS201SearchCell`` (xautodl/models/cell_searchs/): same layout and the same submodule names
(``stem``, ``cells``, ``lastact``, ``global_pooling``, ``classifier``, ``arch_parameters``; cell
edges in a ``ModuleDict`` keyed ``"i<-j"``), so xautodl state dicts load unchanged.  One α of shape
(6, 5) is shared by all cells.  ``forward`` returns logits only.

Edge weights come from the weighting a search method installs (``Supernet.set_weighting``; see
``harness.spaces.base``), asked once per forward for the one α (scope ``network``) or once per search cell
(scope ``cell``):

* a mixture (``EdgeWeights.index`` None): every edge is ``Σ_k w[e, k] · op_k(x)`` (DARTS with softmax(α));
* a sampled op per edge (``index`` given; GDAS's ``GumbelWeighting``: one hard Gumbel-softmax straight-through
  sample ``hardwts`` drawn exactly as xautodl draws it, shared by all cells and every image of the batch): only the
  sampled op of each edge runs.  Edge output (``gdas_edge_form``):

  - ``"xautodl"`` (``NAS201SearchCell.forward_gdas``): ``hardwts[idx]·op_idx(x) + Σ_{k≠idx} hardwts[k]``
    (the others are scalars of value 0, so every α entry receives a gradient);
  - ``"sampled_only"`` (``forward_gdas_v1``): ``hardwts[idx]·op_idx(x)``.

The last sampled weights are kept in ``last_sample`` (``(weights, index)``, detached) for inspection.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from harness.spaces.base import EdgeWeights, GumbelWeighting, Supernet, chain_sum
from harness.spaces.nb201.arch import NB201Arch
from harness.spaces.nb201.ops import NB201_OPS, ResNetBasicblock, make_op
from harness.spaces.partial import check_partial, init_beta, node_softmax, partial_edge

GDAS_EDGE_FORMS = ("xautodl", "sampled_only")


class NB201SearchCell(nn.Module):
    """Complete DAG of ``max_nodes`` nodes; node i = Σ_{j<i} edge_{i<-j}(node j); output = last node."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        max_nodes: int,
        op_names=NB201_OPS,
        affine: bool = False,
        track_running_stats: bool = False,
        partial: int = 1,
    ):
        super().__init__()
        self.op_names = tuple(op_names)
        #: PC-DARTS partial channels K (``harness.spaces.partial``): the ops see C/K channels, the rest bypass
        self.partial = int(partial)
        self.max_nodes = max_nodes
        self.in_dim, self.out_dim = C_in, C_out
        self.edges = nn.ModuleDict()
        for i in range(1, max_nodes):
            for j in range(i):
                c_in = (C_in if j == 0 else C_out) // self.partial
                self.edges[f"{i}<-{j}"] = nn.ModuleList(
                    make_op(name, c_in, C_out // self.partial, 1, affine, track_running_stats) for name in self.op_names
                )
        self.edge_keys = sorted(self.edges.keys())
        self.edge2index = {key: i for i, key in enumerate(self.edge_keys)}
        self.num_edges = len(self.edges)
        # per (i, j): the edge's op list and α row, looked up once here rather than by string per forward
        self._edge_ops = {(i, j): self.edges[f"{i}<-{j}"] for i in range(1, max_nodes) for j in range(i)}
        self._edge_rows = {(i, j): self.edge2index[f"{i}<-{j}"] for i in range(1, max_nodes) for j in range(i)}
        #: ops the softmax mixture computes: every op but ``none`` (its output is an exact zero)
        self._live_ops = [k for k, name in enumerate(self.op_names) if name != "none"]
        #: α rows (= β entries) of each node's incoming edges, for edge normalisation
        self.node_edges = [[self._edge_rows[(i, j)] for j in range(i)] for i in range(1, max_nodes)]

    def extra_repr(self) -> str:
        return f"{self.max_nodes} nodes, inC={self.in_dim}, outC={self.out_dim}"

    def forward(
        self, x: torch.Tensor, weightss: torch.Tensor, edge_scale: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Weighted mixture; ``weightss`` shape (num_edges, num_ops) (DARTS: softmax(α)); ``edge_scale``: β̃ per edge
        (edge normalisation) or None; with ``partial`` K > 1 each edge is a partial-channel edge.

        Bit-identical to xautodl's ``Σ_k op_k(x)·w_k`` (same products, summed in the same order): the
        ``none`` op (``x·0``) is not computed, because adding its exact zero changes no value and its α entry's
        gradient (the sum of 0·upstream) is 0 either way; ``weightss`` is unbound once per cell, not indexed per
        edge.
        """
        rows = weightss.unbind(0)
        nodes = [x]
        for i in range(1, self.max_nodes):
            inter = []
            for j in range(i):
                ops, weights = self._edge_ops[(i, j)], rows[self._edge_rows[(i, j)]]

                def mixture(h: torch.Tensor, ops=ops, weights=weights) -> torch.Tensor:
                    out: Optional[torch.Tensor] = None
                    for k in self._live_ops:
                        term = ops[k](h) * weights[k]
                        out = term if out is None else out + term
                    return out if out is not None else h.mul(0.0)

                out = partial_edge(nodes[j], self.partial, 1, mixture)
                inter.append(out if edge_scale is None else out * edge_scale[self._edge_rows[(i, j)]])
            nodes.append(chain_sum(inter))
        return nodes[-1]

    def forward_gdas(
        self,
        x: torch.Tensor,
        hardwts: torch.Tensor,
        index: List[int],
        edge_form: str = "xautodl",
        edge_scale: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Only the sampled op of each edge runs (``index[e]``, a host list); see the module doc for ``edge_form``."""
        nodes = [x]
        for i in range(1, self.max_nodes):
            inter = []
            for j in range(i):
                e = self._edge_rows[(i, j)]
                weights = hardwts[e]
                argmax = index[e]
                ops = self._edge_ops[(i, j)]

                def sampled(h: torch.Tensor, ops=ops, weights=weights, argmax=argmax) -> torch.Tensor:
                    if edge_form == "xautodl":
                        return sum(weights[k] * op(h) if k == argmax else weights[k] for k, op in enumerate(ops))
                    return weights[argmax] * ops[argmax](h)  # "sampled_only"

                out = partial_edge(nodes[j], self.partial, 1, sampled)
                inter.append(out if edge_scale is None else out * edge_scale[e])
            nodes.append(sum(inter))
        return nodes[-1]


class NB201Supernet(Supernet):
    """The NAS-Bench-201 search supernet (C=16, N=5 → 15 cells + 2 ResNet reduction blocks)."""

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        max_nodes: int = 4,
        affine: bool = False,
        track_running_stats: bool = False,
        gdas_edge_form: str = "xautodl",
        partial_channels: int = 1,
        edge_norm: bool = False,
    ):
        super().__init__()
        if gdas_edge_form not in GDAS_EDGE_FORMS:
            raise ValueError(f"unknown gdas_edge_form {gdas_edge_form!r}; expected one of {GDAS_EDGE_FORMS}")
        if int(C) < 1 or int(N) < 1 or int(num_classes) < 1 or int(max_nodes) < 2:
            raise ValueError(
                f"invalid NB201 supernet size C={C}, N={N}, num_classes={num_classes}, max_nodes={max_nodes}"
            )
        C, N, max_nodes = int(C), int(N), int(max_nodes)
        self._C, self._layerN, self.max_nodes = C, N, max_nodes
        self.num_classes = int(num_classes)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.gdas_edge_form = gdas_edge_form
        self.partial_channels, self.edge_norm = int(partial_channels), bool(edge_norm)
        check_partial(self.partial_channels, [C, 2 * C, 4 * C], "nb201 supernet")
        self.op_names = NB201_OPS
        self.stem = nn.Sequential(nn.Conv2d(3, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C))
        layer_channels = [C] * N + [C * 2] + [C * 2] * N + [C * 4] + [C * 4] * N
        layer_reductions = [False] * N + [True] + [False] * N + [True] + [False] * N
        C_prev = C
        self.cells = nn.ModuleList()
        edge2index: Optional[Dict[str, int]] = None
        for C_curr, reduction in zip(layer_channels, layer_reductions):
            if reduction:
                cell: nn.Module = ResNetBasicblock(C_prev, C_curr, 2)  # affine=True, running stats
            else:
                cell = NB201SearchCell(
                    C_prev, C_curr, max_nodes, NB201_OPS, self.affine, self.track_running_stats, self.partial_channels
                )
                edge2index = edge2index or cell.edge2index
                self.node_edges = cell.node_edges
            self.cells.append(cell)
            C_prev = cell.out_dim
        assert edge2index is not None
        self.edge2index = edge2index
        self.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, self.num_classes)
        self.arch_parameters = nn.Parameter(1e-3 * torch.randn(len(edge2index), len(NB201_OPS)))
        #: PC-DARTS edge normalisation β (one entry per edge, shared by all cells like α); only with ``edge_norm``
        self.arch_betas: Optional[nn.Parameter] = nn.Parameter(init_beta(len(edge2index))) if self.edge_norm else None
        self.last_sample: Optional[Tuple[torch.Tensor, torch.Tensor]] = None

    # -- contract ----------------------------------------------------------------------------
    def alphas(self) -> List[nn.Parameter]:
        return [self.arch_parameters] + ([self.arch_betas] if self.arch_betas is not None else [])

    def op_alphas(self) -> List[nn.Parameter]:
        return [self.arch_parameters]

    def edge_scale(self) -> Optional[torch.Tensor]:
        """β̃ per edge (a softmax over each node's incoming edges), or None without edge normalisation."""
        return None if self.arch_betas is None else node_softmax(self.arch_betas, self.node_edges)

    def alpha_probabilities(self) -> Dict[str, List[List[float]]]:
        with torch.no_grad():
            return {"alpha": torch.softmax(self.arch_parameters.detach().float(), dim=-1).cpu().tolist()}

    def derive(self) -> NB201Arch:
        """Per edge argmax of the raw α over all 5 ops, ``none`` included (xautodl ``genotype``).

        Under a weighting whose ``cell_rule`` has a threshold (Fair DARTS), an edge whose strongest op's strength
        is below it becomes ``none`` (docs/spaces/nb201.md#derivation)."""
        if self.max_nodes != 4:
            raise ValueError("derive() needs the NAS-Bench-201 cell of 4 nodes")
        rule = self.weighting.cell_rule
        with torch.no_grad():
            index = self.arch_parameters.detach().argmax(dim=-1)  # softmax and sigmoid are monotone in α
            if rule.threshold is not None:
                best = rule.strengths(self.arch_parameters).gather(-1, index.view(-1, 1)).view(-1)
                index = torch.where(best >= rule.threshold, index, torch.full_like(index, NB201_OPS.index("none")))
            rows = index.tolist()
        return NB201Arch(NB201_OPS[k] for k in rows)

    def extra_repr(self) -> str:
        return (
            f"C={self._C}, N={self._layerN}, max_nodes={self.max_nodes}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}, gdas_edge_form={self.gdas_edge_form!r}, "
            f"partial_channels={self.partial_channels}, edge_norm={self.edge_norm}"
        )

    # -- GDAS sampling -----------------------------------------------------------------------
    def sample_gumbel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """One hard straight-through Gumbel-softmax sample (hardwts (E, K), index (E, 1)) of α at the installed
        weighting's τ (``GumbelWeighting``: xautodl's draws, device-side inf guard)."""
        ew = GumbelWeighting(self.tau)(self.arch_parameters)
        assert ew.index is not None
        return ew.weights, ew.index

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.as_input(x)
        per_cell = self.weighting_scope == "cell"
        shared = None if per_cell else self._cell_weights()
        scale = self.edge_scale()
        feature = self.stem(x)
        for cell in self.cells:
            if isinstance(cell, NB201SearchCell):
                weights, index = shared if shared is not None else self._cell_weights()
                if index is None:
                    feature = cell(feature, weights, scale)
                else:
                    feature = cell.forward_gdas(feature, weights, index, self.gdas_edge_form, scale)
            else:
                feature = cell(feature)
        out = self.lastact(feature)
        out = self.global_pooling(out)
        out = out.view(out.size(0), -1)
        return self.classifier(out)

    def _cell_weights(self) -> Tuple[torch.Tensor, Optional[List[int]]]:
        """Ask the weighting once: (weights (E, K), sampled op per edge as a host list or None)."""
        ew: EdgeWeights = self.edge_weights(self.arch_parameters)
        if ew.index is not None:
            self.last_sample = (ew.weights.detach(), ew.index.detach())
        # a sampled forward's one host transfer: which op each edge runs (6 ints)
        return ew.weights, ew.index_list()
