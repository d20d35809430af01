"""``python -m harness calibrate``: measure this device's cost per search iteration, for ``plan``.

For each run of a profile's matrix (one seed per space × method × variant; ``--spaces`` / ``--methods``
narrow it), the run is built exactly as a search run builds it (``harness.runner.SearchRun.build``: data,
supernet, method, speed and precision settings of the resolved config) and its own ``step`` is timed on the
run's own batches:

* ``seconds_per_iteration``: the median of ``iterations`` timed iterations after ``warmup`` untimed ones
  (each timed iteration ends with a device synchronisation), with the mean and min beside it;
* ``peak_memory_mb``: the process's peak resident memory and, on CUDA, the peak allocated GPU memory over the
  warm-up and timed iterations;
* ``aten_ops_per_iteration``: the number of ATen operators one iteration dispatches (counted by a dispatch mode
  in one extra iteration): on a GPU each is at least one kernel launch, so it measures launch overhead on any
  machine, CPU included.  One multi-tensor ``torch._foreach_*`` operator counts once.  On a CPU, torch's SGD
  steps its weights one tensor at a time (its multi-tensor form is its default on CUDA only), so a CPU count
  holds about five operators per weight tensor that a GPU run dispatches as a few multi-tensor ones.

The file it writes (schema ``harness.calibration/1``, the layout of the shipped
``data/calibration/seconds_per_iteration.json``) carries its provenance: device kind and description, torch
and CUDA versions, commit, settings, date.  ``python -m harness plan --calibration FILE`` reads it; the shipped
table gains GPU rows only from such files.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from harness.lifecycle import peak_memory_mb, reset_peak_memory, sync
from harness.precision import apply_precision, prepare_network
from harness.provenance import provenance

SCHEMA = "harness.calibration/1"


class AtenOpCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched while it is active (``with AtenOpCounter() as c: …; c.count``)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_aten_ops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """The number of ATen operators ``fn(*args, **kwargs)`` dispatches (``AtenOpCounter``); one multi-tensor
    ``torch._foreach_*`` operator counts once, whatever the length of its lists."""
    counter = AtenOpCounter()
    with counter:
        fn(*args, **kwargs)
    return counter.count


def one_per_variant(configs: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The first config of every (space, method, variant): a calibration does not depend on the seed."""
    seen, out = set(), []
    for cfg in configs:
        key = (cfg["space"], cfg["method"], json.dumps(cfg["variant"], sort_keys=True))
        if key not in seen:
            seen.add(key)
            out.append(cfg)
    return out


def search_batches(run) -> Iterator:
    """The run's own search batches, epoch after epoch (so any number of iterations can be timed)."""
    while True:
        yield from run.data.epoch(run.gen, run.steps_per_epoch)


def measure_config(
    cfg: Dict[str, Any], device: torch.device, data_root: Optional[Path], warmup: int = 2, iterations: int = 5
) -> Dict[str, Any]:
    """Seconds per iteration, peak memory and ATen ops per iteration of one resolved search config."""
    from harness.runner import SearchRun

    run = SearchRun(cfg, Path("."), data_root, device)  # built, never run: nothing is written
    apply_precision(cfg.get("precision"), device)  # as the lifecycle does before and after a run builds
    run.build()
    for net in run.networks():
        prepare_network(cfg.get("precision"), net)
    method = run.method
    method.on_epoch_start(0)
    run.net.train()
    bs = int(cfg["data"]["batch_size"])
    compile_seconds = method.warm_up([bs], int(cfg["data"]["image_size"]))
    batches = search_batches(run)
    reset_peak_memory(device)
    for _ in range(warmup):
        method.step(*next(batches))
    sync(device)
    times = []
    for _ in range(iterations):
        tb, vb = next(batches)
        t0 = time.perf_counter()
        method.step(tb, vb)
        sync(device)
        times.append(time.perf_counter() - t0)
    memory = peak_memory_mb(device)
    aten_ops = count_aten_ops(method.step, *next(batches))
    sync(device)
    return {
        "space": cfg["space"],
        "method": cfg["method"],
        "variant": cfg["variant"],
        "space_cfg": cfg["space_cfg"],
        "image_size": int(cfg["data"]["image_size"]),
        "batch_size": bs,
        "seconds_per_iteration": statistics.median(times),
        "seconds_per_iteration_mean": statistics.fmean(times),
        "seconds_per_iteration_min": min(times),
        "timed_iterations": iterations,
        "warmup_iterations": warmup,
        "peak_memory_mb": memory,
        "aten_ops_per_iteration": aten_ops,
        "compile_seconds": compile_seconds,
        "speed": cfg.get("speed"),
        "precision": cfg.get("precision"),
    }


def calibrate(
    configs: Sequence[Dict[str, Any]],
    device: torch.device,
    data_root: Optional[Path] = None,
    warmup: int = 2,
    iterations: int = 5,
    profile: str = "custom",
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Dict[str, Any]:
    """The calibration document for ``configs`` measured on ``device`` (see the module doc)."""
    from harness.plan import device_kind

    prov = provenance(device)
    kind = device_kind(prov["device"])
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    measurements = []
    for cfg in one_per_variant(configs):
        m = measure_config(cfg, device, data_root, warmup, iterations)
        m.update(
            device_kind=kind,
            source=f"python -m harness calibrate --profile {profile} ({stamp}, commit "
            f"{prov['commit'][:12]}): median of {iterations} timed iterations",
        )
        measurements.append(m)
        mem = m["peak_memory_mb"]
        peak = (
            f"peak GPU {mem['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in mem else f"peak RSS {mem['peak_rss_mb']:.0f} MB"
        )
        progress(
            f"  {cfg['label']:<24s} {cfg['space']:6s} {m['seconds_per_iteration'] * 1000:9.1f} ms/iteration"
            f" | {m['aten_ops_per_iteration']:6d} aten ops | {peak}"
        )
    return {
        "schema": SCHEMA,
        "what": "seconds per search iteration (one method step: weight and α updates), peak memory and ATen "
        "operators per iteration, measured by `python -m harness calibrate`; read by `harness plan "
        "--calibration FILE`",
        "device_kinds": {
            kind: {
                "hardware": prov["device"],
                "provenance": {
                    "commit": prov["commit"],
                    "dirty": prov["dirty"],
                    "versions": prov["versions"],
                    "cuda": torch.version.cuda,
                    "threads": prov["threads"],
                    "hostname": prov["hostname"],
                    "measured_at": stamp,
                    "profile": profile,
                },
            }
        },
        "measurements": measurements,
    }


def write_calibration(doc: Dict[str, Any], path: Path) -> Path:
    from harness.records import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode())
    return path


def add_parser(subparsers) -> None:
    """``python -m harness calibrate`` (registered by ``harness.cli``)."""
    from harness.cli_args import add_data_dir, add_device, add_matrix_filters, add_set

    p = subparsers.add_parser(
        "calibrate",
        help="measure seconds per iteration, peak memory and aten ops on this device (for `plan`)",
        description="Time every method of a profile's matrix (one seed each) on this device, as its search runs "
        "would run, and write a calibration file that `python -m harness plan --calibration FILE` reads.",
    )
    p.add_argument("--profile", default="smoke", help="whose sizes to measure: smoke | cpu | gpu-quick | paper | PATH")
    add_matrix_filters(p)
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first (default 2)")
    p.add_argument("--iterations", type=int, default=5, help="timed iterations; the median is kept (default 5)")
    p.add_argument("--out", type=Path, default=Path("calibration.json"), help="the file to write")
    p.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    add_data_dir(p)
    add_device(p)
    add_set(p, "--set speed.autocast=bf16")


def main(args) -> int:
    from harness import config as C
    from harness.errors import HarnessError
    from harness.lifecycle import check_output_dir, pick_device

    if args.warmup < 0 or args.iterations < 1:
        raise HarnessError("--warmup must be >= 0 and --iterations >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise HarnessError("--threads must be a positive integer")
        torch.set_num_threads(args.threads)
    profile, configs = C.select_matrix(args.profile, args.spaces, args.methods, C.parse_overrides(args.overrides))
    check_output_dir(Path(args.out).parent if str(Path(args.out).parent) else Path("."))
    device = pick_device(args.device)
    data_root = Path(args.data_dir) if args.data_dir else None
    from harness.data import load_cifar10

    load_cifar10("train", data_root)  # missing or corrupt data: one error line before anything is measured
    print(
        f"calibrating {len(one_per_variant(configs))} run kind(s) of profile {profile['name']} on {device}",
        file=sys.stderr,
        flush=True,
    )
    doc = calibrate(configs, device, data_root, args.warmup, args.iterations, profile=profile["name"])
    path = write_calibration(doc, args.out)
    print(f"wrote {path}: use it with `python -m harness plan --profile PROFILE --calibration {path}`", file=sys.stderr)
    return 0
