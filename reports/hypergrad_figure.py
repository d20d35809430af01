"""The hypergradient figure: cosine with the reference vs epoch and vs ‖α − α_final‖, and relative errors.

Drawn from a search record's hook results (``harness.hypergrad.hook.series``); ``python -m harness hypergrad``
writes it as ``OUT/hypergrad.png|svg``, the report embeds it (``reports.hypergrad.figure_specs``). It follows the
report's figure rules (``reports.figure_rules``). Labels and colours come from the registered methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .figure_rules import finish_axes  # noqa: E402


def label(doc: Dict[str, Any], name: str) -> str:
    """A direction's label: its registered method's ``display_label`` (with the variant), plus its estimator."""
    from harness.registry import find_method

    d = (doc.get("directions") or {}).get(name) or {}
    cls = find_method(d.get("method"))
    base = cls.display_label(d.get("variant") or None) if cls is not None else name
    return f"{base} ({d['estimator']} HVP)" if d.get("estimator") else base


def _style(doc: Dict[str, Any], name: str):
    """Colour from the registered method (``color``); the exact-HVP variant of an estimator dashed."""
    from harness.registry import find_method

    d = (doc.get("directions") or {}).get(name) or {}
    cls = find_method(d.get("method"))
    color = getattr(cls, "color", "#7f7f7f") if cls is not None else "#7f7f7f"
    ls = "--" if d.get("estimator") else (":" if d.get("variant") else "-")
    return color, "o", ls


def _xy(xs, ys):
    pts = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def make_figure(doc: Dict[str, Any]):
    """A 1×3 figure of a record's hypergrad series (``harness.hypergrad.hook.series``)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    epochs = [e + 1 for e in doc.get("epochs", [])]  # 1-based epochs on the axis: "after epoch e"
    dist = doc.get("alpha_distance_to_final", [])
    ok = doc.get("reference_ok", [True] * len(epochs))
    for name in doc.get("methods", []):
        color, marker, ls = _style(doc, name)
        lab = label(doc, name)
        cos = doc["cosine"][name]
        axes[0].plot(*_xy(epochs, cos), color=color, marker=marker, ls=ls, label=lab)
        good = [c if o else None for c, o in zip(cos, ok)]
        bad = [None if o else c for c, o in zip(cos, ok)]
        axes[1].plot(*_xy(dist, good), color=color, marker=marker, ls="none", label=lab)
        axes[1].plot(*_xy(dist, bad), color=color, marker=marker, ls="none", mfc="none")
        axes[2].plot(*_xy(epochs, doc["rel_error"][name]), color=color, marker=marker, ls=ls, label=lab)
    for name, errs in (doc.get("hvp_error") or {}).items():
        lab = label(doc, name)
        axes[2].plot(
            *_xy(epochs, errs.get("float32", [])), color="k", marker="*", ls="-.", label=f"{lab}: FD HVP (float32)"
        )
        axes[2].plot(
            *_xy(epochs, errs.get("float64", [])), color="grey", marker="*", ls=":", label=f"{lab}: FD HVP (float64)"
        )
    for x, good in zip(epochs, ok):
        if not good:
            axes[0].axvline(x, color="#e0a0a0", lw=6, alpha=0.35, zorder=0)
    axes[0].set(
        xlabel="epoch (measured after its last iteration)",
        ylabel="cosine with reference hypergradient",
        title="cosine vs epoch",
    )
    axes[1].set(
        xlabel="‖α − α_final‖₂ (raw logits)",
        ylabel="cosine with reference hypergradient",
        title="cosine vs distance of α from its final value",
    )
    axes[1].invert_xaxis()
    axes[2].set(xlabel="epoch", ylabel="relative error ‖d − h‖/‖h‖", title="relative error", yscale="log")
    for ax in axes[:2]:
        ax.axhline(0, color="#999", lw=0.8)
    finish_axes(axes[0], "epoch", "cosine")
    finish_axes(axes[1], "alpha_distance", "cosine")
    finish_axes(axes[2], "epoch", "relative_error")
    axes[0].legend(fontsize=7, loc="lower left")
    axes[2].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"Hypergradient error along a {doc.get('label') or doc.get('method', '?')} search on "
        f"{doc.get('space', '?')} "
        f"(scale {doc.get('scale')}; shaded / hollow: reference not converged)",
        fontsize=10,
    )
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
