"""``python -m harness hypergrad --profile smoke|cpu|PATH --out DIR [--method M] [--variant K=V] [--seed S] ...``.

A thin front of an ordinary search run: the profile (``harness/hypergrad/profiles/*.yaml`` or any search
profile path) is a search profile whose part enables the ``hypergrad`` after-epoch hook
(:mod:`harness.hypergrad.hook`; added with default settings when the part has none).  One config is
resolved by ``harness.config.resolve`` (the part's first method, or ``--method``) and run by
``harness.runner.run_matrix`` like any search run: record ``OUT/records/<run_id>.json`` (the measurements in
its epochs), checkpoint and resume, run lock.  The figure ``OUT/hypergrad.png|svg`` is drawn from the record.

Registered by ``harness.cli.build_parser`` (``add_parser(sub)``) and dispatched to ``main(args)``.  Bad input
(unknown profile or method, a Gumbel method, invalid hook settings, unwritable ``--out``, missing data)
raises ``HarnessError`` / ``ConfigError``: the harness CLI prints one ``error:`` line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from harness.errors import ConfigError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from harness.cli_args import add_data_dir, add_device, add_set, add_trackers

    p = subparsers.add_parser(
        "hypergrad",
        help="hypergradient error of each method along a search (MiLeNAS §2.2–3), NB201",
        description="Run one search with the hypergrad after-epoch hook: after chosen epochs compare every "
        "method's α-direction with a reference hypergradient (re-trained w*, IFT + CG, float64). "
        "Writes the search record OUT/records/<run_id>.json and OUT/hypergrad.png|svg.",
    )
    p.add_argument(
        "--profile", default="smoke", help="hypergrad profile: smoke | cpu | a profile YAML path (default smoke)"
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument(
        "--method",
        default=None,
        help="the search whose trajectory is measured (default: the profile part's first method)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method variant option of the search, e.g. --variant lam=0.1",
    )
    p.add_argument("--seed", type=int, default=None, help="search seed (default: the profile's first)")
    add_data_dir(p)
    add_device(p)
    add_set(p, "--set optim.w_lr=0.05 or --set hooks.hypergrad.batches=1")
    add_trackers(p)
    return p


def list_profiles():
    from harness.config import list_yaml_names

    return list_yaml_names(PROFILE_DIR)


def load_profile(name_or_path) -> Dict[str, Any]:
    """A search profile: ``smoke`` / ``cpu`` from ``harness/hypergrad/profiles`` or any profile YAML path."""
    from harness import config as C

    return C.load_profile(C.locate_named_yaml(name_or_path, PROFILE_DIR, what="hypergrad profile"))


def resolve_config(
    profile: Dict[str, Any],
    method: Optional[str] = None,
    variant: Optional[Dict[str, Any]] = None,
    seed: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The resolved search config with the ``hypergrad`` hook: the profile's first part with a hypergrad hook
    (else its first part, hook settings defaulted), its first method unless ``method`` is given."""
    from harness import config as C

    parts = profile["parts"]
    part = next((p for p in parts if "hypergrad" in (p.get("hooks") or {})), parts[0])
    part = {
        **part,
        "hooks": {**(part.get("hooks") or {}), "hypergrad": (part.get("hooks") or {}).get("hypergrad") or {}},
    }
    entries = [C.method_entry(e) for e in part.get("methods") or []]
    if method is None and not entries:
        raise ConfigError(f"profile {profile['name']}: its part lists no method; pass --method")
    entry = next((e for e in entries if e["method"] == method), None) if method else entries[0]
    entry = dict(entry or {"method": method, "variant": {}})
    if variant is not None:
        entry["variant"] = dict(variant)
    entry.pop("seeds", None)
    seeds = entries[0]["seeds"] if entries and entries[0].get("seeds") else part.get("seeds", profile.get("seeds", [0]))
    return C.resolve(part["space"], entry, int(seeds[0] if seed is None else seed), profile, part, overrides)


def main(args) -> int:
    from harness.config import parse_overrides
    from harness.hypergrad.hook import measurements, series
    from harness.records import read_record
    from harness.runlock import RUNNING_ELSEWHERE
    from harness.runner import check_output_dir, pick_device, run_matrix, search_run_id
    from harness.trackers import settings_from_args
    from reports.hypergrad_figure import save_figure

    profile = load_profile(args.profile)
    variant = parse_overrides(args.variant) if args.variant else None
    cfg = resolve_config(profile, args.method, variant, args.seed, parse_overrides(args.overrides))
    trackers = settings_from_args(args, profile)  # live trackers (harness.trackers): hook results per epoch too
    pick_device(args.device)  # bad input fails before any file
    check_output_dir(args.out)
    data_root = Path(args.data_dir) if args.data_dir else None
    from harness.data import load_cifar10

    load_cifar10("train", data_root)  # bad data: one error line, early
    summaries = run_matrix([cfg], args.out, data_root, device=args.device, executor_options={"trackers": trackers})
    path = Path(args.out) / "records" / f"{search_run_id(cfg)}.json"
    if any(s.get("status") == RUNNING_ELSEWHERE for s in summaries) or not path.is_file():
        print(
            f"hypergrad: run {search_run_id(cfg)} is held by another executor; its record is not finished",
            file=sys.stderr,
        )
        return 1
    rec = read_record(path)
    doc = series(rec)
    if measurements(rec):
        save_figure(doc, args.out)
    summary = {
        "record": str(Path(args.out) / "records" / f"{rec['run_id']}.json"),
        "status": rec["status"],
        "scale": rec.get("scale"),
        "method": rec.get("method"),
        "epochs": doc["epochs"],
        "cosine": {m: [None if v is None else round(v, 4) for v in vals] for m, vals in doc["cosine"].items()},
        "reference_ok": doc["reference_ok"],
    }
    print(json.dumps(summary, ensure_ascii=False))
    if rec["status"] != "ok":
        print(
            f"hypergrad: the search run {rec['run_id']} {rec['status']}: {(rec.get('failure') or {}).get('reason')}",
            file=sys.stderr,
        )
        return 1
    return 0
