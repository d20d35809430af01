"""``python -m harness plan``: the run matrix of a profile with each run's estimated cost, per device kind.

cost of a run = iterations × seconds per iteration, where

* iterations = epochs × steps per epoch, steps per epoch = ⌈search-train images / batch size⌉
  (25 000 images when the profile takes the whole search-train half), capped by
  ``max_steps_per_epoch``; both from the run's resolved config;
* seconds per iteration come from measurements of the same space, method, supernet size (C and
  N or layers), image size and batch size on a device kind:

  - records of finished search runs under ``--from-runs`` folders (default: every ``runs/*/records``
    below the current folder): ``final.seconds_per_iteration_steady`` (the first epoch's warm-up
    excluded), the median over records of one key and device kind;
  - the shipped table ``data/calibration/seconds_per_iteration.json`` (its provenance is in the file).

  A record's device kind is its provenance's device without the memory/CUDA details: ``cpu: <model>,
  <n> threads`` or ``cuda: <GPU name>``.  Records win over the shipped table for the same key.

The estimate counts search iterations only: the per-epoch supernet evaluation, benchmark look-ups,
data loading and process start are not in it, and an early-stopped run ends sooner.  Where no
measurement of a run's key exists on a device kind, the plan says "no measurement".
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from harness import records
from harness.paths import PROJECT_ROOT

CALIBRATION = PROJECT_ROOT / "data" / "calibration" / "seconds_per_iteration.json"
SEARCH_HALF = 25000  # both reference splits (NB201 cifar-split, DARTS index halves) have 25k/25k images


def iterations(cfg: Dict[str, Any]) -> Dict[str, int]:
    """Epochs, steps per epoch and total search iterations of a resolved search config."""
    d = cfg["data"]
    n = int(d.get("n_train") or SEARCH_HALF)
    steps = -(-n // int(d["batch_size"]))
    if cfg.get("max_steps_per_epoch"):
        steps = min(steps, int(cfg["max_steps_per_epoch"]))
    epochs = int(cfg["epochs"])
    return {"epochs": epochs, "steps_per_epoch": steps, "iterations": epochs * steps}


def size_key(space: str, method: str, space_cfg: Dict[str, Any], image_size: int, batch_size: int) -> str:
    """Measurement key: space, method, the supernet dimensions the space's cost model names
    (``SearchSpace.cost_model_keys``; every scalar key for a space without them or not registered), image and
    batch size."""
    from harness.registry import get_space, list_spaces

    keys = get_space(space).cost_model_keys if space in list_spaces() else ()
    if keys:
        dims = ", ".join(f"{k}={space_cfg.get(k)}" for k in keys)
    else:
        dims = ", ".join(f"{k}={v}" for k, v in sorted(space_cfg.items()) if isinstance(v, (int, float, str)))
    return f"{space} {method} ({dims}, {image_size}px, batch {batch_size})"


def cfg_key(cfg: Dict[str, Any]) -> str:
    return size_key(cfg["space"], cfg["method"], cfg["space_cfg"], cfg["data"]["image_size"], cfg["data"]["batch_size"])


_CPU = re.compile(r"^cpu: (.*?) \((\d+) cores\), (\d+) torch thread")
_CUDA = re.compile(r"^cuda: (.*?)(?: \(\d+ GiB\))?(?:, CUDA .*)?$")


def device_kind(description: str) -> str:
    """``cpu: AMD EPYC (2 cores), 2 torch thread(s)`` → ``cpu: AMD EPYC, 2 threads``; ``cuda: NAME (80 GiB),
    CUDA 12.1`` → ``cuda: NAME``."""
    m = _CPU.match(description or "")
    if m:
        n = int(m.group(3))
        return f"cpu: {m.group(1)}, {n} thread{'s' if n != 1 else ''}"
    m = _CUDA.match(description or "")
    if m:
        return f"cuda: {m.group(1)}"
    return description or "unknown device"


def load_calibration(path: Path = CALIBRATION, rank: int = 1) -> List[Dict[str, Any]]:
    """The measurements of a calibration file (the shipped table, or one ``harness calibrate`` wrote: pass
    ``rank=0`` so that it wins over the shipped table, as records do)."""
    if not Path(path).is_file():
        return []
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        from harness.errors import HarnessError

        raise HarnessError(f"calibration file {path}: not readable JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != "harness.calibration/1":
        from harness.errors import HarnessError

        raise HarnessError(f"calibration file {path}: not a harness.calibration/1 document")
    out = []
    for m in doc.get("measurements", []):
        out.append(
            {
                "device_kind": m["device_kind"],
                "key": size_key(m["space"], m["method"], m["space_cfg"], m["image_size"], m["batch_size"]),
                "seconds_per_iteration": float(m["seconds_per_iteration"]),
                "n": 1,
                "source": f"{Path(path).name}: {m.get('source', '')}",
                "rank": rank,
            }
        )
    return out


def default_run_folders(cwd: Optional[Path] = None) -> List[Path]:
    base = Path(cwd or Path.cwd())
    return sorted(p.parent for p in base.glob("runs/*/records") if p.is_dir())


def measurements_from_runs(folders: Iterable[Path]) -> List[Dict[str, Any]]:
    """One measurement per (key, device kind): the median steady seconds per iteration of finished records.  A record
    whose attempts ran on more than one device kind (a run requeued onto another GPU type) is left out: its
    seconds mix two devices."""
    groups: Dict[tuple, List[float]] = {}
    where: Dict[tuple, set] = {}
    for folder in folders:
        for rec in records.load_runs(Path(folder)):
            if rec.get("kind") != "search" or rec.get("status") != "ok" or not rec.get("final"):
                continue
            f = rec["final"]
            spi = f.get("seconds_per_iteration_steady") or f.get("seconds_per_iteration")
            cfg = rec.get("config") or {}
            if not spi or not cfg.get("data"):
                continue
            attempts = rec.get("provenance", {}).get("attempts") or []
            if len({device_kind(a.get("device", "")) for a in attempts}) > 1:
                continue
            k = (cfg_key(cfg), device_kind(rec.get("provenance", {}).get("device", "")))
            groups.setdefault(k, []).append(float(spi))
            where.setdefault(k, set()).add(str(folder))
    return [
        {
            "device_kind": kind,
            "key": key,
            "seconds_per_iteration": statistics.median(v),
            "n": len(v),
            "source": f"{len(v)} record(s) in {', '.join(sorted(where[(key, kind)]))}",
            "rank": 0,
        }
        for (key, kind), v in sorted(groups.items())
    ]


def estimate(configs: Sequence[Dict[str, Any]], measurements: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Per run: iterations and, per device kind, seconds per iteration and hours (None: no measurement)."""
    from harness.config import run_id

    best: Dict[tuple, Dict[str, Any]] = {}
    for m in measurements:
        k = (m["key"], m["device_kind"])
        if k not in best or m["rank"] < best[k]["rank"]:
            best[k] = m
    kinds = sorted({m["device_kind"] for m in measurements})
    runs: List[Dict[str, Any]] = []
    for cfg in configs:
        it = iterations(cfg)
        key = cfg_key(cfg)
        per: Dict[str, Optional[Dict[str, Any]]] = {}
        for kind in kinds:
            found = best.get((key, kind))
            per[kind] = (
                None
                if found is None
                else {
                    "seconds_per_iteration": found["seconds_per_iteration"],
                    "hours": it["iterations"] * found["seconds_per_iteration"] / 3600.0,
                    "source": found["source"],
                }
            )
        rid = run_id(cfg["space"], cfg["method"], cfg["variant"], cfg["seed"])
        runs.append({"run_id": rid, "key": key, **it, "estimates": per})
    used = [k for k in kinds if any(r["estimates"][k] for r in runs)]
    totals = {}
    for kind in used:
        hours = [r["estimates"][kind]["hours"] for r in runs if r["estimates"][kind]]
        totals[kind] = {"hours": sum(hours), "runs_estimated": len(hours), "runs_without": len(runs) - len(hours)}
    sources: Dict[str, List[str]] = {}
    for r in runs:
        for kind in used:
            e = r["estimates"][kind]
            if e and e["source"] not in sources.setdefault(kind, []):
                sources[kind].append(e["source"])
    return {
        "runs": runs,
        "device_kinds": used,
        "unused_device_kinds": [k for k in kinds if k not in used],
        "totals": totals,
        "sources": sources,
        "total_iterations": sum(r["iterations"] for r in runs),
    }


def _unit(est: Dict[str, Any]) -> tuple:
    """Hours when any total reaches an hour, else minutes (one unit for the whole table)."""
    big = max([t["hours"] for t in est["totals"].values()] or [0.0])
    return ("hours", 1.0) if big >= 1.0 else ("minutes", 60.0)


def format_plan(profile: Dict[str, Any], est: Dict[str, Any], folders: Sequence[Path]) -> str:
    lines = []
    runs, kinds = est["runs"], est["device_kinds"]
    unit, scale = _unit(est)
    fmt = lambda h: f"{h * scale:,.1f}"  # noqa: E731
    lines.append(f"plan: profile {profile.get('name')} (scale {profile.get('scale')}), {len(runs)} search run(s)")
    lines.append(
        "iterations = epochs x ceil(search-train images / batch size) (capped by max_steps_per_epoch);"
        " cost = iterations x measured seconds per iteration"
    )
    lines.append("(search iterations only: per-epoch supernet evaluation, data loading and process start excluded)")
    lines.append("")
    head = f"{'run id':<34} {'epochs':>6} {'it/epoch':>8} {'iterations':>10}"
    for i, _ in enumerate(kinds):
        head += f"  {f'[{i + 1}] {unit}':>14}"
    lines.append(head)
    for r in runs:
        row = f"{r['run_id']:<34} {r['epochs']:>6} {r['steps_per_epoch']:>8} {r['iterations']:>10}"
        for kind in kinds:
            e = r["estimates"][kind]
            row += f"  {fmt(e['hours']) if e else 'no measurement':>14}"
        lines.append(row)
    total = f"{'total':<34} {'':>6} {'':>8} {est['total_iterations']:>10}"
    for kind in kinds:
        t = est["totals"][kind]
        cell = fmt(t["hours"]) + ("+" if t["runs_without"] else "")
        total += f"  {cell:>14}"
    lines.append(total)
    lines.append("")
    if not kinds:
        lines.append("no measurement for any run of this matrix on any device kind")
    for i, kind in enumerate(kinds):
        t = est["totals"][kind]
        lines.append(
            f"[{i + 1}] {kind}: total {fmt(t['hours'])} {unit} for {t['runs_estimated']} run(s)"
            + (
                f"; no measurement for {t['runs_without']} run(s) (the total excludes them)"
                if t["runs_without"]
                else ""
            )
            + (f" (= {t['hours'] / 24:,.1f} days on one such device)" if t["hours"] >= 24 else "")
        )
        for src in est["sources"].get(kind, []):
            lines.append(f"      from {src}")
    missing = sorted({r["key"] for r in runs if not any(r["estimates"][k] for k in kinds)})
    for key in missing:
        lines.append(f"no measurement on any device kind: {key}")
    if est["unused_device_kinds"]:
        lines.append(
            "device kinds with measurements, none for this matrix's sizes: " + "; ".join(est["unused_device_kinds"])
        )
    if not any(k.startswith("cuda") for k in kinds):
        lines.append(
            "no measurement on a GPU: measure one with `python -m harness reproduce --profile gpu-quick "
            "--out runs/gpu-quick` on that GPU, then pass `--from-runs runs/gpu-quick`"
        )
    lines.append(
        f"measurements read from: {CALIBRATION.relative_to(PROJECT_ROOT)}"
        + (", " + ", ".join(str(f) for f in folders) if folders else " (no runs/*/records found)")
    )
    return "\n".join(lines)


def run_plan(args) -> int:
    from harness import config as C
    from harness.errors import HarnessError

    profile, configs = C.select_matrix(args.profile, args.spaces, args.methods, C.parse_overrides(args.overrides))
    if args.from_runs:
        folders = [Path(f) for f in args.from_runs]
        for f in folders:
            if not f.is_dir():
                raise HarnessError(f"--from-runs {f}: no such folder")
    else:
        folders = default_run_folders()
    calibrated = []
    for f in getattr(args, "calibration", None) or []:
        if not Path(f).is_file():
            raise HarnessError(f"--calibration {f}: no such file (write one with `python -m harness calibrate`)")
        calibrated += load_calibration(Path(f), rank=0)
    measurements = measurements_from_runs(folders) + calibrated + ([] if args.no_calibration else load_calibration())
    est = estimate(configs, measurements)
    if args.json:
        print(
            json.dumps(
                {
                    "profile": profile.get("name"),
                    "scale": profile.get("scale"),
                    "from_runs": [str(f) for f in folders],
                    **est,
                },
                indent=1,
            )
        )
    else:
        print(format_plan(profile, est, folders))
    return 0


__all__ = [
    "iterations",
    "cfg_key",
    "device_kind",
    "load_calibration",
    "measurements_from_runs",
    "estimate",
    "format_plan",
    "run_plan",
]
