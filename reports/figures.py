"""Report figures (matplotlib, Agg). Each builder returns ``FigureSpec`` objects, or a "not produced"
note when its data are absent. Captions carry n, scale, dataset label and benchmark column."""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import runs as R  # noqa: E402

# λ variants of a method (Fig. 2 sweep): colours by λ value; a method's own colour comes from the registry
LAM_COLORS = {0.1: "#e377c2", 999.0: "#7f7f7f"}
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (1, 1))]
# figures stay open until the report is written (build_report closes them): no "too many figures" warning
plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 100, "svg.fonttype": "none",
                     "figure.max_open_warning": 0})


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


def _mean_band(runs_xy: List[Tuple[List[int], List[float]]]):
    """Mean and std over runs at each epoch present in at least one run; n per epoch."""
    by = {}
    for xs, ys in runs_xy:
        for x, y in zip(xs, ys):
            by.setdefault(x, []).append(y)
    xs = sorted(by)
    m = np.array([np.mean(by[x]) for x in xs])
    s = np.array([np.std(by[x], ddof=1) if len(by[x]) > 1 else 0.0 for x in xs])
    n = [len(by[x]) for x in xs]
    return np.array(xs), m, s, n


def _line_plot(ax, groups, extractor, ylabel):
    drawn = []
    for i, (key, rs) in enumerate(groups):
        ok = [r for r in rs if R.is_ok(r)] or [r for r in rs if R.epochs(r)]
        data = [extractor(r) for r in ok]
        data = [d for d in data if d[0]]
        if not data:
            continue
        xs, m, s, n = _mean_band(data)
        c = _color(rs[0])
        ls = LINESTYLES[i % len(LINESTYLES)]
        ax.plot(xs, m, color=c, lw=1.6, ls=ls, label=f"{R.group_label(rs[0])} (n={len(data)})")
        ax.fill_between(xs, m - s, m + s, color=c, alpha=0.18, lw=0)
        drawn.append((R.group_label(rs[0]), len(data)))
    ax.set_xlabel("search epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, loc="best")
    return drawn


def _prov_caption(recs) -> str:
    return f"scale {R.scale_of(recs)}; data {R.dataset_label(recs)}; band = ±1 std over seeds (n in legend)"


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
            if lam_ is None or not any(abs(lam_ - l) < 1e-9 for l in lam_values):
                continue
        elif key[2] != "{}":
            continue
        out.append((key, rs))
    return out


# ------------------------------------------------------------------------------------------ builders
def fig2_gap(records, space) -> Tuple[Optional[FigureSpec], str]:
    gs = _select(records, space, ["single-level", "milenas", "darts-1st", "darts-2nd"], lam_values=[0.1, 1.0, 999.0])
    if not gs:
        return None, (f"Fig. 2 ({space}): not produced: no runs of "
                      + ", ".join(R.method_label(m) for m in ("single-level", "milenas", "darts-1st", "darts-2nd")))
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = _line_plot(ax, gs, R.gap_series, "train acc − val acc (pp)")
    ax.set_title(f"Fig. 2 analogue ({R.SPACE_NAMES[space]}): train–val accuracy gap")
    recs = [r for _, rs in gs for r in rs]
    fig.tight_layout()
    return FigureSpec(f"fig2_gap_{space}", ax.get_title(),
                      "Supernet train accuracy (search-train batches) minus search-val accuracy per epoch; "
                      "λ=999 ≈ bilevel, λ=0.1 toward single-level; " + _prov_caption(recs), fig), ""


def fig3a_val(records, space):
    gs = _select(records, space, ["milenas", "darts-2nd", "darts-1st", "darts2-then-milenas"], lam_values=[1.0])
    if not gs:
        return None, (f"Fig. 3a ({space}): not produced: no runs of "
                      + " / ".join(R.method_label(m) for m in ("milenas", "darts-2nd", "darts2-then-milenas")))
    fig, ax = plt.subplots(figsize=(7, 4))
    _line_plot(ax, gs, lambda r: R.series(r, "val_acc"), "search-val accuracy (%)")
    ax.set_title(f"Fig. 3a analogue ({R.SPACE_NAMES[space]}): search-val accuracy")
    recs = [r for _, rs in gs for r in rs]
    missing = ([] if any(k[1] == "darts2-then-milenas" for k, _ in gs)
               else [f"{R.method_label('darts2-then-milenas')}: no runs"])
    fig.tight_layout()
    return FigureSpec(f"fig3a_val_{space}", ax.get_title(),
                      "Supernet accuracy on the search-val data per epoch; " + _prov_caption(recs)
                      + ("; " + "; ".join(missing) if missing else ""), fig), ""


def fig3b_time(records, space):
    gs = [(k, rs) for k, rs in R.group(records, "search", space).items() if any(R.is_ok(r) for r in rs)]
    if not gs:
        return None, f"Fig. 3b ({space}): not produced: no finished search runs"
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    labels = []
    for j, (key, title) in enumerate((("search_seconds", "total search time (s)"),
                                      ("seconds_per_iteration", "time per iteration (s)"))):
        ax = axes[j]
        ms, ss, cs = [], [], []
        for k, rs in gs:
            v = np.array([R.final_value(r, key) for r in rs if R.is_ok(r) and R.final_value(r, key) is not None])
            ms.append(v.mean() if v.size else np.nan)
            ss.append(v.std(ddof=1) if v.size > 1 else 0.0)
            cs.append(_color(rs[0]))
            if j == 0:
                labels.append(f"{R.group_label(rs[0])}\n(n={v.size})")
        ax.bar(range(len(gs)), ms, yerr=ss, color=cs, capsize=3)
        ax.set_xticks(range(len(gs)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    recs = [r for _, rs in gs for r in rs]
    devs = ", ".join(R.devices(recs)) or "device not recorded"
    fig.suptitle(f"Fig. 3b analogue ({R.SPACE_NAMES[space]}): search cost on {devs}")
    fig.tight_layout()
    return FigureSpec(f"fig3b_time_{space}", f"Fig. 3b analogue ({R.SPACE_NAMES[space]}): search cost",
                      f"Mean ± std over ok seeds of final.search_seconds and final.seconds_per_iteration on {devs}; "
                      f"scale {R.scale_of(recs)}; data {R.dataset_label(recs)}", fig), ""


def fig5_gumbel(records, space):
    """MiLeNAS-Gumbel vs GDAS as run in the MiLeNAS repo (gdas-milenas-repo); plain gdas only as a stand-in
    that is not like-for-like (it samples once per network and steps w→α)."""
    like = _select(records, space, ["milenas-gumbel", "gdas-milenas-repo"])
    have = {k[1] for k, _ in like}
    stand_in = "gdas-milenas-repo" not in have and bool(_select(records, space, ["gdas"]))
    gs = _select(records, space, ["gdas", "milenas-gumbel"]) if stand_in else like
    if not gs:
        return None, (f"Fig. 5 ({space}): not produced: no runs of {R.method_label('gdas-milenas-repo')}, "
                      f"{R.method_label('gdas')} or {R.method_label('milenas-gumbel')}")
    fig, ax = plt.subplots(figsize=(7, 4))
    _line_plot(ax, gs, lambda r: R.series(r, "val_acc"), "search-val accuracy (%)")
    comp = "gdas" if stand_in else "gdas-milenas-repo"
    ax.set_title(f"Fig. 5 analogue ({R.SPACE_NAMES[space]}): {R.method_label(comp)} vs {R.method_label('milenas-gumbel')}")
    recs = [r for _, rs in gs for r in rs]
    have = {k[1] for k, _ in gs}
    miss = [R.method_label(m) + ": no runs" for m in (comp, "milenas-gumbel") if m not in have]
    if stand_in:
        miss.insert(0, f"{R.method_label('gdas-milenas-repo')} (gdas-milenas-repo): no runs; plain gdas shown instead, "
                       "not like-for-like: gdas samples once per network and steps w→α")
    fig.tight_layout()
    return FigureSpec(f"fig5_gumbel_{space}", ax.get_title(),
                      "Search-val accuracy of the Gumbel-sampled supernet; published (DARTS space, CIFAR-10 original, "
                      "full search): 69.56 vs 65.79 %. " + _prov_caption(recs) + ("; " + "; ".join(miss) if miss else ""),
                      fig), ""


def fig6_size(records, space="darts"):
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
    for o, ((key, label, c), d) in zip(off, pts.items()):
        xs = [pos[sk] + o for sk in sorted(d)]
        ys = [np.mean(d[sk]) for sk in sorted(d)]
        ax.scatter(xs, ys, color=c, label=label, s=22)
    ax.set_xticks(range(len(allkeys)))
    ax.set_xticklabels([f"n{sk // 10}r{sk % 10}" for sk in allkeys], rotation=45, fontsize=7)
    ax.set_xlabel("model-size key (conv ops in normal n / reduce r cell)")
    ax.set_ylabel("best search-val acc for that key (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Fig. 6 analogue ({R.SPACE_NAMES.get(space, space)}): best search-val accuracy per model size")
    recs = [r for r in records if r.get("space") == space]
    fig.tight_layout()
    return FigureSpec(f"fig6_size_{space}", ax.get_title(),
                      "Per run: best search-val accuracy among epochs whose derived cell has that conv-op count "
                      "(arch_info.size_key = 10·n + r, spec §3.4); points = mean over the seeds that reached the key; "
                      f"scale {R.scale_of(recs)}; data {R.dataset_label(recs)}", fig), ""


def nb201_bench(records):
    gs = [(k, rs) for k, rs in R.group(records, "search", "nb201").items()
          if any(R.bench_series(r, "cifar10_test_200ep")[0] for r in rs)]
    if not gs:
        return None, "NB201 benchmark curve: not produced: no nb201 runs with benchmark columns"
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharex=True)
    for ax, (col, name) in zip(axes, R.BENCH_COLS):
        _line_plot(ax, gs, lambda r, c=col: R.bench_series(r, c), f"{name} test acc (%)")
        ax.set_title(f"{name} ({col})", fontsize=9)
    for ax in axes[1:]:
        leg = ax.get_legend()
        if leg:
            leg.remove()
    fig.suptitle("NAS-Bench-201: benchmark test accuracy of the derived cell vs search epoch")
    fig.tight_layout()
    recs = [r for _, rs in gs for r in rs]
    return FigureSpec("nb201_bench_vs_epoch", "NAS-Bench-201: benchmark accuracy of the derived cell vs epoch",
                      "Derived cell looked up each epoch in NB201 columns cifar10_test_200ep / cifar100_test_200ep / "
                      "imagenet16_120_test_200ep (200-epoch schedule, test split); mean over seeds, band ±1 std; "
                      f"scale {R.scale_of(recs)}; search data {R.dataset_label(recs)}", fig), ""


def alpha_heatmaps(records, space):
    rows = []
    for key, rs in R.group(records, "search", space).items():
        r = next((x for x in rs if R.is_ok(x) and R.epochs(x)), None) or next((x for x in rs if R.epochs(x)), None)
        if r is None:
            continue
        probs = [e.get("alpha_probs") or {} for e in R.epochs(r)]
        names = list(probs[-1].keys()) if probs and probs[-1] else []
        if names:
            rows.append((r, names, probs))
    if not rows:
        return None, f"α heatmaps ({space}): not produced: no alpha_probs in the records"
    panels = [(r, name, probs) for r, names, probs in rows for name in names]
    ncol = 2
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(9, 2.0 * nrow + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (r, name, probs) in zip(axes.flat, panels):
        mats = [np.asarray(p.get(name), dtype=float) for p in probs if p.get(name) is not None]
        if not mats or mats[0].ndim != 2:
            continue
        ax.axis("on")
        E, K = mats[0].shape
        img = np.stack([m.reshape(-1) for m in mats], axis=1)     # (edges*ops, epochs)
        im = ax.imshow(img, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        for e in range(1, E):
            ax.axhline(e * K - 0.5, color="white", lw=0.4)
        ax.set_yticks([e * K + (K - 1) / 2 for e in range(E)])
        ax.set_yticklabels([f"edge {e}" for e in range(E)], fontsize=5)
        ax.set_title(f"{R.group_label(r)} seed {r.get('seed')} — {name} ({E} edges × {K} ops)", fontsize=8)
        ax.set_xlabel("epoch", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.suptitle(f"softmax(α) over epochs ({R.SPACE_NAMES.get(space, space)})\n"
                 "rows: edges, ops inside each edge in the space's α column order", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    recs = [r for r, _, _ in rows]
    return FigureSpec(f"alpha_{space}", f"α heatmaps ({R.SPACE_NAMES.get(space, space)})",
                      "epochs[*].alpha_probs of one seed per method (the lowest finished seed); each block of rows is "
                      f"one edge, ops in the space's α column order; scale {R.scale_of(recs)}", fig), ""


# ------------------------------------------------------------------------------------------ cells
def parse_nb201(arch: str) -> List[Tuple[int, int, str]]:
    """[(src, dst, op)] from an NB201 arch string."""
    edges = []
    for i, node in enumerate(arch.strip().split("+"), start=1):
        for tok in node.strip("|").split("|"):
            if "~" in tok:
                op, j = tok.rsplit("~", 1)
                edges.append((int(j), i, op))
    return edges


def parse_genotype(text: str) -> Dict[str, List[Tuple[str, int]]]:
    out = {}
    for name in ("normal", "reduce"):
        m = re.search(name + r"\s*=\s*(\[.*?\])\s*,\s*" + name + "_concat", text, re.S)
        if m:
            try:
                out[name] = [(t[0], int(t[1])) for t in ast.literal_eval(m.group(1))]
            except (ValueError, SyntaxError):
                pass
    return out


def _draw_nb201(ax, arch):
    edges = parse_nb201(arch)
    pos = {k: (k, 0) for k in range(4)}
    for k, (x, y) in pos.items():
        ax.add_patch(plt.Circle((x, y), 0.16, color="#cfe2f3", ec="k", zorder=3))
        ax.text(x, y, str(k), ha="center", va="center", zorder=4, fontsize=8)
    for (j, i, op) in edges:
        if op == "none":
            continue
        span = i - j
        h = 0.35 * span * (1 if (j + i) % 2 == 0 else -1)
        xs = np.linspace(j + 0.12, i - 0.18, 30)
        ys = h * np.sin(np.pi * (xs - j) / span)
        ax.plot(xs, ys, color="#555", lw=1)
        ax.annotate("", xy=(xs[-1], ys[-1]), xytext=(xs[-3], ys[-3]),
                    arrowprops=dict(arrowstyle="->", color="#555", lw=1))
        ax.text((j + i) / 2, h * 1.05, op.replace("nor_conv_", "conv").replace("_3x3", "3").replace("skip_connect", "skip"),
                ha="center", va="center", fontsize=6, bbox=dict(fc="white", ec="none", pad=0.5))
    ax.set_xlim(-0.4, 3.4)
    ax.set_ylim(-1.3, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")


def _draw_darts(ax, pairs):
    # inputs c_{k-2}, c_{k-1} at left, nodes 0..3 in the middle, output at right
    pos = {0: (0, 1.0), 1: (0, -1.0)}
    for n in range(4):
        pos[n + 2] = (1.2 + n * 1.0, 1.2 - n * 0.8)
    pos["out"] = (5.6, 0)
    for k, (x, y) in pos.items():
        lab = {0: "c_{k-2}", 1: "c_{k-1}", "out": "c_{k}"}.get(k, str(k - 2) if isinstance(k, int) else k)
        ax.add_patch(plt.Circle((x, y), 0.22, color="#cfe2f3" if isinstance(k, int) and k >= 2 else "#f4cccc",
                                ec="k", zorder=3))
        ax.text(x, y, lab, ha="center", va="center", fontsize=6, zorder=4)
    short = {"sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5",
             "max_pool_3x3": "max", "avg_pool_3x3": "avg", "skip_connect": "skip", "none": "none"}
    for idx, (op, j) in enumerate(pairs):
        node = idx // 2 + 2
        (x0, y0), (x1, y1) = pos[j], pos[node]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="#555", lw=0.8, shrinkA=7, shrinkB=7,
                                    connectionstyle=f"arc3,rad={0.15 if idx % 2 else -0.15}"))
        t = 0.55 if idx % 2 else 0.45
        ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0), short.get(op, op), fontsize=5.5, ha="center",
                bbox=dict(fc="white", ec="none", pad=0.3))
    for n in range(4):
        (x0, y0), (x1, y1) = pos[n + 2], pos["out"]
        ax.plot([x0, x1], [y0, y1], color="#bbb", lw=0.6, ls="--", zorder=1)
    ax.set_xlim(-0.5, 6.0)
    ax.set_ylim(-2.2, 1.8)
    ax.axis("off")


def cell_diagrams(records, space):
    items = []
    for key, rs in R.group(records, "search", space).items():
        ok = [r for r in rs if R.is_ok(r) and (r.get("final") or {}).get("arch")]
        if not ok:
            continue
        archs = [r["final"]["arch"] for r in ok]
        arch = max(set(archs), key=archs.count)
        rep = next(r for r in ok if r["final"]["arch"] == arch)
        items.append((R.group_label(rs[0]), arch, archs.count(arch), len(archs), rep))
    if not items:
        return None, f"cell diagrams ({space}): not produced: no finished runs with a final arch"
    if space == "nb201":
        ncol = 3
        nrow = math.ceil(len(items) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.2 * nrow), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (label, arch, c, n, r) in zip(axes.flat, items):
            _draw_nb201(ax, arch)
            c10 = R.bench_value((r.get("final") or {}).get("arch_info"), "cifar10_test_200ep")
            ax.set_title(f"{label}: most common cell ({c}/{n} seeds)"
                         + (f"\ncifar10_test_200ep {c10:.2f}" if c10 is not None else ""),
                         fontsize=8)
    else:
        fig, axes = plt.subplots(len(items), 2, figsize=(9, 2.3 * len(items)), squeeze=False)
        for i, (label, arch, c, n, r) in enumerate(items):
            g = parse_genotype(arch)
            for j, cell in enumerate(("normal", "reduce")):
                ax = axes[i][j]
                if cell in g:
                    _draw_darts(ax, g[cell])
                else:
                    ax.axis("off")
                ax.set_title(f"{label} — {cell} ({c}/{n} seeds)", fontsize=8)
    fig.suptitle(f"Final derived cells ({R.SPACE_NAMES.get(space, space)})")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return FigureSpec(f"cells_{space}", f"Final derived cells ({R.SPACE_NAMES.get(space, space)})",
                      "Most common final.arch among the finished seeds of each method (count shown); `none` edges "
                      f"omitted; scale {R.scale_of([it[4] for it in items])}", fig), ""


def _figures_of(records) -> FigureSet:
    fs = FigureSet()
    spaces = [s for s in ("nb201", "darts") if any(r.get("space") == s for r in records)]
    for sp in spaces:
        fs.add(*fig2_gap(records, sp))
        fs.add(*fig3a_val(records, sp))
        fs.add(*fig3b_time(records, sp))
        fs.add(*fig5_gumbel(records, sp))
    if "darts" in spaces:
        fs.add(*fig6_size(records, "darts"))
    if "nb201" in spaces:
        fs.add(*nb201_bench(records))
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
