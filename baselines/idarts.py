"""iDARTS (Zhang, Su, Pan, Chang, Abbasnejad, Haffari, "iDARTS: Differentiable Architecture Search with Stochastic
Implicit Gradients", ICML 2021; miaozhang0525/iDARTS@419a67b; docs/methods/idarts.md).

The α-gradient is the implicit-function-theorem hypergradient at the current w with the inverse weight Hessian
replaced by a truncated Neumann series (iDARTS_V2.ipynb[cell 1]:5-103; NAS-Bench-1Shot1-codes/optimizers/idarts_v2/
architect_hess.py:73-144)::

    g_α = ∇α L_val(w, α) − γ · ∇²_{αw} L_tr(w, α) · Σ_{j=0}^{K} (I − γ ∇²_ww L_tr(w, α))^j v,   v = ∇w L_val(w, α)

K = ``neumann_terms`` (reference 2: three terms), γ = ``neumann_gamma`` (null: the current weight lr η, as the
reference).  The products with ∇²_ww L_tr are exact double-backward products (``harness.hypergrad.estimators.
WeightHessian``); the mixed product is the reference's central difference at R = 0.01/‖v‖ (``mixed_product: fd``)
or exact (``exact``, ``estimators.mixed_hessian_product``).  ``idarts_hypergradient`` is the one formula, used by
the method and by tests/test_methods_part2.py against the closed form of a ridge problem.

One iDARTS iteration is T = ``inner_steps`` (default 1: the NB201 notebook's logged run, ``T1_K2_hess_seed0``;
its code says 4, the 1Shot1 code 5) weight steps followed by one α step at the resulting w.  The runner
hands one (train, val) batch pair per step, so T consecutive runner steps form one iDARTS iteration: each takes a
weight step on its train batch, and the T-th then takes the α step on its val batch, with the Hessian products on
its train batch (the reference draws its T inner batches and its Hessian batch at random from the train loader in
addition to the loader's batch: its epoch holds T× the weight steps and as many α steps as a DARTS epoch; here an
epoch holds a DARTS epoch's weight steps and 1/T of its α steps; a labelled deviation).

The NB201 notebook's quirks are options, off by default (docs/methods/idarts.md): ``weight_steps: notebook`` —
its inner steps use ``deepcopy(w_optimizer)``, whose parameters are copies, so they never move the supernet (the
weights move only by the residual below); ``fd_residual: true`` — after the finite differences the weights are not
restored but left at w − R·(Σ − v) (cell 1:59-60, "adding noise into supernet").
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from harness.hypergrad import estimators as E
from harness.methods import BASE_OPTIONS, Batch, Option, SearchMethod
from harness.registry import register_method

Tensors = List[torch.Tensor]


def neumann_series(hvp: Callable[[Tensors], Tensors], v: Sequence[torch.Tensor], gamma: float, terms: int) -> Tensors:
    """Σ_{j=0}^{K} (I − γH)^j v with K = ``terms`` (K + 1 summands; iDARTS ``grads_sum = v + grads_1 + grads_2``).
    γ·Σ approximates H⁻¹v when the spectrum of γH lies in (0, 2)."""
    p = [t.detach().clone() for t in v]
    s = [t.detach().clone() for t in v]
    for _ in range(int(terms)):
        hp = hvp(p)
        p = [pi - gamma * hi for pi, hi in zip(p, hp)]
        s = [si + pi for si, pi in zip(s, p)]
    return s


def idarts_hypergradient(
    f_tr: E.Objective,
    f_val: E.Objective,
    w: Sequence[torch.Tensor],
    a: Sequence[torch.Tensor],
    gamma: float,
    terms: int = 2,
    mixed: str = "fd",
    fd_radius: float = 0.01,
) -> Dict[str, Any]:
    """The iDARTS α-gradient at (w, α) (module doc).  Returns ``hypergradient`` (list like ``a``), ``direct``
    (∇α L_val), ``v`` (∇w L_val), ``series`` (Σ, unscaled), ``R`` (the finite-difference radius, a 0-dim tensor;
    None if exact), ``loss_val``."""
    loss_val, v, direct = E.grads(f_val, w, a)
    hessian = E.WeightHessian(f_tr, w, a)
    s = neumann_series(hessian, v, gamma, terms)
    R: Optional[torch.Tensor] = None
    if mixed == "exact":
        product = E.mixed_hessian_product(f_tr, w, a, s)
    elif mixed == "fd":  # R a 0-dim tensor: no device read
        R = float(fd_radius) / torch.sqrt(sum((t.double() ** 2).sum() for t in v)).to(v[0].dtype)
        g_pos = E.grad_a(f_tr, [wi + R * si for wi, si in zip(w, s)], a)
        g_neg = E.grad_a(f_tr, [wi - R * si for wi, si in zip(w, s)], a)
        product = [(gp - gn) / (2 * R) for gp, gn in zip(g_pos, g_neg)]
    else:
        raise ValueError(f"mixed must be fd or exact, not {mixed!r}")
    return {
        "hypergradient": [d - gamma * p for d, p in zip(direct, product)],
        "direct": direct,
        "v": v,
        "series": s,
        "R": R,
        "loss_val": loss_val,
    }


@register_method("idarts")
class IDarts(SearchMethod):
    """Implicit (IFT + Neumann series) α-gradient after T inner weight steps."""

    label = "iDARTS"
    color = "#7f7f7f"
    display_rank = 180
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = (
        "miaozhang0525/iDARTS@419a67b NAS_Bench201_codes/exps/algos/iDARTS_V2.ipynb; idarts_v2/architect_hess.py"
    )
    nb201_reference = True  # the NB201 notebook
    options = {
        **BASE_OPTIONS,
        "inner_steps": Option(
            "T: weight steps per α step (the NB201 notebook's logged run 1, its code 4; 1Shot1 5)",
            int,
            minimum=1,
            default=1,
        ),
        "neumann_terms": Option("K: Neumann terms beyond the first (reference 2)", int, minimum=0, default=2),
        "neumann_gamma": Option(
            "γ of the Neumann series; null: the current weight lr η (reference)",
            float,
            minimum=0,
            exclusive=True,
            nullable=True,
        ),
        "mixed_product": Option(
            "∇²_{αw}L_tr·Σ: fd (reference, R = fd_radius/‖v‖) | exact (double backward)",
            str,
            choices=("fd", "exact"),
            default="fd",
            deviation="exact mixed Hessian product (the reference takes a central difference)",
        ),
        "fd_radius": Option("r in R = r/‖v‖ (reference 0.01)", float, minimum=0, exclusive=True, default=0.01),
        "weight_steps": Option(
            "real: the inner steps are SGD steps (1Shot1 code, the paper) | notebook: no-ops as in the NB201 "
            "notebook (deep-copied optimizer)",
            str,
            choices=("real", "notebook"),
            default="real",
        ),
        "fd_residual": Option(
            "leave w at w − R·(Σ − v) after the finite differences (NB201 notebook, cell 1:59-60)",
            bool,
            default=False,
            deviation="the notebook's finite-difference residual left in the weights",
        ),
    }

    @classmethod
    def option_deviations(cls, method_cfg, reference_cfg):
        out = super().option_deviations(method_cfg, reference_cfg)
        if int(method_cfg.get("inner_steps", 1)) > 1:
            out.append(
                f"iDARTS inner steps: T = {method_cfg['inner_steps']} consecutive runner steps form one iteration "
                "(T weight steps on the runner's train batches, then the α step), not T extra random train batches "
                "per loader batch"
            )
        if method_cfg.get("weight_steps", "real") == "real":
            out.append(
                "iDARTS weight_steps=real: the inner weight steps move the supernet (the NB201 notebook's are no-ops: "
                "its optimizer is a deep copy)"
            )
        return out

    def __init__(self, supernet, cfg, epochs, steps_per_epoch, speed=None):
        super().__init__(supernet, cfg, epochs, steps_per_epoch, speed=speed)
        named = dict(supernet.named_parameters())
        by_id = {id(p): n for n, p in named.items()}
        self._weight_names = [by_id[id(p)] for p in self.weights]
        self._alpha_names = [by_id[id(a)] for a in self.alphas]
        self.iteration = 0  # runner steps taken (T of them per α step)

    def objective(self, x: torch.Tensor, y: torch.Tensor, keep: Optional[Dict[str, Any]] = None) -> E.Objective:
        """(w, α) ↦ CE of the supernet on (x, y) with w and α replaced (functional call, FP32); BN buffers are
        copies, so the run's running statistics are untouched.  ``keep``: receives the first call's logits."""
        buffers = {n: b.clone() for n, b in self.net.named_buffers()}

        def f(w: Sequence[torch.Tensor], a: Sequence[torch.Tensor]) -> torch.Tensor:
            tensors = dict(zip(self._weight_names, w))
            tensors.update(zip(self._alpha_names, a))
            tensors.update(buffers)
            with self.autocast(False):
                logits = functional_call(self.net, tensors, (x,))
            if keep is not None and "logits" not in keep:
                keep["logits"] = logits.detach()
            return F.cross_entropy(logits, y)

        return f

    def step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        if self.cfg.get("weight_steps", "real") == "real":
            stats = self.weight_step(*train_batch)
        else:  # notebook: the inner step changes nothing; its loss is still reported
            with torch.no_grad():
                loss, logits = self.loss(*train_batch)
            stats = self.batch_stats("train", loss, logits, train_batch[1])
        self.iteration += 1
        if self.iteration % int(self.cfg.get("inner_steps", 1)) == 0:
            stats.update(self.alpha_step(train_batch, val_batch))
        return stats

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        gamma = self.cfg.get("neumann_gamma")
        gamma = self.lr if gamma is None else float(gamma)
        w = [p.detach() for p in self.weights]
        a = [p.detach() for p in self.alphas]
        keep: Dict[str, Any] = {}
        res = idarts_hypergradient(
            self.objective(*train_batch),
            self.objective(*val_batch, keep=keep),
            w,
            a,
            gamma,
            int(self.cfg.get("neumann_terms", 2)),
            str(self.cfg.get("mixed_product", "fd")),
            float(self.cfg.get("fd_radius", 0.01)),
        )
        if self.cfg.get("fd_residual") and res["R"] is not None:
            with torch.no_grad():
                for p, s, v in zip(self.weights, res["series"], res["v"]):
                    p.add_(res["R"] * (v - s))
        self.apply_alpha_grad(res["hypergradient"])
        return self.batch_stats("val", res["loss_val"], keep["logits"], val_batch[1])

    def extra_state(self) -> Dict[str, Any]:
        return {"iteration": self.iteration}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.iteration = int(state.get("iteration", 0))
