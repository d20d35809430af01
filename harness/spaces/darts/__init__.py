"""The DARTS search space (quark0/darts ``cnn/``), registered as ``"darts"``.

Modules: ``ops`` (primitives, GDAS fixed reduction cell), ``genotype`` (``Genotype`` value, text
codec, derivation rule, model-size keys), ``supernet`` (``DartsSupernet``), ``eval_net``
(``NetworkCIFAR``/``NetworkImageNet``, parameter counts, ``params_report``), ``zoo`` (published
genotypes from ``data/published/genotypes.yaml``).
"""

from __future__ import annotations

import functools
from typing import Any, Dict

from harness.registry import register_space
from harness.schema import Option, validate_section
from harness.spaces.base import SearchSpace
from harness.spaces.darts.eval_net import (
    NetworkCIFAR,
    NetworkImageNet,
    count_parameters_millions,
    eval_network,
    eval_params_millions,
    params_report,
)
from harness.spaces.darts.genotype import (
    Genotype,
    cell_edges,
    conv_counts,
    derive_cell,
    early_stop,
    get_genotype,
    parse_genotype,
    size_key,
)
from harness.spaces.darts.ops import OP_SETS, OPS, PRIMITIVES
from harness.spaces.darts.supernet import GUMBEL_SCOPES, DartsSupernet
from harness.spaces.darts.zoo import zoo_names

__all__ = [
    "DartsSpace",
    "DartsSupernet",
    "Genotype",
    "NetworkCIFAR",
    "NetworkImageNet",
    "OPS",
    "PRIMITIVES",
    "conv_counts",
    "count_parameters_millions",
    "derive_cell",
    "early_stop",
    "eval_network",
    "eval_params_millions",
    "get_genotype",
    "params_report",
    "parse_genotype",
    "size_key",
    "zoo_names",
]

#: supernet config options (``space_cfg``; defaults = ``DartsSupernet``'s, quark0 search: C=16, 8 cells, 4 nodes)
SUPERNET_OPTIONS: Dict[str, Option] = {
    "C": Option("initial channels", int, minimum=1),
    "layers": Option("cells", int, minimum=1),
    "steps": Option("intermediate nodes per cell", int, minimum=1),
    "multiplier": Option("nodes concatenated into a cell's output", int, minimum=1),
    "stem_multiplier": Option("stem channels = stem_multiplier * C", int, minimum=1),
    "fixed_reduction": Option("GDAS' fixed reduction cell instead of a searched one", bool),
    "gumbel_scope": Option("Gumbel sampling once per network or per cell", str, choices=tuple(GUMBEL_SCOPES)),
    "partial_channels": Option(
        "PC-DARTS partial channels K: each edge's ops see C/K channels (1: off; harness.spaces.partial)", int, minimum=1
    ),
    "edge_norm": Option("PC-DARTS edge normalisation β (harness.spaces.partial)", bool),
    "op_set": Option(
        "darts: the 8 ops; no_none: the 7 without none (DrNAS, SDARTS s5, Fair DARTS; docs/spaces/darts.md#op-sets)",
        str,
        choices=tuple(OP_SETS),
        default="darts",
    ),
}


@functools.lru_cache(maxsize=256)
def _params_m(text: str) -> float:
    return round(eval_params_millions(parse_genotype(text, steps=None), C=36, layers=20, num_classes=10), 6)


@register_space("darts")
class DartsSpace(SearchSpace):
    """The DARTS CNN space: normal and reduction cells of 4 nodes, 8 ops, cells evaluated by retraining."""

    ops = PRIMITIVES
    parameter_free_ops = ("max_pool_3x3", "avg_pool_3x3", "skip_connect")
    label = "DARTS space"
    display_rank = 20
    cell_judged_by = "evaluation"
    figure_kinds = ("model_size",)
    cell_drawing = "two_input"
    #: the core methods and the paper's variants (λ sweep, Gumbel) are all searched on the DARTS space
    expected_roles = ("core", "variant")
    cost_model_keys = ("C", "layers")

    @classmethod
    def report_cells(cls, text: str):
        genotype = parse_genotype(text, steps=None)
        cells = {"normal": cell_edges(genotype.normal)}
        if genotype.reduce is not None:  # None: the fixed (GDAS) reduction cell
            cells["reduce"] = cell_edges(genotype.reduce)
        return cells

    supernet_options = SUPERNET_OPTIONS

    def build_supernet(self, cfg: Dict[str, Any], num_classes: int) -> DartsSupernet:
        cfg = dict(cfg or {})
        validate_section(cfg, SUPERNET_OPTIONS, "darts supernet", noun="option")
        return DartsSupernet(num_classes=int(num_classes), **cfg)

    def parse_arch(self, text: str) -> Genotype:
        return parse_genotype(text)

    def known_archs(self):
        return zoo_names()

    def eval_network(self, arch: Any, recipe: Dict[str, Any], num_classes: int = 10) -> NetworkCIFAR:
        """quark0's ``NetworkCIFAR`` at the recipe's size (C, layers, auxiliary head); drop path set per epoch."""
        genotype = arch if isinstance(arch, Genotype) else parse_genotype(str(arch), steps=None)
        return NetworkCIFAR(
            genotype,
            C=recipe["C"],
            layers=recipe["layers"],
            num_classes=num_classes,
            auxiliary=recipe["auxiliary"],
            drop_path_prob=0.0,
        )

    def arch_info(self, arch: Any) -> Dict[str, Any]:
        genotype = parse_genotype(arch, steps=None)
        counts = conv_counts(genotype)
        empty = not genotype.normal or genotype.reduce == []  # a Fair DARTS cell with no op above its threshold
        return {
            "params_M": None if empty else _params_m(str(genotype)),
            "conv_counts": counts,
            "size_key": size_key(genotype),
            "early_stop": early_stop(genotype),
            "fixed_reduction": genotype.reduce is None,
        }
