"""Benchmarks (pytest-benchmark): time per search iteration of every registered method on every
registered space at fixed small sizes, peak memory per method, data loading, benchmark look-up, and
ours versus the reference implementations (README.md#speed): xautodl's own NB201 supernets driven by steps written
to the reference rules (``tests/benchmarks/reference.py``), interleaved with ours in the same process,

* ``test_versus_reference_small``: one step each, alternately (small NB201 size, 1 thread);
* ``test_search_command_versus_reference_paper``: NB201 at paper size (C=16, N=5, 32x32, batch 64,
  2 threads): our steady iteration through the real search loop (``SearchRun``: data, augmentation,
  default settings) against reference steps run between its epochs;
* ``test_milenas_over_darts2_interleaved``: ours DARTS-2nd, MiLeNAS, fused MiLeNAS and the reference
  DARTS-V2 / MiLeNAS steps in turn (small and paper size): the MiLeNAS ÷ DARTS-2nd ratios under one load;
* ``test_peak_memory_paper``: peak RSS of a fresh process running 1 paper-size iteration, ours and the
  reference's (DARTS-V2 deep-copies the supernet every step; ours does not).

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
from typing import Any, Dict, List, Optional, Tuple

import pytest
import torch

from harness.calibrate import count_aten_ops
from harness.registry import list_methods, list_spaces
from tests.benchmarks import conftest as bench_conf
from tests.benchmarks.workload import SIZES, build, describe

REPO = Path(__file__).resolve().parents[2]
PAIRS = [("milenas", "darts-2nd")]
TARGET_SECONDS = 4.0  # measured time per iteration benchmark (rounds = TARGET / warm-up estimate, 5..60)


def _peak_memory(space: str, method: str) -> Dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.workload", space, method, "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    info = {
        "space": space,
        "method": method,
        "size": describe(space),
        "threads": torch.get_num_threads(),
        "seconds_per_iteration": mean,
        "aten_ops_per_iteration": count_aten_ops(m.step, tr, va),
        **{k: v for k, v in mem.items() if k not in ("space", "method", "steps")},
    }
    if method == "darts2-then-milenas":
        info["note"] = "first 70% of epochs are DARTS-2nd steps: this times epoch 0 (a DARTS-2nd step)"
    bench_conf.RESULTS[(space, method)] = {
        "mean_s": mean,
        "peak_rss_mb": mem.get("peak_rss_mb"),
        "step_rss_mb": mem.get("step_rss_mb"),
    }
    for num, den in PAIRS:
        other = den if method == num else num if method == den else None
        if other and (space, other) in bench_conf.RESULTS:
            a, b = bench_conf.RESULTS[(space, num)]["mean_s"], bench_conf.RESULTS[(space, den)]["mean_s"]
            info[f"ratio_{num}_over_{den}"] = a / b
    benchmark.extra_info.update(info)


#: the aten-op counts before DARTS-2nd's virtual step and finite differences became multi-tensor operations
#: (commit c4a94b1, torch 2.14.1 CPU; tests/benchmarks/README.md): the goal is at most half of the ~64k of the
#: first GPU-readiness measurement on NB201 (README.md#speed)
ATEN_OPS_BEFORE = {("nb201", "darts-2nd"): 33594, ("darts", "darts-2nd"): 118191}
ATEN_OPS_GOAL = {("nb201", "darts-2nd"): 32000}


def paper_size(space: str) -> Dict[str, Any]:
    """The paper profile's supernet of ``space`` (harness/profiles/paper.yaml), with its image and batch size on
    NB201; on the DARTS space 16 px and batch 8 (an operator count does not depend on either: checked,
    tests/benchmarks/README.md), so that a count takes seconds on a CPU."""
    from harness import config as C

    _, configs = C.select_matrix("paper", [space], None)
    cfg = configs[0]
    small = space != "nb201"
    return {
        "supernet": dict(cfg["space_cfg"]),
        "image_size": 16 if small else int(cfg["data"]["image_size"]),
        "batch_size": 8 if small else int(cfg["data"]["batch_size"]),
    }


@pytest.mark.parametrize("space", list_spaces())
@pytest.mark.parametrize("method", list_methods())
def test_aten_ops_per_iteration_paper(benchmark, space, method):
    """ATen operators one search iteration dispatches (``harness.calibrate.count_aten_ops``) at the paper's supernet
    size: each is at least one kernel launch on a GPU.  Timed: one counted iteration (the dispatch mode's overhead
    included; not an iteration time)."""
    torch.set_num_threads(1)
    size = paper_size(space)
    m, tr, va = build(space, method, size=size)
    m.step(tr, va)  # optimizer state (momentum buffers) exists, as in every later iteration
    benchmark.group = "aten ops per search iteration, paper supernet size (time: one counted iteration)"
    count = benchmark.pedantic(count_aten_ops, args=(m.step, tr, va), rounds=1, iterations=1)
    info: Dict[str, Any] = {"space": space, "method": method, "size": describe(space, size), "aten_ops": count}
    before = ATEN_OPS_BEFORE.get((space, method))
    if before:
        info.update(aten_ops_before_multi_tensor=before, aten_ops_ratio_to_before=count / before)
    goal = ATEN_OPS_GOAL.get((space, method))
    if goal:
        info["aten_ops_goal"] = goal
    bench_conf.OPS_RESULTS[(space, method)] = info
    benchmark.extra_info.update(info)
    if goal:
        assert count <= goal, f"{method} on {space}: {count} aten ops per iteration, goal <= {goal}"


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

    data = SearchData(
        SearchDataConfig(split="nb201", n_train=2560, n_val=2560, image_size=16, batch_size=64),
        torch.device("cpu"),
        shared_data,
    )
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
    table = benchmark.pedantic(
        CompactTable, args=(shared_data / "nas-bench-201" / "nb201_accuracy.csv",), rounds=5, iterations=1
    )
    assert len(table) == 15625


# ------------------------------------------------------------------------------------------------------------
# ours versus the reference implementations (README.md#speed)

#: (case name, our method, our variant, reference method): the five methods, and MiLeNAS / single-level fused
REF_CASES = [
    ("darts-1st", "darts-1st", {}, "darts-1st"),
    ("darts-2nd", "darts-2nd", {}, "darts-2nd"),
    ("gdas", "gdas", {}, "gdas"),
    ("milenas", "milenas", {}, "milenas"),
    ("single-level", "single-level", {}, "single-level"),
    ("milenas-fused", "milenas", {"fused": True}, "milenas"),
    ("single-level-fused", "single-level", {"fused": True}, "single-level"),
]
SMALL_THREADS, PAPER_THREADS = 1, 2
PAPER_TIMED_EPOCHS, PAPER_STEPS = 3, 1  # after one warm-up epoch; a reference step before each epoch


def _need_reference():
    from tests.benchmarks import reference

    if not reference.available():
        pytest.skip("xautodl is not installed (tox installs it with --no-deps)")


def _record_ref(size: str, case: str, ours: List[float], ref: List[float], threads: int, **extra) -> Dict[str, Any]:
    import statistics

    row = {
        "ours_s": statistics.median(ours),
        "ref_s": statistics.median(ref),
        "threads": threads,
        "n_ours": len(ours),
        "n_ref": len(ref),
        "load_avg_1min": os.getloadavg()[0],
        **extra,
    }
    row["ratio"] = row["ours_s"] / row["ref_s"]
    bench_conf.REF_RESULTS[(size, case)] = row
    return row


@pytest.mark.parametrize("case,method,variant,ref_method", REF_CASES, ids=[c[0] for c in REF_CASES])
def test_versus_reference_small(benchmark, case, method, variant, ref_method):
    """Ours and the reference step alternately (the reference runs in pytest-benchmark's untimed setup)."""
    from tests.benchmarks.workload import build_reference_step

    _need_reference()
    torch.set_num_threads(SMALL_THREADS)
    size = SIZES["nb201"]
    m, tr, va = build("nb201", method, size=size, variant=variant)
    ref, _, _ = build_reference_step(ref_method, size, state=m.net.state_dict())
    ref_times: List[float] = []

    def ref_step():
        t0 = time.perf_counter()
        ref(tr, va)
        ref_times.append(time.perf_counter() - t0)

    for _ in range(2):  # warm-up both
        m.step(tr, va)
        ref(tr, va)
    ref_times.clear()
    benchmark.group = f"ours vs reference: nb201 {describe('nb201')}"
    benchmark.pedantic(m.step, args=(tr, va), setup=ref_step, rounds=12, iterations=1)
    ours = list(benchmark.stats.stats.data)
    row = _record_ref("small", case, ours, ref_times, SMALL_THREADS, size_text=describe("nb201"))
    benchmark.extra_info.update({"case": case, "size": describe("nb201"), **row})


@pytest.mark.parametrize("case,method,variant,ref_method", REF_CASES, ids=[c[0] for c in REF_CASES])
def test_search_command_versus_reference_paper(benchmark, shared_data, tmp_path, case, method, variant, ref_method):
    """Our steady iteration through the search loop at paper size (2 threads, default settings) against the
    reference step on batches of the same shape, run between our epochs (so both see the same load)."""
    from harness import config as C
    from harness.runner import SearchRun
    from tests.benchmarks.workload import PAPER, build_reference_step

    _need_reference()
    torch.set_num_threads(PAPER_THREADS)
    profile = {"name": "bench-paper", "scale": "custom"}
    part = {
        "space": "nb201",
        "supernet": dict(PAPER["supernet"]),
        "data": {"n_train": 640, "n_val": 640, "n_eval": 60, "image_size": 32, "batch_size": 64},
        "epochs": 1 + PAPER_TIMED_EPOCHS,
        "max_steps_per_epoch": PAPER_STEPS,
    }
    cfg = C.resolve("nb201", {"method": method, "variant": dict(variant)}, 0, profile, part)
    run = SearchRun(cfg, tmp_path / "runs", shared_data, torch.device("cpu"))
    ref_times: List[float] = []
    state: Dict[str, Any] = {}

    def before_epoch(epoch: int) -> None:
        if "ref" not in state:
            ((tr, va),) = [b for _, b in zip(range(1), run.data.epoch(torch.Generator().manual_seed(1)))]
            state["ref"], _, _ = build_reference_step(ref_method, PAPER, state=run.net.state_dict())
            state["batches"] = (tr, va)
        times = []
        for _ in range(1 if epoch == 0 else PAPER_STEPS):
            t0 = time.perf_counter()
            state["ref"](*state["batches"])
            times.append(time.perf_counter() - t0)
        if epoch > 0:  # epoch 0 warms both up
            ref_times.extend(times)

    run.before_epoch = before_epoch
    benchmark.group = "ours (search loop) vs reference: nb201 paper size"
    rec = benchmark.pedantic(run.run, rounds=1, iterations=1)
    assert rec["status"] == "ok", rec.get("failure")
    ours = [e["epoch_seconds"] / e["iterations"] for e in rec["epochs"][1:]]
    row = _record_ref(
        "paper",
        case,
        ours,
        ref_times,
        PAPER_THREADS,
        size_text=describe("nb201", PAPER),
        steady_s=rec["final"]["seconds_per_iteration_steady"],
    )
    benchmark.extra_info.update({"case": case, "size": describe("nb201", PAPER), **row})


#: MiLeNAS ÷ DARTS-2nd: these steps round-robin in one test, so every ratio sees the same load
RATIO_SIDES = [
    ("darts-2nd", "darts-2nd", {}, False),
    ("milenas", "milenas", {}, False),
    ("milenas-fused", "milenas", {"fused": True}, False),
    ("reference darts-2nd", "darts-2nd", {}, True),
    ("reference milenas", "milenas", {}, True),
]


@pytest.mark.parametrize("size_name", ["small", "paper"])
def test_milenas_over_darts2_interleaved(benchmark, size_name):
    """Ours DARTS-2nd, MiLeNAS, fused MiLeNAS and the reference DARTS-V2 / MiLeNAS steps, one step each in
    turn (small: 1 thread, 5 rounds; paper: 2 threads, 3 rounds after one warm-up round); median per side."""
    import statistics

    from tests.benchmarks.workload import PAPER, build_reference_step

    _need_reference()
    threads = SMALL_THREADS if size_name == "small" else PAPER_THREADS
    size = SIZES["nb201"] if size_name == "small" else PAPER
    rounds = 5 if size_name == "small" else 3
    torch.set_num_threads(threads)
    steps = {}
    state = None
    for name, method, variant, is_ref in RATIO_SIDES:
        if is_ref:
            step, tr, va = build_reference_step(method, size, state=state)
        else:
            m, tr, va = build("nb201", method, size=size, variant=variant)
            state = state or m.net.state_dict()
            step = m.step
        steps[name] = (step, tr, va)
    times: Dict[str, List[float]] = {name: [] for name in steps}

    def one_round() -> None:
        for name, (step, tr, va) in steps.items():
            t0 = time.perf_counter()
            step(tr, va)
            times[name].append(time.perf_counter() - t0)

    one_round()  # warm-up
    for v in times.values():
        v.clear()
    benchmark.group = "MiLeNAS ÷ DARTS-2nd, interleaved (one round = every side once)"
    benchmark.pedantic(one_round, rounds=rounds, iterations=1)
    med = {name: statistics.median(v) for name, v in times.items()}
    row = {
        "threads": threads,
        "load_avg_1min": os.getloadavg()[0],
        "size_text": describe("nb201", size),
        **{f"{k}_s": v for k, v in med.items()},
        "milenas_over_darts2": med["milenas"] / med["darts-2nd"],
        "milenas_fused_over_darts2": med["milenas-fused"] / med["darts-2nd"],
        "reference_milenas_over_darts2": med["reference milenas"] / med["reference darts-2nd"],
    }
    bench_conf.RATIO_RESULTS[size_name] = row
    benchmark.extra_info.update(row)


def _peak_memory_paper(method: str, variant: Dict[str, Any], reference: bool) -> Dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(PAPER_THREADS))
    cmd = [
        sys.executable,
        "-m",
        "tests.benchmarks.workload",
        "nb201",
        method,
        "1",
        "--size",
        "paper",
        "--threads",
        str(PAPER_THREADS),
    ] + [f"--variant={k}={v}" for k, v in variant.items()]
    if reference:
        cmd.append("--reference")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return {"peak_memory_error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


MEM_CASES = [c for c in REF_CASES if c[0] in ("darts-1st", "darts-2nd", "gdas", "milenas", "milenas-fused")]


@pytest.mark.parametrize("case,method,variant,ref_method", MEM_CASES, ids=[c[0] for c in MEM_CASES])
def test_peak_memory_paper(benchmark, case, method, variant, ref_method):
    """Peak RSS (VmHWM, torch import included) of 1 paper-size iteration in a fresh process, ours and the
    reference's.  Timed by the benchmark: ours' subprocess (start-up included; not an iteration time)."""
    _need_reference()
    benchmark.group = "peak memory: nb201 paper size (subprocess, 1 iteration)"
    ours = benchmark.pedantic(_peak_memory_paper, args=(method, variant, False), rounds=1, iterations=1)
    ref = _peak_memory_paper(ref_method, {}, True)
    row = {
        "ours_peak_rss_mb": ours.get("peak_rss_mb"),
        "ref_peak_rss_mb": ref.get("peak_rss_mb"),
        "ours_step_rss_mb": ours.get("step_rss_mb"),
        "ref_step_rss_mb": ref.get("step_rss_mb"),
    }
    bench_conf.MEM_RESULTS[case] = row
    benchmark.extra_info.update({"case": case, **row})


def reference_lines(
    results: Dict[Tuple[str, str], Dict[str, Any]],
    mem: Dict[str, Dict[str, Any]],
    ratios: Optional[Dict[str, Dict[str, Any]]] = None,
) -> List[str]:
    """The ours-vs-reference table (README.md#speed): ours ÷ reference per method and size, MiLeNAS ÷ DARTS-2nd
    (fused and not)."""
    lines = [
        f"{'size':6s} {'case':20s} {'ours s/it':>10s} {'ref s/it':>10s} {'ours/ref':>9s} {'threads':>8s} {'load':>5s}"
    ]
    for (size, case), r in sorted(results.items()):
        lines.append(
            f"{size:6s} {case:20s} {r['ours_s']:10.3f} {r['ref_s']:10.3f} {r['ratio']:9.3f} "
            f"{r['threads']:8d} {r['load_avg_1min']:5.1f}"
        )
    for size, r in sorted((ratios or {}).items()):
        lines.append(
            f"MiLeNAS ÷ DARTS-2nd per iteration, interleaved ({size}: {r['size_text']}, {r['threads']} "
            f"thread(s), load {r['load_avg_1min']:.1f}): ours {r['milenas_over_darts2']:.3f}, ours fused "
            f"{r['milenas_fused_over_darts2']:.3f}, reference steps {r['reference_milenas_over_darts2']:.3f}"
            f"  (s/it: darts-2nd {r['darts-2nd_s']:.3f}, milenas {r['milenas_s']:.3f}, fused "
            f"{r['milenas-fused_s']:.3f}; reference {r['reference darts-2nd_s']:.3f} / "
            f"{r['reference milenas_s']:.3f})"
        )
    for case, r in mem.items():
        lines.append(
            f"peak RSS paper size {case:16s} ours {r['ours_peak_rss_mb'] or float('nan'):7.0f} MB   "
            f"reference {r['ref_peak_rss_mb'] or float('nan'):7.0f} MB   (growth during the iteration: "
            f"ours {r['ours_step_rss_mb'] or float('nan'):.0f}, "
            f"reference {r['ref_step_rss_mb'] or float('nan'):.0f})"
        )
    return lines


def ops_lines(results: Dict[Tuple[str, str], Dict[str, Any]]) -> List[str]:
    """ATen operators per search iteration at the paper's supernet size, with the count before the multi-tensor
    DARTS-2nd step where one was measured."""
    lines = [f"{'space':6s} {'method':20s} {'aten ops':>9s} {'before':>9s}  size"]
    for (space, method), r in sorted(results.items()):
        before = r.get("aten_ops_before_multi_tensor")
        lines.append(f"{space:6s} {method:20s} {r['aten_ops']:9d} {before if before else '':>9}  {r['size']}")
    return lines


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
