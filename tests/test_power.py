"""reports.power: sample sizes against published tables and against simulation of the verdicts' own tests."""

import math

import numpy as np
import pytest
from scipy import stats as st

from reports import power as PW
from reports import stats as S


# Two-sample t test, equal spreads, power 0.80: per-group n for Cohen's d.  Two-sided α = 0.05: Cohen (1988),
# Table 2.4.1 (d = .2 → 393, .5 → 64, .8 → 26, 1.0 → 17, 1.2 → 12; .2 is 394 with the exact noncentral t, as
# G*Power computes it).  One-sided α = 0.05: G*Power exact (d = .5 → 51, .8 → 21, 1.0 → 14).
@pytest.mark.parametrize(
    "d,sides,n", [(0.5, 2, 64), (0.8, 2, 26), (1.0, 2, 17), (1.2, 2, 12), (0.5, 1, 51), (0.8, 1, 21), (1.0, 1, 14)]
)
def test_published_table_values(d, sides, n):
    assert PW.n_cohen(d, sides=sides) == n
    assert PW.power_two_group(d, 1, 1, n, sides=sides) >= 0.8 > PW.power_two_group(d, 1, 1, n - 1, sides=sides)


def test_small_effect_matches_cohen_within_one():
    assert PW.n_cohen(0.2) in (393, 394)


def test_power_is_exact_noncentral_t():
    # n = 64, d = 0.5: δ = 0.5·√32 = 2.828, ν = 126; two-sided power 0.8015 (G*Power: 0.8015)
    assert PW.power_two_group(0.5, 1, 1, 64, sides=2) == pytest.approx(0.8015, abs=5e-4)
    # equal n: Welch's ν = (n−1)(s1²+s2²)²/(s1⁴+s2⁴); equal spreads give Student's 2n − 2
    assert PW.welch_df_equal_n(1, 1, 10) == pytest.approx(18)
    assert PW.welch_df_equal_n(1, 2, 10) == pytest.approx(9 * 25 / 17)


def _welch_one_sided_p(a, b):
    """Vectorised one-sided Welch p (H1: mean a > mean b) over the first axis of simulated samples."""
    n1, n2 = a.shape[1], b.shape[1]
    va, vb = a.var(axis=1, ddof=1) / n1, b.var(axis=1, ddof=1) / n2
    t = (a.mean(axis=1) - b.mean(axis=1)) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n1 - 1) + vb**2 / (n2 - 1))
    return st.t.sf(t, df)


@pytest.mark.parametrize("delta,s1,s2", [(1.0, 1.0, 2.0), (3.0, 4.0, 1.5)])
def test_simulated_power_of_the_verdict_test(delta, s1, s2):
    """At n_needed the one-sided Welch test the Fig. 3a / Fig. 5 verdicts use rejects in ≈ 80 % of
    simulated experiments (normal data, the given spreads); at a clearly smaller n it does not."""
    n, why = PW.n_two_group(delta, s1, s2, alpha=0.05, power=0.8, sides=1)
    assert why is None and n > 5
    rng = np.random.default_rng(1)
    reps = 20000

    def rate(k):
        a = rng.normal(delta, s1, size=(reps, k))
        b = rng.normal(0.0, s2, size=(reps, k))
        return float((_welch_one_sided_p(a, b) < 0.05).mean())

    assert rate(n) == pytest.approx(0.80, abs=0.02)
    assert rate(max(3, n // 2)) < 0.72


def test_ordering_claim_takes_the_worst_pair_at_holm_alpha():
    x = [22.0, 21.0, 23.0]  # single-level gap
    y = [6.0, 5.0, 7.5]  # MiLeNAS
    z = [5.0, 4.0, 6.5, 5.5]  # bilevel: close to MiLeNAS -> the worst pair
    p = PW.ordering_claim([("single vs mil", x, y), ("mil vs bilevel", y, z)])
    want = PW.mean_claim(y, z, alpha=0.025)
    assert p.n_needed == want.n_needed and p.worst == "mil vs bilevel" and p.alpha == 0.025
    assert p.n_needed > PW.mean_claim(x, y, alpha=0.025).n_needed


def test_ratio_claim_by_formula():
    num, den = [2.9, 3.1, 3.0, 2.8], [1.0, 1.1, 0.95, 1.05]
    p = PW.ratio_claim(num, den, 2.5)
    a, b = np.array(num), np.array(den)
    d = math.log(a.mean() / b.mean()) - math.log(2.5)
    cva, cvb = a.std(ddof=1) / a.mean(), b.std(ddof=1) / b.mean()
    assert p.effect == pytest.approx(d) and p.spreads == pytest.approx((cva, cvb))
    assert p.n_needed == PW.n_two_group(d, cva, cvb, alpha=0.025, power=0.8, sides=1)[0]
    # normal-approximation cross-check: n ≈ (z.975 + z.8)² (cv_a² + cv_b²) / d²
    approx = (st.norm.ppf(0.975) + st.norm.ppf(0.8)) ** 2 * (cva**2 + cvb**2) / d**2
    assert approx <= p.n_needed <= approx + 3


def test_ratio_claim_simulated_with_the_bootstrap_ci():
    """At n_needed the verdict's own rule (95 % percentile bootstrap CI of the ratio excludes 2.5×) decides
    in roughly 80 % of simulated experiments (the percentile bootstrap is a little liberal at small n)."""
    mu_a, mu_b, cv = 3.0, 1.0, 0.25
    p = PW.ratio_claim(
        np.random.default_rng(0).normal(mu_a, cv * mu_a, 4000),
        np.random.default_rng(1).normal(mu_b, cv * mu_b, 4000),
        2.5,
    )
    n = p.n_needed
    assert 8 <= n <= 40
    rng = np.random.default_rng(2)
    sims, hits = 300, 0
    for i in range(sims):
        a = rng.normal(mu_a, cv * mu_a, n)
        b = rng.normal(mu_b, cv * mu_b, n)
        _, lo, hi, _ = S.ratio_of_means_ci(a, b, n_boot=1000, seed=i)
        hits += lo >= 2.5 or hi < 2.5
    assert 0.70 <= hits / sims <= 0.92


@pytest.mark.parametrize(
    "x,y,word",
    [
        ([1.0], [2.0, 3.0], "at least 2 seeds"),
        ([], [1, 2], "at least 2 seeds"),
        ([1.0, 1.0], [2.0, 2.0], "zero spread"),
        ([1.0, 2.0], [1.0, 2.0], "exactly zero"),
    ],
)
def test_degenerate_inputs_give_none_with_reason(x, y, word):
    p = PW.mean_claim(x, y)
    assert p.n_needed is None and word in p.reason


def test_tiny_effect_is_capped():
    n, why = PW.n_two_group(1e-4, 1.0, 1.0)
    assert n is None and "more than" in why


def _rec(sec, device="cpu", ok=True):
    return {
        "status": "ok" if ok else "failed",
        "final": {"search_seconds": sec} if ok else None,
        "provenance": {"device": device},
    }


def test_seed_cost_and_text():
    groups = [("A", [_rec(3600.0), _rec(5400.0)]), ("B", [_rec(1800.0), _rec(1800.0), _rec(0, ok=False)])]
    c = PW.seed_cost(groups, 5)
    assert c.extra_seeds == {"A": 3, "B": 3}
    assert c.hours == pytest.approx(3 * 1.25 + 3 * 0.5) and c.unit == "CPU-hours"
    p = PW.PowerResult(5, test="Welch t")
    assert (
        PW.power_text(p, 2, c, "cpu") == "≈ 5 seeds per method would decide this; ≈ 5.2 CPU-hours at this scale "
        "for the missing seeds"
    )
    assert PW.power_text(PW.PowerResult(2), 3, PW.seed_cost(groups, 2), "cpu").endswith("the 3 already run suffice")
    assert "capped" in PW.power_text(p, 2, c, "smoke")
    gpu = PW.seed_cost([("A", [_rec(7200.0, "cuda:0 (NVIDIA H100)")])], 3)
    assert gpu.unit == "GPU-hours" and gpu.hours == pytest.approx(4.0)
    assert PW.seed_cost(groups, None) is None
