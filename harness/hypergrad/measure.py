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
* **directions** (float32, the search's precision, at the current w, on the same K batches): every
  registered method's own formula (``SearchMethod.alpha_directions``, asked through ``DirectionProbe``;
  methods that return None are not measured), each under the names of ``DirectionSpec`` (``darts-1st``,
  ``darts-2nd`` with its finite-difference HVP and ``darts-2nd-exact`` with the exact one, ``milenas``,
  ``milenas-lam0.1`` for a variant, ``single-level``, …); and the same on one minibatch pair (batch 0 of
  each), which is what one search iteration sees.
* **each direction against its own objective** — a first-order direction (MiLeNAS: the gradient of
  L_tr + λ L_val) is not an estimator of the bilevel hypergradient: it is compared with the exact gradient
  of its own objective at the current w (K batches, float64: equal to the K-batch direction by construction,
  so the minibatch direction is the informative one), and with its own objective's hypergradient, the
  method's formula with ∇α L_tr → ∇α L_tr(w*, α) and ∇α L_val → h_ref (MiLeNAS eq. 5: ∇α L_tr(w*) + λ·h_ref).
  The L_tr term neglects its indirect part −∇²_{αw}L_tr·H⁻¹∇w L_tr(w*), which does not vanish: at the
  stationary point of the inner objective ∇w L_tr(w*) = −λ_w·w* − δ(w* − w_t), the weight decay and the
  proximal pull.
* **finite-difference HVP error** — for a method reporting its Hessian–vector products (DARTS 2nd:
  ∇²_{αw} L_tr·v with its v and R): ‖FD − exact‖/‖exact‖, FD in float32 and float64, exact in float64, on
  the supernet as it runs and on the surrogate.
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

    def __init__(
        self, net: nn.Module, weight_names: Sequence[str], alpha_names: Sequence[str], batches: Sequence[Batch]
    ):
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
    xi: float  # current weight learning rate η_w(e) (DARTS: ξ = η_w)
    momentum: float
    weight_decay: float

    @classmethod
    def from_method(cls, method) -> "SearchPoint":
        bufs = [method.w_opt.state.get(p, {}).get("momentum_buffer") for p in method.weights]
        return cls(
            [p.detach().clone() for p in method.weights],
            [a.detach().clone() for a in method.alphas],
            [None if b is None else b.detach().clone() for b in bufs],
            float(method.lr),
            float(method.cfg["momentum"]),
            float(method.cfg["w_wd"]),
        )

    def to(self, dtype: torch.dtype) -> "SearchPoint":
        cast = lambda ts: [None if t is None else t.to(dtype) for t in ts]  # noqa: E731
        return SearchPoint(
            cast(self.weights),
            cast(self.alphas),
            cast(self.momentum_buffers),
            self.xi,
            self.momentum,
            self.weight_decay,
        )


class NotMeasurable(RuntimeError):
    """A probe was asked for a derivative it does not offer (``HypergradientProbe`` has only ∇α)."""


class DirectionProbe:
    """The frozen point and the derivatives of its two objectives, as ``SearchMethod.alpha_directions`` asks
    for them (``split`` = ``"train"`` | ``"val"``; ``weights`` default to the point's)."""

    def __init__(self, f_tr: E.Objective, f_val: E.Objective, point: SearchPoint):
        self.objectives = {"train": f_tr, "val": f_val}
        self.weights, self.alphas = point.weights, point.alphas
        self.momentum_buffers, self.xi = point.momentum_buffers, point.xi
        self.momentum, self.weight_decay = point.momentum, point.weight_decay

    def _f(self, split: str) -> E.Objective:
        return self.objectives[split]

    def grad_alpha(self, split: str, weights: Optional[Sequence[torch.Tensor]] = None) -> E.Tensors:
        return E.grad_a(self._f(split), self.weights if weights is None else weights, self.alphas)

    def grad_weights(self, split: str, weights: Optional[Sequence[torch.Tensor]] = None) -> E.Tensors:
        return E.grad_w(self._f(split), self.weights if weights is None else weights, self.alphas)

    def grads(self, split: str, weights: Sequence[torch.Tensor]) -> Tuple[E.Tensors, E.Tensors]:
        _, g_w, g_a = E.grads(self._f(split), weights, self.alphas)
        return g_a, g_w

    def mixed_hvp(self, split: str, v: Sequence[torch.Tensor]) -> E.Tensors:
        return E.mixed_hessian_product(self._f(split), self.weights, self.alphas, v)


class HypergradientProbe:
    """∇α of each objective replaced by its hypergradient at the re-trained w*: ``train`` → ∇α L_tr(w*, α)
    (the total derivative's indirect term −∇²_{αw}L_tr·H⁻¹∇w L_tr(w*) is neglected: at the stationary point of
    the inner objective ∇w L_tr(w*) = −λ_w·w* − δ(w* − w_t), the weight decay and proximal pull, not zero),
    ``val`` → the reference h.  A method's formula on this probe is the hypergradient of its own objective;
    only first-order formulas (∇α only) can be evaluated (others: ``NotMeasurable``)."""

    def __init__(self, g_tr_star: E.Tensors, h_ref: E.Tensors):
        self._g = {"train": g_tr_star, "val": h_ref}

    def grad_alpha(self, split: str, weights=None) -> E.Tensors:
        if weights is not None:
            raise NotMeasurable("hypergradient probe: ∇α at other weights")
        return self._g[split]

    def __getattr__(self, name: str):
        raise NotMeasurable(f"hypergradient probe: no {name}")


@dataclass(frozen=True)
class DirectionSpec:
    """One measured direction: ``name`` (series key), the registered method and the options it runs with."""

    name: str
    method: str
    variant: Dict[str, Any]
    method_cfg: Dict[str, Any]


def direction_name(method: str, variant: Dict[str, Any]) -> str:
    """``milenas`` or, with a variant, ``milenas-lam0.1`` (``harness.config.variant_suffix``)."""
    from harness.config import variant_suffix

    return method + variant_suffix(variant or {})


def directions(probe: Any, specs: Sequence[DirectionSpec]) -> Dict[str, Dict[str, E.Tensors]]:
    """Each spec's ``alpha_directions`` on ``probe`` (the registered method's own formula); specs whose method
    has no measurable direction, or that the probe cannot evaluate, are left out."""
    from harness.registry import get_method

    out = {}
    for spec in specs:
        try:
            res = get_method(spec.method).alpha_directions(probe, spec.method_cfg)
        except NotMeasurable:
            continue
        if res:
            out[spec.name] = res
    return out


def flatten(results: Dict[str, Dict[str, E.Tensors]]) -> Dict[str, E.Tensors]:
    """``{name: {"": d, "exact": d2, "hvp": …}}`` → ``{name: d, name-exact: d2}`` (Hessian–vector parts left out)."""
    out = {}
    for name, res in results.items():
        for key, d in res.items():
            if not key.startswith("hvp"):
                out[name if not key else f"{name}-{key}"] = d
    return out


def method_directions(
    f_tr: E.Objective, f_val: E.Objective, point: SearchPoint, specs: Sequence[DirectionSpec]
) -> Dict[str, E.Tensors]:
    """Every spec's α-direction(s) at ``point`` on the objectives (f_tr, f_val)."""
    return flatten(directions(DirectionProbe(f_tr, f_val, point), specs))


def compare(directions: Dict[str, E.Tensors], reference: E.Tensors) -> Dict[str, Dict[str, float]]:
    ref_norm = E.norm(reference)
    return {
        "cosine": {k: E.cosine(d, reference) for k, d in directions.items()},
        "rel_error": {k: E.relative_error(d, reference) for k, d in directions.items()},
        "norm_ratio": {k: (E.norm(d) / ref_norm if ref_norm else float("nan")) for k, d in directions.items()},
    }


Results = Dict[str, Dict[str, E.Tensors]]


def hvp_errors(r32: Results, r64: Results) -> Dict[str, Dict[str, float]]:
    """For each direction that reports its finite-difference product (``hvp``) and the exact one (``hvp-exact``):
    ‖FD − exact‖/‖exact‖ with exact in float64, FD in float32 and float64, and the float32 exact product's
    rounding floor."""
    out = {}
    for name, res64 in r64.items():
        res32 = r32.get(name) or {}
        if {"hvp", "hvp-exact"} <= set(res64) and {"hvp", "hvp-exact"} <= set(res32):
            exact = res64["hvp-exact"]
            out[name] = {
                "float32": E.relative_error(res32["hvp"], exact),
                "float64": E.relative_error(res64["hvp"], exact),
                "exact_float32": E.relative_error(res32["hvp-exact"], exact),
            }
    return out


def reference_hypergradients(
    f_tr: E.Objective, f_val: E.Objective, p64: SearchPoint, inner_cfg: Dict[str, Any], cg_cfg: Dict[str, Any]
) -> List[Dict[str, Any]]:
    """The IFT reference for each δ of ``inner_cfg['proximal']`` (in the given order, warm-started)."""
    l2 = float(inner_cfg["weight_decay"])
    out, start = [], None
    for delta in inner_cfg["proximal"]:
        t = time.perf_counter()
        inner = E.minimise_inner(
            f_tr,
            p64.weights,
            p64.alphas,
            l2=l2,
            tol=float(inner_cfg["tol"]),
            max_iters=int(inner_cfg["max_iters"]),
            solver=inner_cfg["solver"],
            history_size=int(inner_cfg["history_size"]),
            proximal=float(delta),
            start=start,
            patience=int(inner_cfg["patience"]),
            newton_steps=int(inner_cfg["newton_steps"]),
            newton_cg_iters=int(inner_cfg["newton_cg_iters"]),
        )
        t_inner = time.perf_counter() - t
        start = inner.w
        t = time.perf_counter()
        ift = E.ift_hypergradient(
            f_tr,
            f_val,
            inner.w,
            p64.alphas,
            l2=l2,
            cg_tol=float(cg_cfg["tol"]),
            cg_max_iters=int(cg_cfg["max_iters"]),
            proximal=float(delta),
            damping=float(cg_cfg["damping"]),
        )
        t_cg = time.perf_counter() - t
        moved = E.norm([a - b for a, b in zip(inner.w, p64.weights)]) / max(E.norm(p64.weights), 1e-300)
        diag = {
            "proximal": float(delta),
            "norm": E.norm(ift.hypergradient),
            "direct_term_norm": E.norm(ift.direct),
            "inner": {
                "solver": inner.solver,
                "tol": inner.tol,
                "weight_decay": inner.l2,
                "grad_norm_start": inner.grad_norm_start,
                "grad_norm": inner.grad_norm,
                "loss_start": inner.loss_start,
                "loss": inner.loss,
                "iterations": inner.iterations,
                "converged": inner.converged,
                "relative_weight_change": moved,
                "newton_steps": inner.newton_steps,
                "grad_norm_history": inner.history,
                "seconds": t_inner,
            },
            "cg": {
                "tol": float(cg_cfg["tol"]),
                "damping": ift.cg.damping,
                "iterations": ift.cg.iterations,
                "relative_residual": ift.cg.relative_residual,
                "converged": ift.cg.converged,
                "negative_curvature": ift.cg.negative_curvature,
                "seconds": t_cg,
            },
        }
        diag["ok"] = bool(inner.converged and ift.cg.converged and not ift.cg.negative_curvature)
        out.append({"diagnostics": diag, "hypergradient": ift.hypergradient, "w_star": inner.w})
    return out


def measure_point(
    net: nn.Module,
    point: SearchPoint,
    train_batches: Sequence[Batch],
    val_batches: Sequence[Batch],
    settings: Dict[str, Any],
    specs: Sequence[DirectionSpec],
) -> Dict[str, Any]:
    """All comparisons at one (w, α).  ``net`` is not modified (private copies are used).

    ``settings`` = the hook's resolved settings (``harness.hypergrad.hook.OPTIONS``; ``inner.weight_decay`` a number).
    """
    timing: Dict[str, float] = {}
    t0 = time.perf_counter()
    wn, an = parameter_names(net)
    smooth = settings.get("smooth_activation")
    p32, p64 = point.to(torch.float32), point.to(torch.float64)

    def probe(model, p, k=None):
        tr, va = (train_batches, val_batches) if k is None else (train_batches[:k], val_batches[:k])
        return DirectionProbe(SupernetObjective(model, wn, an, tr), SupernetObjective(model, wn, an, va), p)

    run32, run64 = smoothed_copy(net, None, torch.float32), smoothed_copy(net, None, torch.float64)
    sur32, sur64 = smoothed_copy(net, smooth, torch.float32), smoothed_copy(net, smooth, torch.float64)
    pr_run32, pr_run64, pr_sur32, pr_sur64 = probe(run32, p32), probe(run64, p64), probe(sur32, p32), probe(sur64, p64)

    # -- the methods' directions (float32, the search's precision): on the surrogate (compared with the
    #    reference), on one minibatch pair, and on the supernet as it runs (surrogate fidelity); float64 for the
    #    Hessian–vector product errors and the methods' own objectives
    res_sur32 = directions(pr_sur32, specs)
    dirs, dirs_mb = flatten(res_sur32), flatten(directions(probe(sur32, p32, 1), specs))
    res_run32 = directions(pr_run32, specs) if smooth else res_sur32
    dirs_run = flatten(res_run32)
    res_run64, res_sur64 = directions(pr_run64, specs), (directions(pr_sur64, specs) if smooth else None)
    res_sur64 = res_sur64 if res_sur64 is not None else res_run64
    timing["directions"] = time.perf_counter() - t0

    hvp_run = hvp_errors(res_run32, res_run64)
    hvp_sur = hvp_errors(res_sur32, res_sur64) if smooth else hvp_run

    t = time.perf_counter()
    refs = reference_hypergradients(
        pr_sur64.objectives["train"], pr_sur64.objectives["val"], p64, settings["inner"], settings["cg"]
    )
    timing["reference"] = time.perf_counter() - t
    primary = refs[-1]
    h_ref = primary["hypergradient"]

    # -- each direction against its own objective (surrogate, float64): the exact gradient of that objective at
    #    the current w (the method's formula in float64 on the same K batches), and its hypergradient (the formula
    #    on HypergradientProbe: ∇α L_tr(w*) for L_tr, h_ref for L_val); first-order formulas only
    own_now = flatten(res_sur64)
    g_tr_star = E.grad_a(pr_sur64.objectives["train"], primary["w_star"], p64.alphas)
    own_hyper = flatten(directions(HypergradientProbe(g_tr_star, h_ref), specs))
    objective: Dict[str, Dict[str, float]] = {}
    for name, hyper in own_hyper.items():
        objective[name] = {
            "cosine_vs_objective_gradient": E.cosine(dirs[name], own_now[name]),
            "cosine_vs_objective_gradient_minibatch": E.cosine(dirs_mb[name], own_now[name]),
            "rel_error_vs_objective_gradient": E.relative_error(dirs[name], own_now[name]),
            "rel_error_vs_objective_gradient_minibatch": E.relative_error(dirs_mb[name], own_now[name]),
            "cosine_vs_objective_hypergradient": E.cosine(dirs[name], hyper),
            "rel_error_vs_objective_hypergradient": E.relative_error(dirs[name], hyper),
            "cosine_vs_bilevel_reference": E.cosine(dirs[name], h_ref),
        }

    by_name = {sp.name: sp for sp in specs}
    about = {
        (name if not key else f"{name}-{key}"): {
            "method": by_name[name].method,
            "variant": by_name[name].variant,
            "estimator": key,
        }
        for name, res in res_sur32.items()
        for key in res
        if not key.startswith("hvp")
    }
    full, mb = compare(dirs, h_ref), compare(dirs_mb, h_ref)
    by_prox = {str(r["diagnostics"]["proximal"]): compare(dirs, r["hypergradient"])["cosine"] for r in refs}
    timing["total"] = time.perf_counter() - t0
    return {
        "directions": about,
        "cosine": full["cosine"],
        "rel_error": full["rel_error"],
        "norm_ratio": full["norm_ratio"],
        "cosine_minibatch": mb["cosine"],
        "rel_error_minibatch": mb["rel_error"],
        "cosine_by_proximal": by_prox,
        "surrogate_cosine": {k: E.cosine(dirs[k], dirs_run[k]) for k in dirs},
        "cosine_as_run": {k: E.cosine(dirs_run[k], h_ref) for k in dirs},
        "objective_comparisons": objective,
        "hvp_error": {
            k: {**v, **{f"{kk}_surrogate": vv for kk, vv in hvp_sur.get(k, {}).items()}} for k, v in hvp_run.items()
        },
        "reference": primary["diagnostics"],
        "references": [r["diagnostics"] for r in refs],
        "direction_norms": {k: E.norm(d) for k, d in dirs.items()},
        "xi": point.xi,
        "seconds": timing,
    }
