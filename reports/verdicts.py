"""Verdicts on the MiLeNAS paper's testable claims.

Outcomes: "reproduced", "not reproduced", "inconclusive (...)", "not tested (no runs ...)".
Scale gate: a claim whose runs include any smoke-scale record is capped at
"inconclusive (smoke scale: not a reproduction)"; relative claims (orderings, speed ratios) at
cpu / gpu-quick scale are reported as "... at reduced scale (<scale>)"; the absolute Table-1 claim
needs scale "paper". The rule text, numbers, n, scale and dataset label travel with every verdict.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from . import published as P
from . import runs as R
from .stats import clean, fmt, fmt_p, holm, mann_whitney, ratio_of_means_ci, welch
from .tables import Table

ALPHA = 0.05
SPEED_BOUND = 2.5         # "≈3× faster": reproduced if the 95 % CI of the time ratio lies at or above 2.5
TABLE1_TOL_NO_STD = 0.2   # pp tolerance for published rows without a std
PARAMS_TOL = 0.05         # relative tolerance on params

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
INCONCLUSIVE = "inconclusive"
SMOKE_CAP = "inconclusive (smoke scale: not a reproduction)"
SHORT = {"Fig. 2": "train−val gap: single-level > MiLeNAS > bilevel",
         "Fig. 3a": "best search-val acc: MiLeNAS > DARTS 2nd",
         "Fig. 3b": "time: DARTS 2nd / MiLeNAS ≈ 3×",
         "Fig. 5": "best search-val acc: MiLeNAS-Gumbel > GDAS",
         "Table 1": "MiLeNAS test error & params vs published"}


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
    raw: str = ""        # the outcome of the rule before the scale gate

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


def _one_sided(x, y):
    """Outcome for the claim mean(x) > mean(y): (raw outcome, p_claim, p_reverse, reason)."""
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
    return [s for s in ("nb201", "darts") if any(r.get("space") == s and r.get("kind", "search") == kind for r in records)]


def _sel(records, space, method, default_only=True, kind="search"):
    return [r for r in records if r.get("space") == space and r.get("method") == method
            and r.get("kind", "search") == kind and (not default_only or R.is_default_variant(r))]


def _missing(need: Dict[str, List]) -> Optional[str]:
    miss = [k for k, v in need.items() if not any(R.is_ok(r) for r in v)]
    return ("not tested (no runs of " + ", ".join(miss) + ")") if miss else None


# ------------------------------------------------------------------------------------------ claims
def fig2(records, pub, space) -> Verdict:
    st = ((pub.get("milenas") or {}).get("claims") or {}).get("fig2", "gap ordering")
    single = _sel(records, space, "single-level")
    mil = _sel(records, space, "milenas")
    bil = _sel(records, space, "darts-1st") + _sel(records, space, "darts-2nd")
    rule = ("per run: train_acc − val_acc at the last search epoch; bilevel = DARTS 1st + 2nd order pooled. "
            "Reproduced if both one-sided Welch tests (single-level > MiLeNAS, MiLeNAS > bilevel) have Holm-adjusted "
            "p < 0.05; not reproduced if either difference is significant (Holm p < 0.05) in the opposite direction; "
            "otherwise inconclusive.")
    v = Verdict("Fig. 2", st, space, "", rule)
    allr = single + mil + bil
    v.scale, v.dataset = R.scale_of(allr), R.dataset_label(allr)
    miss = _missing({"single-level": single, "MiLeNAS (λ=1)": mil, "DARTS (bilevel)": bil})
    xs, ys, zs = _vals(single, R.last_gap), _vals(mil, R.last_gap), _vals(bil, R.last_gap)
    v.numbers = "; ".join([_desc("single-level", xs), _desc("MiLeNAS", ys), _desc("bilevel", zs)]) + " (gap, pp)"
    v.n = f"{len(clean(xs))}/{len(clean(ys))}/{len(clean(zs))}"
    if miss:
        v.verdict = v.raw = miss
        return v
    t1, t2 = welch(xs, ys, "greater"), welch(ys, zs, "greater")
    r1, r2 = welch(xs, ys, "less"), welch(ys, zs, "less")
    if t1.reason or t2.reason:
        v.raw = INCONCLUSIVE + f" ({t1.reason or t2.reason})"
    else:
        pc = holm([t1.p, t2.p])
        pr = holm([r1.p, r2.p])
        v.numbers += f"; Holm p (claimed direction) {fmt_p(pc[0])}, {fmt_p(pc[1])}; reverse {fmt_p(pr[0])}, {fmt_p(pr[1])}"
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


def _best_val_claim(records, pub, space, claim, a_method, b_method, a_name, b_name, pub_key=None) -> Verdict:
    st = ((pub.get("milenas") or {}).get("claims") or {}).get(pub_key or claim, claim)
    a, b = _sel(records, space, a_method), _sel(records, space, b_method)
    rule = (f"per run: best (max over epochs) search-val accuracy of the supernet. Reproduced if one-sided Welch "
            f"p < 0.05 for {a_name} > {b_name}; not reproduced if p < 0.05 in the opposite direction; otherwise "
            "inconclusive (Mann–Whitney p reported alongside).")
    v = Verdict({"fig3a": "Fig. 3a", "fig5": "Fig. 5"}[claim], st, space, "", rule)
    v.scale, v.dataset = R.scale_of(a + b), R.dataset_label(a + b)
    xs, ys = _vals(a, R.best_val), _vals(b, R.best_val)
    v.numbers = f"{_desc(a_name, xs)}; {_desc(b_name, ys)} (best val acc %)"
    v.n = f"{len(clean(xs))}/{len(clean(ys))}"
    if claim == "fig5":
        ref = P.gumbel_reference(pub)
        if ref:
            v.numbers += (f"; published (DARTS space, CIFAR-10 original, full search): "
                          f"{ref['milenas-gumbel']['search_val_acc']} vs {ref['gdas']['search_val_acc']}")
    miss = _missing({a_name: a, b_name: b})
    if miss:
        v.verdict = v.raw = miss
        return v
    raw, pc, pr = _one_sided(xs, ys)
    u = mann_whitney(xs, ys, "greater")
    v.numbers += f"; Welch p (claimed direction) {fmt_p(pc)}, reverse {fmt_p(pr)}; MWU p {fmt_p(u.p)}"
    v.raw = raw
    v.verdict = _gate(raw, v.scale)
    return v


def fig3b(records, pub, space) -> Verdict:
    st = ((pub.get("milenas") or {}).get("claims") or {}).get("fig3b", "≈3× faster")
    mil, d2 = _sel(records, space, "milenas"), _sel(records, space, "darts-2nd")
    rule = (f"ratio of mean seconds per iteration, DARTS 2nd order / MiLeNAS, with a 95 % percentile bootstrap CI "
            f"(groups resampled independently, fixed seed). Reproduced if the CI lies at or above {SPEED_BOUND}× "
            f"(≈3× with tolerance); not reproduced if the CI lies below {SPEED_BOUND}×; inconclusive if it straddles "
            f"{SPEED_BOUND}, if n < 2 per group, or if the runs ran on different devices. Pass-count expectation: "
            "5 vs 3 forward/backward passes per iteration ≈ 1.67× (spec §2.4, §3.2).")
    v = Verdict("Fig. 3b", st, space, "", rule)
    v.scale, v.dataset = R.scale_of(mil + d2), R.dataset_label(mil + d2)
    miss = _missing({"MiLeNAS (λ=1)": mil, "DARTS 2nd order": d2})
    spi = lambda r: R.final_value(r, "seconds_per_iteration")
    tot = lambda r: R.final_value(r, "search_seconds")
    xs, ys = _vals(d2, spi), _vals(mil, spi)
    v.n = f"{len(clean(xs))}/{len(clean(ys))}"
    if miss:
        v.verdict = v.raw = miss
        v.numbers = "; ".join([_desc("DARTS-2nd s/iter", xs, 4), _desc("MiLeNAS s/iter", ys, 4)])
        return v
    ratio, lo, hi, why = ratio_of_means_ci(xs, ys)
    rt, lt, ht, _ = ratio_of_means_ci(_vals(d2, tot), _vals(mil, tot))
    devs = R.devices([r for r in mil + d2 if R.is_ok(r)])
    v.numbers = (f"{_desc('DARTS-2nd s/iter', xs, 4)}; {_desc('MiLeNAS s/iter', ys, 4)}; ratio per iteration "
                 f"{fmt(ratio)}× (95 % CI {fmt(lo)}–{fmt(hi)}); ratio of total search time {fmt(rt)}× "
                 f"(95 % CI {fmt(lt)}–{fmt(ht)}); device {', '.join(devs) or 'not recorded'}")
    if len(devs) > 1:
        v.raw = INCONCLUSIVE + " (runs on different devices)"
    elif why:
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
    st = ((pub.get("milenas") or {}).get("claims") or {}).get("table1", "Table 1")
    ev = [r for r in records if r.get("space") == "darts" and r.get("kind") == "evaluation"
          and r.get("method") == "milenas" and R.is_default_variant(r)]
    rule = ("mean test error of MiLeNAS evaluation runs vs the published MiLeNAS Table-1 row nearest in params: "
            "reproduced if |mean error − published mean| ≤ 2σ_published (σ = published std; "
            f"{TABLE1_TOL_NO_STD} pp when the row has no std) and params within ±{PARAMS_TOL:.0%}; requires "
            "scale 'paper' (600-epoch evaluation). On the JPEG q75 copy a higher error is reported as inconclusive "
            "(the copy lowers absolute accuracy).")
    v = Verdict("Table 1", st, "darts", "", rule)
    v.scale, v.dataset = R.scale_of(ev), R.dataset_label(ev)
    ok = [r for r in ev if R.is_ok(r)]
    errs = clean([R.final_value(r, "test_error") for r in ok])
    params = clean([r.get("params_M") for r in ok])
    v.n = str(errs.size)
    if not ok or not errs.size:
        v.verdict = v.raw = "not tested (no MiLeNAS evaluation runs)"
        return v
    rows = [r for r in P.milenas_table1_rows(pub) if r.get("params_M")]
    if not rows:
        v.verdict = v.raw = "not tested (published Table 1 missing)"
        return v
    pm = float(params.mean()) if params.size else float("nan")
    row = min(rows, key=lambda r: abs(r["params_M"] - pm) if math.isfinite(pm) else 0)
    tol = 2 * row["error_std"] if row.get("error_std") is not None else TABLE1_TOL_NO_STD
    m = float(errs.mean())
    v.numbers = (f"{_desc('ours test error', errs)} %, params {fmt(pm, 3)} M; published row "
                 f"{row['error_mean']}" + (f" ± {row['error_std']}" if row.get("error_std") is not None else "")
                 + f" %, {row['params_M']} M (cell {row.get('genotype')} — mapping inferred); tolerance ±{tol:.2f} pp")
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


def verdicts(records, pub) -> List[Verdict]:
    out: List[Verdict] = []
    spaces = _spaces(records)
    if not spaces:
        for c, key in (("Fig. 2", "fig2"), ("Fig. 3a", "fig3a"), ("Fig. 3b", "fig3b"), ("Fig. 5", "fig5")):
            st = ((pub.get("milenas") or {}).get("claims") or {}).get(key, c)
            out.append(Verdict(c, st, "–", "not tested (no runs)", "–", raw="not tested (no runs)"))
    for sp in spaces:
        out.append(fig2(records, pub, sp))
        out.append(_best_val_claim(records, pub, sp, "fig3a", "milenas", "darts-2nd", "MiLeNAS (λ=1)", "DARTS 2nd order"))
        out.append(fig3b(records, pub, sp))
        out.append(_best_val_claim(records, pub, sp, "fig5", "milenas-gumbel", "gdas", "MiLeNAS-Gumbel", "GDAS"))
    out.append(table1(records, pub))
    return out


def verdict_table(vs: List[Verdict]) -> Table:
    cols = ["Claim", "Space", "Verdict", "Numbers", "n", "Scale", "Dataset", "Rule"]
    # n lists the groups in the order of the Numbers column
    t = Table("verdicts", "Verdicts on the MiLeNAS paper's claims", cols)
    for v in vs:
        t.rows.append([f"{v.claim}: {v.statement}", R.SPACE_NAMES.get(v.space, v.space), v.verdict, v.numbers or "–",
                       v.n or "–", v.scale or "–", v.dataset or "–", v.rule])
    t.caption = ("Scale gate: any smoke-scale run caps a verdict at 'inconclusive (smoke scale: not a reproduction)'; "
                 "cpu / gpu-quick scale gives 'at reduced scale'; only paper scale can reproduce absolute numbers. "
                 "The paper's own claims are for the DARTS space on CIFAR-10 (original); NB201 rows test the same "
                 "orderings on another space.")
    return t
