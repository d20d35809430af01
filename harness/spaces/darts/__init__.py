"""The DARTS search space (quark0/darts ``cnn/``), registered as ``"darts"``.

Modules: ``ops`` (primitives, GDAS fixed reduction cell), ``genotype`` (``Genotype`` value, text
codec, derivation rule, model-size keys), ``supernet`` (``DartsSupernet``), ``eval_net``
(``NetworkCIFAR``/``NetworkImageNet``, parameter counts, ``params_report``), ``zoo`` (published
genotypes from ``data/published/genotypes.yaml``).
"""
from __future__ import annotations

import functools
from typing import Any, Dict

from harness.errors import ConfigError
from harness.registry import register_space
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
    get_genotype,
    conv_counts,
    derive_cell,
    early_stop,
    parse_genotype,
    size_key,
)
from harness.spaces.darts.ops import OPS, PRIMITIVES
from harness.spaces.darts.supernet import GUMBEL_SCOPES, DartsSupernet
from harness.spaces.darts.zoo import zoo_names

__all__ = [
    "DartsSpace", "DartsSupernet", "Genotype", "NetworkCIFAR", "NetworkImageNet", "OPS", "PRIMITIVES",
    "conv_counts", "count_parameters_millions", "derive_cell", "early_stop", "eval_network",
    "eval_params_millions", "get_genotype", "params_report", "parse_genotype", "size_key", "zoo_names",
]

#: supernet config keys and their types (defaults = quark0 search: C=16, 8 cells, 4 nodes)
SUPERNET_KEYS = {
    "C": int,
    "layers": int,
    "steps": int,
    "multiplier": int,
    "stem_multiplier": int,
    "fixed_reduction": bool,
    "gumbel_scope": str,
}


@functools.lru_cache(maxsize=256)
def _params_m(text: str) -> float:
    return round(eval_params_millions(parse_genotype(text, steps=None), C=36, layers=20, num_classes=10), 6)


@register_space("darts")
class DartsSpace(SearchSpace):
    ops = PRIMITIVES

    def build_supernet(self, cfg: Dict[str, Any], num_classes: int) -> DartsSupernet:
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(SUPERNET_KEYS))
        if unknown:
            raise ConfigError(f"unknown DARTS supernet config key(s) {', '.join(unknown)}; "
                              f"valid keys: {', '.join(SUPERNET_KEYS)}")
        for key, value in cfg.items():
            typ = SUPERNET_KEYS[key]
            if typ is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"DARTS supernet config {key} must be a positive integer, got {value!r}")
            if typ is bool and not isinstance(value, bool):
                raise ConfigError(f"DARTS supernet config {key} must be true or false, got {value!r}")
            if typ is str and value not in GUMBEL_SCOPES:
                raise ConfigError(f"DARTS supernet config {key} must be one of {GUMBEL_SCOPES}, got {value!r}")
        return DartsSupernet(num_classes=int(num_classes), **cfg)

    def parse_arch(self, text: str) -> Genotype:
        return parse_genotype(text)

    def known_archs(self):
        return zoo_names()

    def eval_network(self, arch: Any, recipe: Dict[str, Any], num_classes: int = 10) -> NetworkCIFAR:
        """quark0's ``NetworkCIFAR`` at the recipe's size (C, layers, auxiliary head); drop path set per epoch."""
        genotype = arch if isinstance(arch, Genotype) else parse_genotype(str(arch), steps=None)
        return NetworkCIFAR(genotype, C=recipe["C"], layers=recipe["layers"], num_classes=num_classes,
                            auxiliary=recipe["auxiliary"], drop_path_prob=0.0)

    def arch_info(self, arch: Any) -> Dict[str, Any]:
        genotype = parse_genotype(arch, steps=None)
        counts = conv_counts(genotype)
        return {
            "params_M": _params_m(str(genotype)),
            "conv_counts": counts,
            "size_key": size_key(genotype),
            "early_stop": early_stop(genotype),
            "fixed_reduction": genotype.reduce is None,
        }
