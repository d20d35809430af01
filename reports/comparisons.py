"""Family-wise comparisons: MiLeNAS (λ=1) vs every other method group, per scale, space and metric.

Welch's t and Mann–Whitney U (two-sided), Holm-adjusted within each (scale, space, metric) family,
with Hedges' g and the rank-biserial correlation as effect sizes.  Scales are never pooled.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from . import runs as R
from .stats import compare, fmt, fmt_p, holm
from .tables import Table

# (key, label with provenance, extractor, spaces, kind); spaces: "benchmark" / "evaluation" = the spaces whose cells
# are judged that way (``SearchSpace.cell_judged_by``), "all" = every space, in display order
METRICS: List[Tuple[str, str, Callable, str, str]] = [
    (
        "c10_bench",
        "NB201 cifar10_test_200ep of the final cell (%)",
        lambda r: R.final_bench(r, "cifar10_test_200ep"),
        "benchmark",
        "search",
    ),
    ("best_val", "best search-val accuracy of the supernet (%)", R.best_val, "all", "search"),
    ("gap", "train − val accuracy gap at the last epoch (pp)", R.last_gap, "all", "search"),
    (
        "search_s",
        "search seconds (final.search_seconds)",
        lambda r: R.final_value(r, "search_seconds"),
        "all",
        "search",
    ),
    ("test_error", "evaluation test error (%)", lambda r: R.final_value(r, "test_error"), "evaluation", "evaluation"),
]


def metric_spaces(which: str) -> List[str]:
    """The spaces a metric of ``METRICS`` is compared on."""
    return R.spaces() if which == "all" else R.spaces(judged_by=which)


REFERENCE_METHOD = "milenas"  # the paper's method: every comparison is MiLeNAS (λ=1) vs another group


def _is_ref(key) -> bool:
    return key[1] == REFERENCE_METHOD and key[2] == "{}"


def comparisons(records) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for scale in R.scales_present(records):
        out.extend(_comparisons(records, scale))
    return out


def _comparisons(records, scale) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for mkey, mlabel, fn, which, kind in METRICS:
        for space in metric_spaces(which):
            groups = R.group(records, kind, space, scale=scale)
            ref = next((k for k in groups if _is_ref(k)), None)
            if ref is None:
                continue
            xs = [fn(r) for r in groups[ref] if R.is_ok(r)]
            fam = []
            for k, rs in groups.items():
                if k == ref:
                    continue
                ys = [fn(r) for r in rs if R.is_ok(r)]
                c = compare(xs, ys)
                c.update(
                    {
                        "space": space,
                        "metric": mkey,
                        "metric_label": mlabel,
                        "a": R.group_label(groups[ref][0]),
                        "b": R.group_label(rs[0]),
                        "scale": scale,
                        "dataset": R.dataset_label(groups[ref] + rs),
                    }
                )
                fam.append(c)
            for name in ("welch_p", "mwu_p"):
                adj = holm([c[name] for c in fam])
                for c, a in zip(fam, adj):
                    c[name + "_holm"] = a
            for c in fam:
                c["family_size"] = len(fam)
            out.extend(fam)
    return out


def statistics_table(comps: List[Dict[str, Any]]) -> Table:
    cols = [
        "Space",
        "Metric",
        "Comparison",
        "n",
        "Means",
        "Diff",
        "Welch t",
        "p (Holm)",
        "MWU U",
        "p (Holm)",
        "Hedges' g",
        "rank-biserial",
        "Scale",
        "Notes",
    ]
    t = Table("statistics", "Statistics: MiLeNAS (λ=1) vs each other method (two-sided)", cols)
    for c in comps:
        notes = "; ".join(x for x in (c.get("welch_reason"), c.get("mwu_reason"), c.get("effect_reason")) if x)
        t.rows.append(
            [
                R.space_label(c["space"]),
                c["metric_label"],
                f"{c['a']} vs {c['b']}",
                f"{c['n1']} vs {c['n2']}",
                f"{fmt(c['mean1'])} vs {fmt(c['mean2'])}",
                fmt(c["diff"]),
                fmt(c["welch_t"]),
                f"{fmt_p(c['welch_p'])} ({fmt_p(c['welch_p_holm'])})",
                fmt(c["mwu_U"], 1),
                f"{fmt_p(c['mwu_p'])} ({fmt_p(c['mwu_p_holm'])})",
                fmt(c["hedges_g"]),
                fmt(c["rank_biserial"]),
                c["scale"],
                notes,
            ]
        )
    t.caption = (
        "Per (space, metric) family: MiLeNAS λ=1 against every other method group; Holm correction over the "
        "family (family size = number of comparators); unadjusted p first, Holm-adjusted in parentheses. "
        "Seeds are the unit of replication; failed runs excluded. With n ≤ 3 per group these tests have "
        "very little power; treat them as descriptive."
    )
    return t


SHORT_METRIC = {
    "c10_bench": "NB201 C10 test of final cell (%)",
    "best_val": "best search-val acc (%)",
    "gap": "train − val gap (pp)",
    "search_s": "search seconds",
    "test_error": "eval test error (%)",
}


def compact_table(comps: List[Dict[str, Any]]) -> Table:
    """One row per comparison with the key numbers only (the full set is statistics.csv)."""
    scales = sorted({c["scale"] for c in comps})
    multi = len(scales) > 1
    cols = (["Scale"] if multi else []) + [
        "Space",
        "Metric",
        "MiLeNAS vs",
        "n",
        "Δ mean",
        "Hedges' g",
        "Welch p (Holm)",
        "MWU p (Holm)",
    ]
    t = Table("statistics_compact", "Statistics: MiLeNAS (λ=1) vs each other method, key numbers", cols)
    for c in comps:
        row = [c["scale"]] if multi else []
        row += [
            R.space_label(c["space"]),
            SHORT_METRIC.get(c["metric"], c["metric_label"]),
            c["b"],
            f"{c['n1']}/{c['n2']}",
            fmt(c["diff"]),
            fmt(c["hedges_g"]),
            fmt_p(c["welch_p_holm"]),
            fmt_p(c["mwu_p_holm"]),
        ]
        t.rows.append(row)
    t.caption = (
        "Two-sided tests, Holm-adjusted within each (scale, space, metric) family; Δ mean = MiLeNAS − "
        "comparator; n = ok seeds (MiLeNAS/comparator); n/a where a test needs ≥ 2 values per group. "
        "Unadjusted p-values, t and U statistics, rank-biserial r and notes: statistics.csv."
    )
    return t
