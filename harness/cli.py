"""Command line: ``python -m harness <command>`` (alias ``nas-harness``).

Bad input (unknown method/space/profile, invalid config, missing or corrupt data, malformed arch
or genotype text, unwritable output) ends with one ``error: …`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

EXIT_BAD_INPUT = 2


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="data folder (default: $HARNESS_DATA, else ./data); see README 'Data'")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a resolved config value, e.g. --set optim.w_lr=0.05 --set method_cfg.lam=0.1")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision if missing (online only)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m harness",
                                 description="Reproduction harness for gradient-based NAS (MiLeNAS, DARTS, GDAS, single-level).")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="one search run")
    p.add_argument("--space", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="smoke", help="profile name or YAML path (default smoke)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="method variant option, e.g. --variant lam=0.1 (recorded in the run id and label)")
    p.add_argument("--out", required=True, type=Path)
    _add_common(p)

    p = sub.add_parser("reproduce", help="every method x seed of a profile, then the report")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--spaces", nargs="*", default=None, help="only these spaces")
    p.add_argument("--methods", nargs="*", default=None, help="only these methods")
    p.add_argument("--workers", default=os.environ.get("HARNESS_WORKERS", "auto"),
                   help="parallel worker processes on CPU, 1 thread each (auto = number of cores; 1 = in-process, "
                        "all threads); default $HARNESS_WORKERS or auto")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--executor", default="local", help="where runs execute: local (in-process or a process pool)")
    p.add_argument("--no-report", action="store_true")
    _add_common(p)

    p = sub.add_parser("report", help="build the report from existing runs")
    p.add_argument("runs", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default RUNS/report")

    p = sub.add_parser("nb201", help="NAS-Bench-201 tools")
    nsub = p.add_subparsers(dest="nb201_command", required=True)
    q = nsub.add_parser("lookup", help="index, canonical arch string and every benchmark accuracy of a cell")
    q.add_argument("query", help="arch string or index")
    q.add_argument("--data-dir", default=None)

    p = sub.add_parser("darts", help="DARTS-space tools")
    dsub = p.add_subparsers(dest="darts_command", required=True)
    q = dsub.add_parser("params", help="evaluation-network parameter count (M, auxiliary head excluded)")
    q.add_argument("genotype", help="Genotype(...) text or a zoo name such as DARTS_V2")
    q.add_argument("--C", type=int, default=36)
    q.add_argument("--layers", type=int, default=20)
    q.add_argument("--classes", type=int, default=10)
    q.add_argument("--json", action="store_true")

    p = sub.add_parser("evaluate", help="train a DARTS-space evaluation network from scratch (profile-scaled recipe)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--genotype", help="Genotype(...) text or a zoo name such as DARTS_V2")
    g.add_argument("--from-runs", type=Path, default=None,
                   help="select the genotype from search runs by the paper's protocol (best search-val accuracy)")
    p.add_argument("--method", default=None, help="with --from-runs: the search method whose runs to select from")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="with --from-runs: the method variant to select from (default: no variant, e.g. MiLeNAS "
                        "at λ = 1; --variant lam=0.1 selects the λ = 0.1 runs)")
    p.add_argument("--run-id", default=None, help="with --from-runs: evaluate the cell of exactly this search run")
    p.add_argument("--space", default="darts", help="search space of the cell (default darts)")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    _add_common(p)

    p = sub.add_parser("regress", help="check runs against a regression baseline (accuracy envelopes, relative cost)")
    p.add_argument("runs", type=Path)
    p.add_argument("--baseline", required=True, type=Path)
    p.add_argument("--update", action="store_true",
                   help="record RUNS as the new baseline (on purpose) instead of checking")

    sub.add_parser("list", help="registered methods, spaces and profiles")
    return ap


def _workers(value: str, device: str) -> int:
    if value == "auto":
        import torch

        if device != "cpu" and torch.cuda.is_available():
            return 1
        return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except ValueError:
        from harness.errors import ConfigError

        raise ConfigError(f"--workers must be 'auto' or a positive integer, not {value!r}")
    if n < 1:
        from harness.errors import ConfigError

        raise ConfigError(f"--workers must be a positive integer, not {n}")
    return n


def cmd_search(args) -> int:
    from harness import config as C
    from harness.lifecycle import check_output_dir, pick_device
    from harness.runner import ProgressPrinter, SearchRun, plan

    profile = C.load_profile(args.profile)
    part = C.find_part(profile, args.space)
    variant = C.parse_overrides(args.variant)
    entry = {"method": args.method, "variant": variant}
    cfg = C.resolve(args.space, entry, args.seed, profile, part, C.parse_overrides(args.overrides))
    _prepare_data(args)
    check_output_dir(args.out)
    if not plan([cfg], args.out):
        print(f"run already finished: {args.out}/records/{C.run_id(args.space, args.method, variant, args.seed)}.json",
              file=sys.stderr)
        return 0
    rec = SearchRun(cfg, args.out, _data_root(args), pick_device(args.device), ProgressPrinter(1)).run()
    _print_summary(rec)
    return 0 if rec["status"] == "ok" else 1


def _print_summary(rec) -> None:
    prov = rec["provenance"]
    line = {"run_id": rec["run_id"], "status": rec["status"], "scale": rec["scale"], "seed": rec["seed"],
            "dataset": prov.get("dataset"), "split": prov.get("split"), "device": prov.get("device"),
            "commit": prov.get("commit")}
    if rec["final"]:
        line.update(arch=rec["final"]["arch"], search_val_acc_pct=round(rec["final"]["val_acc"], 2),
                    search_seconds=round(rec["final"]["search_seconds"], 2),
                    seconds_per_iteration=round(rec["final"]["seconds_per_iteration"], 4))
        bench = (rec["final"].get("arch_info") or {}).get("benchmark")
        if bench:
            line["cifar10_test_200ep_pct"] = bench.get("cifar10_test_200ep")
            line["benchmark_source"] = prov.get("benchmark_source")
    if rec["failure"]:
        line["failure"] = rec["failure"]
    print(json.dumps(line, ensure_ascii=False))


def _data_root(args) -> Optional[Path]:
    return Path(args.data_dir) if args.data_dir else None


def _prepare_data(args) -> None:
    """Locate (and verify, and cache) CIFAR-10 before any run starts: bad data fails in one line."""
    from harness.data import load_cifar10

    load_cifar10("train", _data_root(args), download=args.download)


def cmd_reproduce(args) -> int:
    from harness import config as C
    from harness.lifecycle import check_output_dir
    from harness.registry import get_method, get_space
    from harness.runner import run_matrix

    profile = C.load_profile(args.profile)
    for name in args.methods or []:
        get_method(name)  # an unknown name: one error line listing the known ones
    for name in args.spaces or []:
        get_space(name)
    configs = C.expand_profile(profile, spaces=args.spaces, methods=args.methods,
                               overrides=C.parse_overrides(args.overrides))
    if not configs:
        from harness.errors import ConfigError

        raise ConfigError("no runs selected (check --spaces / --methods against the profile)")
    workers = _workers(args.workers, args.device)
    _prepare_data(args)  # bad data fails before anything is created in the output folder
    check_output_dir(args.out)
    _write_matrix_manifest(args, profile, configs)
    print(f"profile {profile['name']} (scale {profile['scale']}): {len(configs)} runs -> {args.out} "
          f"({workers} worker(s))", file=sys.stderr)
    results = run_matrix(configs, args.out, _data_root(args), args.device, workers, args.retry_failed,
                         executor=args.executor)
    failed = [r for r in results if r["status"] != "ok"]
    if not args.no_report:
        _build_report(args.out, args.out / "report")
    if failed:
        print(f"{len(failed)} run(s) failed: " + ", ".join(r["run_id"] for r in failed), file=sys.stderr)
    return 0


def _write_matrix_manifest(args, profile, configs) -> None:
    from harness import records
    from harness.config import run_id
    from harness.provenance import git_diff, git_state

    manifest = {"command": sys.argv, "profile": profile, "git": git_state(),
                "runs": [run_id(c["space"], c["method"], c["variant"], c["seed"]) for c in configs]}
    records.atomic_write_bytes(args.out / "runs.json", (json.dumps(manifest, indent=1, default=str) + "\n").encode())
    if manifest["git"].get("dirty"):
        records.atomic_write_bytes(args.out / "source.diff", git_diff().encode())


def _build_report(runs: Path, out: Path) -> None:
    from reports.build import build_report

    paths = build_report(runs, out)
    for name, path in sorted(paths.items()):
        if name in ("html", "pdf", "md"):
            print(f"report {name}: {path}", file=sys.stderr)


def cmd_report(args) -> int:
    from harness.errors import HarnessError

    if not args.runs.is_dir():
        raise HarnessError(f"runs folder {args.runs} does not exist")
    _build_report(args.runs, args.out or args.runs / "report")
    return 0


def cmd_nb201(args) -> int:
    from harness.spaces.nb201.benchmark import lookup_json

    print(json.dumps(lookup_json(args.query, args.data_dir), indent=1))
    return 0


def cmd_darts(args) -> int:
    from harness.spaces.darts import params_report

    rep = params_report(args.genotype, C=args.C, layers=args.layers, num_classes=args.classes)
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(f"{rep['params_M']:.6f} M parameters (C={args.C}, {args.layers} cells, {args.classes} classes, "
              "auxiliary head excluded, as quark0/darts count_parameters_in_MB)")
    return 0


def cmd_list(args) -> int:
    from harness.config import list_profiles
    from harness.registry import list_methods, list_spaces

    print("methods:  " + ", ".join(list_methods()))
    print("spaces:   " + ", ".join(list_spaces()))
    print("profiles: " + ", ".join(list_profiles()))
    return 0


def cmd_evaluate(args) -> int:
    from harness.evaluate import run_evaluate

    rec = run_evaluate(args)
    return 0 if rec.get("status") == "ok" else 1


def cmd_regress(args) -> int:
    from harness.regress import run_regress

    return run_regress(args)


COMMANDS = {"search": cmd_search, "evaluate": cmd_evaluate, "regress": cmd_regress, "reproduce": cmd_reproduce, "report": cmd_report, "nb201": cmd_nb201,
            "darts": cmd_darts, "list": cmd_list}


def main(argv: Optional[List[str]] = None) -> int:
    from harness.errors import HarnessError
    from harness.registry import UnknownNameError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (HarnessError, UnknownNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: finished epochs are checkpointed; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
