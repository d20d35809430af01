"""The NAS-Bench-201 search space (registered as ``"nb201"``).

Modules: ``ops`` (candidate operations, ResNet block), ``arch`` (``NB201Arch``: string codec and
official index), ``supernet`` (``NB201Supernet``: softmax / GDAS forward), ``benchmark``
(compact table / official files lookup, ``find_benchmark``, ``lookup_json``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

from harness.errors import ConfigError
from harness.paths import data_dir as _data_dir
from harness.registry import register_space
from harness.spaces.base import SearchSpace
from harness.spaces.nb201.arch import NB201Arch
from harness.spaces.nb201.benchmark import (COLUMN_DOCS, COLUMNS, BenchmarkNotFoundError, CompactTable,
                                            OfficialBenchmark, find_benchmark, lookup_json)
from harness.spaces.nb201.ops import NB201_OPS
from harness.spaces.nb201.supernet import GDAS_EDGE_FORMS, NB201Supernet

__all__ = ["NB201Space", "NB201Arch", "NB201Supernet", "NB201_OPS", "CompactTable", "OfficialBenchmark",
           "find_benchmark", "lookup_json", "COLUMN_DOCS", "COLUMNS", "SUPERNET_DEFAULTS"]

#: supernet config keys and their defaults (NB201 paper / xautodl search settings)
SUPERNET_DEFAULTS: Dict[str, Any] = {"C": 16, "N": 5, "max_nodes": 4, "affine": False,
                                     "track_running_stats": False, "gdas_edge_form": "xautodl"}
_INT_KEYS = ("C", "N", "max_nodes")
_BOOL_KEYS = ("affine", "track_running_stats")

# benchmark per data folder, found once per process (None = nothing there)
_BENCH_CACHE: Dict[str, Any] = {}


def _benchmark_for(folder: Optional[Union[str, Path]]):
    key = str(_data_dir(folder))
    if key not in _BENCH_CACHE:
        try:
            _BENCH_CACHE[key] = find_benchmark(folder)
        except BenchmarkNotFoundError:  # a corrupt file still raises (DataError)
            _BENCH_CACHE[key] = None
    return _BENCH_CACHE[key]


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201: 6-edge cell, 5 ops, one α (6×5) shared by all 15 cells."""

    ops = NB201_OPS

    def build_supernet(self, cfg: Dict[str, Any], num_classes: int) -> NB201Supernet:
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(SUPERNET_DEFAULTS) - {"num_classes"})
        if unknown:
            raise ConfigError(f"unknown nb201 supernet option(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(SUPERNET_DEFAULTS)}")
        if "num_classes" in cfg and int(cfg.pop("num_classes")) != int(num_classes):
            raise ConfigError(f"nb201 supernet num_classes in the config disagrees with the dataset "
                              f"({num_classes})")
        kw = {**SUPERNET_DEFAULTS, **cfg}
        for k in _INT_KEYS:
            if isinstance(kw[k], bool) or not isinstance(kw[k], int) or kw[k] < 1:
                raise ConfigError(f"nb201 supernet option {k} must be a positive integer, got {kw[k]!r}")
        for k in _BOOL_KEYS:
            if not isinstance(kw[k], bool):
                raise ConfigError(f"nb201 supernet option {k} must be true or false, got {kw[k]!r}")
        if kw["max_nodes"] != 4:
            raise ConfigError(f"nb201 supernet max_nodes must be 4 (the NAS-Bench-201 cell), got {kw['max_nodes']}")
        if kw["gdas_edge_form"] not in GDAS_EDGE_FORMS:
            raise ConfigError(f"nb201 supernet gdas_edge_form must be one of {', '.join(GDAS_EDGE_FORMS)}, "
                              f"got {kw['gdas_edge_form']!r}")
        return NB201Supernet(num_classes=int(num_classes), **kw)

    def parse_arch(self, text: str) -> NB201Arch:
        return NB201Arch.parse(text)

    def arch_info(self, arch: Any) -> Dict[str, Any]:
        arch = arch if isinstance(arch, NB201Arch) else NB201Arch.parse(str(arch))
        bench = _benchmark_for(self.data_dir)
        if bench is None:
            return {"index": arch.index, "benchmark": None, "benchmark_source": None}
        return {"index": arch.index, "benchmark": bench.lookup(arch), "benchmark_source": bench.source}
