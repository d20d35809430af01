"""Regression baselines: accuracy envelopes over seeds and relative search cost.

``python -m harness regress RUNS --baseline FILE``          check RUNS against FILE (exit 1 if anything moved)
``python -m harness regress RUNS --baseline FILE --update`` record RUNS as the new baseline (on purpose)

A baseline holds one entry per ``space/method[variant]/profile`` (search records with status ok):

* **Accuracy envelopes** from several seeds, per metric: the supernet's final ``val_acc``, its
  ``best_val_acc`` and, on NAS-Bench-201, the found cell's ``cifar10_test_200ep`` (benchmark
  look-up).  Stored: per-seed values, mean, std (sample, ddof=1), min, max, and the envelope
  ``[min − margin, max + margin]`` (clipped to [0, 100]) with ``margin = max(K_STD · std, floor)`` (:data:`ACC_RULES`).
  Each observed seed must lie inside the envelope.  A run store may hold fewer seeds than the
  baseline (CI runs seed 0; the envelope came from seeds 0-2).
* **Search cost as ratios**, never absolute seconds: a method's seconds per iteration divided by the
  reference workload of the same space and sample — the geometric mean of the s/iter of every method of
  that space (:data:`REFERENCE`).  Where the seconds come from is the baseline's cost ``source``:
  ``interleaved`` (the default of a new baseline, :data:`INTERLEAVED`): ``harness.cost_probe`` rebuilds each
  entry's run from its record's resolved config and times one iteration of every run per round, round-robin,
  ``rounds`` rounds after ``warmup`` — a sample is a round, so all methods of a sample share one machine state;
  ``records``: each run's own ``final.seconds_per_iteration_steady`` (else ``seconds_per_iteration``), a sample
  per seed — runs measured minutes apart, which on a shared CI machine moved a ratio by ±40 % with no code
  change (2026-11-30: nb201 MiLeNAS ÷ DARTS-2nd read 0.37 on CI and 0.79 here against a baseline of 0.59).
  On CPU the probe's clock is the process's CPU time (``harness.cost_probe.probe_clock``).  (A single
  reference method, e.g. darts-1st, was tried first: its runs are only a few seconds long, and one noisy
  reference run moved every ratio of its space.)  Every
  method gets a ratio, so a slower darts-1st fails as its own row.  Plus the MiLeNAS / DARTS-2nd
  ratio per space.  Per sample, ratio_s = t_method,s / geomean_methods(t_·,s); the baseline value
  is the median over samples, the observed value the geometric mean over the samples present.  A
  ratio passes when ``value/(1+tol) <= observed <= value·(1+tol)`` (two-sided: a big unexplained
  speed-up also means the baseline is stale).  ``tol = clip(COST_K_SPREAD · max relative
  deviation of a per-sample ratio from the median, COST_TOL_MIN, COST_TOL_MAX)``: with 5 methods a
  +100 % slowdown of one method raises its ratio ×2^(4/5) = ×1.74, beyond the largest tolerance
  (×1.6).

Why these numbers (smoke profile, 2-core CPU, 2 worker processes — the CI conditions): see
``data/baselines/README.md`` and the ``rules`` block written into each baseline file; the rules
used for a check are the ones stored in the baseline, so re-recording never silently changes
the semantics of an old file.

Missing or failed runs in RUNS are failures with their own line.  A missing or corrupt baseline
file is a :class:`~harness.errors.HarnessError` (one ``error:`` line, exit 2).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from harness import records
from harness.errors import HarnessError

BASELINE_SCHEMA = "harness.regress-baseline/1"
REFERENCE = "geomean"  # reference workload: geometric mean s/iter of all methods of the space (same seed, store)


def cost_pairs() -> List[Tuple[str, str]]:
    """Extra cost ratios recorded per space (numerator, denominator): each method's ``speed_compared_with``
    (MiLeNAS: DARTS 2nd order, the paper's Fig. 3b claim)."""
    from harness.registry import get_method, list_methods

    out = []
    for m in list_methods():
        other = get_method(m).speed_compared_with
        if other:
            out.append((m, other))
    return out


#: accuracy metrics (percentage points): margin = max(k_std · std, floor)
ACC_RULES: Dict[str, Dict[str, float]] = {
    "val_acc": {"k_std": 2.0, "floor": 3.0},
    "best_val_acc": {"k_std": 2.0, "floor": 3.0},
    # a found cell's benchmark accuracy is discrete (one of 15,625 cells), so one argmax flip can
    # move it by tens of points: a wider floor, and the seeds' min/max already carry that spread.
    "cifar10_test_200ep": {"k_std": 1.0, "floor": 5.0},
}
COST_TOL_MIN = 0.5  # ×/÷ 1.5: passes the scheduling noise of 2 busy worker processes
COST_K_SPREAD = 2.0
COST_TOL_MAX = 0.6  # ×/÷ 1.6 at most: a +100 % slowdown of one of 5 methods (×1.74) always fails
#: default cost source of a new baseline: the interleaved probe (``harness.cost_probe``), 1 torch thread as CI
INTERLEAVED: Dict[str, Any] = {"source": "interleaved", "rounds": 5, "warmup": 2, "min_seconds": 0.5, "threads": 1}
COST_SOURCES = ("interleaved", "records")


def baseline_cost_rules(baseline: Dict[str, Any]) -> Dict[str, Any]:
    """Where a baseline's cost samples came from (files without a ``source`` were recorded from the records)."""
    rules = (baseline.get("rules") or {}).get("cost") or {}
    return rules if rules.get("source") in COST_SOURCES else {**rules, "source": "records"}


def cost_samples(
    groups: Dict[str, List[Dict[str, Any]]], rules: Dict[str, Any], data_root: Optional[Path] = None
) -> "Samples":
    """The cost samples of ``groups`` as ``rules`` say: the records' own timings, or the interleaved probe."""
    return probe_samples(groups, rules, data_root) if rules.get("source") == "interleaved" else record_samples(groups)


# ---------------------------------------------------------------------- reading runs


def entry_key(space: str, method: str, variant: Dict[str, Any], profile: str) -> str:
    from harness.config import variant_suffix

    return f"{space}/{method}{variant_suffix(variant or {})}/{profile}"


def _rec_key(rec: Dict[str, Any]) -> str:
    return entry_key(rec["space"], rec["method"], rec.get("variant") or {}, rec.get("profile", "?"))


def seconds_per_iteration(rec: Dict[str, Any]) -> Optional[float]:
    fin = rec.get("final") or {}
    v = fin.get("seconds_per_iteration_steady")
    if v is None:
        v = fin.get("seconds_per_iteration")
    return float(v) if v is not None else None


def accuracy_metrics(rec: Dict[str, Any]) -> Dict[str, float]:
    fin = rec.get("final") or {}
    out: Dict[str, float] = {}
    for key in ("val_acc", "best_val_acc"):
        if fin.get(key) is not None:
            out[key] = float(fin[key])
    bench = (fin.get("arch_info") or {}).get("benchmark") or {}
    for key in _regress_metrics(rec.get("space")):
        if bench.get(key) is not None:
            out[key] = float(bench[key])
    return out


def _regress_metrics(space: Optional[str]) -> Tuple[str, ...]:
    """The found-cell benchmark metrics checked for ``space`` (``SearchSpace.regress_metrics``; none if unknown)."""
    from harness.registry import get_space, list_spaces

    return tuple(get_space(space).regress_metrics) if space in list_spaces() else ()


def load_search_records(runs: Path) -> List[Dict[str, Any]]:
    runs = Path(runs)
    if not runs.is_dir():
        raise HarnessError(f"runs folder {runs} does not exist")
    return [r for r in records.load_runs(runs) if r.get("kind", "search") == "search"]


def _group(recs: Iterable[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for r in recs:
        out[_rec_key(r)].append(r)
    for v in out.values():
        v.sort(key=lambda r: r.get("seed", 0))
    return out


def _stats(values: List[float]) -> Dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _geomean(values: List[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


#: entry key -> sample id -> seconds per search iteration.  A sample is one seed's run (cost source
#: ``records``: the run's steady s/iter) or one round of the interleaved probe (``interleaved``: ``"r0"``, …)
Samples = Dict[str, Dict[str, float]]


def record_samples(groups: Dict[str, List[Dict[str, Any]]]) -> Samples:
    """Cost source ``records``: each ok run's own steady s/iter, one sample per seed."""
    out: Samples = {}
    for key, grp in groups.items():
        out[key] = {}
        for r in grp:
            t = seconds_per_iteration(r) if r.get("status") == "ok" else None
            if t:
                out[key][str(r["seed"])] = t
    return out


def _probe_device(recs: List[Dict[str, Any]]):
    """The device kind the runs were measured on (their provenance), so the probe times the same kind."""
    from harness.lifecycle import pick_device

    kinds = {str((r.get("provenance") or {}).get("device", "cpu")).split(":", 1)[0] for r in recs}
    return pick_device("cuda" if kinds == {"cuda"} else "cpu")


def probe_samples(
    groups: Dict[str, List[Dict[str, Any]]], rules: Dict[str, Any], data_root: Optional[Path] = None
) -> Samples:
    """Cost source ``interleaved``: ``harness.cost_probe`` rebuilds each entry's run (its lowest ok seed's
    resolved config) and times ``rounds`` round-robin iterations with ``rules["threads"]`` torch threads."""
    import torch

    from harness.cost_probe import clock_name, probe

    configs, recs = {}, []
    for key, grp in groups.items():
        ok = [r for r in grp if r.get("status") == "ok" and r.get("config")]
        if ok:
            configs[key] = ok[0]["config"]
            recs.append(ok[0])
    if not configs:
        return {}
    threads = torch.get_num_threads()
    torch.set_num_threads(int(rules.get("threads") or threads))
    try:
        device = _probe_device(recs)
        print(
            f"cost probe: {len(configs)} run kinds x {rules['rounds']} interleaved rounds "
            f"(+{rules['warmup']} warm-up), {torch.get_num_threads()} torch thread(s), clock {clock_name(device)}",
            flush=True,
        )
        return probe(
            configs,
            device,
            data_root,
            int(rules["rounds"]),
            int(rules["warmup"]),
            float(rules.get("min_seconds", 0.0)),
        )
    finally:
        torch.set_num_threads(threads)


def _reference(samples: Samples, members: List[str]) -> Dict[str, float]:
    """Sample id -> geometric mean s/iter over ``members`` (entry keys); only samples every member has."""
    ids = set.intersection(*(set(samples.get(k, {})) for k in members)) if members else set()
    return {i: _geomean([samples[k][i] for k in members]) for i in ids}


def _ratios(times: Dict[str, float], den: Dict[str, float]) -> Dict[str, float]:
    return {i: t / den[i] for i, t in times.items() if t and den.get(i)}


def _cost_block(per_sample: Dict[str, float], reference: str, extra: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if not per_sample:
        return None
    value = statistics.median(per_sample.values())
    spread = max(abs(v / value - 1.0) for v in per_sample.values())
    tol = min(COST_TOL_MAX, max(COST_TOL_MIN, COST_K_SPREAD * spread))
    return {
        "reference": reference,
        "value": value,
        "per_sample": dict(sorted(per_sample.items())),
        "max_rel_spread": spread,
        "tol": tol,
        "low": value / (1.0 + tol),
        "high": value * (1.0 + tol),
        **extra,
    }


def _space_members(keys: Iterable[str], space: str, profile: str) -> List[str]:
    return sorted(k for k in keys if k.startswith(f"{space}/") and k.endswith(f"/{profile}"))


# ---------------------------------------------------------------------- recording


def build_baseline(
    recs: List[Dict[str, Any]],
    runs_dir: Path,
    cost_rules: Optional[Dict[str, Any]] = None,
    data_root: Optional[Path] = None,
) -> Dict[str, Any]:
    """The baseline of ``recs``; ``cost_rules`` (default :data:`INTERLEAVED`) says where the cost samples come from."""
    cost_rules = dict(INTERLEAVED if cost_rules is None else cost_rules)
    failed = [r["run_id"] for r in recs if r.get("status") != "ok"]
    if failed:
        raise HarnessError(
            f"cannot record a baseline from a run store with unfinished or failed runs: {', '.join(sorted(failed))}"
        )
    if not recs:
        raise HarnessError(f"no search records under {runs_dir}: nothing to record")
    groups = _group(recs)
    samples = cost_samples(groups, cost_rules, data_root)
    entries: Dict[str, Any] = {}
    for key, grp in sorted(groups.items()):
        r0 = grp[0]
        acc: Dict[str, Any] = {}
        names = sorted({m for r in grp for m in accuracy_metrics(r)}, key=list(ACC_RULES).index)
        for metric in names:
            vals = {str(r["seed"]): accuracy_metrics(r)[metric] for r in grp if metric in accuracy_metrics(r)}
            st = _stats(list(vals.values()))
            rule = ACC_RULES[metric]
            margin = max(rule["k_std"] * st["std"], rule["floor"])
            acc[metric] = {
                "per_seed": vals,
                **st,
                "margin": margin,
                "low": max(0.0, st["min"] - margin),
                "high": min(100.0, st["max"] + margin),
            }
        members = _space_members(groups, r0["space"], r0["profile"])
        ref = _reference(samples, members)
        cost = (
            _cost_block(
                _ratios(samples.get(key, {}), ref),
                REFERENCE,
                {
                    "members": members,
                    "seconds_per_iteration": dict(sorted(samples.get(key, {}).items())),
                    "reference_seconds_per_iteration": dict(sorted(ref.items())),
                },
            )
            if len(members) > 1
            else None
        )
        entries[key] = {
            "space": r0["space"],
            "method": r0["method"],
            "variant": r0.get("variant") or {},
            "label": r0.get("label"),
            "profile": r0["profile"],
            "scale": r0.get("scale"),
            "seeds": [r["seed"] for r in grp],
            "config_hash": r0.get("config_hash"),
            "accuracy": acc,
            "cost": cost,
        }
    pairs: Dict[str, Any] = {}
    for key, grp in sorted(groups.items()):
        r0 = grp[0]
        for num, den in cost_pairs():
            if r0["method"] != num or r0.get("variant"):
                continue
            den_key = entry_key(r0["space"], den, {}, r0["profile"])
            if den_key in groups:
                block = _cost_block(_ratios(samples.get(key, {}), samples.get(den_key, {})), den, {})
                if block:
                    pairs[f"{r0['space']}/{num}÷{den}/{r0['profile']}"] = {
                        "space": r0["space"],
                        "profile": r0["profile"],
                        "numerator": key,
                        "denominator": den_key,
                        **block,
                    }
    provs = [r.get("provenance") or {} for r in recs]
    manifest = {}
    try:
        manifest = json.loads((Path(runs_dir) / "runs.json").read_text())
    except (OSError, ValueError):
        pass
    return {
        "schema": BASELINE_SCHEMA,
        "provenance": {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commits": sorted({p.get("commit", "unknown") for p in provs}),
            "dirty": any(p.get("dirty") for p in provs),
            "profiles": sorted({r["profile"] for r in recs}),
            "seeds": sorted({r["seed"] for r in recs}),
            "devices": sorted({p.get("device", "?") for p in provs}),
            "threads": sorted({p.get("threads") for p in provs if p.get("threads") is not None}),
            "torch": sorted({(p.get("versions") or {}).get("torch", "?") for p in provs}),
            "n_runs": len(recs),
            "runs_dir": str(runs_dir),
            "command": manifest.get("command"),
        },
        "rules": {
            "accuracy": {
                "metrics": ACC_RULES,
                "envelope": "[min - margin, max + margin], margin = max(k_std * std(ddof=1), floor); "
                "each observed seed must lie inside",
            },
            "cost": {
                **cost_rules,
                "reference": "geometric mean s/iter of all methods of the space (same sample: seed or probe round)",
                "tol_min": COST_TOL_MIN,
                "k_spread": COST_K_SPREAD,
                "tol_max": COST_TOL_MAX,
                "ratio": "per sample: s/iter of the method / reference; baseline value = median over "
                "samples; observed = geometric mean over the samples present",
                "pass": "value/(1+tol) <= observed <= value*(1+tol); tol = clip(k_spread * max relative "
                "deviation of a per-sample ratio from the median, tol_min, tol_max)",
            },
        },
        "entries": entries,
        "pairs": pairs,
    }


def write_baseline(path: Path, baseline: Dict[str, Any]) -> None:
    try:
        records.atomic_write_bytes(Path(path), (json.dumps(baseline, indent=1, ensure_ascii=False) + "\n").encode())
    except OSError as exc:
        raise HarnessError(f"cannot write baseline {path}: {exc.strerror or exc}") from exc


def load_baseline(path: Path) -> Dict[str, Any]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise HarnessError(f"baseline {path} not found (record one with --update)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read baseline {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(
            f"baseline {path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
            "restore it or record a new one with --update"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA or not isinstance(data.get("entries"), dict):
        raise HarnessError(f"baseline {path} is not a {BASELINE_SCHEMA} file")
    return data


# ---------------------------------------------------------------------- checking

Row = Dict[str, Any]


def _fmt(v: Optional[float], nd: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def check(
    baseline: Dict[str, Any],
    recs: List[Dict[str, Any]],
    samples: Optional[Samples] = None,
    data_root: Optional[Path] = None,
) -> Tuple[List[Row], List[str]]:
    """Rows of the comparison table and extra notes; a row's ``ok`` is False when it fails.  ``samples``: the
    cost samples (default: measured as the baseline's cost rules say, :func:`cost_samples`)."""
    groups = _group(recs)
    if samples is None:
        samples = cost_samples(groups, baseline_cost_rules(baseline), data_root)
    rows: List[Row] = []
    notes: List[str] = []
    ok_groups = {k: [r for r in g if r.get("status") == "ok"] for k, g in groups.items()}
    for key, ent in sorted(baseline["entries"].items()):
        grp = groups.get(key, [])
        if not grp:
            rows.append(
                {
                    "check": key,
                    "metric": "run",
                    "baseline": f"seeds {ent.get('seeds')}",
                    "observed": "missing",
                    "delta": "",
                    "tol": "",
                    "ok": False,
                }
            )
            continue
        for r in grp:
            if r.get("status") != "ok":
                why = (r.get("failure") or {}).get("reason") or f"status {r.get('status')}"
                rows.append(
                    {
                        "check": f"{key} s{r.get('seed')}",
                        "metric": "run",
                        "baseline": "ok",
                        "observed": f"{r.get('status')}: {why}",
                        "delta": "",
                        "tol": "",
                        "ok": False,
                    }
                )
        good = ok_groups[key]
        hashes = {r.get("config_hash") for r in good}
        if ent.get("config_hash") and hashes and hashes != {ent["config_hash"]}:
            notes.append(
                f"{key}: config differs from the baseline's ({ent['config_hash']} vs "
                f"{', '.join(sorted(h or '?' for h in hashes))}); if intended, re-record with --update"
            )
        for metric, env in ent.get("accuracy", {}).items():
            for r in good:
                val = accuracy_metrics(r).get(metric)
                if val is None:
                    rows.append(
                        {
                            "check": f"{key} s{r['seed']}",
                            "metric": metric,
                            "baseline": f"[{_fmt(env['low'])}, {_fmt(env['high'])}]",
                            "observed": "absent",
                            "delta": "",
                            "tol": f"±{_fmt(env['margin'])}",
                            "ok": False,
                        }
                    )
                    continue
                inside = env["low"] <= val <= env["high"]
                delta = val - env["mean"]
                rows.append(
                    {
                        "check": f"{key} s{r['seed']}",
                        "metric": metric,
                        "baseline": f"[{_fmt(env['low'])}, {_fmt(env['high'])}] (mean {_fmt(env['mean'])})",
                        "observed": _fmt(val),
                        "delta": f"{delta:+.2f} pp",
                        "tol": f"±{_fmt(env['margin'])} pp",
                        "ok": inside,
                    }
                )
        cost = ent.get("cost")
        if cost and good:
            ref = _reference(samples, cost["members"])
            rows.append(
                _ratio_row(
                    key,
                    "s/iter ÷ space geomean",
                    cost,
                    _ratios(samples.get(key, {}), ref),
                    "no sample with every method of the space ok",
                )
            )
    for key, pair in sorted(baseline.get("pairs", {}).items()):
        num, den = ok_groups.get(pair["numerator"], []), ok_groups.get(pair["denominator"], [])
        if num:  # a missing numerator already failed above
            rows.append(
                _ratio_row(
                    key,
                    "s/iter ratio",
                    pair,
                    _ratios(samples.get(pair["numerator"], {}), samples.get(pair["denominator"], {}) if den else {}),
                    f"no {pair['reference']} run to compare with",
                )
            )
    known = set(baseline["entries"])
    extra = sorted(k for k in groups if k not in known)
    if extra:
        notes.append("not in the baseline (not checked): " + ", ".join(extra))
    return rows, notes


def _ratio_row(key: str, metric: str, block: Dict[str, Any], per_sample: Dict[str, float], why: str) -> Row:
    base = block["value"]
    tol = f"×/÷ {1 + block['tol']:.2f} ({block['tol'] * 100:+.0f}%)"
    observed = _geomean(list(per_sample.values())) if per_sample else None
    if observed is None:
        return {
            "check": key,
            "metric": metric,
            "baseline": _fmt(base, 3),
            "observed": why,
            "delta": "",
            "tol": tol,
            "ok": False,
        }
    ok = block["low"] <= observed <= block["high"]
    return {
        "check": key,
        "metric": metric,
        "baseline": f"{_fmt(base, 3)} [{_fmt(block['low'], 3)}, {_fmt(block['high'], 3)}]",
        "observed": _fmt(observed, 3),
        "delta": f"{(observed / base - 1) * 100:+.0f}%",
        "tol": tol,
        "ok": ok,
    }


def format_table(rows: List[Row]) -> str:
    head = ["check", "metric", "baseline", "observed", "delta", "tolerance", "result"]
    body = [
        [r["check"], r["metric"], r["baseline"], r["observed"], r["delta"], r["tol"], "PASS" if r["ok"] else "FAIL"]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def run_regress(args) -> int:
    runs, path = Path(args.runs), Path(args.baseline)
    data_root = Path(args.data_dir) if getattr(args, "data_dir", None) else None
    recs = load_search_records(runs)
    if getattr(args, "update", False):
        source = getattr(args, "cost_source", INTERLEAVED["source"])
        rounds = getattr(args, "rounds", None) or INTERLEAVED["rounds"]
        threads = getattr(args, "threads", None) or INTERLEAVED["threads"]
        if source not in COST_SOURCES or rounds < 1 or threads < 1:
            raise HarnessError(f"--cost-source must be one of {COST_SOURCES}; --rounds and --threads >= 1")
        rules = {"source": "records"} if source == "records" else {**INTERLEAVED, "rounds": rounds, "threads": threads}
        baseline = build_baseline(recs, runs, rules, data_root)
        write_baseline(path, baseline)
        prov = baseline["provenance"]
        print(
            f"baseline recorded: {path} ({len(baseline['entries'])} entries, {prov['n_runs']} runs, "
            f"seeds {prov['seeds']}, profiles {', '.join(prov['profiles'])})"
        )
        for key, ent in baseline["entries"].items():
            c = ent.get("cost")
            cost = f"cost {c['value']:.3f}× space geomean (tol {c['tol'] * 100:.0f}%)" if c else "no cost"
            accs = ", ".join(f"{m} [{a['low']:.1f}, {a['high']:.1f}]" for m, a in ent["accuracy"].items())
            print(f"  {key}: {accs}; {cost}")
        for key, p in baseline["pairs"].items():
            print(f"  {key}: {p['value']:.3f} (tol {p['tol'] * 100:.0f}%)")
        return 0
    baseline = load_baseline(path)
    rows, notes = check(baseline, recs, data_root=data_root)
    print(
        f"regression check: {runs} against {path} (recorded {baseline['provenance'].get('date', '?')}, "
        f"seeds {baseline['provenance'].get('seeds')})"
    )
    print(format_table(rows))
    for n in notes:
        print(f"note: {n}")
    failed = [r for r in rows if not r["ok"]]
    if failed:
        print(
            f"FAIL: {len(failed)} of {len(rows)} checks out of tolerance "
            f"(if the change is intended, re-record: python -m harness regress {runs} --baseline {path} --update)"
        )
        return 1
    print(f"PASS: all {len(rows)} checks within tolerance")
    return 0
