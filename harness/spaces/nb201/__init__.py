"""The NAS-Bench-201 search space (registered as ``"nb201"``).

Modules: ``ops`` (candidate operations, ResNet block), ``arch`` (``NB201Arch``: string codec and
official index), ``supernet`` (``NB201Supernet``: softmax / GDAS forward), ``benchmark``
(compact table / official files lookup, ``find_benchmark``, ``lookup_json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Type, Union

from harness.errors import ConfigError
from harness.paths import data_dir as _data_dir
from harness.registry import register_space
from harness.schema import Option, validate_section
from harness.spaces.base import ReportColumn, SearchSpace
from harness.spaces.nb201.arch import NB201Arch
from harness.spaces.nb201.benchmark import (
    COLUMN_DOCS,
    COLUMNS,
    BenchmarkNotFoundError,
    CompactTable,
    OfficialBenchmark,
    find_benchmark,
    lookup_json,
)
from harness.spaces.nb201.ops import NB201_OPS
from harness.spaces.nb201.supernet import GDAS_EDGE_FORMS, NB201Supernet

if TYPE_CHECKING:
    from harness.methods import SearchMethod

__all__ = [
    "NB201Space",
    "NB201Arch",
    "NB201Supernet",
    "NB201_OPS",
    "CompactTable",
    "OfficialBenchmark",
    "find_benchmark",
    "lookup_json",
    "COLUMN_DOCS",
    "COLUMNS",
    "SUPERNET_DEFAULTS",
]

#: supernet config options (``space_cfg``) and their defaults (NB201 paper / xautodl search settings)
SUPERNET_OPTIONS: Dict[str, Option] = {
    "C": Option("channels of the first stage", int, minimum=1, default=16),
    "N": Option("cells per stage", int, minimum=1, default=5),
    "max_nodes": Option("nodes per cell (the NAS-Bench-201 cell has 4)", int, choices=(4,), default=4),
    "affine": Option("BatchNorm affine parameters", bool, default=False),
    "track_running_stats": Option("BatchNorm running statistics", bool, default=False),
    "gdas_edge_form": Option(
        "GDAS edge form (harness.spaces.nb201.supernet)", str, choices=tuple(GDAS_EDGE_FORMS), default="xautodl"
    ),
    "partial_channels": Option(
        "PC-DARTS partial channels K: each edge's ops see C/K channels (1: off; harness.spaces.partial)",
        int,
        minimum=1,
        default=1,
    ),
    "edge_norm": Option("PC-DARTS edge normalisation β (harness.spaces.partial)", bool, default=False),
    "num_classes": Option("classes (must agree with the dataset; normally unset)", int, minimum=1),
}
SUPERNET_DEFAULTS: Dict[str, Any] = {k: o.default for k, o in SUPERNET_OPTIONS.items() if o.default is not None}

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
    parameter_free_ops = ("skip_connect", "avg_pool_3x3")
    label = "NAS-Bench-201"
    display_rank = 10
    cell_judged_by = "benchmark"
    #: the 200-epoch test columns (the 12-epoch columns are recorded, not reported)
    report_columns = tuple(
        ReportColumn(key, name, COLUMN_DOCS[key])
        for key, name in (
            ("cifar10_test_200ep", "CIFAR-10"),
            ("cifar100_test_200ep", "CIFAR-100"),
            ("imagenet16_120_test_200ep", "ImageNet16-120"),
        )
    )
    figure_kinds = ("benchmark_curve",)
    cell_drawing = "chain"
    expected_roles = ("core",)
    cost_model_keys = ("C", "N")
    # a found cell's CIFAR-10 benchmark accuracy (the published NB201 comparison's first column)
    regress_metrics = ("cifar10_test_200ep",)

    @classmethod
    def report_cells(cls, text: str):
        return {"cell": NB201Arch.parse(text).edges()}

    @classmethod
    def method_deviations(cls, method: Type[SearchMethod]) -> List[str]:
        if getattr(method, "nb201_reference", True):
            return []
        return [f"{method.name} has no NAS-Bench-201 reference implementation: run under the NB201 DARTS protocol"]

    supernet_options = SUPERNET_OPTIONS

    def build_supernet(self, cfg: Dict[str, Any], num_classes: int) -> NB201Supernet:
        cfg = dict(cfg or {})
        validate_section(cfg, SUPERNET_OPTIONS, "nb201 supernet", noun="option")
        if "num_classes" in cfg and int(cfg.pop("num_classes")) != int(num_classes):
            raise ConfigError(f"nb201 supernet num_classes in the config disagrees with the dataset ({num_classes})")
        kw = {**SUPERNET_DEFAULTS, **cfg}
        return NB201Supernet(num_classes=int(num_classes), **kw)

    def parse_arch(self, text: str) -> NB201Arch:
        return NB201Arch.parse(text)

    def arch_info(self, arch: Any) -> Dict[str, Any]:
        arch = arch if isinstance(arch, NB201Arch) else NB201Arch.parse(str(arch))
        bench = _benchmark_for(self.data_dir)
        if bench is None:
            return {"index": arch.index, "benchmark": None, "benchmark_source": None}
        return {"index": arch.index, "benchmark": bench.lookup(arch), "benchmark_source": bench.source}
