"""Power analysis for the verdicts: how many seeds per group would decide a claim.

Every verdict's rule is a test; the sample size is computed for *that* test, at the observed effect
and spread, 80 % power and the rule's own α:

* **two-group mean claims** (Fig. 3a, Fig. 5: one-sided Welch t at α = 0.05) — equal n per group; the
  exact power of Welch's test under normal data with the observed standard deviations s₁, s₂ uses the
  noncentral t: δ = |Δ| / √((s₁² + s₂²)/n), ν = (n − 1)(s₁² + s₂²)² / (s₁⁴ + s₂⁴) (Welch–Satterthwaite
  with equal n), power = P(T′(ν, δ) > t₁₋α(ν)) (two-sided: both tails at α/2); the smallest n with
  power ≥ 0.8 is found by bisection (power rises with n).  With s₁ = s₂ this is Student's t and
  reproduces Cohen's table (d = 0.5 → 64, d = 0.8 → 26 per group, two-sided α = 0.05).
* **ordering claims over three groups** (Fig. 2: two one-sided Welch tests, Holm over the pair) — each
  pairwise comparison at α/2 (Holm's first-step threshold, so the bound is conservative) and
  n_needed = the worst (largest) pairwise n.
* **ratio claims** (Fig. 3b: a 95 % bootstrap CI of a ratio of means must exclude the bound) — on the
  log scale, log(mean_a/mean_b) has standard error ≈ √((cv_a² + cv_b²)/n) (delta method, cv = s/mean);
  the CI excludes the bound with 80 % power when a one-sided test at α/2 = 0.025 of
  log(ratio) − log(bound) has 80 % power: the same noncentral-t computation with cv_a, cv_b as spreads.

The effect enters as |Δ|: a verdict is decided either way (reproduced when the test in the claimed
direction is significant, not reproduced when the reverse one is), so n_needed is the number of seeds
that decides it at the observed effect, whichever its sign.  An estimate needs at least two values per
group (a spread); otherwise ``n_needed`` is None with the reason.  The cost of the extra seeds comes from the
records' own search seconds at that scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from scipy import stats as _st

from . import runs as R
from .stats import clean

ALPHA = 0.05
POWER = 0.80
N_MAX = 10_000


# ------------------------------------------------------------------------------------------ core
def welch_df_equal_n(s1: float, s2: float, n: int) -> float:
    """Welch–Satterthwaite degrees of freedom for two groups of n each with spreads s1, s2."""
    v1, v2 = s1 * s1, s2 * s2
    return (n - 1) * (v1 + v2) ** 2 / (v1 * v1 + v2 * v2)


def _nct_sf(x: float, df: float, ncp: float) -> float:
    """P(T′ > x) of the noncentral t; the normal limit where scipy's series fails (very large δ or ν)."""
    v = float(_st.nct.sf(x, df, ncp))
    return v if math.isfinite(v) else float(_st.norm.sf(x - ncp))


def _nct_cdf(x: float, df: float, ncp: float) -> float:
    v = float(_st.nct.cdf(x, df, ncp))
    return v if math.isfinite(v) else float(_st.norm.cdf(x - ncp))


def power_two_group(delta: float, s1: float, s2: float, n: int, alpha: float = ALPHA, sides: int = 1) -> float:
    """Exact power of Welch's t test (normal data, true spreads s1, s2) with n per group."""
    if n < 2:
        return float("nan")
    var = (s1 * s1 + s2 * s2) / n
    if var <= 0:
        return 1.0 if delta != 0 else float("nan")
    ncp = abs(delta) / math.sqrt(var)
    df = welch_df_equal_n(s1, s2, n)
    if sides == 1:
        return _nct_sf(_st.t.ppf(1 - alpha, df), df, ncp)
    tc = _st.t.ppf(1 - alpha / 2, df)
    return _nct_sf(tc, df, ncp) + _nct_cdf(-tc, df, ncp)


def n_two_group(
    delta: float, s1: float, s2: float, alpha: float = ALPHA, power: float = POWER, sides: int = 1, n_max: int = N_MAX
) -> Tuple[Optional[int], Optional[str]]:
    """Smallest n per group with ``power_two_group(...) >= power``: (n, None) or (None, reason)."""
    vals = [delta, s1, s2]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
        return None, "effect or spread not finite"
    if s1 <= 0 and s2 <= 0:
        return None, "zero spread in both groups: the test is undefined, no sample size can be estimated"
    if delta == 0:
        return None, "observed effect is exactly zero: no number of seeds decides it"
    if power_two_group(delta, s1, s2, 2, alpha, sides) >= power:
        return 2, None
    if power_two_group(delta, s1, s2, n_max, alpha, sides) < power:
        return None, f"effect too small for its spread: more than {n_max:,} seeds per group"
    lo, hi = 2, n_max  # power(lo) < target <= power(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_two_group(delta, s1, s2, mid, alpha, sides) >= power:
            hi = mid
        else:
            lo = mid
    return hi, None


def n_cohen(d: float, alpha: float = ALPHA, power: float = POWER, sides: int = 2) -> Optional[int]:
    """Per-group n of the two-sample t test for a standardized effect d (equal spreads)."""
    return n_two_group(d, 1.0, 1.0, alpha, power, sides)[0]


# ------------------------------------------------------------------------------------------ per rule
@dataclass
class PowerResult:
    n_needed: Optional[int]
    reason: Optional[str] = None  # why n_needed is None
    test: str = ""  # the test the sample size is computed for
    alpha: float = ALPHA  # per-comparison α used
    sides: int = 1
    power: float = POWER
    effect: Optional[float] = None  # observed effect on the test's scale (Δ, or log-ratio distance)
    spreads: Tuple[Optional[float], Optional[float]] = (None, None)
    worst: str = ""  # which pairwise comparison sets n_needed (ordering claims)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _spread_reason(a, b) -> Optional[str]:
    if a.size < 2 or b.size < 2:
        return f"n={a.size} vs n={b.size}: at least 2 seeds per group are needed to estimate the spread"
    return None


def mean_claim(x: Sequence, y: Sequence, alpha: float = ALPHA, sides: int = 1, power: float = POWER) -> PowerResult:
    """Seeds per group for a Welch t test of mean(x) vs mean(y) (one-sided at α by default)."""
    a, b = clean(x), clean(y)
    test = f"Welch t, {'one' if sides == 1 else 'two'}-sided, α = {alpha:g}"
    why = _spread_reason(a, b)
    if why:
        return PowerResult(None, why, test, alpha, sides, power)
    d, s1, s2 = float(a.mean() - b.mean()), float(a.std(ddof=1)), float(b.std(ddof=1))
    n, why = n_two_group(d, s1, s2, alpha, power, sides)
    return PowerResult(n, why, test, alpha, sides, power, d, (s1, s2))


def ordering_claim(
    pairs: List[Tuple[str, Sequence, Sequence]], alpha: float = ALPHA, power: float = POWER
) -> PowerResult:
    """Ordering claims (k pairwise one-sided Welch tests, Holm over the k): each pair at α/k, worst pair."""
    k = max(1, len(pairs))
    res = [(name, mean_claim(x, y, alpha / k, 1, power)) for name, x, y in pairs]
    bad = [(name, r) for name, r in res if r.n_needed is None]
    test = f"{k} one-sided Welch t tests, each at α/{k} = {alpha / k:g} (Holm's first step)"
    if bad:
        name, r = bad[0]
        return PowerResult(None, f"{name}: {r.reason}", test, alpha / k, 1, power, r.effect, r.spreads, name)
    name, r = max(res, key=lambda nr: nr[1].n_needed or 0)  # every n_needed is set here (``bad`` is empty)
    return PowerResult(r.n_needed, None, test, alpha / k, 1, power, r.effect, r.spreads, name)


def ratio_claim(num: Sequence, den: Sequence, bound: float, level: float = 0.95, power: float = POWER) -> PowerResult:
    """Seeds per group for a ``level`` CI of mean(num)/mean(den) to exclude ``bound`` (log scale, delta
    method: a one-sided test at (1 − level)/2)."""
    a, b = clean(num), clean(den)
    alpha = (1 - level) / 2
    test = f"{level:.0%} CI of a ratio of means excludes {bound:g}× (log scale, one-sided α = {alpha:g})"
    why = _spread_reason(a, b)
    if why:
        return PowerResult(None, why, test, alpha, 1, power)
    if a.mean() <= 0 or b.mean() <= 0:
        return PowerResult(None, "non-positive mean: no log ratio", test, alpha, 1, power)
    cva, cvb = float(a.std(ddof=1) / a.mean()), float(b.std(ddof=1) / b.mean())
    d = math.log(a.mean() / b.mean()) - math.log(bound)
    n, why = n_two_group(d, cva, cvb, alpha, power, 1)
    return PowerResult(n, why, test, alpha, 1, power, d, (cva, cvb))


def not_a_test(reason: str) -> PowerResult:
    return PowerResult(None, reason, "none")


# ------------------------------------------------------------------------------------------ cost
@dataclass
class SeedCost:
    hours: Optional[float]
    unit: str  # "CPU-hours" | "GPU-hours" | "device-hours (mixed devices)"
    extra_seeds: Dict[str, int]  # group label -> seeds still to run
    detail: str = ""
    reason: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def seed_cost(groups: Iterable[Tuple[str, List[Dict[str, Any]]]], n_needed: Optional[int]) -> Optional[SeedCost]:
    """Cost of running every group up to ``n_needed`` finished seeds: Σ mean search seconds × extra seeds,
    from the groups' own records (same scale), in CPU- or GPU-hours by the records' device."""
    if n_needed is None:
        return None
    groups = list(groups)
    extra, secs, parts, devs, unknown = {}, 0.0, [], set(), []
    for label, recs in groups:
        ok = [r for r in recs if R.is_ok(r)]
        k = max(0, n_needed - len(ok))
        extra[label] = k
        devs.update(R.devices(ok))
        if k == 0:
            continue
        s = clean([R.final_value(r, "search_seconds") for r in ok])
        if not s.size:
            unknown.append(label)
            continue
        secs += k * float(s.mean())
        parts.append(f"{label}: {k} × {s.mean() / 3600:.3g} h")
    if devs and all(R.is_gpu_device(d) for d in devs):
        unit = "GPU-hours"
    elif devs and not any(R.is_gpu_device(d) for d in devs):
        unit = "CPU-hours"
    else:
        unit = "device-hours (mixed or unrecorded devices)"
    if unknown:
        return SeedCost(None, unit, extra, "; ".join(parts), f"no recorded search seconds for {', '.join(unknown)}")
    return SeedCost(secs / 3600.0, unit, extra, "; ".join(parts) or "no extra seeds")


def fmt_hours(h: float) -> str:
    if h >= 100:
        return f"{h:,.0f}"
    if h >= 10:
        return f"{h:.0f}"
    if h >= 0.1:
        return f"{h:.1f}"
    return f"{h:.2g}"


def power_text(p: PowerResult, n_have: int, cost: Optional[SeedCost], scale: str) -> str:
    """One sentence for the report, e.g. "≈ 9 seeds per method would decide this; ≈ 2.1 CPU-hours at this
    scale" (the test it is computed for is in ``p.test``)."""
    if p.n_needed is None:
        return f"n_needed not estimated: {p.reason}"
    s = f"≈ {p.n_needed} seeds per method would decide this"
    if p.n_needed <= n_have:
        s += f"; the {n_have} already run suffice"
    elif cost is not None and cost.hours is not None:
        s += f"; ≈ {fmt_hours(cost.hours)} {cost.unit} at this scale for the missing seeds"
    elif cost is not None and cost.reason:
        s += f"; cost unknown: {cost.reason}"
    if scale in ("smoke", "none"):
        s += " (smoke runs stay capped at inconclusive, whatever their number)"
    return s
