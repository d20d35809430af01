"""Collapse diagnostics in the report: the dominant α-Hessian eigenvalue vs epoch, one figure per space, every method
whose search records carry it (the default-on ``collapse`` hook, ``harness.diagnostics.collapse``; docs/collapse.md).

Each method (and variant) is a mean line with a ±1 std band over seeds (``reports.figures`` conventions, marked and
bounded by ``reports.figure_rules``); the caption states the measured seconds per eigenvalue evaluation.  The
all-methods table's collapse column is ``harness.diagnostics.collapse.final_eigenvalue`` (re-exported here as
``collapse_value``)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import matplotlib.pyplot as plt

from harness.diagnostics.collapse import eigenvalue_seconds, final_eigenvalue, series
from harness.registry import get_space

from . import runs as R
from .figure_rules import search_axis
from .figures import FigureSpec, _line_plot, _prov_caption

collapse_value = final_eigenvalue  #: the all-methods table's column: a record's last measured eigenvalue


def measured(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Search records with at least one eigenvalue."""
    return [r for r in records if r.get("kind", "search") == "search" and series(r)["eigenvalue"]]


def _eigen_xy(rec):
    s = series(rec)
    return s["epochs"], s["eigenvalue"]


def figure_specs(records: Sequence[Dict[str, Any]]) -> List[FigureSpec]:
    """One figure per space: eigenvalue vs epoch per method (none for a space without measured records)."""
    recs = measured(records)
    names = {str(r["space"]) for r in recs if r.get("space")}
    spaces = sorted(names, key=lambda s: (get_space(s).display_rank, s))
    out = []
    for space in spaces:
        groups = list(R.group(recs, "search", space).items())
        in_space = [r for _, rs in groups for r in rs]
        axis = search_axis(in_space)
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        _line_plot(ax, groups, _eigen_xy, "dominant eigenvalue of ∇²_α L_val", "eigenvalue", axis)
        secs = eigenvalue_seconds(in_space)
        cost = f"{secs:.2f} s per evaluation (mean over {sum(len(series(r)['seconds']) for r in in_space)})"
        label = get_space(space).label or space
        ax.set_title(f"{label}: α-Hessian eigenvalue", fontsize=10)
        fig.tight_layout()
        out.append(
            FigureSpec(
                f"collapse-{space}",
                f"Collapse diagnostics, {label}: dominant α-Hessian eigenvalue vs epoch",
                f"Largest eigenvalue of the Hessian of the search-val loss w.r.t. α (+ α weight decay, as R-DARTS), "
                f"one fixed val batch, measured every hooks.collapse.every epochs and after the last; mean ± 1 std "
                f"over seeds per method. Cost: {cost}. {_prov_caption(in_space, 'eigenvalue', axis)}.",
                fig,
            )
        )
    return out


__all__ = ["figure_specs", "measured", "collapse_value"]
