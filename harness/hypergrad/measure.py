"""One measurement: freeze a search at (w, α), compute every method's α-direction and the reference.

MiLeNAS paper §2.2–3: DARTS replaces the bilevel hypergradient dL_val(w*(α), α)/dα by one unrolled
step (and a finite-difference Hessian–vector product), which the paper says causes "gradient
errors" that grow "when α is approaching the optima".  Here, at one (w, α) of a search:

* **objectives** — L_tr and L_val are the mean cross-entropy over K fixed train / K fixed val
  batches (each batch its own forward: the NB201 supernet's BN uses batch statistics, so a fixed
  batch composition makes both deterministic functions of (w, α)); no augmentation.
* **smooth surrogate** — the IFT needs a twice-differentiable inner objective with a stationary
  point.  A ReLU supernet is only piecewise smooth (L-BFGS stalls at ‖∇F‖ ≈ 1e-2 at the kinks
  even on a strongly convex proximal problem), so the reference and the compared directions are
  computed on a copy whose ReLUs are Softplus(β) (``smooth_activation``; ``null`` keeps ReLU).
  ``surrogate_cosine`` reports how close each direction on the surrogate is to the same direction
  on the supernet as it runs; the finite-difference HVP error is measured on the supernet as it runs.
* **reference** (float64) — w is re-trained from the current w_t on the proximal inner problem
  F_δ(w) = L_tr(w, α) + (λ_w/2)‖w‖² + (δ/2)‖w − w_t‖² (λ_w = the run's weight decay) by L-BFGS
  until ‖∇F_δ‖₂ < tol (or a cap), then the IFT hypergradient ∇α L_val − ∇²_{αw} L_tr·(∇²_ww F_δ)⁻¹
  ∇w L_val with CG on exact double-backward products.  δ > 0 is required: with weight decay a BN
  network has no stationary point at δ = 0 (the loss is invariant to the scale of a conv followed
  by BN, the decay term is not), and δ → 0 is the plain bilevel problem.  δ is lowered step by
  step (``proximal`` list, warm starts); the last δ is *the* reference, the others are reported
  (``cosine_by_proximal``).  Inner and CG residuals are returned so that a reader can judge it.
* **directions** (float32, the search's precision, at the current w, on the same K batches):
  ``darts-1st``, ``darts-2nd`` (finite-difference HVP, the method's estimator), ``darts-2nd-exact``
  (the same formula with the exact HVP), ``milenas`` (λ = 1) and ``milenas-lam<λ>``,
  ``single-level``; and the same on one minibatch pair (batch 0 of each), which is what one search
  iteration sees.
* **MiLeNAS, compared twice more** — its direction is the gradient of the mixed-level objective
  L_tr + λ L_val, not an estimator of the bilevel hypergradient: against the exact gradient of that
  objective at the current w (K batches, float64: equal to the K-batch direction by construction,
  so the minibatch direction is the informative one), and against the mixed-level hypergradient
  d/dα[L_tr(w*(α), α) + λ L_val(w*(α), α)] = ∇α L_tr(w*, α) + λ·h_ref (the paper's eq. 5; the L_tr
  indirect term vanishes at a stationary w* up to the proximal term, which is neglected).
* **finite-difference HVP error** — ‖FD − exact‖/‖exact‖ of ∇²_{αw} L_tr·v with DARTS' v and R,
  FD in float32 and float64, exact in float64, on the supernet as it runs (and on the surrogate).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from harness.hypergrad import estimators as E

Batch = Tuple[torch.Tensor, torch.Tensor]


def parameter_names(net: nn.Module) -> Tuple[List[str], List[str]]:
    """Names of the supernet's weights and α, in ``weights()`` / ``alphas()`` order."""
    named = dict(net.named_parameters())
    by_id = {id(p): n for n, p in named.items()}
    return [by_id[id(p)] for p in net.weights()], [by_id[id(a)] for a in net.alphas()]


def smoothed_copy(net: nn.Module, smooth: Optional[Dict[str, Any]], dtype: torch.dtype) -> nn.Module:
    """A private copy of ``net`` in ``dtype``; with ``smooth = {kind: softplus, beta: β}`` every
    ``nn.ReLU`` is replaced by ``nn.Softplus(β)`` (same parameters and parameter names)."""
    out = copy.deepcopy(net).to(dtype)
    if smooth:
        if smooth.get("kind", "softplus") != "softplus":
            raise ValueError(f"unknown smooth activation {smooth.get('kind')!r}; expected softplus")
        beta = float(smooth["beta"])
        for module in out.modules():
            for name, child in list(module.named_children()):
                if isinstance(child, nn.ReLU):
                    setattr(module, name, nn.Softplus(beta=beta))
    out.train()
    return out


class SupernetObjective:
    """(w, α) ↦ mean over fixed batches of the batch-mean cross-entropy of ``net`` (functional call).

    The module's own buffers are used (BN in train mode normalises with batch statistics); ``net``
    should be a private copy, since train-mode BN with running statistics updates its buffers.
    """

    def __init__(self, net: nn.Module, weight_names: Sequence[str], alpha_names: Sequence[str],
                 batches: Sequence[Batch]):
        self.net = net
        self.weight_names, self.alpha_names = list(weight_names), list(alpha_names)
        dtype = next(net.parameters()).dtype
        self.batches = [(x.to(dtype), y) for x, y in batches]
        net.train()

    def __call__(self, w: Sequence[torch.Tensor], a: Sequence[torch.Tensor]) -> torch.Tensor:
        params = dict(zip(self.weight_names, w))
        params.update(zip(self.alpha_names, a))
        total = sum(F.cross_entropy(functional_call(self.net, params, (x,)), y) for x, y in self.batches)
        return total / len(self.batches)


@dataclass
class SearchPoint:
    """A search frozen at (w, α), with what the DARTS-2nd virtual step reads (ξ, μ, b, λ_w)."""

    weights: List[torch.Tensor]
    alphas: List[torch.Tensor]
    momentum_buffers: List[Optional[torch.Tensor]]
    xi: float                   # current weight learning rate η_w(e) (DARTS: ξ = η_w)
    momentum: float
    weight_decay: float

    @classmethod
    def from_method(cls, method) -> "SearchPoint":
        bufs = [method.w_opt.state.get(p, {}).get("momentum_buffer") for p in method.weights]
        return cls([p.detach().clone() for p in method.weights], [a.detach().clone() for a in method.alphas],
                   [None if b is None else b.detach().clone() for b in bufs], float(method.lr),
                   float(method.cfg["momentum"]), float(method.cfg["w_wd"]))

    def to(self, dtype: torch.dtype) -> "SearchPoint":
        cast = lambda ts: [None if t is None else t.to(dtype) for t in ts]  # noqa: E731
        return SearchPoint(cast(self.weights), cast(self.alphas), cast(self.momentum_buffers), self.xi,
                           self.momentum, self.weight_decay)


def milenas_name(lam: float, form: str = "paper") -> str:
    """``milenas`` for λ = 1 (both forms agree), else ``milenas-lam<λ>`` (``-code`` for the code form)."""
    if float(lam) == 1.0:
        return "milenas"
    return f"milenas-lam{float(lam):g}" + ("-code" if form == "code" else "")


def mixed_level_from_parts(g_tr: E.Tensors, g_val: E.Tensors, lam: float, form: str) -> E.Tensors:
    """g_tr + λ g_val (paper) / g_val + λ g_tr (code): ``E.mixed_level`` from precomputed gradients."""
    if form == "paper":
        return [gt + lam * gv for gt, gv in zip(g_tr, g_val)]
    return [gv + lam * gt for gt, gv in zip(g_tr, g_val)]


def method_directions(f_tr: E.Objective, f_val: E.Objective, point: SearchPoint,
                      milenas: Sequence[Tuple[float, str]], fd_radius: float) -> Dict[str, E.Tensors]:
    """Every method's α-direction at ``point`` on the objectives (f_tr, f_val)."""
    w, a = point.weights, point.alphas
    second = dict(xi=point.xi, momentum=point.momentum, momentum_buffers=point.momentum_buffers,
                  weight_decay=point.weight_decay, fd_radius=fd_radius)
    out = {"darts-1st": E.darts_first_order(f_val, w, a),
           "darts-2nd": E.darts_second_order(f_tr, f_val, w, a, hvp="fd", **second).direction,
           "darts-2nd-exact": E.darts_second_order(f_tr, f_val, w, a, hvp="exact", **second).direction}
    g_tr, g_val = E.grad_a(f_tr, w, a), E.grad_a(f_val, w, a)
    for lam, form in milenas:
        out[milenas_name(lam, form)] = mixed_level_from_parts(g_tr, g_val, lam, form)
    out["single-level"] = g_tr
    return out


def compare(directions: Dict[str, E.Tensors], reference: E.Tensors) -> Dict[str, Dict[str, float]]:
    ref_norm = E.norm(reference)
    return {"cosine": {k: E.cosine(d, reference) for k, d in directions.items()},
            "rel_error": {k: E.relative_error(d, reference) for k, d in directions.items()},
            "norm_ratio": {k: (E.norm(d) / ref_norm if ref_norm else float("nan")) for k, d in directions.items()}}


def fd_hvp_errors(f_tr64: E.Objective, f_val64: E.Objective, f_tr32: E.Objective, p64: SearchPoint,
                  p32: SearchPoint, fd_radius: float) -> Dict[str, float]:
    """Relative error of DARTS' finite-difference ∇²_{αw} L_tr·v (v = ∇w′ L_val(w′), R = r/‖v‖) against
    the exact double-backward product in float64; FD in float32 and float64."""
    parts = E.darts_second_order(f_tr64, f_val64, p64.weights, p64.alphas, p64.xi, p64.momentum,
                                 p64.momentum_buffers, p64.weight_decay, hvp="exact")
    v64, exact64 = parts.v, parts.hvp
    fd64 = E.fd_mixed_hessian_product(f_tr64, p64.weights, p64.alphas, v64, fd_radius)
    v32 = [t.float() for t in v64]
    fd32 = E.fd_mixed_hessian_product(f_tr32, p32.weights, p32.alphas, v32, fd_radius)
    exact32 = E.mixed_hessian_product(f_tr32, p32.weights, p32.alphas, v32)
    return {"float32": E.relative_error(fd32, exact64), "float64": E.relative_error(fd64, exact64),
            "exact_float32": E.relative_error(exact32, exact64),
            "radius_R": fd_radius / max(E.norm(v64), 1e-300)}


def reference_hypergradients(f_tr: E.Objective, f_val: E.Objective, p64: SearchPoint, inner_cfg: Dict[str, Any],
                             cg_cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The IFT reference for each δ of ``inner_cfg['proximal']`` (in the given order, warm-started)."""
    l2 = float(inner_cfg["weight_decay"])
    out, start = [], None
    for delta in inner_cfg["proximal"]:
        t = time.perf_counter()
        inner = E.minimise_inner(f_tr, p64.weights, p64.alphas, l2=l2, tol=float(inner_cfg["tol"]),
                                 max_iters=int(inner_cfg["max_iters"]), solver=inner_cfg["solver"],
                                 history_size=int(inner_cfg["history_size"]), proximal=float(delta), start=start,
                                 patience=int(inner_cfg["patience"]), newton_steps=int(inner_cfg["newton_steps"]),
                                 newton_cg_iters=int(inner_cfg["newton_cg_iters"]))
        t_inner = time.perf_counter() - t
        start = inner.w
        t = time.perf_counter()
        ift = E.ift_hypergradient(f_tr, f_val, inner.w, p64.alphas, l2=l2, cg_tol=float(cg_cfg["tol"]),
                                  cg_max_iters=int(cg_cfg["max_iters"]), proximal=float(delta),
                                  damping=float(cg_cfg["damping"]))
        t_cg = time.perf_counter() - t
        moved = E.norm([a - b for a, b in zip(inner.w, p64.weights)]) / max(E.norm(p64.weights), 1e-300)
        diag = {
            "proximal": float(delta), "norm": E.norm(ift.hypergradient), "direct_term_norm": E.norm(ift.direct),
            "inner": {"solver": inner.solver, "tol": inner.tol, "weight_decay": inner.l2,
                      "grad_norm_start": inner.grad_norm_start, "grad_norm": inner.grad_norm,
                      "loss_start": inner.loss_start, "loss": inner.loss, "iterations": inner.iterations,
                      "converged": inner.converged, "relative_weight_change": moved,
                      "newton_steps": inner.newton_steps,
                      "grad_norm_history": inner.history, "seconds": t_inner},
            "cg": {"tol": float(cg_cfg["tol"]), "damping": ift.cg.damping, "iterations": ift.cg.iterations,
                   "relative_residual": ift.cg.relative_residual, "converged": ift.cg.converged,
                   "negative_curvature": ift.cg.negative_curvature, "seconds": t_cg},
        }
        diag["ok"] = bool(inner.converged and ift.cg.converged and not ift.cg.negative_curvature)
        out.append({"diagnostics": diag, "hypergradient": ift.hypergradient, "w_star": inner.w})
    return out


def measure_point(net: nn.Module, point: SearchPoint, train_batches: Sequence[Batch], val_batches: Sequence[Batch],
                  settings: Dict[str, Any], milenas: Sequence[Tuple[float, str]]) -> Dict[str, Any]:
    """All comparisons at one (w, α).  ``net`` is not modified (private copies are used).

    ``settings`` = the profile's ``measure`` section with ``inner.weight_decay`` resolved to a number.
    """
    timing: Dict[str, float] = {}
    t0 = time.perf_counter()
    wn, an = parameter_names(net)
    smooth = settings.get("smooth_activation")
    fd_radius = float(settings["fd_radius"])
    p32, p64 = point.to(torch.float32), point.to(torch.float64)

    def objectives(model):
        return SupernetObjective(model, wn, an, train_batches), SupernetObjective(model, wn, an, val_batches)

    run32, run64 = smoothed_copy(net, None, torch.float32), smoothed_copy(net, None, torch.float64)
    sur32, sur64 = smoothed_copy(net, smooth, torch.float32), smoothed_copy(net, smooth, torch.float64)
    f_run32, f_run64, f_sur32, f_sur64 = objectives(run32), objectives(run64), objectives(sur32), objectives(sur64)
    mb_sur32 = (SupernetObjective(sur32, wn, an, train_batches[:1]), SupernetObjective(sur32, wn, an, val_batches[:1]))

    # -- the methods' directions (float32, the search's precision): on the surrogate (compared with the
    #    reference), on one minibatch pair, and on the supernet as it runs (surrogate fidelity)
    dirs = method_directions(*f_sur32, p32, milenas, fd_radius)
    dirs_mb = method_directions(*mb_sur32, p32, milenas, fd_radius)
    dirs_run = method_directions(*f_run32, p32, milenas, fd_radius) if smooth else dirs
    timing["directions"] = time.perf_counter() - t0

    t = time.perf_counter()
    fd_run = fd_hvp_errors(*f_run64, f_run32[0], p64, p32, fd_radius)
    fd_sur = fd_hvp_errors(*f_sur64, f_sur32[0], p64, p32, fd_radius) if smooth else fd_run
    timing["fd_hvp"] = time.perf_counter() - t

    t = time.perf_counter()
    refs = reference_hypergradients(*f_sur64, p64, settings["inner"], settings["cg"])
    timing["reference"] = time.perf_counter() - t
    primary = refs[-1]
    h_ref = primary["hypergradient"]

    # -- MiLeNAS' own targets (surrogate, float64)
    g_tr_now, g_val_now = E.grad_a(f_sur64[0], p64.weights, p64.alphas), E.grad_a(f_sur64[1], p64.weights, p64.alphas)
    g_tr_star = E.grad_a(f_sur64[0], primary["w_star"], p64.alphas)
    mixed: Dict[str, Dict[str, float]] = {}
    for lam, form in milenas:
        name = milenas_name(lam, form)
        objective_grad = mixed_level_from_parts(g_tr_now, g_val_now, lam, form)
        mixed_hyper = mixed_level_from_parts(g_tr_star, h_ref, lam, form)
        mixed[name] = {
            "cosine_vs_objective_gradient": E.cosine(dirs[name], objective_grad),
            "cosine_vs_objective_gradient_minibatch": E.cosine(dirs_mb[name], objective_grad),
            "rel_error_vs_objective_gradient": E.relative_error(dirs[name], objective_grad),
            "rel_error_vs_objective_gradient_minibatch": E.relative_error(dirs_mb[name], objective_grad),
            "cosine_vs_mixed_hypergradient": E.cosine(dirs[name], mixed_hyper),
            "rel_error_vs_mixed_hypergradient": E.relative_error(dirs[name], mixed_hyper),
            "cosine_vs_bilevel_reference": E.cosine(dirs[name], h_ref),
        }

    full, mb = compare(dirs, h_ref), compare(dirs_mb, h_ref)
    by_prox = {str(r["diagnostics"]["proximal"]): compare(dirs, r["hypergradient"])["cosine"] for r in refs}
    timing["total"] = time.perf_counter() - t0
    return {"cosine": full["cosine"], "rel_error": full["rel_error"], "norm_ratio": full["norm_ratio"],
            "cosine_minibatch": mb["cosine"], "rel_error_minibatch": mb["rel_error"],
            "cosine_by_proximal": by_prox,
            "surrogate_cosine": {k: E.cosine(dirs[k], dirs_run[k]) for k in dirs},
            "cosine_as_run": {k: E.cosine(dirs_run[k], h_ref) for k in dirs},
            "milenas_comparisons": mixed, "fd_hvp": fd_run, "fd_hvp_surrogate": fd_sur,
            "reference": primary["diagnostics"], "references": [r["diagnostics"] for r in refs],
            "direction_norms": {k: E.norm(d) for k, d in dirs.items()},
            "xi": point.xi, "seconds": timing}
