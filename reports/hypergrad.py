"""Report pieces of the hypergradient measurement (MiLeNAS paper §2.2–3), read from search records.

Input: search records whose epochs carry ``hooks.hypergrad`` results (``harness.hypergrad.hook``; written
by ``python -m harness hypergrad`` or any search with the hook enabled).  Output, all through the report's
one pipeline (``reports.build``; Markdown, HTML and PDF alike): the claim's verdict
(``reports.verdicts.hypergrad_error``, using ``points`` and ``spearman_test`` below), ``tables`` per
measured record and ``figure_specs`` (``reports.hypergrad_figure``).

The paper's statement (§2.2–3): DARTS' approximations of the bilevel hypergradient cause gradient errors,
and "when α is approaching the optima, the approximate gradient … will lead to large deviation from true
gradient".  Rule (``RULE``): over the measured epochs whose reference converged, the Spearman correlation ρ
between the cosine of the DARTS-2nd (finite-difference) direction with the reference and the distance
‖α_e − α_final‖ (α_final, the search's last α, stands for the optimum it approaches; distances divided by
each record's first measured distance so that several records of one scale can be pooled).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .tables import Table

CLAIM = "§2.2–3"
SHORT = "DARTS' hypergradient error grows as α nears its optimum"
STATEMENT = (
    "DARTS' approximate hypergradient deviates more from the true one as α approaches the optimum (MiLeNAS §2.2–3)"
)
PRIMARY = "darts-2nd"  # the paper's "approximate gradient" (DARTS eq. 7–8)
SECONDARY = "darts-1st"
ALPHA = 0.05
MIN_POINTS = 4
RULE = (
    "Spearman ρ between cosine(DARTS-2nd FD direction, reference hypergradient) and ‖α_e − α_final‖ "
    "(normalised per search) over measured epochs whose reference converged (inner ‖∇F‖ < tol, CG residual "
    f"< tol, no negative curvature); the statement predicts ρ > 0. Reproduced if ρ > 0 with one-sided exact "
    f"permutation p < {ALPHA} (scipy.stats.permutation_test; t approximation above 8 points); not reproduced "
    f"if ρ < 0 with one-sided p < {ALPHA}; otherwise inconclusive; fewer than {MIN_POINTS} converged points: "
    "inconclusive."
)
INTRO = (
    "DARTS approximates the bilevel hypergradient dL_val(w*(α), α)/dα by one unrolled weight step and a "
    "finite-difference Hessian–vector product; the MiLeNAS paper (§2.2–3) argues that these approximations "
    "cause gradient errors that grow as α approaches the optimum. A search is frozen after chosen epochs "
    "and each method's α-direction (the method's own formula) is compared with a reference hypergradient "
    "computed by re-training w (proximal inner problem, L-BFGS, float64) and the implicit-function theorem "
    "(CG on exact Hessian–vector products)."
)


# ------------------------------------------------------------------------------------------ input
def series_of(rec: Dict[str, Any]) -> Dict[str, Any]:
    from harness.hypergrad.hook import series

    return series(rec)


def measured_records(records: Sequence[Dict[str, Any]], space: Optional[str] = None) -> List[Dict[str, Any]]:
    """The search records with at least one hypergrad measurement (of ``space`` when given)."""
    from harness.hypergrad.hook import measurements

    return [
        r
        for r in records
        if r.get("kind", "search") == "search" and (space is None or r.get("space") == space) and measurements(r)
    ]


def label(doc: Dict[str, Any], name: str) -> str:
    from .hypergrad_figure import label as _label

    return _label(doc, name)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4):
            return f"{x:.2e}"
        return f"{x:+.{digits}f}" if digits and x < 0 else f"{x:.{digits}f}"
    return str(x)


# ------------------------------------------------------------------------------------------ statistics
def spearman_test(xs: Sequence[float], ys: Sequence[float]) -> Tuple[float, float, float]:
    """(ρ, one-sided p for ρ > 0, one-sided p for ρ < 0), scipy.stats: exact permutation test up to 8 points
    (``permutation_test``, pairings), else ``spearmanr``'s t approximation."""
    import numpy as np
    from scipy import stats

    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(xs) < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return float("nan"), float("nan"), float("nan")
    rho = float(stats.spearmanr(xs, ys).statistic)
    if len(xs) <= 8:

        def stat(x):
            return stats.spearmanr(x, ys).statistic

        p = [
            float(
                stats.permutation_test(
                    (xs,), stat, permutation_type="pairings", alternative=alt, n_resamples=math.inf
                ).pvalue
            )
            for alt in ("greater", "less")
        ]
        return rho, p[0], p[1]
    return (
        rho,
        float(stats.spearmanr(xs, ys, alternative="greater").pvalue),
        float(stats.spearmanr(xs, ys, alternative="less").pvalue),
    )


def points(docs: Sequence[Dict[str, Any]], method: str) -> Tuple[List[float], List[float], int]:
    """(normalised distance, cosine) over the epochs with a converged reference, pooled over the series
    ``docs``; and the number of measured epochs."""
    xs, ys, total = [], [], 0
    for doc in docs:
        cos = (doc.get("cosine") or {}).get(method) or []
        dist = doc.get("alpha_distance_to_final") or []
        ok = doc.get("reference_ok") or [True] * len(cos)
        total += len(doc.get("epochs") or [])
        d0 = next((d for d in dist if d), None)
        for d, c, good in zip(dist, cos, ok):
            if good and d is not None and c is not None and d0:
                xs.append(d / d0)
                ys.append(c)
    return xs, ys, total


# ------------------------------------------------------------------------------------------ tables
def _caption(doc: Dict[str, Any]) -> str:
    s = doc.get("settings") or {}
    cfg = doc.get("config") or {}
    inner, cg = s.get("inner") or {}, s.get("cg") or {}
    sm = s.get("smooth_activation")
    return (
        f"{INTRO} Search {doc.get('label')} (seed {doc.get('seed')}, record {doc.get('run_id')}) on "
        f"{doc.get('space')} C={cfg.get('space_cfg', {}).get('C')}, N={cfg.get('space_cfg', {}).get('N')}, "
        f"{cfg.get('data', {}).get('image_size')}px, {doc.get('provenance', {}).get('dataset', '?')}; "
        f"scale {doc.get('scale')}. Objectives: K={s.get('batches')} fixed train + K val batches of "
        f"{cfg.get('data', {}).get('batch_size')} images. Reference: min_w L_tr + (λ_w/2)‖w‖² + (δ/2)‖w − w_t‖², "
        f"λ_w = {inner.get('weight_decay')}, δ in {inner.get('proximal')} (the last is the reference); "
        f"{inner.get('solver')} to ‖∇F‖ < {inner.get('tol')}, CG to relative residual < {cg.get('tol')}; "
        + (f"ReLU→Softplus(β={sm.get('beta')}) surrogate. " if sm else "ReLU supernet. ")
        + "Directions in float32 at the current w; reference in float64."
    )


def tables(doc: Dict[str, Any], index: int = 1) -> List[Table]:
    """The tables of one record's series (``series_of``)."""
    epochs = doc.get("epochs") or []
    methods = doc.get("methods") or []
    refs = doc.get("reference") or [{}] * len(epochs)
    ok = doc.get("reference_ok") or [None] * len(epochs)
    dist = doc.get("alpha_distance_to_final") or [None] * len(epochs)
    key = f"hypergrad-{index}"
    names = [label(doc, m) for m in methods]

    cos = Table(
        f"{key}-cosine",
        f"Hypergradient measurement {index}: cosine with the reference hypergradient",
        ["Epoch", "‖α−α_final‖", "Reference ok", "Inner ‖∇F‖", "CG residual"] + names,
    )
    for i, e in enumerate(epochs):
        r = refs[i] if i < len(refs) else {}
        cos.rows.append(
            [
                str(e + 1),
                _fmt(dist[i]),
                _fmt(ok[i]),
                _fmt((r.get("inner") or {}).get("grad_norm")),
                _fmt((r.get("cg") or {}).get("relative_residual")),
            ]
            + [_fmt(doc["cosine"][m][i]) for m in methods]
        )
    cos.caption = _caption(doc)
    cos.notes.append(
        "Epoch e: measured after the last iteration of epoch e (1-based). Cosine = 1: same direction "
        "as the reference; 0: orthogonal; < 0: the method moves α against the hypergradient."
    )
    sur = [c for vals in (doc.get("surrogate_cosine") or {}).values() for c in vals if c is not None]
    if sur and (doc.get("settings") or {}).get("smooth_activation"):
        cos.notes.append(
            f"Surrogate fidelity: cosine between each direction on the Softplus surrogate and the same "
            f"direction on the ReLU supernet as it runs: {min(sur):.3f}…{max(sur):.3f}."
        )

    hvp = doc.get("hvp_error") or {}
    hvp_cols = [(n, k) for n in hvp for k in ("float32", "float64", "exact_float32", "float32_surrogate")]
    err = Table(
        f"{key}-error",
        f"Hypergradient measurement {index}: relative error ‖d − h‖/‖h‖ and the finite-difference HVP error",
        ["Epoch"] + names + [f"{label(doc, n)}: {k.replace('_', ' ')} HVP error" for n, k in hvp_cols],
    )
    for i, e in enumerate(epochs):
        err.rows.append(
            [str(e + 1)]
            + [_fmt(doc["rel_error"][m][i]) for m in methods]
            + [_fmt((hvp[n].get(k) or [None] * len(epochs))[i]) for n, k in hvp_cols]
        )
    err.caption = (
        "Relative error of each direction against the reference (scale-sensitive: MiLeNAS descends "
        "L_tr + λL_val, whose gradient is not scaled like a hypergradient). HVP error: a method's "
        "finite-difference Hessian–vector product (DARTS: central difference, R = r/‖v‖) against the "
        "exact double-backward product in float64, FD in float32 / float64, on the supernet as it runs "
        "(ReLU: the difference crosses activation kinks) and on the Softplus surrogate; 'exact float32' "
        "is the float32 rounding floor."
    )

    obj = doc.get("objective_comparisons") or {}
    mt = Table(
        f"{key}-objective",
        f"Hypergradient measurement {index}: each direction against its own objective",
        [
            "Epoch",
            "Direction",
            "vs bilevel reference (cos)",
            "vs own objective's gradient, K batches (cos)",
            "same, one minibatch (cos)",
            "vs own objective's hypergradient (cos)",
        ],
    )
    for name, vals in obj.items():
        for i, e in enumerate(epochs):

            def get(k, vals=vals, i=i):
                return (vals.get(k) or [None] * len(epochs))[i]

            mt.rows.append(
                [
                    str(e + 1),
                    label(doc, name),
                    _fmt(get("cosine_vs_bilevel_reference")),
                    _fmt(get("cosine_vs_objective_gradient"), 5),
                    _fmt(get("cosine_vs_objective_gradient_minibatch")),
                    _fmt(get("cosine_vs_objective_hypergradient")),
                ]
            )
    mt.caption = (
        "A first-order direction is the gradient of its method's own objective at the current w (MiLeNAS: "
        "L_tr + λ·L_val), not an estimator of the bilevel hypergradient. Against that objective's exact "
        "gradient on the same K batches it agrees by construction (cosine 1 up to float32 rounding); the "
        "one-minibatch column shows the sampling error of one search iteration. Its objective's "
        "hypergradient is the method's formula with ∇α L_tr(w*) and the reference h (MiLeNAS eq. 5: "
        "∇α L_tr(w*) + λ·h), neglecting L_tr's indirect term (weight decay and proximal pull at w*)."
    )

    mb = Table(
        f"{key}-minibatch",
        f"Hypergradient measurement {index}: cosine of the one-minibatch directions "
        "(what one search iteration uses) with the reference",
        ["Epoch"] + names,
    )
    for i, e in enumerate(epochs):
        mb.rows.append(
            [str(e + 1)] + [_fmt((doc.get("cosine_minibatch") or {}).get(m, [None] * len(epochs))[i]) for m in methods]
        )
    mb.caption = "Batch 0 of the K fixed train / val batches only; reference as above (K batches)."
    return [cos, err, mt, mb]


def all_tables(records: Sequence[Dict[str, Any]]) -> List[Table]:
    """The tables of every measured record (numbered in record order)."""
    out: List[Table] = []
    for i, rec in enumerate(measured_records(records), 1):
        out += tables(series_of(rec), i)
    return out


def figure_specs(records: Sequence[Dict[str, Any]]) -> List[Any]:
    """One ``reports.figures.FigureSpec`` per measured record."""
    from .figures import FigureSpec
    from .hypergrad_figure import make_figure

    out = []
    for i, rec in enumerate(measured_records(records), 1):
        doc = series_of(rec)
        out.append(
            FigureSpec(
                f"hypergrad-{i}",
                f"Hypergradient measurement {i}: cosine with the reference and relative errors",
                f"{doc.get('label')} search (record {doc.get('run_id')}, scale {doc.get('scale')}): "
                "cosine with the reference hypergradient vs epoch and vs ‖α − α_final‖, and relative "
                "errors with the finite-difference HVP error. Shaded / hollow: reference not "
                "converged.",
                make_figure(doc),
            )
        )
    return out
