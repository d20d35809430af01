"""pytest-benchmark suite (``tox -e bench``); skipped in the default ``pytest`` run.

The default run has ``--benchmark-disable`` (pyproject addopts): every test in this folder is then
skipped at collection, so it costs nothing.  ``--benchmark-enable`` runs them.

At the end of a benchmark session summary tables are printed: time per search iteration and peak
memory per method and space, the MiLeNAS / DARTS-2nd ratio per space, and (README.md#speed) ours ÷ reference
per method at the small and the paper size, MiLeNAS ÷ DARTS-2nd fused and not, peak memory at paper size.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import pytest

#: (space, method) -> {"mean_s": float, "peak_rss_mb": float, "step_rss_mb": float}
RESULTS: Dict[Tuple[str, str], Dict[str, Any]] = {}
#: (size "small" | "paper", case) -> {"ours_s", "ref_s", "ratio", "threads", "load_avg_1min", ...} (README.md#speed)
REF_RESULTS: Dict[Tuple[str, str], Dict[str, Any]] = {}
#: case -> peak RSS of ours and the reference at paper size
MEM_RESULTS: Dict[str, Dict[str, Any]] = {}
#: size -> MiLeNAS ÷ DARTS-2nd, ours (fused and not) and the reference's, measured round-robin
RATIO_RESULTS: Dict[str, Dict[str, Any]] = {}
#: (space, method) -> aten operators per search iteration at the paper's supernet size
OPS_RESULTS: Dict[Tuple[str, str], Dict[str, Any]] = {}


def _enabled(config) -> bool:
    return not (config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False))


def pytest_collection_modifyitems(config, items):
    if _enabled(config):
        return
    skip = pytest.mark.skip(reason="benchmarks run with --benchmark-enable (tox -e bench)")
    for item in items:
        if "benchmarks" in item.nodeid.split("/")[:2] or "/benchmarks/" in str(item.fspath):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _enabled(config):
        return
    from tests.benchmarks.test_bench import ops_lines, reference_lines, summary_lines

    if RESULTS:
        terminalreporter.write_sep("=", "search iteration: time and peak memory per method and space")
        for line in summary_lines(RESULTS):
            terminalreporter.write_line(line)
    if OPS_RESULTS:
        terminalreporter.write_sep("=", "aten operators per search iteration (paper supernet size)")
        for line in ops_lines(OPS_RESULTS):
            terminalreporter.write_line(line)
    if REF_RESULTS or MEM_RESULTS or RATIO_RESULTS:
        terminalreporter.write_sep("=", "ours ÷ reference (xautodl supernets, reference-rule steps), NB201")
        for line in reference_lines(REF_RESULTS, MEM_RESULTS, RATIO_RESULTS):
            terminalreporter.write_line(line)
