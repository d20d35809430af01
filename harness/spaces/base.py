"""The search-space contract.

A search space (registered with ``@register_space``) turns a space config into a supernet,
derives an architecture from the supernet's α, and reads/writes architectures in the field's
own text form.  It knows nothing about search methods.

Supernet contract (an ``nn.Module``; see ``Supernet`` below):

* ``forward(x) -> logits`` (B, classes).
* ``weights()`` -> list of weight parameters (everything except α);
  ``alphas()`` -> list of α parameters (registered ``nn.Parameter``s, kept apart from weights).
* ``set_weighting(weighting)``: the edge-weight contract.  A search method installs an ``EdgeWeighting`` (a
  rule α → ``EdgeWeights``: a (rows × ops) weight tensor per α tensor, and optionally the sampled op of every row,
  in which case only that op runs).  The supernet asks it while it runs ``forward`` — once per α tensor per
  forward (scope ``network``) or once per cell (scope ``cell``) — and combines the weighted edges into cells its own
  way.  The space never knows which method runs.  Built-ins: ``SoftmaxWeighting`` (DARTS mixture, the default)
  and ``GumbelWeighting`` (GDAS hard straight-through sample); a method adds its own by subclassing
  ``EdgeWeighting``.  ``mode`` is the installed weighting's ``name``.
* ``derive() -> arch``: the architecture value for the current α, by the space's reference rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Tuple, Type

import torch
from torch import nn

from harness.schema import Option

if TYPE_CHECKING:
    from harness.methods import SearchMethod

#: names of the built-in weightings ``Supernet.set_mode`` installs (``SoftmaxWeighting``, ``GumbelWeighting``)
FORWARD_MODES = ("softmax", "gumbel")
#: how often per forward a supernet asks its weighting: once per α tensor (``network``) or once per cell
WEIGHTING_SCOPES = ("network", "cell")


def count_parameters_millions(model: nn.Module) -> float:
    """quark0 ``count_parameters_in_MB``: Σ numel of parameters whose name lacks "auxiliary", / 1e6."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name) / 1e6


def chain_sum(terms: List[torch.Tensor]) -> torch.Tensor:
    """``sum(terms)`` without Python's leading ``0 +`` (an extra full-size add that changes no value)."""
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def hard_gumbel_softmax(
    alpha: torch.Tensor, tau: float, exp_draw: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """GDAS sampler (xautodl ``get_gumbel_prob`` / ``TinyNetworkGDAS.forward``): row-wise hard Gumbel-softmax,
    straight-through.  Returns ``hardwts`` (value one-hot, gradient of the soft sample
    softmax((log_softmax(α) + g) / τ)) and the sampled index of every row, shape (rows, 1), on the device.

    Same draws, in the same order, as xautodl (torch global RNG).  xautodl redraws while a Gumbel value or a
    probability is inf/NaN, a host sync per draw; here the guard is on the device: the Exp(1) draw is clamped
    to [smallest positive float, largest float] before the log (a draw of 0 or inf is the only way to an
    infinite Gumbel value).  Bit-identical whenever xautodl keeps its first draw; a non-finite α (a diverged
    run) gives a non-finite loss instead of an endless redraw loop.

    ``exp_draw``: the Exp(1) draws to use (shape of α) instead of drawing from the global RNG (e.g. the same noise
    on two devices).
    """
    u = torch.empty_like(alpha).exponential_() if exp_draw is None else exp_draw
    info = torch.finfo(u.dtype)
    gumbels = -u.clamp(info.tiny, info.max).log()
    logits = (alpha.log_softmax(dim=-1) + gumbels) / tau
    probs = torch.softmax(logits, dim=-1)
    index = probs.max(-1, keepdim=True)[1]
    one_h = torch.zeros_like(logits).scatter_(-1, index, 1.0)
    hardwts = one_h - probs.detach() + probs
    return hardwts, index


@dataclass(frozen=True)
class EdgeWeights:
    """The operation weights of the edges of one α tensor, for one forward (or one cell).

    ``weights``: (rows × ops), the factor of op k on edge (row) e; gradients flow through it to α.
    ``index``: None (every op with a weight runs: a mixture) or the sampled op of every row, a long tensor of
    shape (rows, 1) or (rows,) on the device: then only op ``index[e]`` of edge e runs (a space may add the other
    weights as plain scalars, as xautodl's NB201 GDAS cell does).
    """

    weights: torch.Tensor
    index: Optional[torch.Tensor] = None

    def index_list(self) -> Optional[List[int]]:
        """The sampled op per row as a host list (one device→host transfer), or None for a mixture."""
        return None if self.index is None else self.index.view(-1).tolist()


#: per-op strengths a ``CellRule`` ranks (``CellRule.strengths``)
CELL_STRENGTHS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class CellRule:
    """How a space derives a cell from α for the method that installed the weighting (``EdgeWeighting.cell_rule``,
    asked by ``Supernet.derive``; the space applies it its own way and never knows the method).

    ``strength``: the per-op strength ranked — ``softmax`` over the row (DARTS; the default) or ``sigmoid``, each op
    on its own (Fair DARTS, xiaomi-automl/FairDARTS@270cfc9 fairdarts/model_search.py:104-126).
    ``threshold``: None (the space's fixed-size rule) or the strength an op needs to be kept, so the cell's size
    varies (Fair DARTS ``threshold_sparse``, fairdarts/utils.py:143-189); each space documents what a dropped op
    becomes (docs/spaces/).
    """

    strength: str = "softmax"
    threshold: Optional[float] = None

    def __post_init__(self):
        if self.strength not in CELL_STRENGTHS:
            raise ValueError(f"cell rule strength must be one of {CELL_STRENGTHS}, not {self.strength!r}")

    @property
    def is_default(self) -> bool:
        return self.strength == "softmax" and self.threshold is None

    def strengths(self, alpha: torch.Tensor) -> torch.Tensor:
        """The per-op strengths of ``alpha``'s rows (detached)."""
        a = alpha.detach().float()
        return torch.softmax(a, dim=-1) if self.strength == "softmax" else torch.sigmoid(a)


#: the DARTS rule: rank softmax(α), the space's fixed-size cell
DEFAULT_CELL_RULE = CellRule()


class EdgeWeighting:
    """A method-side rule turning an α tensor into ``EdgeWeights`` (subclass and implement ``__call__``).

    ``name`` is metadata (``SearchMethod.forward_mode``, records).  ``scope``: ``"network"`` — asked once per α
    tensor per forward, the result shared by every cell using that α (in ``Supernet.alphas()`` order); ``"cell"`` —
    asked afresh for every cell (in cell order); None — the supernet's ``default_scope`` (a space config, e.g. the
    DARTS space's ``gumbel_scope``).  A weighting that draws random numbers draws them in that call order.
    """

    name: str = ""
    scope: Optional[str] = None
    #: how the space derives the cell under this weighting (``CellRule``; default: the space's own rule on softmax(α))
    cell_rule: CellRule = DEFAULT_CELL_RULE

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:  # pragma: no cover - abstract
        raise NotImplementedError

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """The op distribution of every row, for diagnostics (the collapse hook's mixing entropy): the mixture
        weights or the sampling probabilities.  Default softmax(α) (DARTS mixture; a GDAS hard Gumbel sample of
        log_softmax(α) + g is argmax-distributed as softmax(α))."""
        return torch.softmax(alpha.detach().float(), dim=-1)


class SoftmaxWeighting(EdgeWeighting):
    """DARTS (quark0/darts cnn/model_search.py): every op weighted by softmax(α) over its row; all ops run."""

    name = "softmax"
    scope = "network"  # deterministic: one softmax per α serves every cell

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        return EdgeWeights(torch.softmax(alpha, dim=-1))


#: the one softmax weighting (stateless): installing the same object every epoch keeps a compiled forward's guards
SOFTMAX_WEIGHTING = SoftmaxWeighting()


class GumbelWeighting(EdgeWeighting):
    """GDAS: ``hard_gumbel_softmax(α, tau)`` — a one-hot straight-through sample per row; only the sampled op runs.
    ``scope`` None follows the space (NB201 and AutoDL GDAS: once per forward; the DARTS space's
    ``gumbel_scope: cell``: per cell, chaoyanghe/MiLeNAS model_search_gumbel_softmax.py)."""

    name = "gumbel"

    def __init__(self, tau: float = 1.0, scope: Optional[str] = None):
        if scope is not None and scope not in WEIGHTING_SCOPES:
            raise ValueError(f"weighting scope must be one of {WEIGHTING_SCOPES} or None, not {scope!r}")
        self.tau = float(tau)
        self.scope = scope

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        hardwts, index = hard_gumbel_softmax(alpha, self.tau)
        return EdgeWeights(hardwts, index)


class Supernet(nn.Module):
    """Base class of the search supernets of every space."""

    #: the weighting ``forward`` asks (``set_weighting``); the class default is the DARTS softmax mixture
    weighting: EdgeWeighting = SOFTMAX_WEIGHTING
    #: the scope of a weighting whose ``scope`` is None (a space config; ``network`` unless the space says)
    default_scope: str = "network"
    #: layout of conv weights and inputs (``set_memory_format``); None: PyTorch's default (contiguous)
    memory_format: Optional[torch.memory_format] = None

    def set_memory_format(self, memory_format: torch.memory_format) -> "Supernet":
        """Store every 4-D tensor (conv weights) in ``memory_format`` and feed inputs in it (``as_input``).

        ``torch.channels_last`` (NHWC) is the fast layout for convolutions, pools and batch norms on CPU
        (oneDNN) and GPU (cuDNN); the values are those of the default layout up to float rounding.
        """
        self.to(memory_format=memory_format)
        self.memory_format = memory_format
        return self

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input batch in the supernet's memory format (unchanged without one)."""
        return x if self.memory_format is None else x.contiguous(memory_format=self.memory_format)

    def weights(self) -> List[nn.Parameter]:
        alpha_ids = {id(a) for a in self.alphas()}
        return [p for p in self.parameters() if id(p) not in alpha_ids]

    def alphas(self) -> List[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def op_alphas(self) -> List[nn.Parameter]:
        """The α tensors of op weights (rows × ops) the weighting is asked for; ``alphas()`` may add further
        architecture tensors after them (PC-DARTS edge normalisation β).  Default: ``alphas()``."""
        return self.alphas()

    # ---- the edge-weight contract -------------------------------------------------------------
    def set_weighting(self, weighting: EdgeWeighting) -> None:
        """Install the rule ``forward`` asks for the edges' op weights (a search method's choice)."""
        if not isinstance(weighting, EdgeWeighting):
            raise TypeError(f"set_weighting needs an EdgeWeighting, not {type(weighting).__name__}")
        if weighting.scope is not None and weighting.scope not in WEIGHTING_SCOPES:
            raise ValueError(f"weighting scope must be one of {WEIGHTING_SCOPES} or None, not {weighting.scope!r}")
        self.weighting = weighting

    @property
    def mode(self) -> str:
        """The installed weighting's name (``softmax``, ``gumbel`` or a method's own)."""
        return self.weighting.name

    @property
    def weighting_scope(self) -> str:
        """``network`` or ``cell``: the installed weighting's scope, or the space's default when it has none."""
        return self.weighting.scope or self.default_scope

    def edge_weights(self, alpha: torch.Tensor) -> EdgeWeights:
        """Ask the installed weighting for the op weights of ``alpha``'s edges (shape checked)."""
        ew = self.weighting(alpha)
        if tuple(ew.weights.shape) != tuple(alpha.shape):
            raise ValueError(
                f"weighting {self.weighting.name!r} returned weights of shape {tuple(ew.weights.shape)} "
                f"for α of shape {tuple(alpha.shape)}"
            )
        return ew

    def set_mode(self, mode: str, tau: float | None = None) -> None:
        """Install a built-in weighting by name: ``softmax`` or ``gumbel`` (at ``tau``; without it the current
        Gumbel weighting's τ, else 1.0)."""
        if mode not in FORWARD_MODES:
            raise ValueError(f"unknown forward mode {mode!r}; expected one of {FORWARD_MODES}")
        if mode == "softmax":
            self.set_weighting(SOFTMAX_WEIGHTING)
        else:
            self.set_weighting(GumbelWeighting(tau if tau is not None else self.tau))

    @property
    def tau(self) -> float:
        """τ of an installed Gumbel weighting (1.0 otherwise): inspection only."""
        return float(getattr(self.weighting, "tau", 1.0))

    def derive(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def derive_strengths(self) -> Optional[Dict[str, List[List[float]]]]:
        """The per-op strengths the installed weighting's ``cell_rule`` ranks, per α tensor (keys as
        ``alpha_probabilities``), when they are not softmax(α) (records: ``derive_weights``); None for the default."""
        rule = self.weighting.cell_rule
        if rule.strength == "softmax":
            return None
        names = list(self.alpha_probabilities())
        return {n: rule.strengths(a).cpu().tolist() for n, a in zip(names, self.alphas())}

    def alpha_probabilities(self) -> Dict[str, List[List[float]]]:
        """softmax(α) per α tensor, as nested lists (for records and heatmaps)."""
        raise NotImplementedError


class ReportColumn(NamedTuple):
    """A value a report shows of a found cell: ``key`` in the record's ``arch_info`` (or its ``benchmark``)."""

    key: str
    name: str  # short column name in tables and figures
    doc: str  # what the number is, with its unit and provenance


#: how a space's found cells are judged: looked up in a tabular benchmark, or trained from scratch
CELL_JUDGED_BY = ("benchmark", "evaluation")


class SearchSpace:
    """Base class of a registered search space (instances are cheap; hold config only).

    Like a search method (``harness.methods.SearchMethod``) a space carries its own metadata: config
    checks, plans, regression checks and reports ask the registry (``harness.registry.get_space``) and
    keep no list of space names of their own.
    """

    name: str = ""
    #: α column order (operation names)
    ops: tuple = ()
    #: display name in reports and messages
    label: str = ""
    #: position in reports (lower first; ties by name)
    display_rank: int = 100
    #: one of ``CELL_JUDGED_BY``: "benchmark" (a cell's accuracy is looked up, the space has no evaluation
    #: network; reports show the benchmark table and curves) or "evaluation" (a cell is trained from scratch by
    #: ``harness evaluate``; reports show the Table-1 analogue and the model-size figure)
    cell_judged_by: str = "evaluation"
    #: benchmark columns a report shows of a found cell (tables, figures), in display order
    report_columns: Tuple[ReportColumn, ...] = ()
    #: figure kinds the space supports beyond the per-space curves (``reports.figures``):
    #: "benchmark_curve" (benchmark accuracy of the derived cell vs epoch), "model_size" (best val per size key)
    figure_kinds: Tuple[str, ...] = ()
    #: drawing of a derived cell in reports: "chain" (one cell, nodes in a row, edge j→i) or "two_input"
    #: (normal and reduction cells fed by c_{k-2}, c_{k-1}); ``report_cells`` gives the edges
    cell_drawing: str = "two_input"
    #: method roles (``SearchMethod.role``) a complete run store holds for this space
    expected_roles: Tuple[str, ...] = ("core",)
    #: supernet config keys that set the cost of one search iteration (``harness plan`` groups measurements by them)
    cost_model_keys: Tuple[str, ...] = ()
    #: found-cell metrics (``arch_info.benchmark`` keys) ``harness regress`` keeps an accuracy envelope of
    regress_metrics: Tuple[str, ...] = ()
    #: the supernet options of ``build_supernet`` (``harness.schema.Option`` tables: meaning, type, default)
    supernet_options: Dict[str, Option] = {}
    #: ops without weights (skip and pooling): the collapse diagnostic counts them in a derived cell
    #: (R-DARTS, Zela et al. ICLR 2020; ``none`` is not counted: it is no op)
    parameter_free_ops: Tuple[str, ...] = ()

    @classmethod
    def parameter_free_count(cls, text: str) -> int:
        """How many edges of a recorded arch text (all cells) carry a parameter-free op (``parameter_free_ops``)."""
        return sum(1 for edges in cls.report_cells(text).values() for _, _, op in edges if op in cls.parameter_free_ops)

    @classmethod
    def report_cells(cls, text: str) -> Dict[str, List[Tuple[int, int, str]]]:  # pragma: no cover
        """Edges ``(input node, node, op)`` of each cell of a recorded arch text, cell name → edges in the
        space's order (reports draw cells from them); ValueError (ArchFormatError) if malformed."""
        raise NotImplementedError

    @classmethod
    def arch_text(cls, arch: Any) -> str:
        """The field's text form of an architecture value (or of its text, normalised)."""
        return str(cls().parse_arch(arch) if isinstance(arch, str) else arch)

    @classmethod
    def method_deviations(cls, method: Type[SearchMethod]) -> List[str]:
        """Protocol deviations of running ``method`` (a registered method class) in this space."""
        return []

    def __init__(self, data_dir=None):
        #: the data folder (``--data-dir``) a space reads its benchmark files from; None = the default lookup
        self.data_dir = data_dir

    def build_supernet(self, cfg: Dict[str, Any], num_classes: int) -> Supernet:  # pragma: no cover
        raise NotImplementedError

    def parse_arch(self, text: str) -> Any:  # pragma: no cover
        """Parse the field's text form (NB201 arch string / DARTS ``Genotype(...)``); ValueError if malformed."""
        raise NotImplementedError

    def arch_info(self, arch: Any) -> Dict[str, Any]:  # pragma: no cover
        """JSON-able facts about an architecture recorded every epoch (benchmark accuracies, params...)."""
        raise NotImplementedError

    def known_archs(self) -> List[str]:
        """Names of published architectures ``parse_arch`` accepts (e.g. ``DARTS_V2``)."""
        return []

    def eval_network(self, arch: Any, recipe: Dict[str, Any], num_classes: int = 10) -> nn.Module:
        """The network that trains ``arch`` from scratch under an evaluation recipe (``harness evaluate``).

        Its forward returns ``(logits, aux_logits or None)`` and it has a ``drop_path_prob`` attribute."""
        from harness.errors import ConfigError

        raise ConfigError(
            f"space {self.name} has no evaluation network: its cells are evaluated by "
            "benchmark lookup (see the search records' arch_info)"
        )
