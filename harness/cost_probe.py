"""Interleaved cost probe: seconds per search iteration of several run configs, measured round-robin.

Timing each run while it runs (``final.seconds_per_iteration_steady`` of a record) compares methods measured
minutes apart; on a shared 2-core CI machine the load changes between them (another job takes a core, the CPU
clocks down), and a cost *ratio* between two methods then moves by tens of percent with no code change.  The
probe removes that: every config is built exactly as its search run builds it (``harness.runner.SearchRun.build``
from the record's resolved config: data, supernet, method, speed and precision settings), and then, round after
round, each config runs its search iterations (``method.step``, at least one and until ``min_seconds`` have
passed, so a cheap config's sample is not one noisy millisecond reading) on its own batches — all configs of a
round within seconds of each other, in a rotated order so none always runs first.  A round's ratios (a config's time ÷
the round's reference) see one machine state; the spread over rounds measures what is left of the noise.

Seconds are CPU seconds of the process on CPU (:func:`probe_clock`; immune to the time another process holds the
core, which wall-clock is not) and synchronised wall-clock seconds on CUDA.

``probe(configs, rounds, warmup, min_seconds)`` returns, per key, the mean seconds per iteration of each timed
round (``"r0"``, ``"r1"``, …; each
iteration ends with a device synchronisation).  ``harness.regress`` uses it when a baseline's cost rules say
``source: interleaved``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from harness.calibrate import search_batches
from harness.lifecycle import sync

Progress = Callable[[str], None]


def probe_clock(device: torch.device) -> Callable[[], float]:
    """The probe's clock: on CPU the process's CPU time (``time.process_time``: all its threads' compute, not the
    time it waited while another process held the core — on a shared 2-core machine that waiting is what moved
    wall-clock ratios by ±40 %); on CUDA wall-clock seconds after a device synchronisation (the host idles while
    kernels run, so CPU time would miss them)."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def clock_name(device: torch.device) -> str:
    return "process_time (CPU seconds)" if device.type == "cpu" else "perf_counter (wall seconds, synchronised)"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def probe(
    configs: Dict[str, Dict[str, Any]],
    device: torch.device,
    data_root: Optional[Path] = None,
    rounds: int = 5,
    warmup: int = 1,
    min_seconds: float = 0.5,
    progress: Progress = _stderr,
) -> Dict[str, Dict[str, float]]:
    """Key -> {"r<i>": mean seconds per search iteration in timed round i} for every resolved search config; in a
    round each config runs iterations until ``min_seconds`` have passed (at least one)."""
    from harness.runner import SearchRun

    if rounds < 1 or warmup < 0:
        raise ValueError("rounds must be >= 1 and warmup >= 0")
    clock = probe_clock(device)
    keys = sorted(configs)
    steppers = {}
    for key in keys:
        run = SearchRun(configs[key], Path("."), data_root, device)  # built, never run: nothing is written
        run.build()
        run.method.on_epoch_start(0)
        run.net.train()
        steppers[key] = (run.method, search_batches(run))
    times: Dict[str, Dict[str, float]] = {key: {} for key in keys}
    t_start = time.perf_counter()
    for r in range(warmup + rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            method, batches = steppers[key]
            n, elapsed = 0, 0.0
            while n == 0 or elapsed < min_seconds:  # a cheap config repeats its step within the round
                tb, vb = next(batches)
                sync(device)
                t0 = clock()
                method.step(tb, vb)
                sync(device)
                elapsed += clock() - t0
                n += 1
            if r >= warmup:
                times[key][f"r{r - warmup}"] = elapsed / n
        if r + 1 == warmup or (r >= warmup and (r - warmup + 1) % max(1, rounds // 3) == 0):
            progress(
                f"  cost probe: round {r + 1}/{warmup + rounds} ({'warm-up' if r < warmup else 'timed'}), "
                f"{time.perf_counter() - t_start:.0f} s"
            )
    return times
