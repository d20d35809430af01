"""Verdicts on the MiLeNAS paper's testable claims, one per (claim, space, scale).

Outcomes: "reproduced", "not reproduced", "inconclusive (...)", "not tested (no runs ...)".
Scales are never pooled: a run folder holding several scales gets one verdict per scale, shown side
by side.  Scale gate: a smoke-scale verdict is capped at "inconclusive (smoke scale: not a
reproduction)"; relative claims (orderings, speed ratios) at cpu / gpu-quick / custom scale are
reported as "... at reduced scale (<scale>)"; the absolute Table-1 claim needs scale "paper".
The rule text, numbers, effect with CI, n, n_needed (seeds per group that would decide the rule at
80 % power, ``reports.power``) and its cost, scale and dataset label travel with every verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import hypergrad as HG
from . import power as PW
from . import published as P
from . import runs as R
from .stats import clean, fmt, fmt_p, holm, mann_whitney, ratio_of_means_ci, welch, welch_diff_ci
from .tables import Table

ALPHA = 0.05
SPEED_BOUND = 2.5  # "≈3× faster": reproduced if the 95 % CI of the time ratio lies at or above 2.5
TABLE1_TOL_NO_STD = 0.2  # pp tolerance for published rows without a std
PARAMS_TOL = 0.05  # relative tolerance on params
FIG5_LIKE_FOR_LIKE = "gdas-milenas-repo"  # GDAS as run in the MiLeNAS repo's Fig. 5 (per-cell samples, α→w)
NOT_LIKE_FOR_LIKE = "not like-for-like: gdas samples once per network and steps w→α"

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
INCONCLUSIVE = "inconclusive"
SMOKE_CAP = "inconclusive (smoke scale: not a reproduction)"
CLAIM_ORDER = ["Fig. 2", "Fig. 3a", "Fig. 3b", "Fig. 5", HG.CLAIM, "Table 1"]
SHORT = {
    "Fig. 2": "train−val gap: single-level > MiLeNAS > bilevel",
    "Fig. 3a": "best search-val acc: MiLeNAS > DARTS 2nd",
    "Fig. 3b": "time: DARTS 2nd / MiLeNAS ≈ 3×",
    "Fig. 5": "best search-val acc: MiLeNAS-Gumbel > GDAS",
    HG.CLAIM: HG.SHORT,
    "Table 1": "MiLeNAS test error & params vs published",
}


@dataclass
class Verdict:
    claim: str
    statement: str
    space: str
    verdict: str
    rule: str
    numbers: str = ""
    n: str = ""
    scale: str = ""
    dataset: str = ""
    raw: str = ""  # the outcome of the rule before the scale gate
    effect: str = ""  # observed effect with its 95 % CI, e.g. "Δ +10.0 pp (95 % CI +8.1 to +11.9)"
    effects: List[Dict[str, Any]] = field(default_factory=list)  # [{name, value, low, high, unit}]
    n_needed: Optional[int] = None  # seeds per group that would decide the rule (80 % power)
    n_needed_reason: Optional[str] = None  # why n_needed is None
    n_have: Optional[int] = None  # finished seeds in the smallest group
    power: Dict[str, Any] = field(default_factory=dict)  # reports.power.PowerResult.as_dict()
    cost_hours: Optional[float] = None  # device-hours of the seeds still to run at this scale
    cost_unit: str = ""
    cost_detail: str = ""
    power_text: str = ""  # the sentence printed next to the verdict

    def as_dict(self):
        return asdict(self)


def _gate(raw: str, scale: str, relative: bool = True) -> str:
    if raw not in (REPRODUCED, NOT_REPRODUCED):
        return raw
    if scale in ("smoke", "none"):
        return SMOKE_CAP
    if scale == "paper":
        return raw
    if not relative:
        return f"inconclusive ({scale} scale: absolute numbers need the paper protocol)"
    return f"{raw} at reduced scale ({scale})"


def _vals(recs, fn):
    return [fn(r) for r in recs if R.is_ok(r)]


def _mean(xs):
    a = clean(xs)
    return float(a.mean()) if a.size else float("nan")


def _desc(name, xs, digits=2):
    a = clean(xs)
    if not a.size:
        return f"{name}: no values"
    if a.size == 1:
        return f"{name} {a[0]:.{digits}f} (n=1)"
    return f"{name} {a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f} (n={a.size})"


def _signed(v, digits=2) -> str:
    return f"{v:+.{digits}f}".replace("-", "−") if v is not None and math.isfinite(v) else "n/a"


def _diff_effect(name: str, x, y, unit: str = "pp") -> Dict[str, Any]:
    d, lo, hi, why = welch_diff_ci(x, y)
    return {"name": name, "value": d, "low": lo, "high": hi, "unit": unit, "reason": why}


def _effect_text(e: Dict[str, Any]) -> str:
    unit = e.get("unit", "")
    if unit == "×":
        core = f"{fmt(e['value'])}×"
        ci = f"95 % CI {fmt(e['low'])}–{fmt(e['high'])}×" if math.isfinite(e.get("low", float("nan"))) else "no CI"
    else:
        core = f"{_signed(e['value'])} {unit}".strip()
        ci = (
            f"95 % CI {_signed(e['low'])} to {_signed(e['high'])}"
            if math.isfinite(e.get("low", float("nan")))
            else "no CI"
        )
    pre = f"{e['name']} " if e.get("name") else ""
    return f"{pre}{core} ({ci})"


def _set_effects(v: "Verdict", effects: List[Dict[str, Any]]) -> None:
    v.effects = effects
    v.effect = "; ".join(_effect_text(e) for e in effects if e.get("value") is not None and math.isfinite(e["value"]))


def _set_power(v: "Verdict", p: PW.PowerResult, groups: List[Tuple[str, List[Dict[str, Any]]]]) -> None:
    """n_needed, its reason, the cost of the missing seeds (this scale's own search seconds) and the text."""
    v.n_needed, v.n_needed_reason, v.power = p.n_needed, p.reason, p.as_dict()
    n_have = min((sum(R.is_ok(r) for r in rs) for _, rs in groups), default=0)
    v.n_have = n_have
    cost = PW.seed_cost(groups, p.n_needed)
    if cost is not None:
        v.cost_hours, v.cost_unit, v.cost_detail = cost.hours, cost.unit, cost.detail or (cost.reason or "")
    v.power_text = PW.power_text(p, n_have, cost, v.scale)


def _one_sided(x, y):
    """Outcome for the claim mean(x) > mean(y): (raw outcome, p_claim, p_reverse)."""
    a, b = clean(x), clean(y)
    wt = welch(a, b, "greater")
    wr = welch(a, b, "less")
    if wt.reason:
        return INCONCLUSIVE + f" ({wt.reason})", wt.p, wr.p
    if wt.p < ALPHA:
        return REPRODUCED, wt.p, wr.p
    if wr.p < ALPHA:
        return NOT_REPRODUCED, wt.p, wr.p
    return INCONCLUSIVE + " (difference not significant at 0.05)", wt.p, wr.p


def _spaces(records, kind="search"):
    return [s for s in R.spaces() if any(r.get("space") == s and r.get("kind", "search") == kind for r in records)]


def _sel(records, space, method, default_only=True, kind="search"):
    return [
        r
        for r in records
        if r.get("space") == space
        and r.get("method") == method
        and r.get("kind", "search") == kind
        and (not default_only or R.is_default_variant(r))
    ]


def _missing(need: Dict[str, List]) -> Optional[str]:
    miss = [k for k, v in need.items() if not any(R.is_ok(r) for r in v)]
    return ("not tested (no runs of " + ", ".join(miss) + ")") if miss else None


def _claim_text(pub, key, default):
    return ((pub.get("milenas") or {}).get("claims") or {}).get(key, default)


def _not_tested(v: Verdict, text: str) -> Verdict:
    v.verdict = v.raw = text
    v.n_needed_reason = "no runs to estimate an effect from"
    v.power_text = f"n_needed not estimated: {v.n_needed_reason}"
    return v


# ------------------------------------------------------------------------------------------ claims
def fig2(records, pub, space) -> Verdict:
    st = _claim_text(pub, "fig2", "gap ordering")
    single = _sel(records, space, "single-level")
    mil = _sel(records, space, "milenas")
    bil = _sel(records, space, "darts-1st") + _sel(records, space, "darts-2nd")
    n_single, n_mil = R.method_label("single-level"), R.method_label("milenas")
    rule = (
        "per run: train_acc − val_acc at the last search epoch; bilevel = DARTS 1st + 2nd order pooled. "
        f"Reproduced if both one-sided Welch tests ({n_single} > {n_mil}, {n_mil} > bilevel) have Holm-adjusted "
        "p < 0.05; not reproduced if either difference is significant (Holm p < 0.05) in the opposite direction; "
        "otherwise inconclusive."
    )
    v = Verdict("Fig. 2", st, space, "", rule)
    allr = single + mil + bil
    v.scale, v.dataset = R.scale_of(allr), R.dataset_label(allr)
    miss = _missing({n_single: single, f"{n_mil} (λ=1)": mil, "DARTS (bilevel)": bil})
    xs, ys, zs = _vals(single, R.last_gap), _vals(mil, R.last_gap), _vals(bil, R.last_gap)
    v.numbers = "; ".join([_desc(n_single, xs), _desc(n_mil, ys), _desc("bilevel", zs)]) + " (gap, pp)"
    v.n = f"{len(clean(xs))}/{len(clean(ys))}/{len(clean(zs))}"
    if miss:
        return _not_tested(v, miss)
    _set_effects(v, [_diff_effect(f"{n_single} − {n_mil}", xs, ys), _diff_effect(f"{n_mil} − bilevel", ys, zs)])
    _set_power(
        v,
        PW.ordering_claim([(f"{n_single} vs {n_mil}", xs, ys), (f"{n_mil} vs bilevel", ys, zs)]),
        [(n_single, single), (n_mil, mil), ("bilevel (DARTS 1st + 2nd)", bil)],
    )
    t1, t2 = welch(xs, ys, "greater"), welch(ys, zs, "greater")
    r1, r2 = welch(xs, ys, "less"), welch(ys, zs, "less")
    if t1.reason or t2.reason:
        v.raw = INCONCLUSIVE + f" ({t1.reason or t2.reason})"
    else:
        pc = holm([t1.p, t2.p])
        pr = holm([r1.p, r2.p])
        v.numbers += (
            f"; Holm p (claimed direction) {fmt_p(pc[0])}, {fmt_p(pc[1])}; reverse {fmt_p(pr[0])}, {fmt_p(pr[1])}"
        )
        if pc[0] < ALPHA and pc[1] < ALPHA:
            v.raw = REPRODUCED
        elif pr[0] < ALPHA or pr[1] < ALPHA:
            v.raw = NOT_REPRODUCED
        else:
            v.raw = INCONCLUSIVE + " (not significant at 0.05)"
    order_ok = _mean(xs) > _mean(ys) > _mean(zs)
    v.numbers += f"; observed mean ordering {'matches' if order_ok else 'does not match'} the claim"
    v.verdict = _gate(v.raw, v.scale)
    return v


def _best_val_claim(records, pub, space, claim, a_method, b_method, note: Optional[str] = None) -> Verdict:
    """mean best search-val accuracy of a_method > b_method (one-sided Welch).  ``note``: a reason the
    comparison cannot decide the claim (the verdict then stays inconclusive, with the note)."""
    a_name, b_name = R.method_label(a_method), R.method_label(b_method)
    key = {"Fig. 3a": "fig3a", "Fig. 5": "fig5"}[claim]
    st = _claim_text(pub, key, claim)
    a, b = _sel(records, space, a_method), _sel(records, space, b_method)
    rule = (
        f"per run: best (max over epochs) search-val accuracy of the supernet. Reproduced if one-sided Welch "
        f"p < 0.05 for {a_name} > {b_name}; not reproduced if p < 0.05 in the opposite direction; otherwise "
        "inconclusive (Mann–Whitney p reported alongside)."
    )
    if claim == "Fig. 5":
        rule += (
            f" The like-for-like comparator is {R.method_label(FIG5_LIKE_FOR_LIKE)} ({FIG5_LIKE_FOR_LIKE}: "
            "GDAS as run in the MiLeNAS repo's Fig. 5, per-cell sampling, α→w, batch 128); when only plain "
            f"gdas runs exist they are compared but the verdict stays inconclusive ({NOT_LIKE_FOR_LIKE})."
        )
    v = Verdict(claim, st, space, "", rule)
    v.scale, v.dataset = R.scale_of(a + b), R.dataset_label(a + b)
    xs, ys = _vals(a, R.best_val), _vals(b, R.best_val)
    v.numbers = f"{_desc(a_name, xs)}; {_desc(b_name, ys)} (best val acc %)"
    v.n = f"{len(clean(xs))}/{len(clean(ys))}"
    if claim == "Fig. 5":
        ref = P.gumbel_reference(pub)
        if ref:
            v.numbers += (
                f"; published (DARTS space, CIFAR-10 original, full search): "
                f"{ref['milenas-gumbel']['search_val_acc']} vs {ref['gdas']['search_val_acc']}"
            )
    miss = _missing({a_name: a, b_name: b})
    if miss:
        return _not_tested(v, miss)
    _set_effects(v, [_diff_effect(f"{a_name} − {b_name}", xs, ys)])
    raw, pc, pr = _one_sided(xs, ys)
    u = mann_whitney(xs, ys, "greater")
    v.numbers += f"; Welch p (claimed direction) {fmt_p(pc)}, reverse {fmt_p(pr)}; MWU p {fmt_p(u.p)}"
    if note:
        v.numbers += f"; {note}"
        v.raw = INCONCLUSIVE + f" ({note})"
        _set_power(
            v,
            PW.not_a_test(
                f"the comparator is plain {b_method} (not like-for-like): more seeds of this "
                f"pair do not decide the claim; run {FIG5_LIKE_FOR_LIKE}"
            ),
            [(a_name, a), (b_name, b)],
        )
    else:
        v.raw = raw
        _set_power(v, PW.mean_claim(xs, ys), [(a_name, a), (b_name, b)])
    v.verdict = _gate(v.raw, v.scale)
    return v


def fig3a(records, pub, space) -> Verdict:
    return _best_val_claim(records, pub, space, "Fig. 3a", "milenas", "darts-2nd")


def fig5(records, pub, space) -> Verdict:
    """MiLeNAS-Gumbel vs GDAS as run in the MiLeNAS repo; plain gdas only as a not-like-for-like stand-in."""
    repo = _sel(records, space, FIG5_LIKE_FOR_LIKE)
    plain = _sel(records, space, "gdas")
    if not any(R.is_ok(r) for r in repo) and any(R.is_ok(r) for r in plain):
        return _best_val_claim(records, pub, space, "Fig. 5", "milenas-gumbel", "gdas", note=NOT_LIKE_FOR_LIKE)
    return _best_val_claim(records, pub, space, "Fig. 5", "milenas-gumbel", FIG5_LIKE_FOR_LIKE)


def fig3b(records, pub, space) -> Verdict:
    st = _claim_text(pub, "fig3b", "≈3× faster")
    mil, d2 = _sel(records, space, "milenas"), _sel(records, space, "darts-2nd")
    n_mil, n_d2 = R.method_label("milenas"), R.method_label("darts-2nd")
    rule = (
        f"ratio of mean seconds per iteration, {n_d2} / {n_mil}, with a 95 % percentile bootstrap CI "
        f"(groups resampled independently, fixed seed). Reproduced if the CI lies at or above {SPEED_BOUND}× "
        f"(≈3× with tolerance); not reproduced if the CI lies below {SPEED_BOUND}×; inconclusive if it straddles "
        f"{SPEED_BOUND}, if n < 2 per group, or if the runs ran on different devices. Pass-count expectation: "
        "5 vs 3 forward/backward passes per iteration ≈ 1.67× (docs/methods/darts-2nd.md#what-it-computes, "
        "docs/methods/milenas.md#what-it-computes)."
    )
    v = Verdict("Fig. 3b", st, space, "", rule)
    v.scale, v.dataset = R.scale_of(mil + d2), R.dataset_label(mil + d2)
    miss = _missing({f"{n_mil} (λ=1)": mil, n_d2: d2})

    def spi(r):
        return R.final_value(r, "seconds_per_iteration")

    def tot(r):
        return R.final_value(r, "search_seconds")

    xs, ys = _vals(d2, spi), _vals(mil, spi)
    v.n = f"{len(clean(xs))}/{len(clean(ys))}"
    if miss:
        v.numbers = "; ".join([_desc(f"{n_d2} s/iter", xs, 4), _desc(f"{n_mil} s/iter", ys, 4)])
        return _not_tested(v, miss)
    ratio, lo, hi, why = ratio_of_means_ci(xs, ys)
    rt, lt, ht, _ = ratio_of_means_ci(_vals(d2, tot), _vals(mil, tot))
    devs = R.devices([r for r in mil + d2 if R.is_ok(r)])
    v.numbers = (
        f"{_desc(f'{n_d2} s/iter', xs, 4)}; {_desc(f'{n_mil} s/iter', ys, 4)}; ratio per iteration "
        f"{fmt(ratio)}× (95 % CI {fmt(lo)}–{fmt(hi)}); ratio of total search time {fmt(rt)}× "
        f"(95 % CI {fmt(lt)}–{fmt(ht)}); device {', '.join(devs) or 'not recorded'}"
    )
    _set_effects(v, [{"name": "time ratio", "value": ratio, "low": lo, "high": hi, "unit": "×", "reason": why}])
    groups = [(n_d2, d2), (n_mil, mil)]
    if len(devs) > 1:
        v.raw = INCONCLUSIVE + " (runs on different devices)"
        _set_power(v, PW.not_a_test("runs on different devices: times are not comparable"), groups)
    else:
        _set_power(v, PW.ratio_claim(xs, ys, SPEED_BOUND), groups)
        if why:
            v.raw = INCONCLUSIVE + f" ({why})"
        elif lo >= SPEED_BOUND:
            v.raw = REPRODUCED
        elif hi < SPEED_BOUND:
            v.raw = NOT_REPRODUCED
        else:
            v.raw = INCONCLUSIVE + f" (CI straddles {SPEED_BOUND}×)"
    v.verdict = _gate(v.raw, v.scale)
    return v


def table1(records, pub) -> Verdict:
    st = _claim_text(pub, "table1", "Table 1")
    space = R.spaces(judged_by="evaluation")[0]  # the space whose cells Table 1 evaluates
    ev = [
        r
        for r in records
        if r.get("space") == space
        and r.get("kind") == "evaluation"
        and r.get("method") == "milenas"
        and R.is_default_variant(r)
    ]
    rule = (
        "mean test error of MiLeNAS evaluation runs vs the published MiLeNAS Table-1 row nearest in params: "
        "reproduced if |mean error − published mean| ≤ 2σ_published (σ = published std; "
        f"{TABLE1_TOL_NO_STD} pp when the row has no std) and params within ±{PARAMS_TOL:.0%}; requires "
        "scale 'paper' (600-epoch evaluation). On the JPEG q75 copy a higher error is reported as inconclusive "
        "(the copy lowers absolute accuracy)."
    )
    v = Verdict("Table 1", st, space, "", rule)
    v.scale, v.dataset = R.scale_of(ev), R.dataset_label(ev)
    ok = [r for r in ev if R.is_ok(r)]
    errs = clean([R.final_value(r, "test_error") for r in ok])
    params = clean([r.get("params_M") for r in ok])
    v.n = str(errs.size)
    if not ok or not errs.size:
        return _not_tested(v, "not tested (no MiLeNAS evaluation runs)")
    rows = [r for r in P.milenas_table1_rows(pub) if r.get("params_M")]
    if not rows:
        return _not_tested(v, "not tested (published Table 1 missing)")
    pm = float(params.mean()) if params.size else float("nan")
    row = min(rows, key=lambda r: abs(r["params_M"] - pm) if math.isfinite(pm) else 0)
    tol = 2 * row["error_std"] if row.get("error_std") is not None else TABLE1_TOL_NO_STD
    m = float(errs.mean())
    v.numbers = (
        f"{_desc('ours test error', errs)} %, params {fmt(pm, 3)} M; published row "
        f"{row['error_mean']}"
        + (f" ± {row['error_std']}" if row.get("error_std") is not None else "")
        + f" %, {row['params_M']} M (cell {row.get('genotype')} — mapping inferred); tolerance ±{tol:.2f} pp"
    )
    from .stats import ci_t

    lo, hi, why = ci_t(errs)
    _set_effects(
        v,
        [
            {
                "name": "error − published",
                "value": m - row["error_mean"],
                "low": lo - row["error_mean"],
                "high": hi - row["error_mean"],
                "unit": "pp",
                "reason": why,
            }
        ],
    )
    _set_power(
        v,
        PW.not_a_test(
            "absolute rule against a published tolerance, not a test: more seeds do not "
            "decide it (it needs the paper protocol)"
        ),
        [("MiLeNAS evaluation", ev)],
    )
    err_ok = abs(m - row["error_mean"]) <= tol
    par_ok = math.isfinite(pm) and abs(pm - row["params_M"]) <= PARAMS_TOL * row["params_M"]
    if err_ok and par_ok:
        v.raw = REPRODUCED
    elif m > row["error_mean"] + tol and "JPEG" in v.dataset and par_ok:
        v.raw = INCONCLUSIVE + " (error above tolerance on the JPEG q75 copy, which lowers accuracy)"
    else:
        v.raw = NOT_REPRODUCED
    v.verdict = _gate(v.raw, v.scale, relative=False)
    return v


def hypergrad_error(records, pub, space) -> Verdict:
    """§2.2–3: DARTS' hypergradient error grows as α approaches its optimum (``reports.hypergrad.RULE``), from the
    ``hooks.hypergrad`` measurements of search records; no seed comparison, so no n_needed."""
    recs = HG.measured_records(records, space)
    v = Verdict(HG.CLAIM, HG.STATEMENT, space, "", HG.RULE)
    v.scale, v.dataset = R.scale_of(recs), R.dataset_label(recs)
    v.n_needed_reason = "a trend over the measured epochs of a search, not a comparison of seeds"
    v.power_text = f"n_needed not estimated: {v.n_needed_reason}"
    if not recs:
        return _not_tested(v, "not tested (no search with hypergrad measurements)")
    docs = [HG.series_of(r) for r in recs]
    parts, raw = [], None
    for method in (HG.PRIMARY, HG.SECONDARY):
        xs, ys, total = HG.points(docs, method)
        name = R.method_label(method)
        if len(xs) < HG.MIN_POINTS:
            parts.append(f"{name}: {len(xs)} of {total} measured epochs with a converged reference")
            if method == HG.PRIMARY:
                raw = INCONCLUSIVE + f" (only {len(xs)} epochs with a converged reference; {HG.MIN_POINTS} needed)"
                v.n = str(len(xs))
            continue
        rho, p_pos, p_neg = HG.spearman_test(xs, ys)
        parts.append(
            f"{name}: ρ(cosine, distance) = {rho:+.2f} (one-sided p {fmt_p(p_pos)} for ρ > 0, "
            f"{fmt_p(p_neg)} for ρ < 0; n = {len(xs)}); cosine {min(ys):.2f}…{max(ys):.2f}"
        )
        if method == HG.PRIMARY:
            v.n = str(len(xs))
            _set_effects(
                v,
                [
                    {
                        "name": "Spearman ρ",
                        "value": rho,
                        "low": float("nan"),
                        "high": float("nan"),
                        "unit": "",
                        "reason": "no CI",
                    }
                ],
            )
            if rho > 0 and p_pos < ALPHA:
                raw = REPRODUCED
            elif rho < 0 and p_neg < ALPHA:
                raw = NOT_REPRODUCED
            else:
                raw = INCONCLUSIVE + f" (no significant trend at {ALPHA})"
    fd = [
        x
        for d in docs
        for errs in (d.get("hvp_error") or {}).values()
        for x in errs.get("float32", [])
        if x is not None
    ]
    if fd:
        parts.append(f"FD HVP relative error (float32) {min(fd):.2e}…{max(fd):.2e}")
    v.raw = raw or INCONCLUSIVE
    v.numbers = "; ".join(parts)
    v.verdict = _gate(v.raw, v.scale)
    return v


CLAIMS = (fig2, fig3a, fig3b, fig5)


def verdicts(records, pub) -> List[Verdict]:
    """One verdict per (claim, space, scale): records of different scales are never pooled."""
    out: List[Verdict] = []
    if not _spaces(records):
        for c, key in (("Fig. 2", "fig2"), ("Fig. 3a", "fig3a"), ("Fig. 3b", "fig3b"), ("Fig. 5", "fig5")):
            v = Verdict(c, _claim_text(pub, key, c), "–", "", "–", scale="none")
            out.append(_not_tested(v, "not tested (no runs)"))
    by = R.by_scale(records)
    for scale, recs in by.items():
        for sp in _spaces(recs):
            for claim in CLAIMS + ((hypergrad_error,) if HG.measured_records(recs, sp) else ()):
                v = claim(recs, pub, sp)
                v.scale = scale
                out.append(v)
    eval_scales = [s for s, recs in by.items() if any(r.get("kind") == "evaluation" for r in recs)]
    for scale in eval_scales:
        v = table1(by[scale], pub)
        v.scale = scale
        out.append(v)
    if not eval_scales:
        v = table1(records, pub)
        v.scale = next(iter(by)) if len(by) == 1 else "none"
        out.append(v)
    sc_rank = {s: i for i, s in enumerate(R.SCALE_ORDER)}
    out.sort(
        key=lambda v: (
            v.claim == "Table 1",
            R.space_rank(v.space),
            CLAIM_ORDER.index(v.claim) if v.claim in CLAIM_ORDER else 99,
            sc_rank.get(v.scale, -1),
        )
    )
    return out


def n_needed_cell(v: Verdict) -> str:
    """Short n_needed cell: '9 (≈ 2.1 CPU-h)', '2 (enough)', or '–' with a few words of why."""
    if v.n_needed is not None:
        n_have = getattr(v, "n_have", None)
        if n_have is not None and v.n_needed <= n_have:
            return f"{v.n_needed} (enough)"
        if v.cost_hours is not None:
            unit = v.cost_unit.split(" ")[0].replace("-hours", "-h")
            return f"{v.n_needed} (≈ {PW.fmt_hours(v.cost_hours)} {unit})"
        return str(v.n_needed)
    r = (v.n_needed_reason or "").lower()
    for key, short in (
        ("no runs", "no runs"),
        ("at least 2", "n < 2"),
        ("like-for-like", "not like-for-like"),
        ("not a test", "not a test"),
        ("devices", "devices differ"),
        ("zero spread", "zero spread"),
        ("too small", "> 10,000"),
        ("exactly zero", "zero effect"),
    ):
        if key in r:
            return f"– ({short})"
    return "–"


def summary_table(vs: List[Verdict]) -> Table:
    """The verdicts at a glance: claim, verdict, effect with CI, n, n_needed and the seeds sentence."""
    multi = len({v.scale for v in vs}) > 1
    cols = (
        ["Claim", "Space"]
        + (["Scale"] if multi else [])
        + ["Verdict", "Effect (95 % CI)", "n", "n_needed", "Seeds to decide"]
    )
    t = Table("verdict_summary", "Verdicts at a glance", cols)
    for v in vs:
        t.rows.append(
            [f"{v.claim}: {SHORT.get(v.claim, '')}", R.space_label(v.space)]
            + ([v.scale] if multi else [])
            + [v.verdict, v.effect or "–", v.n or "–", n_needed_cell(v), v.power_text or "–"]
        )
    t.caption = (
        "n = finished seeds per group (in the order of the claim's groups); n_needed = seeds per group at "
        "which the verdict's own test reaches 80 % power at α = 0.05 given the observed effect and spread, "
        "with the cost of the missing seeds from this scale's recorded search time. Rules and numbers: "
        "the full verdict table."
    )
    return t


def verdict_table(vs: List[Verdict]) -> Table:
    cols = [
        "Claim",
        "Space",
        "Scale",
        "Verdict",
        "Effect (95 % CI)",
        "n",
        "n_needed",
        "Seeds to decide (cost)",
        "Numbers",
        "Dataset",
        "Rule",
    ]
    # n lists the groups in the order of the Numbers column; n_needed = seeds per group (80 % power, α = 0.05)
    t = Table("verdicts", "Verdicts on the MiLeNAS paper's claims", cols)
    for v in vs:
        t.rows.append(
            [
                f"{v.claim}: {v.statement}",
                R.space_label(v.space),
                v.scale or "–",
                v.verdict,
                v.effect or "–",
                v.n or "–",
                str(v.n_needed) if v.n_needed is not None else "–",
                v.power_text or "–",
                v.numbers or "–",
                v.dataset or "–",
                v.rule,
            ]
        )
    t.caption = (
        "One row per claim, space and scale (scales are never pooled). Scale gate: a smoke-scale verdict is "
        "capped at 'inconclusive (smoke scale: not a reproduction)'; cpu / gpu-quick / custom scale gives "
        "'at reduced scale'; only paper scale can reproduce absolute numbers. n_needed: seeds per group at "
        "which the verdict's own test reaches 80 % power at α = 0.05 given the observed effect and spread "
        "(Welch t via the noncentral t; the worst pair of an ordering; the log-ratio for speed ratios); "
        "the cost uses this scale's mean search seconds per run. The paper's own claims are for the DARTS "
        "space on CIFAR-10 (original); NB201 rows test the same orderings on another space."
    )
    return t


def scale_table(vs: List[Verdict]) -> Table:
    """Claim × scale: each claim's verdict per scale side by side."""
    scales = [s for s in R.SCALE_ORDER if any(v.scale == s for v in vs)]
    scales += sorted({v.scale for v in vs if v.scale and v.scale not in scales and v.scale != "none"})
    t = Table("verdicts_by_scale", "Verdicts per scale, side by side", ["Claim", "Space"] + scales)
    rows: Dict[Tuple[str, str], Dict[str, Verdict]] = {}
    for v in vs:
        rows.setdefault((v.claim, v.space), {})[v.scale] = v
    for (claim, space), per in rows.items():
        cells = []
        for s in scales:
            got = per.get(s)
            cells.append("–" if got is None else f"{got.verdict}; n = {got.n or '–'}; n_needed = {n_needed_cell(got)}")
        t.rows.append([f"{claim}: {SHORT.get(claim, '')}", R.space_label(space)] + cells)
    t.caption = (
        "Each cell is computed from that scale's runs only; a claim may be reproduced at one scale and "
        "inconclusive at another. n = ok seeds per group; n_needed = seeds per group for 80 % power."
    )
    return t


def by_scale_dict(vs: List[Verdict]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{"Fig. 2 | nb201": {"smoke": {verdict, n, n_needed, ...}, "cpu": {...}}}`` for report.json."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for v in vs:
        out.setdefault(f"{v.claim} | {v.space}", {})[v.scale] = {
            "verdict": v.verdict,
            "raw": v.raw,
            "n": v.n,
            "n_needed": v.n_needed,
            "n_needed_reason": v.n_needed_reason,
            "effect": v.effect,
            "cost_hours": v.cost_hours,
            "cost_unit": v.cost_unit,
        }
    return out
