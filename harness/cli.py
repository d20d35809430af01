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

from harness.cli_args import add_data_dir, add_device, add_matrix_filters, add_set, add_trackers

EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3  # reproduce/search/evaluate: runs of the matrix are still running elsewhere (or were lost)


def _add_common(p: argparse.ArgumentParser) -> None:
    add_data_dir(p)
    add_device(p)
    add_set(p)
    p.add_argument(
        "--download", action="store_true", help="download CIFAR-10 with torchvision if missing (online only)"
    )


def _add_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the supernet forward (= --set speed.compile=true; softmax-mode methods): the "
        "warm-up is recorded as compile_seconds apart from search_seconds and cached by inductor "
        "across runs of the same shapes ($TORCHINDUCTOR_CACHE_DIR, default /tmp/torchinductor_$USER)",
    )


def _overrides(args) -> dict:
    """``--set KEY=VALUE`` overrides, plus ``speed.compile`` from ``--compile``."""
    from harness import config as C

    out = C.parse_overrides(args.overrides)
    if getattr(args, "compile", False):
        out["speed.compile"] = True
    return out


def _add_executor(p: argparse.ArgumentParser) -> None:
    """Where runs execute: each executor declares its own options (harness.executors)."""
    from harness.executors import add_executor_arguments

    add_executor_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m harness",
        description="Reproduction harness for gradient-based NAS (MiLeNAS, DARTS, GDAS, single-level).",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="one search run")
    p.add_argument("--space", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="smoke", help="profile name or YAML path (default smoke)")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method variant option, e.g. --variant lam=0.1 (recorded in the run id and label)",
    )
    p.add_argument("--out", required=True, type=Path)
    _add_common(p)
    _add_compile(p)
    add_trackers(p)

    p = sub.add_parser("reproduce", help="every method x seed of a profile, then the report")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--out", required=True, type=Path)
    add_matrix_filters(p)
    p.add_argument(
        "--workers",
        default=os.environ.get("HARNESS_WORKERS", "auto"),
        help="parallel worker processes on CPU, 1 thread each (auto = number of cores; 1 = in-process, "
        "all threads); default $HARNESS_WORKERS or auto",
    )
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--no-report", action="store_true")
    _add_common(p)
    _add_compile(p)
    _add_executor(p)
    add_trackers(p)

    p = sub.add_parser("plan", help="the run matrix of a profile with each run's estimated cost per device kind")
    p.add_argument("--profile", default="paper")
    add_matrix_filters(p)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a resolved config value, as for reproduce",
    )
    p.add_argument(
        "--from-runs",
        action="append",
        default=[],
        metavar="DIR",
        help="run folders whose records give measured seconds per iteration (default: runs/*/ with records)",
    )
    p.add_argument(
        "--calibration",
        action="append",
        default=[],
        metavar="FILE",
        help="a calibration file written by `python -m harness calibrate` on a device (repeatable)",
    )
    p.add_argument(
        "--no-calibration",
        action="store_true",
        help="ignore the shipped table data/calibration/seconds_per_iteration.json",
    )
    p.add_argument("--json", action="store_true")

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
    g.add_argument(
        "--from-runs",
        type=Path,
        default=None,
        help="select the genotype from search runs by the paper's protocol (best search-val accuracy)",
    )
    p.add_argument("--method", default=None, help="with --from-runs: the search method whose runs to select from")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --from-runs: the method variant to select from (default: no variant, e.g. MiLeNAS "
        "at λ = 1; --variant lam=0.1 selects the λ = 0.1 runs)",
    )
    p.add_argument("--run-id", default=None, help="with --from-runs: evaluate the cell of exactly this search run")
    p.add_argument(
        "--space",
        default=None,
        help="search space of the cell (default: the first space whose cells are trained to be judged)",
    )
    p.add_argument("--profile", default="smoke")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    _add_common(p)
    _add_executor(p)
    add_trackers(p)

    p = sub.add_parser("regress", help="check runs against a regression baseline (accuracy envelopes, relative cost)")
    p.add_argument("runs", type=Path)
    p.add_argument("--baseline", required=True, type=Path)
    p.add_argument(
        "--update", action="store_true", help="record RUNS as the new baseline (on purpose) instead of checking"
    )
    p.add_argument(
        "--cost-source",
        choices=("interleaved", "records"),
        default="interleaved",
        help="with --update: where the cost ratios come from: interleaved (default; the runs rebuilt and timed "
        "round-robin, robust to load changes) | records (each run's own steady s/iter). A check follows its baseline",
    )
    p.add_argument("--rounds", type=int, default=5, help="with --update: timed rounds of the interleaved probe")
    p.add_argument("--threads", type=int, default=None, help="with --update: torch threads of the probe (default 1)")
    add_data_dir(p)

    from harness.calibrate import add_parser as add_calibrate
    from harness.doctor import add_parser as add_doctor
    from harness.hypergrad.cli import add_parser as add_hypergrad

    add_hypergrad(sub)
    add_calibrate(sub)
    add_doctor(sub)

    sub.add_parser("list", help="registered methods, spaces and profiles")
    return ap


def cmd_search(args) -> int:
    from harness import config as C
    from harness.lifecycle import check_output_dir, pick_device
    from harness.runlock import RUNNING_ELSEWHERE
    from harness.runner import ProgressPrinter, SearchRun, plan
    from harness.trackers import settings_from_args

    profile = C.load_profile(args.profile)
    part = C.find_part(profile, args.space)
    variant = C.parse_overrides(args.variant)
    entry = {"method": args.method, "variant": variant}
    cfg = C.resolve(args.space, entry, args.seed, profile, part, _overrides(args))
    trackers = settings_from_args(args, profile)  # unknown tracker, package missing: one error line
    _prepare_data(args)
    check_output_dir(args.out)
    if not plan([cfg], args.out):
        print(
            f"run already finished: {args.out}/records/{C.run_id(args.space, args.method, variant, args.seed)}.json",
            file=sys.stderr,
        )
        return 0
    run = SearchRun(cfg, args.out, _data_root(args), pick_device(args.device), ProgressPrinter(1))
    run.trackers = trackers
    rec = run.run()
    if rec["status"] == RUNNING_ELSEWHERE:
        print(f"run {rec['run_id']} is running elsewhere ({rec['holder']}): not run here", file=sys.stderr)
        return EXIT_INCOMPLETE
    _print_summary(rec)
    return 0 if rec["status"] == "ok" else 1


def _print_summary(rec) -> None:
    prov = rec["provenance"]
    line = {
        "run_id": rec["run_id"],
        "status": rec["status"],
        "scale": rec["scale"],
        "seed": rec["seed"],
        "dataset": prov.get("dataset"),
        "split": prov.get("split"),
        "device": prov.get("device"),
        "commit": prov.get("commit"),
    }
    if rec["final"]:
        line.update(
            arch=rec["final"]["arch"],
            search_val_acc_pct=round(rec["final"]["val_acc"], 2),
            search_seconds=round(rec["final"]["search_seconds"], 2),
            seconds_per_iteration=round(rec["final"]["seconds_per_iteration"], 4),
        )
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
    from harness.runner import run_matrix

    profile, configs = C.select_matrix(args.profile, args.spaces, args.methods, _overrides(args))
    from harness.executors import executor_options
    from harness.executors.local import resolve_workers
    from harness.trackers import settings_from_args

    workers = resolve_workers(args.workers, args.device)
    options = executor_options(args, profile)  # unknown executor, missing package, bad flag: one error line
    options["trackers"] = settings_from_args(args, profile)  # live trackers log from where each run executes
    _prepare_data(args)  # bad data fails before anything is created in the output folder
    check_output_dir(args.out)
    dry_run = bool(options.get("dry_run"))
    if not dry_run:
        _write_matrix_manifest(args, profile, configs)
    where = f"{workers} worker(s)" if args.executor == "local" else f"executor {args.executor}"
    print(
        f"profile {profile['name']} (scale {profile['scale']}): {len(configs)} runs -> {args.out} ({where})",
        file=sys.stderr,
    )
    results = run_matrix(
        configs,
        args.out,
        _data_root(args),
        args.device,
        workers,
        args.retry_failed,
        executor=args.executor,
        executor_options=options,
    )
    if dry_run:
        return 0
    return _finish_matrix(args, configs, results)


def _finish_matrix(args, configs, results) -> int:
    """Report what happened; build the report only when every run of the matrix is finished."""
    from harness.runlock import RUNNING_ELSEWHERE
    from harness.runner import plan

    failed = [r for r in results if r["status"] == "failed"]
    lost = [r for r in results if r["status"] not in ("ok", "failed", RUNNING_ELSEWHERE, "submitted")]
    elsewhere = [r for r in results if r["status"] == RUNNING_ELSEWHERE]
    submitted = [r for r in results if r["status"] == "submitted"]
    unfinished = plan(configs, args.out)  # what the run store says is left (failed runs count as finished)
    if not unfinished and not args.no_report:
        _build_report(args.out, args.out / "report")
    if failed:
        print(f"{len(failed)} run(s) failed: " + ", ".join(r["run_id"] for r in failed), file=sys.stderr)
    for r in lost:
        print(
            f"{r['run_id']}: ended without a result ({(r.get('failure') or {}).get('reason')}); "
            "run the same command again to resume it",
            file=sys.stderr,
        )
    if elsewhere:
        print(
            f"{len(elsewhere)} run(s) running elsewhere (another executor holds their lock), not run here: "
            + ", ".join(r["run_id"] for r in elsewhere),
            file=sys.stderr,
        )
    if submitted:
        print(
            f"{len(submitted)} run(s) submitted; when the job array is done: python -m harness report {args.out}",
            file=sys.stderr,
        )
        return 0
    if unfinished:
        print(
            f"matrix not finished: {len(unfinished)} run(s) left in {args.out}"
            + ("" if args.no_report else "; report not built")
            + ". Run the same command again when the runs "
            "elsewhere are done (finished runs are kept, unfinished ones resume).",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    return 0


def _write_matrix_manifest(args, profile, configs) -> None:
    from harness import records
    from harness.config import run_id
    from harness.provenance import git_diff, git_state

    manifest = {
        "command": sys.argv,
        "profile": profile,
        "git": git_state(),
        "runs": [run_id(c["space"], c["method"], c["variant"], c["seed"]) for c in configs],
    }
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
        print(
            f"{rep['params_M']:.6f} M parameters (C={args.C}, {args.layers} cells, {args.classes} classes, "
            "auxiliary head excluded, as quark0/darts count_parameters_in_MB)"
        )
    return 0


def cmd_list(args) -> int:
    from harness.config import list_profiles
    from harness.registry import list_methods, list_spaces

    print("methods:  " + ", ".join(list_methods()))
    print("spaces:   " + ", ".join(list_spaces()))
    print("profiles: " + ", ".join(list_profiles()))
    return 0


def cmd_evaluate(args) -> int:
    from harness.config import load_profile
    from harness.evaluate import run_evaluate
    from harness.executors import executor_options
    from harness.runlock import RUNNING_ELSEWHERE
    from harness.trackers import settings_from_args

    # unknown executor or tracker, missing package, bad flag: one error line; the profile may carry defaults
    profile = load_profile(args.profile)
    options = executor_options(args, profile)
    options["trackers"] = settings_from_args(args, profile)
    rec = run_evaluate(args, executor=args.executor, options=options)
    if rec.get("status") == RUNNING_ELSEWHERE:
        print(f"run {rec['run_id']} is running elsewhere ({rec.get('holder')}): not run here", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0 if rec.get("status") in ("ok", "submitted", "planned") else 1


def cmd_plan(args) -> int:
    from harness.plan import run_plan

    return run_plan(args)


def cmd_regress(args) -> int:
    from harness.regress import run_regress

    return run_regress(args)


COMMANDS = {
    "search": cmd_search,
    "evaluate": cmd_evaluate,
    "regress": cmd_regress,
    "reproduce": cmd_reproduce,
    "report": cmd_report,
    "nb201": cmd_nb201,
    "darts": cmd_darts,
    "list": cmd_list,
    "plan": cmd_plan,
}


def cmd_hypergrad(args) -> int:
    from harness.hypergrad.cli import main as hypergrad_main

    return hypergrad_main(args)


COMMANDS["hypergrad"] = cmd_hypergrad


def cmd_calibrate(args) -> int:
    from harness.calibrate import main as calibrate_main

    return calibrate_main(args)


def cmd_doctor(args) -> int:
    from harness.doctor import main as doctor_main

    return doctor_main(args)


COMMANDS.update(calibrate=cmd_calibrate, doctor=cmd_doctor)


def main(argv: Optional[List[str]] = None) -> int:
    from harness.errors import HarnessError
    from harness.precision import set_cublas_workspace_early
    from harness.registry import UnknownNameError

    set_cublas_workspace_early()  # before any GPU work: cuBLAS reads it once (precision.deterministic)
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
