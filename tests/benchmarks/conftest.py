"""pytest-benchmark suite (``tox -e bench``); skipped in the default ``pytest`` run.

The default run has ``--benchmark-disable`` (pyproject addopts): every test in this folder is then
skipped at collection, so it costs nothing.  ``--benchmark-enable`` runs them.

At the end of a benchmark session a summary table is printed: time per search iteration and peak
memory per method and space, and the MiLeNAS / DARTS-2nd ratio per space.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import pytest

#: (space, method) -> {"mean_s": float, "peak_rss_mb": float, "step_rss_mb": float}
RESULTS: Dict[Tuple[str, str], Dict[str, Any]] = {}


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
    if not RESULTS or not _enabled(config):
        return
    from tests.benchmarks.test_bench import summary_lines

    terminalreporter.write_sep("=", "search iteration: time and peak memory per method and space")
    for line in summary_lines(RESULTS):
        terminalreporter.write_line(line)
