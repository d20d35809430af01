"""Figure rules (reports/figure_rules.py): every report figure, built from a synthetic cpu-like record store, keeps
its axes and bands inside what each quantity can take, has integer epoch ticks, puts runs of different lengths on
a fraction-of-search axis, and shows softmax(α) as a data-scaled deviation from uniform whose caption states the
largest deviation in numbers. The checker itself is tested on figures that break each rule."""

import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures.runstore import _record  # noqa: E402

from reports import figure_rules as FR  # noqa: E402
from reports import figures as F  # noqa: E402

NB_SHORT, NB_LONG = 8, 40  # cpu profile: 40 epochs, GDAS-type 200 (scaled down here)
DARTS_SHORT, DARTS_LONG = 4, 16  # cpu profile: 4 epochs (half-epoch ticks before), GDAS 16
PEAK = 0.0081  # the largest |softmax(α) − 1/K| planted below (GDAS, nor_conv_3x3, edge 2←1)


def _near_uniform(rng, shape, spread=0.002):
    p = 1.0 / shape[1] + rng.uniform(-spread, spread, size=shape)
    return (p / p.sum(axis=1, keepdims=True)).round(6)


def cpu_like_records():
    """Runs of two lengths per space; softmax(α) within 0.003 of uniform except one planted GDAS entry; NB201
    benchmark accuracies of one method spread so that mean ± std leaves [0, 100]."""
    rng = np.random.default_rng(11)
    recs = []
    for m in ("milenas", "darts-1st", "darts-2nd", "gdas", "single-level"):
        for s in (0, 1, 2):
            recs.append(_record("nb201", m, s, "cpu", n_ep=NB_LONG if m == "gdas" else NB_SHORT, rng=rng))
    for m in ("milenas", "darts-1st", "darts-2nd", "gdas", "milenas-gumbel"):
        for s in (0, 1):
            n_ep = DARTS_LONG if m in ("gdas", "milenas-gumbel") else DARTS_SHORT
            recs.append(_record("darts", m, s, "cpu", n_ep=n_ep, rng=rng))
    for r in recs:
        for e in r["epochs"]:
            e["alpha_probs"] = {k: _near_uniform(rng, np.shape(v)).tolist() for k, v in e["alpha_probs"].items()}
        if r["space"] == "nb201" and r["method"] == "gdas":
            row = [0.2 - PEAK / 4] * 3 + [0.2 + PEAK] + [0.2 - PEAK / 4]  # nor_conv_3x3 on row 2 (2←1)
            r["epochs"][-1]["alpha_probs"]["alpha"][2] = row
        if r["space"] == "nb201" and r["method"] == "milenas":  # c10 99.5/40/99.5, c100 1/1/60 per seed
            for e in r["epochs"]:
                b = e["arch_info"]["benchmark"]
                b["cifar10_test_200ep"] = 40.0 if r["seed"] == 1 else 99.5
                b["cifar100_test_200ep"] = 60.0 if r["seed"] == 2 else 1.0
    return recs


@pytest.fixture(scope="module")
def figures():
    fs = F.all_figures(cpu_like_records())
    yield {f.key: f for f in fs.figures}
    for f in fs.figures:
        plt.close(f.fig)


def test_every_figure_follows_the_rules(figures):
    assert {
        "fig2_gap_nb201",
        "fig3a_val_darts",
        "fig3b_time_nb201",
        "nb201_bench_vs_epoch",
        "alpha_nb201",
        "alpha_darts",
        "fig6_size_darts",
    } <= set(figures)
    for key, spec in figures.items():
        assert FR.figure_rule_violations(spec.fig) == [], key


def test_accuracy_axes_and_bands_stay_in_0_100(figures):
    fig = figures["nb201_bench_vs_epoch"].fig
    checked = 0
    for ax in fig.axes:
        if FR.axes_quantities(ax) == ("search_fraction", "accuracy_pct"):
            lo, hi = ax.get_ylim()
            assert -1.0 <= lo and hi <= 101.0
            for band in ax.collections:
                ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
                assert ys.min() >= 0.0 and ys.max() <= 100.0
            checked += 1
    assert checked == 3
    # the milenas band really reached a bound: clipping is what kept it inside
    c10 = fig.axes[0]
    assert max(np.concatenate([p.vertices[:, 1] for b in c10.collections for p in b.get_paths()])) == 100.0
    assert "clipped to [0, 100] %" in figures["nb201_bench_vs_epoch"].caption
    assert "±1 std over the n seeds" in figures["fig3a_val_nb201"].caption


def test_runs_of_different_lengths_share_a_fraction_axis(figures):
    spec = figures["nb201_bench_vs_epoch"]
    ax = spec.fig.axes[0]
    assert FR.axes_quantities(ax)[0] == "search_fraction"
    assert 0.0 <= ax.get_xlim()[0] and ax.get_xlim()[1] <= 1.0
    assert f"runs of {NB_SHORT} and {NB_LONG} epochs share one axis in fraction of the search" in spec.caption
    # every group's line ends at the end of its search (fraction 1.0), short runs included
    ends = {ln.get_label(): ln.get_xdata()[-1] for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert len(ends) >= 4 and all(abs(x - 1.0) < 1e-9 for x in ends.values())


def test_epoch_axes_have_integer_ticks(figures):
    ax = figures["fig3a_val_darts"].fig.axes[0]  # 4-epoch runs: 0.5-epoch ticks before
    assert FR.axes_quantities(ax) == ("epoch", "accuracy_pct")
    a, b = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if a <= t <= b]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [t.get_text().replace("−", "-") for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"-?\d+", t) for t in labels)


def test_alpha_figure_shows_deviation_from_uniform(figures):
    spec = figures["alpha_nb201"]
    m = re.search(r"Largest \|p − 1/K\| = ([0-9.e-]+) \((\w+) on edge (\S+), ([^,]+), epoch (\d+)", spec.caption)
    assert m, spec.caption
    assert float(m.group(1)) == pytest.approx(PEAK, abs=1e-4)
    assert m.group(2, 3, 4, 5) == ("nor_conv_3x3", "2←1", "GDAS", str(NB_LONG))
    ims = [im for ax in spec.fig.axes for im in ax.images]
    assert len(ims) == 5  # one panel per method
    for im in ims:
        lo, hi = im.get_clim()
        assert lo == pytest.approx(-hi) and hi == pytest.approx(PEAK, abs=1e-4)  # centred at 0, data-scaled
        assert im.get_cmap().name.startswith("RdBu")
    titles = [ax.get_title() for ax in spec.fig.axes if ax.images]
    assert all("n=3 seeds" in t for t in titles), titles
    dm = figures["alpha_darts"]
    assert re.search(r"on (normal|reduce) edge \d←\d", dm.caption) and "n=2 seeds" in dm.caption


def test_bounded_band_and_errorbar_clip_to_the_range():
    lo, hi = FR.bounded_band([95.0, 2.0], [10.0, 5.0], "accuracy_pct")
    assert lo.tolist() == [85.0, 0.0] and hi.tolist() == [100.0, 7.0]
    err = FR.bounded_errorbar([3.0], [5.0], "seconds")
    assert err[:, 0].tolist() == [3.0, 5.0]
    with pytest.raises(ValueError, match="unknown figure quantity"):
        FR.finish_axes(plt.figure().add_subplot(), "epoch", "furlongs")
    plt.close("all")


def test_checker_catches_each_broken_rule():
    fig, axes = plt.subplots(1, 3)
    x = np.arange(1, 5)
    axes[0].plot(x, [50, 60, 70, 80])
    axes[0].fill_between(x, [60, 70, 80, 90], [80, 95, 105, 110])  # band above 100 %
    axes[0].set_gid("quantity.x-epoch.y-accuracy_pct")
    axes[0].set_xticks([1, 1.5, 2, 2.5, 3, 3.5, 4])  # what the default locator drew
    axes[1].plot(x, [1, 2, 3, 4])  # unmarked
    axes[2].plot(x, [1, 2, 3, 4])
    FR.finish_axes(axes[2], "epoch", "seconds")
    v = FR.figure_rule_violations(fig)
    plt.close(fig)
    assert any("axes 0" in s and "y view" in s for s in v)
    assert any("axes 0" in s and "drawn y values leave accuracy_pct" in s for s in v)
    assert any("axes 0" in s and "ticks of epoch are not integers" in s for s in v)
    assert any("axes 1" in s and "not marked" in s for s in v)
    assert not any("axes 2" in s for s in v)


def test_alpha_figure_of_uniform_alpha_says_so():
    recs = [r for r in cpu_like_records() if r["space"] == "nb201" and r["method"] == "milenas"]
    for r in recs:
        for e in r["epochs"]:
            e["alpha_probs"] = {"alpha": [[0.2] * 5] * 6}
    spec, _ = F.alpha_heatmaps(recs, "nb201")
    try:
        assert "Largest |p − 1/K| = 0 (" in spec.caption and "every record is uniform" in spec.caption
        assert FR.figure_rule_violations(spec.fig) == []
    finally:
        plt.close(spec.fig)
