"""The figure rules every report figure follows (``reports.figures`` builders, and any figure a new method or
measurement adds): each axis is marked with the quantity it shows (``finish_axes``); a quantity's axis, lines and
bands never leave what the quantity can take (``QUANTITY_RANGES``, ``bounded_band``); epoch axes have integer ticks
(``integer_epoch_axis``); runs of different lengths share an axis in fraction of the search (``search_axis``).
``figure_rule_violations`` lists what a drawn figure breaks (tests/test_figure_rules.py runs it on every figure)."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import numpy as np
from matplotlib.ticker import MaxNLocator

from . import runs as R

#: quantity -> (lowest, highest) value it can take (None = unbounded). Axes are marked with their quantity
#: (``finish_axes``); a marked axis never shows values outside this range and bands are clipped to it.
QUANTITY_RANGES: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    "accuracy_pct": (0.0, 100.0),  # an accuracy in percent
    "gap_pp": (-100.0, 100.0),  # difference of two accuracies in percentage points
    "seconds": (0.0, None),  # a duration
    "probability": (0.0, 1.0),  # softmax(α)
    "prob_deviation": (-1.0, 1.0),  # softmax(α) − 1/K
    "epoch": (0.0, None),  # search epochs completed (integer ticks)
    "search_fraction": (0.0, 1.0),  # epochs completed / planned epochs of the run
    "edge_op": (None, None),  # rows of an α heat map (edges × ops)
    "category": (None, None),  # one tick per method / key
    "cosine": (-1.0, 1.0),  # cosine similarity of two directions
    "relative_error": (0.0, None),  # ‖a − b‖ / ‖b‖
    "alpha_distance": (0.0, None),  # ‖α_e − α_final‖₂
    "eigenvalue": (None, None),  # dominant eigenvalue of the α-Hessian (collapse diagnostics; may be negative)
}
QUANTITY_UNITS = {"accuracy_pct": " %", "gap_pp": " pp", "seconds": " s"}
#: axes of an epoch-like quantity: integer ticks (no 0.5 epochs)
INTEGER_QUANTITIES = ("epoch",)
_GID = re.compile(r"^quantity\.x-(\w+)\.y-(\w+)$")


def range_text(quantity: str) -> str:
    """ "[0, 100] %" for a quantity's range (used in captions)."""
    lo, hi = QUANTITY_RANGES[quantity]
    f = lambda v: "∞" if v is None else f"{v:g}"  # noqa: E731
    return f"[{'−' if lo is None else ''}{f(lo)}, {f(hi)}]{QUANTITY_UNITS.get(quantity, '')}"


def bounded_band(mean, spread, quantity: str):
    """(lower, upper) of a mean ± spread band, clipped to what ``quantity`` can take."""
    lo, hi = QUANTITY_RANGES[quantity]
    m, s = np.asarray(mean, dtype=float), np.asarray(spread, dtype=float)
    return np.clip(m - s, lo, hi), np.clip(m + s, lo, hi)


def bounded_errorbar(mean, spread, quantity: str):
    """``yerr`` (2×n, lower and upper lengths) for ``ax.bar``/``errorbar`` that stays inside the range."""
    lower, upper = bounded_band(mean, spread, quantity)
    m = np.asarray(mean, dtype=float)
    return np.nan_to_num(np.vstack([m - lower, upper - m]))


def integer_epoch_axis(ax, axis: str = "x") -> None:
    """Integer epoch ticks (matplotlib ``MaxNLocator(integer=True)``)."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def _clip_limits(limits, quantity: str):
    lo, hi = QUANTITY_RANGES[quantity]
    a, b = sorted(limits)
    a = a if lo is None else max(a, lo)
    b = b if hi is None else min(b, hi)
    if b <= a:  # all data at one bound: open the view inwards
        span = 1.0 if hi is None or lo is None else (hi - lo) * 0.05
        a, b = (a, a + span) if lo is not None and a <= lo else (b - span, b)
    return a, b


def finish_axes(ax, x: str, y: str) -> None:
    """Mark ``ax`` with the quantities of its x and y axes (``ax.get_gid()``, read by ``axes_quantities``),
    keep both views inside ``QUANTITY_RANGES`` and give epoch axes integer ticks. Call after plotting."""
    for q in (x, y):
        if q not in QUANTITY_RANGES:
            raise ValueError(f"unknown figure quantity {q!r}; known: {', '.join(QUANTITY_RANGES)}")
    ax.set_gid(f"quantity.x-{x}.y-{y}")
    if x not in ("category", "edge_op"):
        ax.set_xlim(*_clip_limits(ax.get_xlim(), x))
    if y not in ("category", "edge_op"):
        inverted = ax.yaxis_inverted()
        a, b = _clip_limits(ax.get_ylim(), y)
        ax.set_ylim(b, a) if inverted else ax.set_ylim(a, b)
    for q, axis in ((x, "x"), (y, "y")):
        if q in INTEGER_QUANTITIES:
            integer_epoch_axis(ax, axis)


def axes_quantities(ax) -> Optional[Tuple[str, str]]:
    """(x quantity, y quantity) of an axes marked by ``finish_axes``; None when unmarked."""
    m = _GID.match(ax.get_gid() or "")
    return (m.group(1), m.group(2)) if m else None


def planned_epochs(rec) -> int:
    """Planned search epochs of a run (its config), else the epochs it recorded."""
    n = R.search_epochs_planned(rec)
    if n:
        return int(n)
    eps = [int(e.get("epoch", i)) for i, e in enumerate(R.epochs(rec))]
    return max(eps) + 1 if eps else 1


def _run_lengths(recs) -> List[int]:
    """Planned epochs of the runs that recorded any epoch, sorted."""
    return sorted({planned_epochs(r) for r in recs if R.epochs(r)})


def search_axis(recs) -> str:
    """ "epoch" when every run plans the same number of epochs, else "search_fraction" (runs of 40 and 200
    epochs on one epoch axis would squeeze the short ones into a fifth of the plot)."""
    return "epoch" if len(_run_lengths(recs)) <= 1 else "search_fraction"


def search_x(rec, epoch_index: int, axis: str) -> float:
    """x of a recorded epoch (0-based ``epoch``): epochs completed, or that over the run's planned epochs."""
    done = int(epoch_index) + 1
    return float(done) if axis == "epoch" else done / planned_epochs(rec)


def search_axis_label(axis: str) -> str:
    return "search epochs completed" if axis == "epoch" else "fraction of the search (epochs completed / planned)"


def search_axis_note(recs, axis: str) -> str:
    """Caption words for the x axis: the run lengths sharing a fraction axis."""
    if axis == "epoch":
        return ""
    lengths = _run_lengths(recs)
    return (
        f"runs of {', '.join(map(str, lengths[:-1]))} and {lengths[-1]} epochs share one axis in fraction of the "
        "search (epochs completed / planned epochs)"
    )


def _outside(values, quantity: str, margin: float) -> bool:
    lo, hi = QUANTITY_RANGES[quantity]
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and ((lo is not None and v.min() < lo - margin) or (hi is not None and v.max() > hi + margin))


def _drawn_xy(ax):
    """(x values, y values) of what ``ax`` draws in data coordinates: lines, bands and error bars, scatter
    points, bars."""
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle

    xs, ys = [], []
    for ln in ax.get_lines():
        if ln.get_transform() == ax.transData:
            xy = np.asarray(ln.get_xydata(), dtype=float).reshape(-1, 2)
            xs.append(xy[:, 0])
            ys.append(xy[:, 1])
    for c in ax.collections:
        if isinstance(c, PathCollection):  # scatter: marker paths are in points, offsets in data
            xy = np.asarray(c.get_offsets(), dtype=float).reshape(-1, 2)
        else:
            xy = np.concatenate(
                [np.asarray(p.vertices, dtype=float).reshape(-1, 2) for p in c.get_paths()] or [np.empty((0, 2))]
            )
        xs.append(xy[:, 0])
        ys.append(xy[:, 1])
    for p in ax.patches:
        if isinstance(p, Rectangle) and p.get_transform() == ax.transData:
            xs.append(np.array([p.get_x(), p.get_x() + p.get_width()]))
            ys.append(np.array([p.get_y(), p.get_y() + p.get_height()]))
    flat = lambda parts: np.concatenate(parts) if parts else np.empty(0)  # noqa: E731
    return flat(xs), flat(ys)


def figure_rule_violations(fig, margin_frac: float = 0.01) -> List[str]:
    """What in ``fig`` breaks the figure rules: an axes that draws data but is not marked by ``finish_axes``;
    a marked axis whose view or drawn data (lines, bands, error bars, points, bars) leave the quantity's range
    (``margin_frac`` of a bounded range allowed); epoch-axis ticks that are not integers. Colour bars and hidden
    axes (cell diagrams) are not checked."""
    out = []
    for i, ax in enumerate(fig.axes):
        if not ax.axison or ax.get_label() == "<colorbar>":
            continue
        name = f"axes {i} ({ax.get_title() or ax.get_ylabel() or 'untitled'})"
        q = axes_quantities(ax)
        if q is None:
            if ax.get_lines() or ax.collections or ax.patches or ax.images:
                out.append(f"{name}: draws data but is not marked with its quantities (finish_axes)")
            continue
        drawn = dict(zip("xy", _drawn_xy(ax)))
        for axis, quantity, view in (("x", q[0], ax.get_xlim()), ("y", q[1], ax.get_ylim())):
            lo, hi = QUANTITY_RANGES[quantity]
            margin = margin_frac * (hi - lo) if lo is not None and hi is not None else 0.0
            if _outside(view, quantity, margin):
                out.append(
                    f"{name}: {axis} view {tuple(round(v, 3) for v in view)} leaves {quantity} {range_text(quantity)}"
                )
            if quantity not in ("category", "edge_op") and _outside(drawn[axis], quantity, margin):
                out.append(f"{name}: drawn {axis} values leave {quantity} {range_text(quantity)}")
            if quantity in INTEGER_QUANTITIES:
                a, b = sorted(view)
                ticks = [t for t in (ax.get_xticks() if axis == "x" else ax.get_yticks()) if a <= t <= b]
                if any(abs(t - round(t)) > 1e-9 for t in ticks):
                    out.append(f"{name}: {axis} ticks of {quantity} are not integers: {ticks}")
    return out


def band_note(quantity: str) -> str:
    """Caption words for what a line plot's band is."""
    return (
        f"line = mean over seeds, band = ±1 std over the n seeds in the legend (none where n = 1), "
        f"clipped to {range_text(quantity)}"
    )
