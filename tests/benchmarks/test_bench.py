"""Benchmarks (pytest-benchmark): time per search iteration of every registered method on every
registered space at fixed small sizes, peak memory per method, data loading, benchmark look-up.

Run: ``tox -e bench`` (compares against ``tests/benchmarks/baseline/reference.json``; see
``tests/benchmarks/README.md`` to refresh it).  Single torch thread, as the CPU workers of
``reproduce``.  Peak memory: VmHWM (peak RSS) of a fresh subprocess running 3 iterations of the same
workload (``tests/benchmarks/workload.py``), stored in ``extra_info``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import torch

from harness.registry import list_methods, list_spaces
from tests.benchmarks import conftest as bench_conf
from tests.benchmarks.workload import SIZES, build, describe

REPO = Path(__file__).resolve().parents[2]
PAIRS = [("milenas", "darts-2nd")]
TARGET_SECONDS = 4.0  # measured time per iteration benchmark (rounds = TARGET / warm-up estimate, 5..60)


def _peak_memory(space: str, method: str) -> Dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.workload", space, method, "3"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return {"peak_memory_error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("space", list_spaces())
@pytest.mark.parametrize("method", list_methods())
def test_search_iteration(benchmark, space, method):
    torch.set_num_threads(1)
    m, tr, va = build(space, method)
    t0 = time.perf_counter()
    for _ in range(2):  # warm-up (allocator, first-call overheads)
        m.step(tr, va)
    est = (time.perf_counter() - t0) / 2
    rounds = int(min(60, max(5, TARGET_SECONDS / max(est, 1e-6))))
    benchmark.group = f"search iteration: {space}"
    benchmark.pedantic(m.step, args=(tr, va), rounds=rounds, iterations=1, warmup_rounds=1)
    mean = benchmark.stats.stats.mean
    mem = _peak_memory(space, method)
    info = {"space": space, "method": method, "size": describe(space), "threads": torch.get_num_threads(),
            "seconds_per_iteration": mean, **{k: v for k, v in mem.items() if k not in ("space", "method", "steps")}}
    if method == "darts2-then-milenas":
        info["note"] = "first 70% of epochs are DARTS-2nd steps: this times epoch 0 (a DARTS-2nd step)"
    bench_conf.RESULTS[(space, method)] = {"mean_s": mean, "peak_rss_mb": mem.get("peak_rss_mb"),
                                           "step_rss_mb": mem.get("step_rss_mb")}
    for num, den in PAIRS:
        other = den if method == num else num if method == den else None
        if other and (space, other) in bench_conf.RESULTS:
            a, b = bench_conf.RESULTS[(space, num)]["mean_s"], bench_conf.RESULTS[(space, den)]["mean_s"]
            info[f"ratio_{num}_over_{den}"] = a / b
    benchmark.extra_info.update(info)


def test_load_cifar10_cached(benchmark, shared_data):
    """Cached CIFAR-10 train split: checksum of the source + torch.load of the decoded tensors."""
    from harness.data import load_cifar10

    load_cifar10("train", shared_data)  # build the cache if missing
    benchmark.group = "data"
    x, y, _ = benchmark.pedantic(load_cifar10, args=("train", shared_data), rounds=5, iterations=1)
    benchmark.extra_info.update({"images": int(x.shape[0])})


def test_augmented_epoch(benchmark, shared_data):
    """One augmented search epoch of batches (NB201 split, 16px, batch 64, 2560/2560 images)."""
    from harness.data import SearchData, SearchDataConfig

    data = SearchData(SearchDataConfig(split="nb201", n_train=2560, n_val=2560, image_size=16, batch_size=64),
                      torch.device("cpu"), shared_data)
    gen = torch.Generator().manual_seed(0)

    def epoch() -> int:
        return sum(1 for _ in data.epoch(gen))

    benchmark.group = "data"
    n = benchmark.pedantic(epoch, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"batches": n, "images": 2560})


def test_nb201_lookup(benchmark, shared_data):
    """NB201 CompactTable look-up of 1000 arch strings (parse + index + row)."""
    from harness.spaces.nb201 import CompactTable, NB201Arch

    table = CompactTable(shared_data / "nas-bench-201" / "nb201_accuracy.csv")
    archs = [str(NB201Arch.from_index(i)) for i in range(0, 15625, 15625 // 1000)][:1000]

    def lookups() -> float:
        return sum(table.lookup(a)["cifar10_test_200ep"] for a in archs)

    benchmark.group = "nb201 lookup"
    benchmark.pedantic(lookups, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"lookups_per_round": len(archs)})


def test_nb201_table_load(benchmark, shared_data):
    """Loading (and sha256-verifying) the 15,625-row CompactTable."""
    from harness.spaces.nb201 import CompactTable

    benchmark.group = "nb201 lookup"
    table = benchmark.pedantic(CompactTable, args=(shared_data / "nas-bench-201" / "nb201_accuracy.csv",),
                               rounds=5, iterations=1)
    assert len(table) == 15625


def summary_lines(results: Dict[Tuple[str, str], Dict[str, Any]]) -> List[str]:
    lines = [f"{'space':6s} {'method':20s} {'ms/iter':>9s} {'peak RSS MB':>12s} {'Δ RSS steps MB':>15s}"]
    for (space, method), r in sorted(results.items()):
        peak = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "?"
        step = f"{r['step_rss_mb']:.0f}" if r.get("step_rss_mb") is not None else "?"
        lines.append(f"{space:6s} {method:20s} {r['mean_s'] * 1000:9.1f} {peak:>12s} {step:>15s}")
    for space in sorted({s for s, _ in results}):
        for num, den in PAIRS:
            if (space, num) in results and (space, den) in results:
                ratio = results[(space, num)]["mean_s"] / results[(space, den)]["mean_s"]
                lines.append(f"ratio {num} / {den} per iteration on {space} ({describe(space)}): {ratio:.3f}")
    return lines
