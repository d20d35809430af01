"""Small-sample statistics for seed-level comparisons.

Every function accepts plain sequences, drops NaN/None, and never raises on degenerate input
(n < 2, zero variance): it returns NaN for the number and a ``reason`` string instead.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import stats as _st

NAN = float("nan")
BOOT_SEED = 20200328  # fixed: bootstrap CIs are reproducible
BOOT_N = 10000


def clean(xs: Optional[Sequence]) -> np.ndarray:
    if xs is None:
        return np.zeros(0)
    out = []
    for x in xs:
        if x is None:
            continue
        try:
            v = float(x)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out.append(v)
    return np.asarray(out, dtype=float)


@dataclass
class Summary:
    n: int
    mean: float = NAN
    std: float = NAN  # sample std, ddof=1
    sem: float = NAN
    ci_t: tuple = (NAN, NAN)  # 95 % t interval of the mean
    ci_boot: tuple = (NAN, NAN)  # 95 % percentile bootstrap of the mean
    min: float = NAN
    max: float = NAN
    reason: Optional[str] = None  # why something is NaN

    def as_dict(self) -> Dict:
        return asdict(self)


def mean(xs) -> float:
    a = clean(xs)
    return float(a.mean()) if a.size else NAN


def std(xs) -> float:
    a = clean(xs)
    return float(a.std(ddof=1)) if a.size >= 2 else NAN


def ci_t(xs, level: float = 0.95):
    """(low, high, reason) of the t interval for the mean."""
    a = clean(xs)
    if a.size < 2:
        return NAN, NAN, f"n={a.size}: no interval from fewer than 2 values"
    m, s = a.mean(), a.std(ddof=1)
    if s == 0:
        return float(m), float(m), "zero variance: interval has zero width"
    h = _st.t.ppf(0.5 + level / 2, a.size - 1) * s / math.sqrt(a.size)
    return float(m - h), float(m + h), None


def bootstrap_ci(xs, level: float = 0.95, n_boot: int = BOOT_N, seed: int = BOOT_SEED, stat=np.mean):
    """Percentile bootstrap interval of ``stat`` (fixed seed). (low, high, reason)."""
    a = clean(xs)
    if a.size < 2:
        return NAN, NAN, f"n={a.size}: no bootstrap from fewer than 2 values"
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    vals = stat(a[idx], axis=1)
    lo, hi = np.percentile(vals, [50 * (1 - level), 50 * (1 + level)])
    reason = None
    if a.size < 5:
        reason = f"n={a.size}: the percentile bootstrap under-covers for very small n"
    return float(lo), float(hi), reason


def summarize(xs) -> Summary:
    a = clean(xs)
    s = Summary(n=int(a.size))
    if a.size == 0:
        s.reason = "no values"
        return s
    s.mean, s.min, s.max = float(a.mean()), float(a.min()), float(a.max())
    if a.size == 1:
        s.reason = "n=1: no std or interval"
        return s
    s.std = float(a.std(ddof=1))
    s.sem = s.std / math.sqrt(a.size)
    lo, hi, r1 = ci_t(a)
    s.ci_t = (lo, hi)
    blo, bhi, r2 = bootstrap_ci(a)
    s.ci_boot = (blo, bhi)
    s.reason = r1 or r2
    return s


@dataclass
class TestResult:
    test: str
    statistic: float = NAN
    p: float = NAN
    alternative: str = "two-sided"
    n1: int = 0
    n2: int = 0
    reason: Optional[str] = None


def welch(x, y, alternative: str = "two-sided") -> TestResult:
    a, b = clean(x), clean(y)
    r = TestResult("Welch t", alternative=alternative, n1=int(a.size), n2=int(b.size))
    if a.size < 2 or b.size < 2:
        r.reason = f"n={a.size} vs n={b.size}: Welch's t needs at least 2 values per group"
        return r
    va, vb = a.var(ddof=1), b.var(ddof=1)
    if va == 0 and vb == 0:
        r.reason = "zero variance in both groups: t undefined"
        return r
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _st.ttest_ind(a, b, equal_var=False, alternative=alternative)
    r.statistic, r.p = float(res.statistic), float(res.pvalue)
    return r


def mann_whitney(x, y, alternative: str = "two-sided") -> TestResult:
    a, b = clean(x), clean(y)
    r = TestResult("Mann-Whitney U", alternative=alternative, n1=int(a.size), n2=int(b.size))
    if a.size < 1 or b.size < 1:
        r.reason = f"n={a.size} vs n={b.size}: an empty group"
        return r
    if np.all(np.concatenate([a, b]) == a[0]):
        r.reason = "all values equal: U test undefined"
        return r
    res = _st.mannwhitneyu(a, b, alternative=alternative, method="auto")
    r.statistic, r.p = float(res.statistic), float(res.pvalue)
    if a.size * b.size < 10:
        r.reason = f"n={a.size} vs n={b.size}: the smallest attainable p is large; the test has little power"
    return r


def holm(pvals: Sequence[Optional[float]]) -> List[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1). NaN entries stay NaN
    and are not counted in the family size."""
    p = [NAN if v is None else float(v) for v in pvals]
    valid = [i for i, v in enumerate(p) if math.isfinite(v)]
    m = len(valid)
    out = [NAN] * len(p)
    running = 0.0
    for rank, i in enumerate(sorted(valid, key=lambda k: p[k])):
        adj = min(1.0, (m - rank) * p[i])
        running = max(running, adj)
        out[i] = running
    return out


@dataclass
class Effect:
    name: str
    value: float = NAN
    reason: Optional[str] = None


def cohens_d(x, y) -> Effect:
    a, b = clean(x), clean(y)
    e = Effect("Cohen's d")
    if a.size < 2 or b.size < 2:
        e.reason = f"n={a.size} vs n={b.size}: needs at least 2 values per group"
        return e
    sp2 = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    if sp2 == 0:
        e.reason = "zero pooled variance"
        return e
    e.value = float((a.mean() - b.mean()) / math.sqrt(sp2))
    return e


def hedges_g(x, y) -> Effect:
    d = cohens_d(x, y)
    e = Effect("Hedges' g", reason=d.reason)
    if math.isfinite(d.value):
        df = clean(x).size + clean(y).size - 2
        j = math.exp(math.lgamma(df / 2) - math.log(math.sqrt(df / 2)) - math.lgamma((df - 1) / 2))
        e.value = float(d.value * j)
    return e


def rank_biserial(x, y) -> Effect:
    """r = 2·U1/(n1·n2) − 1 (U1 = U of x): +1 when every x exceeds every y."""
    a, b = clean(x), clean(y)
    e = Effect("rank-biserial r")
    if a.size < 1 or b.size < 1:
        e.reason = "an empty group"
        return e
    u1 = _st.mannwhitneyu(a, b, alternative="two-sided").statistic
    e.value = float(2 * u1 / (a.size * b.size) - 1)
    return e


def ratio_of_means_ci(num, den, level: float = 0.95, n_boot: int = BOOT_N, seed: int = BOOT_SEED):
    """mean(num)/mean(den) with a percentile bootstrap CI (groups resampled independently).
    Returns (ratio, low, high, reason)."""
    a, b = clean(num), clean(den)
    if a.size == 0 or b.size == 0 or b.mean() == 0:
        return NAN, NAN, NAN, "no values (or zero denominator)"
    ratio = float(a.mean() / b.mean())
    if a.size < 2 or b.size < 2:
        return ratio, NAN, NAN, f"n={a.size} vs n={b.size}: point ratio only, no interval"
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
    mb = b[rng.integers(0, b.size, size=(n_boot, b.size))].mean(axis=1)
    vals = ma / mb
    lo, hi = np.percentile(vals, [50 * (1 - level), 50 * (1 + level)])
    return ratio, float(lo), float(hi), None


def welch_diff_ci(x, y, level: float = 0.95):
    """mean(x) − mean(y) with its Welch t interval. (diff, low, high, reason)."""
    a, b = clean(x), clean(y)
    if a.size == 0 or b.size == 0:
        return NAN, NAN, NAN, "an empty group"
    d = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return d, NAN, NAN, f"n={a.size} vs n={b.size}: point difference only, no interval"
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return d, d, d, "zero variance: interval has zero width"
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    h = float(_st.t.ppf(0.5 + level / 2, df) * math.sqrt(va + vb))
    return d, d - h, d + h, None


def compare(x, y, alternative: str = "two-sided") -> Dict:
    """Welch + Mann–Whitney + effect sizes of x vs y, as a flat dict (p-values unadjusted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-identical data: scipy's precision warning
        w = welch(x, y, alternative)
        u = mann_whitney(x, y, alternative)
    g = hedges_g(x, y)
    d = cohens_d(x, y)
    rb = rank_biserial(x, y)
    a, b = clean(x), clean(y)
    return {
        "n1": int(a.size),
        "n2": int(b.size),
        "mean1": float(a.mean()) if a.size else NAN,
        "mean2": float(b.mean()) if b.size else NAN,
        "diff": float(a.mean() - b.mean()) if a.size and b.size else NAN,
        "welch_t": w.statistic,
        "welch_p": w.p,
        "welch_reason": w.reason,
        "mwu_U": u.statistic,
        "mwu_p": u.p,
        "mwu_reason": u.reason,
        "cohens_d": d.value,
        "hedges_g": g.value,
        "effect_reason": g.reason,
        "rank_biserial": rb.value,
        "alternative": alternative,
    }


def fmt(v, digits: int = 2) -> str:
    """Number for a table cell; NaN/None -> 'n/a'."""
    if v is None:
        return "n/a"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "n/a"
    return f"{f:.{digits}f}"


def fmt_p(p) -> str:
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def mean_pm_std(xs, digits: int = 2) -> str:
    """'m ± s (n=k)'; 'm (n=1)' for one value; 'missing' for none."""
    a = clean(xs)
    if a.size == 0:
        return "missing"
    if a.size == 1:
        return f"{a[0]:.{digits}f} (n=1)"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f} (n={a.size})"
