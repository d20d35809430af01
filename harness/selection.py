"""Which cell to evaluate: a given genotype, or one selected from search runs by the paper's protocol.

``select_from_runs`` applies MiLeNAS §4.1 ("the architecture with the highest validation accuracy
in the search stage is chosen") across the search runs of one method and variant (default: no
variant, i.e. MiLeNAS at λ = 1) or one named run; within a run the cell is the one its record
reports (``final.arch``, chosen by the run's ``selection`` rule).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from harness import records
from harness.errors import ConfigError, HarnessError


def default_space() -> str:
    """The space ``harness evaluate`` works on by default: the first (by ``display_rank``) whose cells are judged
    by an evaluation network (``SearchSpace.cell_judged_by == "evaluation"``)."""
    from harness.registry import get_space, list_spaces

    names = [n for n in list_spaces() if get_space(n).cell_judged_by == "evaluation"]
    return min(names, key=lambda n: (get_space(n).display_rank, n))


#: which epoch's cell a search run reports (config key ``selection``; see ``select_epoch``)
SELECTION_RULES = ("last", "last_logged", "best_val_reference", "best_val_batchstats")
_SELECTION_METRIC = {"best_val_reference": "ref_val_acc", "best_val_batchstats": "val_acc"}


def select_epoch(epochs: List[Dict[str, Any]], rule: str) -> Dict[str, Any]:
    """The epoch entry whose cell a run reports, by ``rule``.  Entry e holds the cell derived after epoch e's
    training.

    ``last``                the cell after the last epoch (xautodl NB201 scripts: ``genotypes[epoch]`` after training)
    ``last_logged``         the last cell the reference *logs*: quark0/darts cnn/train_search.py derives and logs
                            ``model.genotype()`` at the start of every epoch and never saves α, so its last logged
                            cell is the one after E − 1 epochs, i.e. the previous epoch's entry (a run of one epoch:
                            its only entry; quark0's would be the untrained α)
    ``best_val_reference``  highest ``ref_val_acc`` (MiLeNAS §4.1), first of equal bests
    ``best_val_batchstats`` highest ``val_acc``, first of equal bests
    """
    if rule not in SELECTION_RULES:
        raise ConfigError(f"selection must be one of {list(SELECTION_RULES)}, not {rule!r}")
    if rule == "last":
        return epochs[-1]
    if rule == "last_logged":
        return epochs[-2] if len(epochs) >= 2 else epochs[-1]
    metric = _SELECTION_METRIC[rule]
    return max(epochs, key=lambda e: (e.get(metric, float("-inf")), -e["epoch"]))


def genotype_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _score(rec: Dict[str, Any]) -> Tuple[float, Optional[int], str]:
    """(search-val accuracy %, epoch, metric name) of the cell a search record reports."""
    final = rec["final"]
    sel = final.get("selection") or {}
    epoch = sel.get("epoch")
    if epoch is not None:
        entry = next((e for e in rec.get("epochs") or [] if e.get("epoch") == epoch), None)
        if entry is not None and entry.get("ref_val_acc") is not None:
            return float(entry["ref_val_acc"]), epoch, "ref_val_acc"
    return float(final["best_val_acc"]), None, "best_val_acc"  # records written before selection rules


def select_from_runs(
    folder: Path,
    method: Optional[str] = None,
    variant: Optional[Dict[str, Any]] = None,
    run_id: Optional[str] = None,
    space: Optional[str] = None,
) -> Dict[str, Any]:
    """The paper's selection protocol over DARTS-space search runs (MiLeNAS §4.1; docs/evaluation.md#selection).

    Candidates: search records of ``space`` (default: ``default_space()``) with status ok, of ``method`` with exactly
    ``variant`` (default: no variant; so ``--method milenas`` never picks a λ-sweep run), or the one
    run ``run_id``.  Each run's cell is ``final.arch`` (chosen by the run's own selection rule) and is
    scored by the reference-style search-val accuracy of that epoch; the highest wins (ties → lowest
    seed, then run id).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"--from-runs folder {folder} does not exist")
    variant = dict(variant or {})
    space = space or default_space()
    runs = [
        r
        for r in records.load_runs(folder)
        if r.get("kind", "search") == "search"
        and r.get("space") == space
        and r.get("status") == "ok"
        and isinstance(r.get("final"), dict)
        and r["final"].get("arch")
    ]
    if run_id is not None:
        runs = [r for r in runs if r["run_id"] == run_id]
        if not runs:
            raise HarnessError(f"no finished DARTS-space search run {run_id!r} (status ok) under {folder}")
    else:
        runs = [
            r for r in runs if (method is None or r.get("method") == method) and (r.get("variant") or {}) == variant
        ]
        if not runs:
            what = (f"method {method!r}, " if method else "") + f"variant {variant or 'none'}, "
            raise HarnessError(f"no finished DARTS-space search runs ({what}status ok) under {folder}")
    scored = sorted(
        ((_score(r), r) for r in runs), key=lambda sr: (-sr[0][0], int(sr[1].get("seed", 0)), sr[1]["run_id"])
    )
    (best_acc, arch_epoch, metric), best = scored[0]
    ties = [r["run_id"] for (acc, _, _), r in scored if acc == best_acc]
    rule = (best["final"].get("selection") or {}).get("rule", "last")
    filt = (
        f"run {run_id}"
        if run_id
        else (f"method {method}" if method else "any method") + f", variant {variant or 'none'}"
    )
    reason = (
        f"highest search-val accuracy ({metric} {best_acc:.2f} %) among {len(runs)} ok DARTS-space search "
        f"run(s) of {filt}"
        + (f"; tie among {ties} broken by lowest seed" if len(ties) > 1 else "")
        + f"; the run's cell by its selection rule '{rule}'"
        + (f" (epoch {arch_epoch})" if arch_epoch is not None else "")
    )
    return {
        "protocol": "highest search-val accuracy (MiLeNAS §4.1; docs/evaluation.md#selection)",
        "runs_folder": str(folder),
        "method_filter": method,
        "variant_filter": variant,
        "run_id_filter": run_id,
        "selected_run": best["run_id"],
        "selected_method": best.get("method"),
        "selected_label": best.get("label"),
        "selected_seed": best.get("seed"),
        "selected_variant": best.get("variant") or {},
        "best_val_acc": best_acc,
        "score_metric": metric,
        "arch_epoch": arch_epoch,
        "arch": best["final"]["arch"],
        "run_selection_rule": rule,
        "candidates": [
            {"run_id": r["run_id"], "method": r.get("method"), "seed": r.get("seed"), "val_acc": acc}
            for (acc, _, _), r in scored
        ],
        "reason": reason,
    }


def resolve_cell(
    space: Optional[str] = None,
    genotype: Optional[str] = None,
    from_runs: Optional[Path] = None,
    method: Optional[str] = None,
    variant: Optional[Dict[str, Any]] = None,
    run_id: Optional[str] = None,
) -> Dict[str, Any]:
    """{arch, text, name, method, label, selection} of the cell to evaluate: ``genotype`` (text or a
    published name the space knows) or the cell selected ``from_runs``."""
    from harness.registry import get_method, get_space

    space = space or default_space()
    sp = get_space(space)()
    if from_runs is not None:
        sel = select_from_runs(Path(from_runs), method, variant, run_id, space)
        arch = sp.parse_arch(sel.pop("arch"))
        text = str(arch)
        sel["genotype"] = text
        method_name = sel["selected_method"] or "unknown"
        name = f"{method_name}{_variant_slug(sel['selected_variant'])}-best-{genotype_hash(text)[:8]}"
        base_label = sel.get("selected_label") or get_method(method_name).display_label(sel["selected_variant"])
        label = f"{base_label} cell (search seed {sel['selected_seed']})"
        return {"arch": arch, "text": text, "name": name, "method": method_name, "label": label, "selection": sel}
    if genotype is None:
        raise ConfigError("evaluate needs --genotype or --from-runs")
    if method or variant or run_id:
        raise ConfigError("--method, --variant and --run-id select search runs and only apply with --from-runs")
    arch = sp.parse_arch(genotype)  # ArchFormatError on malformed text
    text = str(arch)
    stripped = genotype.strip()
    if stripped in sp.known_archs():
        name, label = stripped, stripped
    else:
        name, label = f"g{genotype_hash(text)}", f"genotype {genotype_hash(text)[:8]}"
    return {"arch": arch, "text": text, "name": name, "method": "given", "label": label, "selection": None}


def _variant_slug(variant: Dict[str, Any]) -> str:
    return "".join(f"-{k}{v}" for k, v in sorted((variant or {}).items()))
