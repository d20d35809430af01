"""Report figures (matplotlib, Agg). Each builder returns ``FigureSpec`` objects, or a "not produced"
note when its data are absent. Captions carry n, scale, dataset label and benchmark column.

Every builder follows the figure rules below ("figure rules"): each axis is marked with the quantity it shows
(``finish_axes``), a quantity's axis and mean ± std band never leave what the quantity can take
(``QUANTITY_RANGES``, ``bounded_band``), epoch axes have integer ticks (``integer_epoch_axis``), and runs of
different lengths share an axis in fraction of the search (``search_axis``). tests/test_figure_rules.py checks
every figure of the report against them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import runs as R  # noqa: E402
from .figure_rules import (  # noqa: E402
    band_note,
    bounded_band,
    bounded_errorbar,
    finish_axes,
    search_axis,
    search_axis_label,
    search_axis_note,
    search_x,
)

# λ variants of a method (Fig. 2 sweep): colours by λ value; a method's own colour comes from the registry
LAM_COLORS = {0.1: "#e377c2", 999.0: "#7f7f7f"}
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (1, 1))]
# figures stay open until the report is written (build_report closes them): no "too many figures" warning
plt.rcParams.update(
    {"font.size": 9, "axes.titlesize": 10, "figure.dpi": 100, "svg.fonttype": "none", "figure.max_open_warning": 0}
)


@dataclass
class FigureSpec:
    key: str
    title: str
    caption: str
    fig: Any = None


@dataclass
class FigureSet:
    figures: List[FigureSpec] = field(default_factory=list)
    not_produced: List[str] = field(default_factory=list)

    def add(self, spec: Optional[FigureSpec], reason: str):
        if spec is None:
            self.not_produced.append(reason)
        else:
            self.figures.append(spec)


def _color(rec):
    """The registry's colour of the record's method; λ variants get a colour per λ value."""
    lam_ = R.lam(rec) if (rec.get("variant") or {}).get("lam") is not None else None
    if lam_ is not None and lam_ != 1.0:
        return LAM_COLORS.get(lam_, "#bcbd22")
    return R.method_color(rec.get("method"))


def _mean_band(runs_xy: List[Tuple[List[float], List[float]]]):
    """Mean and std over runs at each epoch present in at least one run; n per epoch."""
    by: Dict[float, List[float]] = {}
    for xs, ys in runs_xy:
        for x, y in zip(xs, ys):
            by.setdefault(x, []).append(y)
    xs = sorted(by)
    m = np.array([np.mean(by[x]) for x in xs])
    s = np.array([np.std(by[x], ddof=1) if len(by[x]) > 1 else 0.0 for x in xs])
    n = [len(by[x]) for x in xs]
    return np.array(xs), m, s, n


def _line_plot(ax, groups, extractor, ylabel, quantity: str, x_axis: str):
    """Mean line and bounded ±1 std band per group; x from ``search_x`` (``x_axis``: "epoch" or
    "search_fraction", see ``search_axis``); the axes are marked and bounded by ``finish_axes``."""
    drawn = []
    for i, (_key, rs) in enumerate(groups):
        ok = [r for r in rs if R.is_ok(r)] or [r for r in rs if R.epochs(r)]
        data = []
        for r in ok:
            xs, ys = extractor(r)
            if xs:
                data.append(([search_x(r, x, x_axis) for x in xs], ys))
        if not data:
            continue
        xs, m, s, n = _mean_band(data)
        c = _color(rs[0])
        ls = LINESTYLES[i % len(LINESTYLES)]
        ax.plot(xs, m, color=c, lw=1.6, ls=ls, label=f"{R.group_label(rs[0])} (n={len(data)})")
        lower, upper = bounded_band(m, s, quantity)
        ax.fill_between(xs, lower, upper, color=c, alpha=0.18, lw=0)
        drawn.append((R.group_label(rs[0]), len(data)))
    ax.set_xlabel(search_axis_label(x_axis))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, loc="best")
    finish_axes(ax, x_axis, quantity)
    return drawn


def _prov_caption(recs, quantity: str, x_axis: str = "epoch") -> str:
    note = search_axis_note(recs, x_axis)
    return f"scale {R.scale_of(recs)}; data {R.dataset_label(recs)}; {band_note(quantity)}" + (
        f"; {note}" if note else ""
    )


def _select(records, space, methods, lam_values=None, kind="search"):
    """Groups for the given methods (default variants); with ``lam_values``, also the groups of those methods
    whose λ (``R.lam``) is one of them (the Fig. 2 λ sweep)."""
    out = []
    for key, rs in R.group(records, kind, space).items():
        m = key[1]
        if m not in methods:
            continue
        if lam_values is not None and R.lam(rs[0]) is not None:
            lam_ = R.lam(rs[0])
            if lam_ is None or not any(abs(lam_ - v) < 1e-9 for v in lam_values):
                continue
        elif key[2] != "{}":
            continue
        out.append((key, rs))
    return out


# ------------------------------------------------------------------------------------------ builders
def fig2_gap(records, space) -> Tuple[Optional[FigureSpec], str]:
    gs = _select(records, space, ["single-level", "milenas", "darts-1st", "darts-2nd"], lam_values=[0.1, 1.0, 999.0])
    if not gs:
        return None, (
            f"Fig. 2 ({space}): not produced: no runs of "
            + ", ".join(R.method_label(m) for m in ("single-level", "milenas", "darts-1st", "darts-2nd"))
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    recs = [r for _, rs in gs for r in rs]
    x_axis = search_axis(recs)
    _line_plot(ax, gs, R.gap_series, "train acc − val acc (pp)", "gap_pp", x_axis)
    ax.set_title(f"Fig. 2 analogue ({R.SPACE_NAMES[space]}): train–val accuracy gap")
    fig.tight_layout()
    return FigureSpec(
        f"fig2_gap_{space}",
        ax.get_title(),
        "Supernet train accuracy (search-train batches) minus search-val accuracy per epoch; "
        "λ=999 ≈ bilevel, λ=0.1 toward single-level; " + _prov_caption(recs, "gap_pp", x_axis),
        fig,
    ), ""


def fig3a_val(records, space):
    gs = _select(records, space, ["milenas", "darts-2nd", "darts-1st", "darts2-then-milenas"], lam_values=[1.0])
    if not gs:
        return None, (
            f"Fig. 3a ({space}): not produced: no runs of "
            + " / ".join(R.method_label(m) for m in ("milenas", "darts-2nd", "darts2-then-milenas"))
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    recs = [r for _, rs in gs for r in rs]
    x_axis = search_axis(recs)
    _line_plot(ax, gs, lambda r: R.series(r, "val_acc"), "search-val accuracy (%)", "accuracy_pct", x_axis)
    ax.set_title(f"Fig. 3a analogue ({R.SPACE_NAMES[space]}): search-val accuracy")
    missing = (
        []
        if any(k[1] == "darts2-then-milenas" for k, _ in gs)
        else [f"{R.method_label('darts2-then-milenas')}: no runs"]
    )
    fig.tight_layout()
    return FigureSpec(
        f"fig3a_val_{space}",
        ax.get_title(),
        "Supernet accuracy on the search-val data per epoch; "
        + _prov_caption(recs, "accuracy_pct", x_axis)
        + ("; " + "; ".join(missing) if missing else ""),
        fig,
    ), ""


def fig3b_time(records, space):
    gs = [(k, rs) for k, rs in R.group(records, "search", space).items() if any(R.is_ok(r) for r in rs)]
    if not gs:
        return None, f"Fig. 3b ({space}): not produced: no finished search runs"
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    labels = []
    for j, (key, title) in enumerate(
        (("search_seconds", "total search time (s)"), ("seconds_per_iteration", "time per iteration (s)"))
    ):
        ax = axes[j]
        ms, ss, cs = [], [], []
        for _k, rs in gs:
            v = np.array([R.final_value(r, key) for r in rs if R.is_ok(r) and R.final_value(r, key) is not None])
            ms.append(v.mean() if v.size else np.nan)
            ss.append(v.std(ddof=1) if v.size > 1 else 0.0)
            cs.append(_color(rs[0]))
            if j == 0:
                labels.append(f"{R.group_label(rs[0])}\n(n={v.size})")
        ax.bar(range(len(gs)), ms, yerr=bounded_errorbar(ms, ss, "seconds"), color=cs, capsize=3)
        ax.set_xticks(range(len(gs)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
        finish_axes(ax, "category", "seconds")
    recs = [r for _, rs in gs for r in rs]
    devs = ", ".join(R.devices(recs)) or "device not recorded"
    fig.suptitle(f"Fig. 3b analogue ({R.SPACE_NAMES[space]}): search cost on {devs}")
    fig.tight_layout()
    return FigureSpec(
        f"fig3b_time_{space}",
        f"Fig. 3b analogue ({R.SPACE_NAMES[space]}): search cost",
        "Mean ± 1 std (error bar, clipped at 0 s) over the ok seeds (n under each bar) of "
        f"final.search_seconds and final.seconds_per_iteration on {devs}; "
        f"scale {R.scale_of(recs)}; data {R.dataset_label(recs)}",
        fig,
    ), ""


def fig5_gumbel(records, space):
    """MiLeNAS-Gumbel vs GDAS as run in the MiLeNAS repo (gdas-milenas-repo); plain gdas only as a stand-in
    that is not like-for-like (it samples once per network and steps w→α)."""
    like = _select(records, space, ["milenas-gumbel", "gdas-milenas-repo"])
    have = {k[1] for k, _ in like}
    stand_in = "gdas-milenas-repo" not in have and bool(_select(records, space, ["gdas"]))
    gs = _select(records, space, ["gdas", "milenas-gumbel"]) if stand_in else like
    if not gs:
        return None, (
            f"Fig. 5 ({space}): not produced: no runs of {R.method_label('gdas-milenas-repo')}, "
            f"{R.method_label('gdas')} or {R.method_label('milenas-gumbel')}"
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    x_axis = search_axis([r for _, rs in gs for r in rs])
    _line_plot(ax, gs, lambda r: R.series(r, "val_acc"), "search-val accuracy (%)", "accuracy_pct", x_axis)
    comp = "gdas" if stand_in else "gdas-milenas-repo"
    ax.set_title(
        f"Fig. 5 analogue ({R.SPACE_NAMES[space]}): {R.method_label(comp)} vs {R.method_label('milenas-gumbel')}"
    )
    recs = [r for _, rs in gs for r in rs]
    have = {k[1] for k, _ in gs}
    miss = [R.method_label(m) + ": no runs" for m in (comp, "milenas-gumbel") if m not in have]
    if stand_in:
        miss.insert(
            0,
            f"{R.method_label('gdas-milenas-repo')} (gdas-milenas-repo): no runs; plain gdas shown instead, "
            "not like-for-like: gdas samples once per network and steps w→α",
        )
    fig.tight_layout()
    return FigureSpec(
        f"fig5_gumbel_{space}",
        ax.get_title(),
        "Search-val accuracy of the Gumbel-sampled supernet; published (DARTS space, CIFAR-10 original, "
        "full search): 69.56 vs 65.79 %. "
        + _prov_caption(recs, "accuracy_pct", x_axis)
        + ("; " + "; ".join(miss) if miss else ""),
        fig,
    ), ""


def fig6_size(records, space):
    pts = {}
    for key, rs in R.group(records, "search", space).items():
        for r in rs:
            if not R.is_ok(r):
                continue
            best = {}
            for e in R.epochs(r):
                sk = (e.get("arch_info") or {}).get("size_key")
                va = e.get("val_acc")
                if sk is None or va is None:
                    continue
                best[int(sk)] = max(best.get(int(sk), -1), float(va))
            for sk, v in best.items():
                pts.setdefault((key, R.group_label(rs[0]), _color(rs[0])), {}).setdefault(sk, []).append(v)
    if not pts:
        return None, f"Fig. 6 ({space}): not produced: no arch_info.size_key in the records"
    fig, ax = plt.subplots(figsize=(7, 4))
    allkeys = sorted({sk for d in pts.values() for sk in d})
    pos = {sk: i for i, sk in enumerate(allkeys)}
    off = np.linspace(-0.3, 0.3, len(pts)) if len(pts) > 1 else [0.0]
    for o, ((_key, label, c), d) in zip(off, pts.items()):
        xs = [pos[sk] + o for sk in sorted(d)]
        ys = [np.mean(d[sk]) for sk in sorted(d)]
        ax.scatter(xs, ys, color=c, label=label, s=22)
    ax.set_xticks(range(len(allkeys)))
    ax.set_xticklabels([f"n{sk // 10}r{sk % 10}" for sk in allkeys], rotation=45, fontsize=7)
    ax.set_xlabel("model-size key (conv ops in normal n / reduce r cell)")
    ax.set_ylabel("best search-val acc for that key (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    finish_axes(ax, "category", "accuracy_pct")
    ax.set_title(f"Fig. 6 analogue ({R.SPACE_NAMES.get(space, space)}): best search-val accuracy per model size")
    recs = [r for r in records if r.get("space") == space]
    fig.tight_layout()
    return FigureSpec(
        f"fig6_size_{space}",
        ax.get_title(),
        "Per run: best search-val accuracy among epochs whose derived cell has that conv-op count "
        "(arch_info.size_key = 10·n + r; "
        "docs/spaces/darts.md#model-size-keys-and-early-stopping-milenas); "
        "points = mean over the seeds that reached the key; "
        f"scale {R.scale_of(recs)}; data {R.dataset_label(recs)}",
        fig,
    ), ""


def nb201_bench(records, space):
    """Benchmark accuracy of the derived cell vs epoch, one panel per column the space reports."""
    cols = R.report_columns(space)
    gs = [
        (k, rs)
        for k, rs in R.group(records, "search", space).items()
        if any(R.bench_series(r, cols[0][0])[0] for r in rs)
    ]
    if not gs:
        return None, f"NB201 benchmark curve: not produced: no {space} runs with benchmark columns"
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharex=True)
    recs = [r for _, rs in gs for r in rs]
    x_axis = search_axis(recs)
    for ax, (col, name) in zip(axes, cols):
        _line_plot(ax, gs, lambda r, c=col: R.bench_series(r, c), f"{name} test acc (%)", "accuracy_pct", x_axis)
        ax.set_title(f"{name} ({col})", fontsize=9)
    for ax in axes[1:]:
        leg = ax.get_legend()
        if leg:
            leg.remove()
    fig.suptitle(
        "NAS-Bench-201: benchmark test accuracy of the derived cell vs "
        + ("search epoch" if x_axis == "epoch" else "fraction of the search")
    )
    fig.tight_layout()
    note = search_axis_note(recs, x_axis)
    return FigureSpec(
        f"{space}_bench_vs_epoch",
        "NAS-Bench-201: benchmark accuracy of the derived cell vs epoch",
        "Derived cell looked up each epoch in NB201 columns cifar10_test_200ep / cifar100_test_200ep / "
        f"imagenet16_120_test_200ep (200-epoch schedule, test split); {band_note('accuracy_pct')}; "
        + (f"{note}; " if note else "")
        + f"scale {R.scale_of(recs)}; search data {R.dataset_label(recs)}",
        fig,
    ), ""


def alpha_edge_labels(space: str, n_edges: int) -> List[str]:
    """ "i←j" per α row. Rows list, node by node, the edge into node i from every earlier node j: the order of
    xautodl's NB201 cell (edges "{i}<-{j}", one input node 0: ``cell_drawing`` "chain") and of quark0/darts
    cnn/model_search.py (input nodes 0 = c_{k-2}, 1 = c_{k-1}: "two_input"). A space the registry does not know
    gets the input-node count that gives exactly ``n_edges`` rows; "edge e" when none does."""
    cls = R.space_class(space)
    drawing = getattr(cls, "cell_drawing", None)
    inputs_of: Dict[Any, Tuple[int, ...]] = {"chain": (1,), "two_input": (2,)}
    for n_inputs in inputs_of.get(drawing, (1, 2)):
        labels: List[str] = []
        node = n_inputs
        while len(labels) < n_edges:
            labels += [f"{node}←{j}" for j in range(node)]
            node += 1
        if len(labels) == n_edges:
            return labels
    return [f"edge {e}" for e in range(n_edges)]


def alpha_op_names(space: str, n_ops: int) -> List[str]:
    """The space's α column order (its registered ``ops``); "op k" when the record's α has another width."""
    cls = R.space_class(space)
    ops = list(getattr(cls, "ops", ()) or ())
    return ops if len(ops) == n_ops else [f"op {k}" for k in range(n_ops)]


@dataclass
class AlphaPanel:
    """One method's α tensor: softmax(α) − 1/K averaged over seeds, per recorded epoch."""

    label: str
    tensor: str
    epochs: List[int]  # recorded 0-based epoch indices (columns of ``deviation``)
    deviation: np.ndarray  # (edges, ops, epochs): mean over seeds of softmax(α) − 1/K; NaN where none
    seeds_per_epoch: List[int]
    seed_max: Tuple[float, Any]  # (largest |p − 1/K| of any single seed, that seed)

    @property
    def n_ops(self) -> int:
        return self.deviation.shape[1]

    def seeds_text(self) -> str:
        lo, hi = min(self.seeds_per_epoch), max(self.seeds_per_epoch)
        return f"n={hi} seed{'s' if hi != 1 else ''}" if lo == hi else f"n={lo}–{hi} seeds"


def alpha_panels(records, space) -> List[AlphaPanel]:
    """Per method group and α tensor, the seed-mean deviation of softmax(α) from uniform (finished seeds; the
    unfinished ones only when a group has no finished seed with α)."""
    panels = []
    for _key, rs in R.group(records, "search", space).items():
        with_alpha = [r for r in rs if any(e.get("alpha_probs") for e in R.epochs(r))]
        runs = [r for r in with_alpha if R.is_ok(r)] or with_alpha
        tensors: List[str] = []
        for r in runs:
            for e in R.epochs(r):
                tensors += [t for t in (e.get("alpha_probs") or {}) if t not in tensors]
        for tensor in tensors:
            by_epoch: Dict[int, List[np.ndarray]] = {}
            seed_max = (0.0, None)
            for r in runs:
                for i, e in enumerate(R.epochs(r)):
                    p = np.asarray((e.get("alpha_probs") or {}).get(tensor, []), dtype=float)
                    if p.ndim != 2 or not p.size:
                        continue
                    d = p - 1.0 / p.shape[1]
                    by_epoch.setdefault(int(e.get("epoch", i)), []).append(d)
                    if np.abs(d).max() > seed_max[0]:
                        seed_max = (float(np.abs(d).max()), r.get("seed"))
            shapes = [d.shape for ds in by_epoch.values() for d in ds]
            if not shapes:
                continue
            shape = max(set(shapes), key=shapes.count)  # a record with another α shape is left out
            eps = list(range(min(by_epoch), max(by_epoch) + 1))
            dev = np.full(shape + (len(eps),), np.nan)
            n = []
            for t, ep in enumerate(eps):
                ds = [d for d in by_epoch.get(ep, []) if d.shape == shape]
                if ds:
                    dev[..., t] = np.mean(ds, axis=0)
                    n.append(len(ds))
            panels.append(AlphaPanel(R.group_label(rs[0]), tensor, eps, dev, n, seed_max))
    return panels


def largest_alpha_deviation(panels: List[AlphaPanel], space: str) -> Optional[Dict[str, Any]]:
    """Where the seed-mean softmax(α) is farthest from uniform: value, method, tensor, edge, op, epoch, p, 1/K."""
    best = None
    for pn in panels:
        a = np.abs(np.nan_to_num(pn.deviation, nan=0.0))
        if not a.size:
            continue
        e, k, t = np.unravel_index(int(np.argmax(a)), a.shape)
        if best is None or a[e, k, t] > best["value"]:
            best = {
                "value": float(a[e, k, t]),
                "method": pn.label,
                "tensor": pn.tensor,
                "edge": alpha_edge_labels(space, a.shape[0])[e],
                "op": alpha_op_names(space, a.shape[1])[k],
                "epoch": pn.epochs[t] + 1,
                "p": float(pn.deviation[e, k, t] + 1.0 / a.shape[1]),
                "uniform": 1.0 / a.shape[1],
                "seeds": pn.seeds_text(),
            }
    return best


def _small(v: float) -> str:
    """A probability difference for captions: 4 decimals, or 3 significant digits below 0.001."""
    return "0" if v == 0 else f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.2e}"


def alpha_heatmaps(records, space):
    """softmax(α) − 1/K per edge and op over epochs, mean over seeds, on one diverging colour scale centred at 0
    and scaled to the data (at cpu scale softmax(α) moves by under 0.01 from uniform: a 0–1 scale shows nothing)."""
    panels = alpha_panels(records, space)
    if not panels:
        return None, f"α heatmaps ({space}): not produced: no alpha_probs in the records"
    vmax = max(float(np.nanmax(np.abs(pn.deviation))) if np.isfinite(pn.deviation).any() else 0.0 for pn in panels)
    vmax = max(vmax, 1e-9)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")
    ncol = 2
    nrow = math.ceil(len(panels) / ncol)
    rows_per_panel = max(pn.deviation.shape[0] * pn.deviation.shape[1] for pn in panels)
    fig, axes = plt.subplots(nrow, ncol, figsize=(9, (1.5 + 0.012 * rows_per_panel) * nrow + 0.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    multi_tensor = len({pn.tensor for pn in panels}) > 1
    for ax, pn in zip(axes.flat, panels):
        ax.axis("on")
        E, K, T = pn.deviation.shape
        img = pn.deviation.reshape(E * K, T)
        x0, x1 = pn.epochs[0] + 1, pn.epochs[-1] + 1  # epochs completed
        im = ax.imshow(
            np.ma.masked_invalid(img),
            aspect="auto",
            cmap=cmap,
            vmin=-vmax,
            vmax=vmax,
            interpolation="nearest",
            extent=(x0 - 0.5, x1 + 0.5, E * K - 0.5, -0.5),
        )
        for e in range(1, E):
            ax.axhline(e * K - 0.5, color="black", lw=0.3)
        ax.set_yticks([e * K + (K - 1) / 2 for e in range(E)])
        ax.set_yticklabels(alpha_edge_labels(space, E), fontsize=5)
        peak = float(np.nanmax(np.abs(img))) if np.isfinite(img).any() else 0.0
        ax.set_title(
            f"{pn.label}{' — ' + pn.tensor if multi_tensor else ''}: {pn.seeds_text()}, max |p−1/K| {_small(peak)}",
            fontsize=7,
        )
        ax.set_xlabel("search epochs completed", fontsize=7)
        ax.set_ylabel("edge (ops inside)", fontsize=6)
        cb = fig.colorbar(im, ax=ax, fraction=0.04)
        cb.ax.tick_params(labelsize=5)
        cb.formatter.set_powerlimits((-2, 2))
        finish_axes(ax, "epoch", "edge_op")
    fig.suptitle(
        f"softmax(α) − 1/K over epochs, mean over seeds ({R.space_label(space)})\n"
        f"red: above uniform, blue: below; colour scale ±{_small(vmax)}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    recs = [r for r in records if r.get("space") == space and r.get("kind", "search") == "search"]
    best = largest_alpha_deviation(panels, space)
    seed_peak = max(panels, key=lambda pn: pn.seed_max[0])
    K = panels[0].n_ops
    ops = ", ".join(alpha_op_names(space, K))
    where = (
        f"{best['op']} on {best['tensor'] + ' ' if multi_tensor else ''}edge {best['edge']}, {best['method']}, "
        f"epoch {best['epoch']}: p = {best['p']:.4f} vs 1/K = {best['uniform']:.4f}, {best['seeds']}"
    )
    per_seed = (
        f"; largest in any single seed {_small(seed_peak.seed_max[0])} ({seed_peak.label}, seed "
        f"{seed_peak.seed_max[1]})"
        if seed_peak.seed_max[1] is not None
        else "; every record is uniform"
    )
    return FigureSpec(
        f"alpha_{space}",
        f"softmax(α) − 1/K heatmaps ({R.space_label(space)})",
        f"Deviation of softmax(α) from uniform, p − 1/K (K = {K} ops), in epochs[*].alpha_probs, "
        "averaged over each method's finished seeds per epoch (n in each panel title); one diverging "
        f"colour scale centred at 0 and scaled to the data (±{_small(vmax)}), shared by all panels; "
        "grey = no record. "
        f"Largest |p − 1/K| = {_small(best['value'])} ({where}){per_seed}. Rows: edges i←j, ops "
        f"inside each edge in the order {ops}; scale {R.scale_of(recs)}",
        fig,
    ), ""


# ------------------------------------------------------------------------------------------ cells
def _draw_nb201(ax, edges):
    """A chain cell (``SearchSpace.cell_drawing == "chain"``): edges ``(j, i, op)`` from ``R.arch_cells``."""
    pos = {k: (k, 0) for k in range(4)}
    for k, (x, y) in pos.items():
        ax.add_patch(plt.Circle((x, y), 0.16, color="#cfe2f3", ec="k", zorder=3))
        ax.text(x, y, str(k), ha="center", va="center", zorder=4, fontsize=8)
    for j, i, op in edges:
        if op == "none":
            continue
        span = i - j
        h = 0.35 * span * (1 if (j + i) % 2 == 0 else -1)
        xs = np.linspace(j + 0.12, i - 0.18, 30)
        ys = h * np.sin(np.pi * (xs - j) / span)
        ax.plot(xs, ys, color="#555", lw=1)
        ax.annotate(
            "", xy=(xs[-1], ys[-1]), xytext=(xs[-3], ys[-3]), arrowprops=dict(arrowstyle="->", color="#555", lw=1)
        )
        ax.text(
            (j + i) / 2,
            h * 1.05,
            op.replace("nor_conv_", "conv").replace("_3x3", "3").replace("skip_connect", "skip"),
            ha="center",
            va="center",
            fontsize=6,
            bbox=dict(fc="white", ec="none", pad=0.5),
        )
    ax.set_xlim(-0.4, 3.4)
    ax.set_ylim(-1.3, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")


def _draw_darts(ax, edges):
    # inputs c_{k-2}, c_{k-1} at left, nodes 0..3 in the middle, output at right
    pos = {0: (0, 1.0), 1: (0, -1.0)}
    for n in range(4):
        pos[n + 2] = (1.2 + n * 1.0, 1.2 - n * 0.8)
    pos["out"] = (5.6, 0)
    for k, (x, y) in pos.items():
        lab = {0: "c_{k-2}", 1: "c_{k-1}", "out": "c_{k}"}.get(k, str(k - 2) if isinstance(k, int) else k)
        ax.add_patch(
            plt.Circle((x, y), 0.22, color="#cfe2f3" if isinstance(k, int) and k >= 2 else "#f4cccc", ec="k", zorder=3)
        )
        ax.text(x, y, lab, ha="center", va="center", fontsize=6, zorder=4)
    short = {
        "sep_conv_3x3": "sep3",
        "sep_conv_5x5": "sep5",
        "dil_conv_3x3": "dil3",
        "dil_conv_5x5": "dil5",
        "max_pool_3x3": "max",
        "avg_pool_3x3": "avg",
        "skip_connect": "skip",
        "none": "none",
    }
    for idx, (j, node, op) in enumerate(edges):  # R.arch_cells: inputs 0, 1; nodes 2..5
        (x0, y0), (x1, y1) = pos[j], pos[node]
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops=dict(
                arrowstyle="->",
                color="#555",
                lw=0.8,
                shrinkA=7,
                shrinkB=7,
                connectionstyle=f"arc3,rad={0.15 if idx % 2 else -0.15}",
            ),
        )
        t = 0.55 if idx % 2 else 0.45
        ax.text(
            x0 + t * (x1 - x0),
            y0 + t * (y1 - y0),
            short.get(op, op),
            fontsize=5.5,
            ha="center",
            bbox=dict(fc="white", ec="none", pad=0.3),
        )
    for n in range(4):
        (x0, y0), (x1, y1) = pos[n + 2], pos["out"]
        ax.plot([x0, x1], [y0, y1], color="#bbb", lw=0.6, ls="--", zorder=1)
    ax.set_xlim(-0.5, 6.0)
    ax.set_ylim(-2.2, 1.8)
    ax.axis("off")


def cell_diagrams(records, space):
    items = []
    for _key, rs in R.group(records, "search", space).items():
        ok = [r for r in rs if R.is_ok(r) and (r.get("final") or {}).get("arch")]
        if not ok:
            continue
        archs = [r["final"]["arch"] for r in ok]
        arch = max(set(archs), key=archs.count)
        rep = next(r for r in ok if r["final"]["arch"] == arch)
        items.append((R.group_label(rs[0]), arch, archs.count(arch), len(archs), rep))
    if not items:
        return None, f"cell diagrams ({space}): not produced: no finished runs with a final arch"
    if R.space_class(space).cell_drawing == "chain":
        ncol = 3
        nrow = math.ceil(len(items) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.2 * nrow), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (label, arch, c, n, r) in zip(axes.flat, items):
            _draw_nb201(ax, next(iter(R.arch_cells(space, arch).values()), []))
            c10 = R.bench_value((r.get("final") or {}).get("arch_info"), "cifar10_test_200ep")
            ax.set_title(
                f"{label}: most common cell ({c}/{n} seeds)"
                + (f"\ncifar10_test_200ep {c10:.2f}" if c10 is not None else ""),
                fontsize=8,
            )
    else:
        fig, axes = plt.subplots(len(items), 2, figsize=(9, 2.3 * len(items)), squeeze=False)
        for i, (label, arch, c, n, _r) in enumerate(items):
            g = R.arch_cells(space, arch)
            for j, cell in enumerate(("normal", "reduce")):
                ax = axes[i][j]
                if cell in g:
                    _draw_darts(ax, g[cell])
                else:
                    ax.axis("off")
                ax.set_title(f"{label} — {cell} ({c}/{n} seeds)", fontsize=8)
    fig.suptitle(f"Final derived cells ({R.SPACE_NAMES.get(space, space)})")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return FigureSpec(
        f"cells_{space}",
        f"Final derived cells ({R.SPACE_NAMES.get(space, space)})",
        "Most common final.arch among the finished seeds of each method (count shown); `none` edges "
        f"omitted; scale {R.scale_of([it[4] for it in items])}",
        fig,
    ), ""


def _figures_of(records) -> FigureSet:
    fs = FigureSet()
    spaces = R.spaces_present(records)  # registered spaces, in display order
    for sp in spaces:
        fs.add(*fig2_gap(records, sp))
        fs.add(*fig3a_val(records, sp))
        fs.add(*fig3b_time(records, sp))
        fs.add(*fig5_gumbel(records, sp))
    for kind, figure in (("model_size", fig6_size), ("benchmark_curve", nb201_bench)):
        for sp in spaces:
            if kind in getattr(R.space_class(sp), "figure_kinds", ()):
                fs.add(*figure(records, sp))
    for sp in spaces:
        fs.add(*alpha_heatmaps(records, sp))
        fs.add(*cell_diagrams(records, sp))
    return fs


def all_figures(records) -> FigureSet:
    """Every figure, from one scale's records at a time: with several scales each figure is drawn per scale
    (key suffix ``_<scale>``), never pooling scales."""
    by = R.by_scale(records)
    if not by:
        fs = FigureSet()
        fs.not_produced.append("all figures: not produced: no run records")
        return fs
    if len(by) == 1:
        return _figures_of(records)
    out = FigureSet()
    for scale, recs in by.items():
        fs = _figures_of(recs)
        for spec in fs.figures:
            spec.key = f"{spec.key}_{scale}"
            spec.title = f"{spec.title} — {scale} scale"
            if spec.fig is not None and spec.fig._suptitle is not None:
                spec.fig._suptitle.set_text(spec.fig._suptitle.get_text() + f" — {scale} scale")
            elif spec.fig is not None and spec.fig.axes and spec.fig.axes[0].get_title():
                spec.fig.axes[0].set_title(spec.fig.axes[0].get_title() + f" — {scale} scale")
            out.figures.append(spec)
        out.not_produced += [f"[{scale} scale] {x}" for x in fs.not_produced]
    return out
