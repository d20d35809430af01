"""The dominant eigenvalue of the α-Hessian ∇²_α L_val(w, α) from Hessian–vector products (docs/collapse.md).

R-DARTS (Zela et al., ICLR 2020; automl/RobustDARTS@3dec3fe src/search/analyze.py:110-192, train_search.py:373-425)
builds the full Hessian row by row with double backprop and takes ``max(numpy.linalg.eigvals(H))``: the largest
*algebraic* eigenvalue, of H including +λ_α·I (λ_α = the α weight decay, analyze.py:174).  Here:

* ``AlphaHessian``: exact products H·u = ∇α⟨∇α f(α), u⟩ (+ l2·u) by double backward; the graph of ∇α f is built once;
* ``power_iteration``: the largest algebraic eigenvalue by power iteration on the products (a shifted second run
  when the dominant-magnitude eigenvalue is negative) — solver ``power``, a few products instead of dim(α);
* ``lanczos``: the same from a Lanczos tridiagonalisation (solver ``lanczos``, the default: fewer products);
* ``exact_eigenvalue``: the reference's way, H from dim(α) products, max real part of ``numpy.linalg.eigvals`` —
  solver ``exact``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

Tensors = List[torch.Tensor]


class AlphaHessian:
    """Exact products with H = ∇²_α f(α) + l2·I at a fixed α (``f``: α list → scalar), by double backward."""

    def __init__(self, f: Callable[[Sequence[torch.Tensor]], torch.Tensor], alphas: Sequence[torch.Tensor], l2=0.0):
        self.a = [t.detach().clone().requires_grad_(True) for t in alphas]
        self.l2 = float(l2)
        self.loss = f(self.a)
        self.grad = torch.autograd.grad(self.loss, self.a, create_graph=True)
        self.products = 0

    @property
    def dim(self) -> int:
        return sum(t.numel() for t in self.a)

    def __call__(self, u: Sequence[torch.Tensor]) -> Tensors:
        self.products += 1
        hu = torch.autograd.grad(self.grad, self.a, grad_outputs=list(u), retain_graph=True, allow_unused=True)
        return [(torch.zeros_like(ui) if h is None else h.detach()) + self.l2 * ui for h, ui in zip(hu, u)]

    def flat(self, v: torch.Tensor) -> torch.Tensor:
        """H·v for a flat vector v (float64 result)."""
        parts, i = [], 0
        for t in self.a:
            parts.append(v[i : i + t.numel()].view_as(t).to(t.dtype))
            i += t.numel()
        return torch.cat([h.reshape(-1) for h in self(parts)]).double()


@dataclass
class EigenResult:
    eigenvalue: float  #: the largest algebraic eigenvalue of H
    products: int  #: Hessian–vector products spent
    iterations: int
    converged: bool
    solver: str


def _power(hvp: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, iters: int, tol: float, shift: float):
    v = v / v.norm()
    lam, done, it = 0.0, False, 0
    for it in range(1, iters + 1):
        w = hvp(v) - shift * v
        new = float(v @ w)
        n = w.norm()
        if n == 0:
            lam, done = new, True
            break
        v = w / n
        if it > 1 and abs(new - lam) <= tol * max(abs(new), 1e-12):
            lam, done = new, True
            break
        lam = new
    return lam, it, done


def power_iteration(H: AlphaHessian, iters: int = 20, tol: float = 1e-3, seed: int = 0) -> EigenResult:
    """The largest algebraic eigenvalue of H by power iteration (stop when the Rayleigh quotient changes by less
    than ``tol`` relative, or after ``iters`` products).  If the dominant-magnitude eigenvalue λ₁ is negative, a
    second run on H − λ₁I (positive semi-definite shift) finds λ_max − λ₁."""
    g = torch.Generator().manual_seed(int(seed))
    v0 = torch.randn(H.dim, generator=g, dtype=torch.float64).to(H.a[0].device)
    lam, it, done = _power(H.flat, v0, iters, tol, 0.0)
    total = it
    if lam < 0:
        mu, it2, done = _power(H.flat, v0, iters, tol, lam)
        lam, total = mu + lam, total + it2
    return EigenResult(float(lam), H.products, total, bool(done), "power")


def lanczos(H: AlphaHessian, iters: int = 10, tol: float = 1e-3, seed: int = 0) -> EigenResult:
    """The largest algebraic eigenvalue of H by Lanczos with full reorthogonalisation: after k products the largest
    eigenvalue of the k×k tridiagonal matrix (a Ritz value, ≤ λ_max, converging from below much faster than power
    iteration); stop when it changes by less than ``tol`` relative, after ``iters`` products, or at an invariant
    subspace."""
    g = torch.Generator().manual_seed(int(seed))
    q = torch.randn(H.dim, generator=g, dtype=torch.float64).to(H.a[0].device)
    q = q / q.norm()
    Q = [q]
    alphas: List[float] = []
    betas: List[float] = []
    ritz, done, k = float("nan"), False, 0
    for k in range(1, min(int(iters), H.dim) + 1):
        w = H.flat(Q[-1])
        a = float(Q[-1] @ w)
        alphas.append(a)
        for qi in Q:  # full reorthogonalisation (dim(α) ≤ a few hundred)
            w = w - (qi @ w) * qi
        b = float(w.norm())
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        new = float(np.linalg.eigvalsh(T).max())
        if k > 1 and abs(new - ritz) <= tol * max(abs(new), 1e-12):
            ritz, done = new, True
            break
        ritz = new
        if b <= 1e-12 * max(1.0, abs(a)):
            done = True
            break
        betas.append(b)
        Q.append(w / b)
    return EigenResult(float(ritz), H.products, k, bool(done), "lanczos")


def full_hessian(H: AlphaHessian) -> np.ndarray:
    """H as a dense (dim × dim) float64 array, row i = H·e_i (R-DARTS analyze.py: row by row)."""
    eye = torch.eye(H.dim, dtype=torch.float64, device=H.a[0].device)
    return torch.stack([H.flat(eye[i]) for i in range(H.dim)]).cpu().numpy()


def exact_eigenvalue(H: AlphaHessian) -> EigenResult:
    """R-DARTS: ``max(numpy.linalg.eigvals(H))`` (real part) of the full Hessian, dim(α) products."""
    vals = np.linalg.eigvals(full_hessian(H))
    return EigenResult(float(np.max(vals.real)), H.products, H.dim, True, "exact")


def dominant_eigenvalue(
    H: AlphaHessian, solver: str = "power", iters: int = 20, tol: float = 1e-3, seed: int = 0
) -> EigenResult:
    if solver == "exact":
        return exact_eigenvalue(H)
    if solver == "power":
        return power_iteration(H, iters, tol, seed)
    if solver == "lanczos":
        return lanczos(H, iters, tol, seed)
    raise ValueError(f"unknown eigenvalue solver {solver!r}; expected lanczos, power or exact")


def mixing_entropy(probabilities: Sequence[torch.Tensor]) -> Optional[float]:
    """Mean over edges (rows of every tensor) of the entropy −Σ p log p, in nats (None without rows)."""
    rows = [p.detach().double().reshape(-1, p.shape[-1]) for p in probabilities]
    if not rows:
        return None
    allp = torch.cat(rows)
    ent = -(allp * allp.clamp_min(1e-300).log()).sum(-1)
    return float(ent.mean())


__all__ = [
    "AlphaHessian",
    "EigenResult",
    "power_iteration",
    "lanczos",
    "full_hessian",
    "exact_eigenvalue",
    "dominant_eigenvalue",
    "mixing_entropy",
]
