"""Report section: the hypergradient error of each method along a search (MiLeNAS paper §2.2–3; issue 12).

Input: every ``hypergrad.json`` under a runs folder (written by ``python -m harness hypergrad``).
Output: a verdict on the paper's statement, per scale (scales are never pooled), tables per
measurement, and the figure.  ``append_markdown`` / ``append_html`` add the section to an already
rendered report and do nothing when no ``hypergrad.json`` exists.

The paper's statement (§2.2–3): DARTS' approximations of the bilevel hypergradient cause gradient
errors, and "when α is approaching the optima, the approximate gradient … will lead to large
deviation from true gradient".  Rule (``RULE``): over the measured epochs whose reference
converged, the Spearman correlation ρ between the cosine of the DARTS-2nd (finite-difference)
direction with the reference and the distance ‖α_e − α_final‖ (α_final, the search's final α,
stands for the optimum it approaches).  The statement predicts ρ > 0 (the closer α is to its final
value, the lower the cosine).  Reproduced if ρ > 0 with one-sided exact permutation p < 0.05; not
reproduced if ρ < 0 with one-sided p < 0.05; otherwise inconclusive; fewer than ``MIN_POINTS``
converged points: inconclusive.  Distances are divided by the trajectory's first measured distance so that
several trajectories of one scale can be pooled.  Smoke scale caps the verdict at ``SMOKE_CAP``.
"""
from __future__ import annotations

import base64
import html as _html
import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .tables import Table
from .verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SMOKE_CAP, Verdict

SCHEMA = "harness.hypergrad/1"
CLAIM = "§2.2–3"
STATEMENT = ("DARTS' approximate hypergradient deviates more from the true one as α approaches the optimum "
             "(MiLeNAS §2.2–3)")
PRIMARY = "darts-2nd"          # the paper's "approximate gradient" (DARTS eq. 7–8)
SECONDARY = "darts-1st"
ALPHA = 0.05
MIN_POINTS = 4
SCALE_ORDER = ["smoke", "cpu", "gpu-quick", "paper"]
RULE = ("Spearman ρ between cosine(DARTS-2nd FD direction, reference hypergradient) and ‖α_e − α_final‖ "
        "(normalised per trajectory) over measured epochs whose reference converged (inner ‖∇F‖ < tol, CG residual "
        f"< tol, no negative curvature); the statement predicts ρ > 0. Reproduced if ρ > 0 with one-sided exact "
        f"permutation p < {ALPHA}; not reproduced if ρ < 0 with one-sided p < {ALPHA}; otherwise inconclusive; "
        f"fewer than {MIN_POINTS} converged points: inconclusive. Smoke scale caps the verdict.")
NAMES = {"darts-1st": "DARTS 1st", "darts-2nd": "DARTS 2nd (FD)", "darts-2nd-exact": "DARTS 2nd (exact HVP)",
         "milenas": "MiLeNAS λ=1", "single-level": "single-level"}


# ------------------------------------------------------------------------------------------ input
def find_hypergrad_files(runs_dir) -> List[Path]:
    """Every ``hypergrad.json`` below ``runs_dir`` (sorted)."""
    root = Path(runs_dir)
    return sorted(root.rglob("hypergrad.json")) if root.is_dir() else []


def load_all(runs_dir) -> List[Dict[str, Any]]:
    """The readable hypergrad documents below ``runs_dir`` (each with ``_path``); others are skipped."""
    out = []
    for p in find_hypergrad_files(runs_dir):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema") == SCHEMA and doc.get("epochs") is not None:
            doc["_path"] = str(p)
            out.append(doc)
    return out


def _name(m: str) -> str:
    if m in NAMES:
        return NAMES[m]
    if m.startswith("milenas-lam"):
        return "MiLeNAS λ=" + m[len("milenas-lam"):].replace("-code", " (code form)")
    return m


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4):
            return f"{x:.2e}"
        return f"{x:+.{digits}f}" if digits and x < 0 else f"{x:.{digits}f}"
    return str(x)


# ------------------------------------------------------------------------------------------ statistics
def _ranks(xs: Sequence[float]) -> List[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    syy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return sxy / (sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def spearman_test(xs: Sequence[float], ys: Sequence[float]) -> Tuple[float, float, float]:
    """(ρ, one-sided p for ρ > 0, one-sided p for ρ < 0): exact permutation test up to 8 points, else
    scipy's t approximation."""
    rho = spearman(xs, ys)
    n = len(xs)
    if not math.isfinite(rho):
        return rho, float("nan"), float("nan")
    if n <= 8:
        perms = [spearman(xs, [ys[i] for i in p]) for p in itertools.permutations(range(n))]
        total = len(perms)
        eps = 1e-12
        return (rho, sum(r >= rho - eps for r in perms) / total, sum(r <= rho + eps for r in perms) / total)
    from scipy import stats

    greater = stats.spearmanr(xs, ys, alternative="greater").pvalue
    less = stats.spearmanr(xs, ys, alternative="less").pvalue
    return rho, float(greater), float(less)


def _points(doc: Dict[str, Any], method: str) -> Tuple[List[float], List[float]]:
    """(normalised distance, cosine) over the epochs with a converged reference."""
    cos = (doc.get("cosine") or {}).get(method) or []
    dist = doc.get("alpha_distance_to_final") or []
    ok = doc.get("reference_ok") or [True] * len(cos)
    d0 = next((d for d in dist if d), None)
    xs, ys = [], []
    for d, c, good in zip(dist, cos, ok):
        if good and d is not None and c is not None and d0:
            xs.append(d / d0)
            ys.append(c)
    return xs, ys


def _scale(doc: Dict[str, Any]) -> str:
    return str(doc.get("scale") or "smoke")


def _gate(raw: str, scale: str) -> str:
    """The scale gate of the other claims (reports.verdicts), except that smoke scale always reads
    ``SMOKE_CAP`` (the rule's own outcome stays in ``Verdict.raw``); reduced scales are labelled."""
    if scale in ("smoke", "none") or scale not in SCALE_ORDER:
        return SMOKE_CAP
    if raw not in (REPRODUCED, NOT_REPRODUCED):
        return raw
    if scale == "paper":
        return raw
    return f"{raw} at reduced scale ({scale})"


def verdict(docs: Sequence[Dict[str, Any]]) -> Verdict:
    """The verdict on the paper's statement for documents of one scale (the weakest scale if mixed)."""
    scales = [_scale(d) for d in docs]
    scale = min(scales, key=lambda s: SCALE_ORDER.index(s) if s in SCALE_ORDER else -1) if scales else "none"
    datasets = sorted({str((d.get("provenance") or {}).get("dataset")) for d in docs
                       if (d.get("provenance") or {}).get("dataset")})
    v = Verdict(CLAIM, STATEMENT, "nb201", "", RULE, scale=scale, dataset="; ".join(datasets) or "not recorded")
    if not docs:
        v.verdict = v.raw = "not tested (no hypergrad.json)"
        return v
    parts, raw = [], None
    for method in (PRIMARY, SECONDARY):
        xs, ys = [], []
        for d in docs:
            x, y = _points(d, method)
            xs += x
            ys += y
        total = sum(len(d.get("epochs") or []) for d in docs)
        if len(xs) < MIN_POINTS:
            parts.append(f"{_name(method)}: {len(xs)} of {total} measured epochs with a converged reference")
            if method == PRIMARY:
                raw = INCONCLUSIVE + f" (only {len(xs)} epochs with a converged reference; {MIN_POINTS} needed)"
                v.n = str(len(xs))
            continue
        rho, p_pos, p_neg = spearman_test(xs, ys)
        parts.append(f"{_name(method)}: ρ(cosine, distance) = {rho:+.2f} (one-sided p {p_pos:.3f} for ρ > 0, "
                     f"{p_neg:.3f} for ρ < 0; n = {len(xs)}); cosine {min(ys):.2f}…{max(ys):.2f}")
        if method == PRIMARY:
            v.n = str(len(xs))
            if rho > 0 and p_pos < ALPHA:
                raw = REPRODUCED
            elif rho < 0 and p_neg < ALPHA:
                raw = NOT_REPRODUCED
            else:
                raw = INCONCLUSIVE + f" (no significant trend at {ALPHA})"
    fd = [e for d in docs for e in (d.get("fd_hvp_rel_error") or []) if e is not None]
    if fd:
        parts.append(f"FD HVP relative error (float32) {min(fd):.2e}…{max(fd):.2e}")
    v.raw = raw or INCONCLUSIVE
    parts.append(f"rule outcome before the scale gate: {v.raw}")
    v.numbers = "; ".join(parts)
    v.verdict = _gate(v.raw, scale)
    return v


def verdicts_by_scale(docs: Sequence[Dict[str, Any]]) -> List[Verdict]:
    """One verdict per scale present (scales are never pooled)."""
    present = sorted({_scale(d) for d in docs}, key=lambda s: SCALE_ORDER.index(s) if s in SCALE_ORDER else -1)
    return [verdict([d for d in docs if _scale(d) == s]) for s in present]


# ------------------------------------------------------------------------------------------ tables
def _caption(doc: Dict[str, Any]) -> str:
    s = doc.get("settings") or {}
    ref = s.get("reference") or {}
    fb = s.get("fixed_batches") or {}
    traj = doc.get("trajectory") or {}
    cfg = traj.get("config") or {}
    sm = s.get("smooth_activation")
    return (f"Trajectory {traj.get('label', traj.get('method'))} (seed {traj.get('seed')}) on NB201 "
            f"C={cfg.get('space_cfg', {}).get('C')}, N={cfg.get('space_cfg', {}).get('N')}, "
            f"{cfg.get('data', {}).get('image_size')}px, {doc.get('provenance', {}).get('dataset', '?')}; "
            f"scale {doc.get('scale')}. Objectives: K={fb.get('k')} fixed train + K val batches of "
            f"{fb.get('batch_size')} images. Reference: {ref.get('inner_objective', '')}; L-BFGS to ‖∇F‖ < "
            f"{ref.get('inner_tol_grad_norm')}, CG to relative residual < {ref.get('cg_tol_relative_residual')}; "
            + (f"ReLU→Softplus(β={sm.get('beta')}) surrogate. " if sm else "ReLU supernet. ")
            + "Directions in float32 at the current w; reference in float64.")


def tables(doc: Dict[str, Any], index: int = 1) -> List[Table]:
    epochs = doc.get("epochs") or []
    methods = doc.get("methods") or list(doc.get("cosine") or {})
    refs = doc.get("reference") or [{}] * len(epochs)
    ok = doc.get("reference_ok") or [None] * len(epochs)
    dist = doc.get("alpha_distance_to_final") or [None] * len(epochs)
    key = f"hypergrad-{index}"

    cos = Table(f"{key}-cosine", f"Hypergradient measurement {index}: cosine with the reference hypergradient",
                ["Epoch", "‖α−α_final‖", "Reference ok", "Inner ‖∇F‖", "CG residual"] + [_name(m) for m in methods])
    for i, e in enumerate(epochs):
        r = refs[i] if i < len(refs) else {}
        cos.rows.append([str(e + 1), _fmt(dist[i]), _fmt(ok[i]), _fmt((r.get("inner") or {}).get("grad_norm")),
                         _fmt((r.get("cg") or {}).get("relative_residual"))]
                        + [_fmt(doc["cosine"][m][i]) for m in methods])
    cos.caption = _caption(doc)
    cos.notes.append("Epoch e: measured after the last iteration of epoch e (1-based). Cosine = 1: same direction "
                     "as the reference; 0: orthogonal; < 0: the method moves α against the hypergradient.")
    sur = [c for vals in (doc.get("surrogate_cosine") or {}).values() for c in vals if c is not None]
    if sur and (doc.get("settings") or {}).get("smooth_activation"):
        cos.notes.append(f"Surrogate fidelity: cosine between each direction on the Softplus surrogate and the same "
                         f"direction on the ReLU supernet as it runs: {min(sur):.3f}…{max(sur):.3f}.")

    err = Table(f"{key}-error", f"Hypergradient measurement {index}: relative error ‖d − h‖/‖h‖ and the "
                                "finite-difference HVP error",
                ["Epoch"] + [_name(m) for m in methods]
                + ["FD HVP float32", "FD HVP float64", "exact HVP float32", "FD HVP float32, surrogate"])
    for i, e in enumerate(epochs):
        err.rows.append([str(e + 1)] + [_fmt(doc["rel_error"][m][i]) for m in methods]
                        + [_fmt((doc.get(k) or [None] * len(epochs))[i])
                           for k in ("fd_hvp_rel_error", "fd_hvp_rel_error_float64", "exact_hvp_float32_rel_error",
                                     "fd_hvp_rel_error_surrogate")])
    err.caption = ("Relative error of each direction against the reference (scale-sensitive: MiLeNAS descends "
                   "L_tr + λL_val, whose gradient is not scaled like a hypergradient). FD HVP: DARTS' central "
                   "difference (R = 0.01/‖v‖) against the exact double-backward product (float64), on the "
                   "supernet as it runs (ReLU: the difference crosses activation kinks, so float64 does not help) "
                   "and on the Softplus surrogate; 'exact HVP float32' is the float32 rounding floor.")

    mil = doc.get("milenas_comparisons") or {}
    mt = Table(f"{key}-milenas", f"Hypergradient measurement {index}: MiLeNAS compared three ways",
               ["Epoch", "Direction", "vs bilevel reference (cos)", "vs own objective ∇α(L_tr+λL_val), K batches (cos)",
                "same, one minibatch (cos)", "vs mixed-level hypergradient (cos)"])
    for name, vals in mil.items():
        for i, e in enumerate(epochs):
            get = lambda k: (vals.get(k) or [None] * len(epochs))[i]  # noqa: E731
            mt.rows.append([str(e + 1), _name(name), _fmt(get("cosine_vs_bilevel_reference")),
                            _fmt(get("cosine_vs_objective_gradient"), 5),
                            _fmt(get("cosine_vs_objective_gradient_minibatch")),
                            _fmt(get("cosine_vs_mixed_hypergradient"))])
    mt.caption = ("MiLeNAS' direction is not an estimator of the bilevel hypergradient: it is the gradient of the "
                  "mixed-level objective L_tr + λ·L_val at the current w. Against its own objective's exact "
                  "gradient on the same K batches it agrees by construction (cosine 1 up to float32 rounding); the "
                  "one-minibatch column shows the sampling error of one search iteration. The mixed-level "
                  "hypergradient is ∇α L_tr(w*) + λ·h_ref, the gradient of the paper's eq. 5 objective with the "
                  "inner problem solved.")

    mb = Table(f"{key}-minibatch", f"Hypergradient measurement {index}: cosine of the one-minibatch directions "
                                   "(what one search iteration uses) with the reference",
               ["Epoch"] + [_name(m) for m in methods])
    for i, e in enumerate(epochs):
        mb.rows.append([str(e + 1)] + [_fmt((doc.get("cosine_minibatch") or {}).get(m, [None] * len(epochs))[i])
                                       for m in methods])
    mb.caption = "Batch 0 of the K fixed train / val batches only; reference as above (K batches)."
    return [cos, err, mt, mb]


def verdict_table(vs: Sequence[Verdict]) -> Table:
    t = Table("hypergrad-verdict", "Verdict: hypergradient error as α approaches its optimum",
              ["Claim", "Verdict", "Numbers", "n", "Scale", "Dataset", "Rule"])
    for v in vs:
        t.rows.append([f"{v.claim}: {v.statement}", v.verdict, v.numbers or "–", v.n or "–", v.scale, v.dataset,
                       v.rule])
    t.caption = ("Smoke scale caps the verdict at '" + SMOKE_CAP + "'; cpu scale gives 'at reduced scale'. "
                 "α_final (the search's last α) stands for the optimum α approaches.")
    return t


# ------------------------------------------------------------------------------------------ rendering
def _figure_png(doc: Dict[str, Any]) -> Optional[bytes]:
    png = Path(doc["_path"]).with_name("hypergrad.png")
    if png.is_file():
        return png.read_bytes()
    try:  # regenerate from the JSON (e.g. the PNG was not copied along)
        import io

        import matplotlib.pyplot as plt

        from harness.hypergrad.figure import make_figure

        fig = make_figure(doc)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return buf.getvalue()
    except Exception:
        return None


INTRO = ("DARTS approximates the bilevel hypergradient dL_val(w*(α), α)/dα by one unrolled weight step and a "
         "finite-difference Hessian–vector product; the MiLeNAS paper (§2.2–3) argues that these approximations "
         "cause gradient errors that grow as α approaches the optimum. Here one search is frozen at chosen epochs "
         "and each method's α-direction is compared with a reference hypergradient computed by re-training w "
         "(proximal inner problem, L-BFGS, float64) and the implicit-function theorem (CG on exact "
         "Hessian–vector products).")


def markdown_section(runs_dir, out_dir) -> str:
    """The Markdown section ('' without hypergrad.json); copies the figures into ``out_dir``."""
    docs = load_all(runs_dir)
    if not docs:
        return ""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["## Hypergradient error along a search (MiLeNAS §2.2–3)", "", INTRO, "",
             verdict_table(verdicts_by_scale(docs)).to_markdown(), ""]
    for i, doc in enumerate(docs, 1):
        lines += [f"### Measurement {i}: `{doc['_path']}`", ""]
        for t in tables(doc, i):
            lines += [t.to_markdown(), ""]
        png = _figure_png(doc)
        if png is not None:
            (out_dir / f"hypergrad-{i}.png").write_bytes(png)
            svg = Path(doc["_path"]).with_name("hypergrad.svg")
            if svg.is_file():
                shutil.copyfile(svg, out_dir / f"hypergrad-{i}.svg")
            lines += [f"![hypergradient cosine, measurement {i}](hypergrad-{i}.png)", "",
                      f"*Cosine with the reference vs epoch and vs ‖α − α_final‖, and relative errors "
                      f"(measurement {i}; also hypergrad-{i}.svg).*", ""]
    return "\n".join(lines) + "\n"


def html_section(runs_dir) -> str:
    """The HTML section ('' without hypergrad.json), figures inlined."""
    docs = load_all(runs_dir)
    if not docs:
        return ""
    e = _html.escape
    out = ["<h2 id='hypergrad'>Hypergradient error along a search (MiLeNAS §2.2–3)</h2>", f"<p>{e(INTRO)}</p>",
           verdict_table(verdicts_by_scale(docs)).to_html()]
    for i, doc in enumerate(docs, 1):
        out.append(f"<h3>Measurement {i}: <code>{e(doc['_path'])}</code></h3>")
        out += [t.to_html() for t in tables(doc, i)]
        png = _figure_png(doc)
        if png is not None:
            b64 = base64.b64encode(png).decode()
            out.append(f"<figure id='fig-hypergrad-{i}'><img alt='hypergradient cosine' "
                       f"src='data:image/png;base64,{b64}'><figcaption>Cosine with the reference vs epoch and vs "
                       f"‖α − α_final‖, and relative errors (measurement {i}).</figcaption></figure>")
    return "\n".join(out)


def append_markdown(md: str, runs_dir, out_dir) -> str:
    """``md`` with the hypergradient section appended (unchanged when there is nothing to add)."""
    section = markdown_section(runs_dir, out_dir)
    return md if not section else md.rstrip("\n") + "\n\n" + section


def append_html(page: str, runs_dir) -> str:
    """``page`` with the hypergradient section inserted before ``</body>`` (unchanged when there is nothing)."""
    section = html_section(runs_dir)
    if not section:
        return page
    idx = page.rfind("</body>")
    return page + section if idx < 0 else page[:idx] + section + "\n" + page[idx:]
