"""reports.stats against hand-computed and textbook values; degenerate inputs never raise."""

import math

import numpy as np
import pytest
from scipy import stats as st

from reports import stats as S


def test_mean_std_ddof1():
    xs = [2, 4, 4, 4, 5, 5, 7, 9]
    assert S.mean(xs) == 5.0
    assert S.std(xs) == pytest.approx(math.sqrt(32 / 7))
    s = S.summarize(xs + [None, float("nan")])  # None / NaN dropped
    assert s.n == 8 and s.std == pytest.approx(math.sqrt(32 / 7))


def test_t_interval_by_hand():
    lo, hi, why = S.ci_t([1, 2, 3, 4])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2  # t_{0.975, 3}
    assert (lo, hi) == pytest.approx((2.5 - half, 2.5 + half))
    assert why is None


def test_bootstrap_fixed_seed_and_bounds():
    xs = [10.0, 11.0, 12.5, 9.0, 10.5, 11.5]
    a = S.bootstrap_ci(xs)
    b = S.bootstrap_ci(xs)
    assert a == b  # fixed seed: reproducible
    assert min(xs) <= a[0] <= np.mean(xs) <= a[1] <= max(xs)


def test_welch_by_hand():
    x, y = [1, 2, 3], [4, 5, 6, 7]
    r = S.welch(x, y)
    v1, v2 = 1.0 / 3, (5 / 3) / 4
    t = (2 - 5.5) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 2 + v2**2 / 3)
    assert r.statistic == pytest.approx(t) == pytest.approx(-4.041451884327381)
    assert r.p == pytest.approx(2 * st.t.sf(abs(t), df))
    assert S.welch(x, y, "less").p == pytest.approx(st.t.sf(abs(t), df))


def test_mann_whitney_exact_and_rank_biserial():
    r = S.mann_whitney([1, 2, 3], [4, 5, 6])
    assert r.statistic == 0.0
    assert r.p == pytest.approx(0.1)  # exact: 2 / C(6,3)
    assert S.rank_biserial([1, 2, 3], [4, 5, 6]).value == pytest.approx(-1.0)
    assert S.rank_biserial([4, 5, 6], [1, 2, 3]).value == pytest.approx(1.0)


def test_holm_known_vector():
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = S.holm([0.02, None, float("nan"), 0.5])
    assert out[0] == pytest.approx(0.04) and out[3] == pytest.approx(0.5)
    assert math.isnan(out[1]) and math.isnan(out[2])
    assert S.holm([0.9, 0.8]) == [1.0, 1.0]  # 2*0.8 capped at 1; monotone step-down
    assert S.holm([0.01, 0.02, 0.03]) == pytest.approx([0.03, 0.04, 0.04])


def test_effect_sizes():
    assert S.cohens_d([1, 2, 3], [4, 5, 6]).value == pytest.approx(-3.0)
    j = math.gamma(2) / (math.sqrt(2) * math.gamma(1.5))  # exact small-sample factor, df = 4
    assert S.hedges_g([1, 2, 3], [4, 5, 6]).value == pytest.approx(-3.0 * j)
    assert S.hedges_g([1, 2, 3], [4, 5, 6]).value == pytest.approx(-2.3936536824)


@pytest.mark.parametrize("x,y", [([1.0], [2.0]), ([], [1, 2]), ([3, 3], [3, 3]), ([1, 1, 1], [2, 2, 2]), (None, [1])])
def test_degenerate_inputs_never_raise(x, y):
    c = S.compare(x, y)
    assert math.isnan(c["welch_p"]) or 0 <= c["welch_p"] <= 1
    if len(S.clean(x)) < 2 or len(S.clean(y)) < 2:
        assert math.isnan(c["welch_p"]) and c["welch_reason"]
        assert math.isnan(c["hedges_g"]) and c["effect_reason"]


def test_zero_variance_and_n1_reasons():
    s = S.summarize([4.2])
    assert s.n == 1 and s.mean == 4.2 and math.isnan(s.std) and "n=1" in s.reason
    lo, hi, why = S.ci_t([2, 2, 2])
    assert lo == hi == 2 and "zero variance" in why
    assert S.welch([1, 1], [1, 1]).reason.startswith("zero variance")
    assert S.cohens_d([1, 1], [2, 2]).reason == "zero pooled variance"
    assert S.mean_pm_std([]) == "missing"
    assert S.mean_pm_std([1.0]) == "1.00 (n=1)"
    assert S.mean_pm_std([1, 3]) == "2.00 ± 1.41 (n=2)"


def test_ratio_of_means_ci():
    r, lo, hi, why = S.ratio_of_means_ci([3.0, 3.1, 2.9], [1.0, 1.05, 0.95])
    assert r == pytest.approx(3.0) and lo < 3.0 < hi and why is None
    r, lo, hi, why = S.ratio_of_means_ci([3.0], [1.0])
    assert r == 3.0 and math.isnan(lo) and "point ratio" in why
