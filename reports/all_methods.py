"""All methods side by side: one table per space over every method that has runs (any registered method, any role).

* A space whose cells are judged by a benchmark (``SearchSpace.cell_judged_by == "benchmark"``, NAS-Bench-201): per
  method mean ± std over seeds of the found cell's benchmark accuracies (the space's ``report_columns``), the
  published numbers beside them, search seconds per iteration, and the difference of the first benchmark column to
  the reference method (``comparisons.REFERENCE_METHOD``, MiLeNAS) with its Welch 95 % interval.
* A space whose cells are trained from scratch (the DARTS space): per method the found cells' parameter counts
  (``arch_info.params_M``), search-val accuracy, s/iteration, and the published error / parameters.

Published numbers come from every document in ``data/published/`` (``reports.published``): a section named after
the space's ``cell_judged_by`` (``benchmark:`` / ``evaluation:``) with rows whose ``ours:`` names a registered method,
plus the NAS-Bench-201 paper's sets (rows with ``ours:``).  Flags (``unconfirmed``, ``doubt``) are printed.

Extra per-record columns (``RECORD_COLUMNS``): a value read from a record, shown only where some record has one;
another module adds its own with ``register_column`` (e.g. the collapse diagnostic below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import published as P
from . import runs as R
from .comparisons import REFERENCE_METHOD
from .stats import clean, fmt, mean_pm_std, welch_diff_ci
from .tables import OURS, Table, _n_cell, _pm_pub


@dataclass(frozen=True)
class RecordColumn:
    """A per-record number a table shows (mean ± std over a method's ok seeds), when some record has it."""

    key: str
    name: str  # column header
    doc: str
    value: Callable[[Dict[str, Any]], Optional[float]]
    digits: int = 2


def _last_epoch_hook(name: str, fields: Tuple[str, ...] = ("value", "eigenvalue", "lambda_max")):
    """The last epoch's ``hooks[name]``: a number, or the first of ``fields`` in a mapping."""

    def get(rec: Dict[str, Any]) -> Optional[float]:
        for entry in reversed(R.epochs(rec)):
            v = (entry.get("hooks") or {}).get(name)
            if isinstance(v, dict):
                v = next((v[f] for f in fields if f in v), None)
            num = R._num(v)
            if num is not None:
                return num
        return None

    return get


#: the extra columns, in display order (``register_column`` adds one)
RECORD_COLUMNS: List[RecordColumn] = [
    RecordColumn(
        "collapse",
        "λ_max (last epoch)",
        "dominant eigenvalue of the α-Hessian of the validation loss at the last epoch (hooks.collapse)",
        _last_epoch_hook("collapse"),
    ),
]


def register_column(column: RecordColumn) -> None:
    """Add a per-record column (replacing one of the same key)."""
    RECORD_COLUMNS[:] = [c for c in RECORD_COLUMNS if c.key != column.key] + [column]


def _groups(records, space: str) -> List[Tuple[str, List[Dict[str, Any]]]]:
    """(method, its default-variant search records) for every method with runs of ``space``, in display order,
    scale by scale (a row never pools scales)."""
    recs = [r for r in records if r.get("space") == space and r.get("kind", "search") == "search"]
    recs = [r for r in recs if R.is_default_variant(r)]
    methods = sorted({r.get("method") for r in recs}, key=lambda m: (R.method_rank(m), str(m)))
    out = []
    for rs in R.by_scale(recs).values():
        for m in methods:
            mine = [r for r in rs if r.get("method") == m]
            if mine:
                out.append((m, mine))
    return out


def _published_rows(pub, section: str) -> Dict[str, List[Tuple[Dict[str, Any], str]]]:
    """method → [(published row, citation)] from every document's ``section`` and the NB201 paper's sets."""
    out: Dict[str, List[Tuple[Dict[str, Any], str]]] = {}
    for source, doc in pub.items():
        sec = doc.get(section) if isinstance(doc, dict) else None
        for row in (sec or {}).get("rows") or []:
            if row.get("ours"):
                flag = bool(row.get("unconfirmed") or (sec or {}).get("unconfirmed"))
                out.setdefault(row["ours"], []).append(({**row, "unconfirmed": flag}, doc.get("short", source)))
    if section == "benchmark":
        for name, s in P.nb201_sets(pub).items():
            for row in s.get("rows") or []:
                if row.get("ours"):
                    out.setdefault(row["ours"], []).append((row, f"{P.citation(pub, P.NB201_SOURCE)} set {name}"))
    return out


def _active_columns(groups) -> List[RecordColumn]:
    return [c for c in RECORD_COLUMNS if any(c.value(r) is not None for _, rs in groups for r in rs if R.is_ok(r))]


def benchmark_all_methods(records, pub, space: str) -> Table:
    cols_bench = R.report_columns(space)
    column_map = (pub.get(P.NB201_SOURCE) or {}).get("column_map") or {}
    groups = _groups(records, space)
    extra = _active_columns(groups)
    first = cols_bench[0][0] if cols_bench else None
    ref = {
        R.scale_of(rs): [R.final_bench(r, first) for r in rs if R.is_ok(r)]
        for m, rs in groups
        if m == REFERENCE_METHOD and first
    }
    header = ["Method", "Source", "Runs"]
    for _, name in cols_bench:
        header += [f"{name} %", f"{name} published"]
    header += ["s / iteration"] + [c.name for c in extra]
    header += [f"Δ {cols_bench[0][1]} vs {R.method_label(REFERENCE_METHOD)} (95 % CI)" if cols_bench else "Δ", "Scale"]
    t = Table(
        f"all_methods_{space}", f"All methods on {R.space_label(space)}: benchmark accuracy of the found cell", header
    )
    published = _published_rows(pub, "benchmark")
    for m, rs in groups:
        ok = [r for r in rs if R.is_ok(r)]
        pubs = published.get(m, [])
        row = [R.method_label(m), OURS, _n_cell(rs)]
        for col, _ in cols_bench:
            row.append(mean_pm_std([R.final_bench(r, col) for r in ok]))
            pcol = column_map.get(col)
            texts = [
                _pm_pub(p.get(pcol)) + (" [UNCONFIRMED]" if p.get("unconfirmed") else "")
                for p, _ in pubs
                if pcol and p.get(pcol) is not None
            ]
            row.append("; ".join(texts) or "none found")
        row.append(mean_pm_std([R.final_value(r, "seconds_per_iteration") for r in ok], 4))
        row += [mean_pm_std([c.value(r) for r in ok], c.digits) for c in extra]
        ref_vals = ref.get(R.scale_of(rs))
        if m == REFERENCE_METHOD or not ref_vals or not first:
            row.append("reference" if m == REFERENCE_METHOD else "n/a (no reference runs)")
        else:
            d, lo, hi, reason = welch_diff_ci([R.final_bench(r, first) for r in ok], ref_vals)
            row.append(f"{fmt(d)} [{fmt(lo)}, {fmt(hi)}]" + (f" ({reason})" if reason else ""))
        row.append(R.scale_of(rs))
        t.rows.append(row)
    sources = sorted({cit for m, _ in groups for _, cit in published.get(m, [])})
    t.caption = (
        "Ours: mean ± std (ddof=1) over seeds of the final cell's benchmark test accuracy (200-epoch schedule), "
        "n per cell; s / iteration = final.seconds_per_iteration (device-dependent). Δ = ours − "
        f"{R.method_label(REFERENCE_METHOD)} on the first column, Welch 95 % interval, same scale. Published beside "
        f"ours: {', '.join(sources) or 'none'}; their protocols differ (search dataset, epochs, seeds: see notes)."
    )
    t.notes = _notes(pub, "benchmark", [m for m, _ in groups]) + [f"{c.name}: {c.doc}" for c in extra]
    return t


def evaluation_all_methods(records, pub, space: str) -> Table:
    groups = _groups(records, space)
    extra = _active_columns(groups)
    header = ["Method", "Source", "Runs", "Found cell params M", "Best search-val %", "s / iteration"]
    header += [c.name for c in extra] + ["Published error %", "Published params M", "Scale"]
    t = Table(f"all_methods_{space}", f"All methods on the {R.space_label(space)}: found cells", header)
    published = _published_rows(pub, "evaluation")
    for m, rs in groups:
        ok = [r for r in rs if R.is_ok(r)]
        params = [((r.get("final") or {}).get("arch_info") or {}).get("params_M") for r in ok]
        pubs = published.get(m, [])
        err = "; ".join(
            f"{_pm_pub([p.get('error_mean'), p.get('error_std')])} ({p.get('method')})"
            + (" [UNCONFIRMED]" if p.get("unconfirmed") else "")
            for p, _ in pubs
        )
        par = "; ".join(f"{p.get('params_M')} ({p.get('method')})" for p, _ in pubs if p.get("params_M") is not None)
        row = [R.method_label(m), OURS, _n_cell(rs), mean_pm_std(params, 3), mean_pm_std([R.best_val(r) for r in ok])]
        row.append(mean_pm_std([R.final_value(r, "seconds_per_iteration") for r in ok], 4))
        row += [mean_pm_std([c.value(r) for r in ok], c.digits) for c in extra]
        row += [err or "none found", par or "–", R.scale_of(rs)]
        t.rows.append(row)
    nulls = sum(1 for _, rs in groups for r in rs if R.is_ok(r) and not clean([_params(r)]).size)
    t.caption = (
        "Found cell params M: the evaluation network's count (C=36, 20 cells, auxiliary head excluded) of each run's "
        "final cell, mean ± std over seeds; published numbers are of the authors' evaluated cells (600 epochs), not "
        "of ours." + (f" {nulls} run(s) found a cell with no op kept (no count)." if nulls else "")
    )
    t.notes = _notes(pub, "evaluation", [m for m, _ in groups]) + [f"{c.name}: {c.doc}" for c in extra]
    return t


def _params(rec) -> Optional[float]:
    return ((rec.get("final") or {}).get("arch_info") or {}).get("params_M")


def _notes(pub, section: str, methods: List[str]) -> List[str]:
    out = []
    for source, doc in pub.items():
        sec = doc.get(section) if isinstance(doc, dict) else None
        if not sec or not any(r.get("ours") in methods for r in sec.get("rows") or []):
            continue
        for r in sec.get("rows") or []:
            if r.get("doubt"):
                out.append(f"{doc.get('short', source)}, {r.get('method')}: {str(r['doubt']).strip()}")
        if sec.get("doubt"):
            out.append(f"{doc.get('short', source)}: {str(sec['doubt']).strip()}")
    return out


def all_tables(records, pub) -> List[Table]:
    """The all-methods table of every space with runs from more than one method (none otherwise)."""
    out = []
    for space in R.spaces_present(records):
        if len({m for m, _ in _groups(records, space)}) < 2:
            continue
        judged = getattr(R.space_class(space), "cell_judged_by", "evaluation")
        out.append(
            benchmark_all_methods(records, pub, space)
            if judged == "benchmark"
            else evaluation_all_methods(records, pub, space)
        )
    return out
