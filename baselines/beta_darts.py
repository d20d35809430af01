"""β-DARTS (Ye et al., CVPR 2022; Sunshine-Ye/Beta-DARTS@f307704 optimizers/darts/architect.py:55-59, 80-85,
nasbench201/train_search.py; docs/methods/beta-darts.md).

DARTS first order plus the β-decay term in the α step:

    L_α = L_val(w, α) + λ(e) · (1/|E|) Σ_e logsumexp_k(α_{e,k}),   λ(e) = λ_max · e / ``lambda_epochs``

with λ_max = 50 and the denominator hard-coded to 100 in the reference (not the epoch count), e 0-based.  Its gradient
λ(e)·softmax(α_e)/|E| decays each logit in proportion to its softmax weight.  The mean runs over every edge of every
α tensor (NB201: the 6 edges; DARTS space: the 28 edges of both cells together — the reference's DARTS-space path
does not run as released, so this form is the harness's reconstruction, docs/methods/beta-darts.md).

The weight step is the SmoothDARTS NB201 loop the reference forks (``perturbation: none``): p = softmax(α) written
in as explicit weights (``baselines.sdarts.PerturbedWeightStep``), so α.grad holds ∂L_tr/∂p for the
``weights+alphas`` clip norm, as in the reference.  The arch Adam keeps its weight decay (1e-3) besides β-decay.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple

import torch

from baselines.sdarts import PerturbedWeightStep
from harness.methods import BASE_OPTIONS, Option
from harness.registry import register_method

BETA_OPTIONS = {
    "lambda_max": Option("λ at e = lambda_epochs (architect.py:80-85: 50)", float, minimum=0, default=50.0),
    "lambda_epochs": Option(
        "denominator of the λ ramp, λ(e) = lambda_max·e/lambda_epochs (hard-coded 100 in the reference, not E)",
        float,
        minimum=0,
        exclusive=True,
        default=100.0,
    ),
}


def beta_lambda(epoch: int, lambda_max: float, lambda_epochs: float) -> float:
    """λ(e) = λ_max · e / lambda_epochs (Beta-DARTS architect.py: ``0 + 50 * epoch / 100``)."""
    return float(lambda_max) * int(epoch) / float(lambda_epochs)


def beta_decay(alphas) -> torch.Tensor:
    """mean over every edge (rows of all α tensors) of logsumexp over its ops (architect.py:55-59 ``mlc_loss``)."""
    return torch.cat([a.logsumexp(dim=-1) for a in alphas]).mean()


@register_method("beta-darts")
class BetaDarts(PerturbedWeightStep):
    label = "β-DARTS"
    color = "#e377c2"
    display_rank = 84
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "Sunshine-Ye/Beta-DARTS optimizers/darts/architect.py (mlc_loss); nasbench201/train_search.py"
    perturbation = "none"
    logs: ClassVar[Tuple[str, ...]] = ("lr", "beta_lambda")
    options = {**BASE_OPTIONS, **BETA_OPTIONS}

    def lam(self) -> float:
        return beta_lambda(self.epoch, self.cfg.get("lambda_max", 50.0), self.cfg.get("lambda_epochs", 100.0))

    def schedule_state(self) -> Dict[str, Any]:
        return {"lr": self.lr, "beta_lambda": self.lam()}

    def alpha_loss_terms(self) -> Dict[str, torch.Tensor]:
        return {"beta_decay": self.lam() * beta_decay(self.alphas)}

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """Not measured: the direction carries the epoch-dependent β-decay term besides ∇α L_val."""
        return None
