"""Hypergradient estimators of the bilevel NAS problem, model-agnostic.

The bilevel problem (DARTS paper eq. 3–4; MiLeNAS paper §2.1, eq. 1–2)::

    min_α  L_val(w*(α), α)    s.t.   w*(α) = argmin_w  L_tr(w, α) + (λ_w/2)·‖w‖²

Its hypergradient, by the implicit-function theorem (IFT) at a stationary point w* of the inner
objective F(w) = L_tr(w, α) + (λ_w/2)‖w‖²::

    dL_val/dα = ∇α L_val(w*, α) − ∇²_{αw} L_tr(w*, α) · H⁻¹ ∇w L_val(w*, α),   H = ∇²_ww F(w*)

Everything here works on *objectives* ``f(w, a) -> scalar`` (``w`` and ``a`` are lists of
tensors) and lists of tensors, so the same code serves a ridge regression with a closed form
(tests) and the NB201 supernet (``functional_call`` closures, see :mod:`harness.hypergrad.measure`).

The α-directions the search methods descend are the methods' own (``SearchMethod.alpha_directions`` in
``baselines/``, evaluated on these objectives by ``harness.hypergrad.measure.DirectionProbe``); this module
holds only the reference side: derivatives, CG, the inner problem and the IFT hypergradient.

Second derivatives are exact double-backward products; no Hessian is ever formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import torch

Tensors = List[torch.Tensor]
#: an objective (w, α) -> scalar loss; w and α are lists of tensors
Objective = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]


# --------------------------------------------------------------------------------------------
# list-of-tensor algebra


def detached(ts: Sequence[torch.Tensor], requires_grad: bool = False) -> Tensors:
    return [t.detach().clone().requires_grad_(requires_grad) for t in ts]


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def norm(a: Sequence[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((x.double() ** 2).sum() for x in a)))


def axpy(alpha: float, x: Sequence[torch.Tensor], y: Sequence[torch.Tensor]) -> Tensors:
    """alpha·x + y."""
    return [alpha * xi + yi for xi, yi in zip(x, y)]


def cosine(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """Cosine similarity of two tensor lists, computed in float64 (nan if either is zero)."""
    a64 = [x.detach().double().reshape(-1) for x in a]
    b64 = [x.detach().double().reshape(-1).to(y.device) for x, y in zip(b, a64)]
    na, nb = norm(a64), norm(b64)
    if na == 0.0 or nb == 0.0:
        return float("nan")
    return float(dot(a64, b64)) / (na * nb)


def relative_error(estimate: Sequence[torch.Tensor], reference: Sequence[torch.Tensor]) -> float:
    """‖estimate − reference‖ / ‖reference‖ in float64 (inf if the reference is zero)."""
    diff = [e.detach().double() - r.detach().double().to(e.device) for e, r in zip(estimate, reference)]
    nr = norm([r.detach().double() for r in reference])
    return norm(diff) / nr if nr > 0 else float("inf")


# --------------------------------------------------------------------------------------------
# first and second derivatives of an objective


def grad_w(f: Objective, w: Sequence[torch.Tensor], a: Sequence[torch.Tensor]) -> Tensors:
    """∇w f(w, a) (detached)."""
    w_ = detached(w, True)
    return [g.detach() for g in torch.autograd.grad(f(w_, detached(a)), w_)]


def grad_a(f: Objective, w: Sequence[torch.Tensor], a: Sequence[torch.Tensor]) -> Tensors:
    """∇α f(w, a) (detached)."""
    a_ = detached(a, True)
    return [g.detach() for g in torch.autograd.grad(f(detached(w), a_), a_)]


def grads(f: Objective, w: Sequence[torch.Tensor], a: Sequence[torch.Tensor]):
    """(f, ∇w f, ∇α f) from one forward/backward."""
    w_, a_ = detached(w, True), detached(a, True)
    loss = f(w_, a_)
    g = torch.autograd.grad(loss, w_ + a_)
    return loss.detach(), [t.detach() for t in g[: len(w_)]], [t.detach() for t in g[len(w_) :]]


class WeightHessian:
    """Exact products with H = ∇²_ww [f(w, a) + (l2/2)‖w‖²] + shift·I at a fixed (w, a), by double backward.

    The forward pass and the first backward (with ``create_graph``) are built once; each product
    is one more backward through that graph (Pearlmutter's trick, autograd form).  ``shift`` is
    the proximal weight δ of the inner objective (see ``minimise_inner``).
    """

    def __init__(
        self, f: Objective, w: Sequence[torch.Tensor], a: Sequence[torch.Tensor], l2: float = 0.0, shift: float = 0.0
    ):
        self.w = detached(w, True)
        self.l2 = float(l2) + float(shift)
        loss = f(self.w, detached(a))
        self.grad = torch.autograd.grad(loss, self.w, create_graph=True)
        self.products = 0

    def __call__(self, u: Sequence[torch.Tensor]) -> Tensors:
        self.products += 1
        hu = torch.autograd.grad(self.grad, self.w, grad_outputs=list(u), retain_graph=True)
        return [h.detach() + self.l2 * ui for h, ui in zip(hu, u)]


def hessian_ww_product(f: Objective, w, a, u, l2: float = 0.0) -> Tensors:
    """H·u, H = ∇²_ww [f + (l2/2)‖w‖²], exact (double backward)."""
    return WeightHessian(f, w, a, l2)(u)


def mixed_hessian_product(f: Objective, w, a, v) -> Tensors:
    """∇²_{αw} f(w, a) · v = ∇α ⟨∇w f(w, a), v⟩, exact (double backward)."""
    w_, a_ = detached(w, True), detached(a, True)
    gw = torch.autograd.grad(f(w_, a_), w_, create_graph=True)
    inner = dot(gw, [t.detach() for t in v])
    return [g.detach() for g in torch.autograd.grad(inner, a_)]


# --------------------------------------------------------------------------------------------
# conjugate gradient and the inner problem


@dataclass
class CGResult:
    x: Tensors
    iterations: int
    relative_residual: float  # ‖(H + δI)x − b‖ / ‖b‖, recomputed at the end
    converged: bool
    negative_curvature: bool  # some search direction p had pᵀ(H + δI)p ≤ 0 (CG stopped there)
    damping: float


def conjugate_gradient(
    hvp: Callable[[Tensors], Tensors],
    b: Sequence[torch.Tensor],
    tol: float = 1e-8,
    max_iters: int = 200,
    damping: float = 0.0,
) -> CGResult:
    """Solve (H + δI) x = b by conjugate gradient, H given by products; stops at ‖r‖/‖b‖ < tol.

    CG needs H + δI positive definite: it stops when it meets a direction of non-positive
    curvature (reported), keeping the iterate reached so far.
    """

    def op(u):
        return axpy(damping, u, hvp(u)) if damping else hvp(u)

    b = [t.detach() for t in b]
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in r]
    b_norm = norm(b)
    if b_norm == 0.0:
        return CGResult(x, 0, 0.0, True, False, damping)
    rs = float(dot(r, r))
    it, neg = 0, False
    while it < max_iters and math.sqrt(rs) / b_norm >= tol:
        hp = op(p)
        curvature = float(dot(p, hp))
        if curvature <= 0.0:
            neg = True
            break
        step = rs / curvature
        x = axpy(step, p, x)
        r = axpy(-step, hp, r)
        rs_new = float(dot(r, r))
        p = axpy(rs_new / rs, p, r)
        rs = rs_new
        it += 1
    residual = norm(axpy(-1.0, op(x), b)) / b_norm
    return CGResult(x, it, residual, residual < tol, neg, damping)


@dataclass
class InnerResult:
    w: Tensors
    grad_norm_start: float  # ‖∇w F‖ at the start (the current search weights)
    grad_norm: float  # ‖∇w F‖ at the returned weights
    loss_start: float
    loss: float
    iterations: int
    converged: bool  # grad_norm < tol
    tol: float
    l2: float
    proximal: float
    solver: str
    history: List[float] = field(default_factory=list)  # ‖∇w F‖ after each chunk of iterations
    newton_steps: int = 0  # Newton-CG polishing steps taken after L-BFGS


def minimise_inner(
    f: Objective,
    w0: Sequence[torch.Tensor],
    a: Sequence[torch.Tensor],
    l2: float = 0.0,
    tol: float = 1e-6,
    max_iters: int = 500,
    solver: str = "lbfgs",
    lr: float = 0.1,
    chunk: int = 10,
    history_size: int = 50,
    proximal: float = 0.0,
    start: Optional[Sequence[torch.Tensor]] = None,
    newton_steps: int = 0,
    newton_cg_iters: int = 100,
    patience: int = 5,
) -> InnerResult:
    """Minimise F(w) = f(w, a) + (l2/2)‖w‖² + (δ/2)‖w − w0‖² over w until ‖∇w F‖₂ < tol or ``max_iters``.

    Starts from ``start`` (default w0; a warm start when δ is lowered step by step).

    δ = ``proximal`` (0: the plain inner problem).  A δ > 0 makes the inner problem of a
    non-convex network well posed near w0 (iMAML's proximal inner problem, Rajeswaran et al.
    2019); its IFT hypergradient uses H + δI, and δ → 0 recovers the plain bilevel hypergradient.
    ``solver``: ``lbfgs`` (torch L-BFGS, strong-Wolfe line search; the default) or ``gd``
    (plain gradient descent with step ``lr``; for checks).  ``a`` is held fixed.  L-BFGS stops
    early when ‖∇F‖ has not improved for ``patience`` chunks of ``chunk`` iterations (its line
    search cannot resolve loss changes below float64 rounding, ‖∇F‖ ≈ 1e-8 on O(1) losses).
    Then up to ``newton_steps`` Newton steps polish the result: CG on exact Hessian products
    (≤ ``newton_cg_iters``), accepted while ‖∇F‖ decreases and no negative curvature is met.
    """
    a_fixed = detached(a)
    anchor = detached(w0)
    w = [
        t.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        for t in (w0 if start is None else start)
    ]

    def objective() -> torch.Tensor:
        value = f(w, a_fixed)
        if l2:
            value = value + 0.5 * l2 * sum((t * t).sum() for t in w)
        if proximal:
            value = value + 0.5 * proximal * sum(((t - t0) ** 2).sum() for t, t0 in zip(w, anchor))
        return value

    def grad_norm_and_loss():
        loss = objective()
        g = torch.autograd.grad(loss, w)
        return norm(g), float(loss.detach())

    gn0, loss0 = grad_norm_and_loss()
    gn, loss, iters, history = gn0, loss0, 0, []
    best, stale = gn0, 0
    if solver == "lbfgs":
        opt = torch.optim.LBFGS(
            w,
            lr=1.0,
            max_iter=chunk,
            max_eval=chunk * 2,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            history_size=history_size,
            line_search_fn="strong_wolfe",
        )

        def closure():
            opt.zero_grad(set_to_none=True)
            value = objective()
            value.backward()
            for t in w:  # L-BFGS flattens with .view(): some conv backward kernels return strided grads
                if t.grad is not None and not t.grad.is_contiguous():
                    t.grad = t.grad.contiguous()
            return value
    elif solver == "gd":
        opt = torch.optim.SGD(w, lr=lr)
    else:
        raise ValueError(f"unknown inner solver {solver!r}; expected 'lbfgs' or 'gd'")
    while gn >= tol and iters < max_iters:
        if solver == "lbfgs":
            before = opt.state[w[0]].get("n_iter", 0)
            opt.step(closure)
            done = opt.state[w[0]].get("n_iter", 0) - before
            iters += max(done, 1)
            if done == 0:  # L-BFGS made no progress (line search failed): stop
                gn, loss = grad_norm_and_loss()
                history.append(gn)
                break
        else:
            for _ in range(min(chunk, max_iters - iters)):
                opt.zero_grad(set_to_none=True)
                objective().backward()
                opt.step()
                iters += 1
        gn, loss = grad_norm_and_loss()
        history.append(gn)
        if not math.isfinite(gn):
            break
        stale = stale + 1 if gn > 0.99 * best else 0
        best = min(best, gn)
        if stale >= patience:
            break
    newton = 0
    while gn >= tol and newton < newton_steps and math.isfinite(gn):
        F_ = objective()
        g = [t.detach() for t in torch.autograd.grad(F_, w)]
        step = conjugate_gradient(WeightHessian(f, w, a_fixed, l2, proximal), g, tol=1e-10, max_iters=newton_cg_iters)
        if step.negative_curvature:
            break
        saved = [t.detach().clone() for t in w]
        with torch.no_grad():
            for t, p in zip(w, step.x):
                t.sub_(p)
        gn_new, loss_new = grad_norm_and_loss()
        if not gn_new < gn:
            with torch.no_grad():
                for t, t0 in zip(w, saved):
                    t.copy_(t0)
            break
        gn, loss = gn_new, loss_new
        history.append(gn)
        newton += 1
    return InnerResult(
        [t.detach() for t in w], gn0, gn, loss0, loss, iters, gn < tol, tol, l2, proximal, solver, history, newton
    )


# --------------------------------------------------------------------------------------------
# the reference hypergradient


@dataclass
class IFTResult:
    hypergradient: Tensors
    direct: Tensors  # ∇α L_val(w*, α)
    cg: CGResult


def ift_hypergradient(
    f_tr: Objective,
    f_val: Objective,
    w_star: Sequence[torch.Tensor],
    a: Sequence[torch.Tensor],
    l2: float = 0.0,
    cg_tol: float = 1e-8,
    cg_max_iters: int = 200,
    proximal: float = 0.0,
    damping: float = 0.0,
) -> IFTResult:
    """dL_val/dα at w* by the IFT: ∇α L_val − ∇²_{αw} L_tr · H⁻¹ ∇w L_val (CG on exact HVPs).

    H = ∇²_ww [L_tr + (l2/2)‖w‖² + (δ/2)‖w − w0‖²] at w* = ∇²_ww L_tr + (l2 + δ)I, δ = ``proximal``
    (the inner objective of ``minimise_inner``; exact for that problem).  ``damping`` adds a
    further εI to H inside CG only (an approximation; 0 by default).  Valid when w* is a
    stationary point of the inner objective: check ``minimise_inner``'s ``grad_norm``.
    """
    _, g_val_w, g_val_a = grads(f_val, w_star, a)
    cg = conjugate_gradient(WeightHessian(f_tr, w_star, a, l2, proximal), g_val_w, cg_tol, cg_max_iters, damping)
    indirect = mixed_hessian_product(f_tr, w_star, a, cg.x)
    return IFTResult([d - i for d, i in zip(g_val_a, indirect)], g_val_a, cg)
