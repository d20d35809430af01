"""DrNAS — Dirichlet neural architecture search (Chen, Wang, Cheng, Tang, Hsieh, ICLR 2021;
xiangning-chen/DrNAS@f2caa4d utils.py:167-194 ``process_step_vector``, 201-space/search_model.py,
201-space/train_search.py:247-288; docs/methods/drnas.md).

The mixing weights of every edge are a sample θ_e ~ Dir(β_e), β_e = elu(α_e) + 1, drawn with ``rsample()``
(pathwise gradients) row by row, once per forward, shared by every cell using that α and every image of the batch
(``DirichletWeighting``, scope ``network``).  The α step (first order, Adam) and the w step draw independent
samples.  Regulariser (``reg_type``): ``l2`` (the reference default) is Adam's weight decay on α, i.e. the
protocol's ``optim.a_wd`` (= DrNAS ``--reg_scale`` 1e-3); ``kl`` adds ``reg_scale``·Σ_e KL(Dir(β_e) ‖ Dir(1)) to the
α-step loss and sets Adam's weight decay to 0 (201-space/search_model.py ``_get_kl_reg``; architect.py:17-22).
Selection: the space's rule on softmax(α) (the same argmax as the Dirichlet mean, elu+1 being monotone).

Not implemented: the progressive DARTS-space/NB201 scripts (partial channels, op pruning between stages, channel
widening with optimizer-state surgery): widening changes parameter shapes mid-run, which the harness's
optimizer/checkpoint contract does not allow; the DARTS-space row runs the plain search (a recorded deviation).
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

from baselines.darts import DartsFirstOrder
from harness.methods import BASE_OPTIONS, Option
from harness.registry import register_method
from harness.spaces.base import EdgeWeighting, EdgeWeights

REG_TYPES = ("l2", "kl")


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    """β = elu(α) + 1 (> 0; 1 at α = 0)."""
    return F.elu(alpha) + 1


class DirichletWeighting(EdgeWeighting):
    """θ_e ~ Dir(elu(α_e) + 1) by ``rsample()``, one row at a time as DrNAS ``process_step_matrix`` draws them;
    ``validate_args=False`` (the reference's PyTorch did not validate; validation would read the device)."""

    name = "dirichlet"
    scope = "network"

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        beta = concentration(alpha)
        return EdgeWeights(torch.stack([Dirichlet(row, validate_args=False).rsample() for row in beta]))

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """The Dirichlet mean β/Σβ per row (diagnostics: the collapse hook's mixing entropy)."""
        beta = concentration(alpha.detach().float())
        return beta / beta.sum(dim=-1, keepdim=True)


DIRICHLET_WEIGHTING = DirichletWeighting()


def kl_to_uniform(alphas) -> torch.Tensor:
    """Σ over every edge of KL(Dir(elu(α_e)+1) ‖ Dir(1)) (DrNAS ``_get_kl_reg`` before its scale)."""
    out = []
    for a in alphas:
        beta = concentration(a)
        q = Dirichlet(beta, validate_args=False)
        p = Dirichlet(torch.ones_like(beta), validate_args=False)
        out.append(kl_divergence(q, p).sum())
    return torch.stack(out).sum()


@register_method("drnas")
class DrNAS(DartsFirstOrder):
    label = "DrNAS"
    color = "#7f7f7f"
    display_rank = 81
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "xiangning-chen/DrNAS 201-space/train_search.py (plain, k=1); utils.py process_step_vector"
    forward_mode = "dirichlet"
    options = {
        **BASE_OPTIONS,
        "reg_type": Option(
            "l2: Adam weight decay on α (optim.a_wd; the reference default) | kl: reg_scale·Σ KL(Dir(β)‖Dir(1)) "
            "in the α-step loss, Adam weight decay 0",
            str,
            choices=REG_TYPES,
            default="l2",
        ),
        "reg_scale": Option("scale of the KL term (reg_type kl; --reg_scale 1e-3)", float, minimum=0, default=1e-3),
    }

    def __init__(self, supernet, cfg, epochs, steps_per_epoch, speed=None):
        super().__init__(supernet, cfg, epochs, steps_per_epoch, speed=speed)
        if self.cfg.get("reg_type", "l2") == "kl":
            for group in self.a_opt.param_groups:
                group["weight_decay"] = 0.0

    def edge_weighting(self) -> EdgeWeighting:
        return DIRICHLET_WEIGHTING

    def alpha_loss_terms(self) -> Dict[str, torch.Tensor]:
        if self.cfg.get("reg_type", "l2") != "kl":
            return {}
        return {"kl": float(self.cfg.get("reg_scale", 1e-3)) * kl_to_uniform(self.alphas)}

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """Not measurable on the softmax relaxation: its gradient is that of a Dirichlet sample."""
        return None
