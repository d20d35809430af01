"""The hypergradient figure: cosine with the reference vs epoch and vs ‖α − α_final‖, and relative errors.

Written as ``hypergrad.png`` and ``hypergrad.svg`` next to ``hypergrad.json`` (matplotlib Agg).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

STYLE = {"darts-1st": ("#1f77b4", "o", "-"), "darts-2nd": ("#17becf", "s", "-"),
         "darts-2nd-exact": ("#17becf", "s", "--"), "milenas": ("#d62728", "^", "-"),
         "single-level": ("#9467bd", "v", "-")}


def _style(name: str):
    if name in STYLE:
        return STYLE[name]
    if name.startswith("milenas"):
        return ("#ff7f0e", "^", ":")
    return ("#7f7f7f", "x", "-")


def _xy(xs, ys):
    pts = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def make_figure(doc: Dict[str, Any]):
    """A 1×3 figure of a hypergrad.json document."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    epochs = [e + 1 for e in doc.get("epochs", [])]  # 1-based epochs on the axis: "after epoch e"
    dist = doc.get("alpha_distance_to_final", [])
    ok = doc.get("reference_ok", [True] * len(epochs))
    for name in doc.get("methods", []):
        color, marker, ls = _style(name)
        cos = doc["cosine"][name]
        axes[0].plot(*_xy(epochs, cos), color=color, marker=marker, ls=ls, label=name)
        good = [c if o else None for c, o in zip(cos, ok)]
        bad = [None if o else c for c, o in zip(cos, ok)]
        axes[1].plot(*_xy(dist, good), color=color, marker=marker, ls="none", label=name)
        axes[1].plot(*_xy(dist, bad), color=color, marker=marker, ls="none", mfc="none")
        axes[2].plot(*_xy(epochs, doc["rel_error"][name]), color=color, marker=marker, ls=ls, label=name)
    axes[2].plot(*_xy(epochs, doc.get("fd_hvp_rel_error", [])), color="k", marker="*", ls="-.",
                 label="FD HVP (float32)")
    axes[2].plot(*_xy(epochs, doc.get("fd_hvp_rel_error_float64", [])), color="grey", marker="*", ls=":",
                 label="FD HVP (float64)")
    for x, good in zip(epochs, ok):
        if not good:
            axes[0].axvline(x, color="#e0a0a0", lw=6, alpha=0.35, zorder=0)
    axes[0].set(xlabel="epoch (measured after its last iteration)", ylabel="cosine with reference hypergradient",
                title="cosine vs epoch")
    axes[1].set(xlabel="‖α − α_final‖₂ (raw logits)", ylabel="cosine with reference hypergradient",
                title="cosine vs distance of α from its final value")
    axes[1].invert_xaxis()
    for ax in (axes[0], axes[2]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set(xlabel="epoch", ylabel="relative error ‖d − h‖/‖h‖", title="relative error", yscale="log")
    for ax in axes[:2]:
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
    axes[0].legend(fontsize=7, loc="lower left")
    axes[2].legend(fontsize=7, loc="best")
    traj = doc.get("trajectory", {})
    fig.suptitle(f"Hypergradient error along a {traj.get('label', traj.get('method', '?'))} search on NB201 "
                 f"(scale {doc.get('scale')}; shaded / hollow: reference not converged)", fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(doc: Dict[str, Any], out_dir: Path, stem: str = "hypergrad") -> List[Path]:
    fig = make_figure(doc)
    paths = [Path(out_dir) / f"{stem}.png", Path(out_dir) / f"{stem}.svg"]
    try:
        fig.savefig(paths[0], dpi=110)
        fig.savefig(paths[1])
    finally:
        plt.close(fig)
    return paths
