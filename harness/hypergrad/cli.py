"""``python -m harness hypergrad --profile smoke|cpu|PATH --out DIR [--method M] [--variant K=V] ...``.

Registered by ``harness.cli.build_parser`` (``add_parser(sub)``) and dispatched to ``main(args)``.
Bad input (unknown profile or method, a Gumbel method, invalid values, unwritable ``--out``,
missing data) raises ``HarnessError`` / ``ConfigError``: the harness CLI prints one ``error:``
line and exits 2.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "hypergrad",
        help="hypergradient error of each method along a search (MiLeNAS §2.2–3), NB201",
        description="Run one search trajectory on a small NB201 supernet; after chosen epochs compare every "
                    "method's α-direction with a reference hypergradient (re-trained w*, IFT + CG, float64). "
                    "Writes OUT/hypergrad.json and OUT/hypergrad.png|svg.")
    p.add_argument("--profile", default="smoke", help="hypergrad profile: smoke | cpu | a YAML path (default smoke)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--method", default=None,
                   help="the search whose trajectory is measured (default: the profile's, darts-1st)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="method variant option of the trajectory, e.g. --variant lam=0.1")
    p.add_argument("--seed", type=int, default=None, help="search seed (default: the profile's)")
    p.add_argument("--data-dir", default=None, help="data folder (default: $HARNESS_DATA, else ./data)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a resolved value of the trajectory's config, e.g. --set optim.w_lr=0.05")
    return p


def main(args) -> int:
    from harness.config import parse_overrides
    from harness.hypergrad.profile import load_profile
    from harness.hypergrad.run import JSON_NAME, measured_epochs, resolve_trajectory, run_hypergrad
    from harness.runner import check_output_dir, pick_device

    profile = load_profile(args.profile)
    variant = parse_overrides(args.variant) if args.variant else None
    overrides = parse_overrides(args.overrides)
    device = pick_device(args.device)
    cfg = resolve_trajectory(profile, args.method, variant, args.seed, overrides)  # bad input fails before any file
    measured_epochs(profile["measure"]["epochs"], cfg["epochs"])
    check_output_dir(args.out)
    from harness.data import load_cifar10

    load_cifar10("train", Path(args.data_dir) if args.data_dir else None)  # bad data: one error line, early
    doc = run_hypergrad(profile, args.out, method=args.method, variant=variant, seed=args.seed,
                        data_root=Path(args.data_dir) if args.data_dir else None, device=device,
                        overrides=overrides)
    summary = {"out": str(Path(args.out) / JSON_NAME), "scale": doc["scale"],
               "trajectory": doc["trajectory"]["method"], "epochs": doc["epochs"],
               "cosine": {m: [None if v is None else round(v, 4) for v in vals] for m, vals in doc["cosine"].items()},
               "fd_hvp_rel_error": doc["fd_hvp_rel_error"], "reference_ok": doc["reference_ok"],
               "seconds": round(doc["timing"]["total_seconds"], 1)}
    print(json.dumps(summary, ensure_ascii=False))
    return 0
