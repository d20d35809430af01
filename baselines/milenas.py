"""MiLeNAS (He et al., CVPR 2020; chaoyanghe/MiLeNAS search_algorithm/architect.py step_milenas, spec §3).

Mixed-level reformulation min_{α,w} L_tr(w, α) + λ·L_val(w, α):
    α ← α − η_α (∇α L_tr(w, α) + λ ∇α L_val(w, α))      (``lambda_form: paper``, the default)
The reference code weights the *train* term instead, g = ∇α L_val + λ_t ∇α L_tr
(``lambda_form: code``); both equal the paper for λ = 1.  Each term is its own forward/backward
w.r.t. α only; then one Adam step; then the w step on the same train batch with the updated α.

Registered variants: ``milenas-gumbel`` (GDAS sampling + mixed-level α step, spec §3.6) and
``darts2-then-milenas`` (DARTS 2nd order for the first 70 % of epochs — 35 of 50 in the paper's
Fig. 3a — then MiLeNAS; train_milenas_later_phase_of_bilevel.py).
"""
from __future__ import annotations

from typing import Dict, List

import torch

from baselines.darts import DartsSecondOrder
from baselines.gdas import GUMBEL_OPTIONS, GumbelTemperature
from harness.methods import BASE_OPTIONS, Batch, Option, SearchMethod
from harness.registry import register_method

LAMBDA_FORMS = ("paper", "code")
MIXED_LEVEL_OPTIONS = {
    "lam": Option("λ, the weight of the validation term (paper form; Fig. 2 sweeps 0.1, 1, 999)", float, minimum=0),
    "lambda_form": Option("paper: g_tr + λ·g_val; code: g_val + λ·g_tr (chaoyanghe/MiLeNAS architect.py)", str,
                          choices=LAMBDA_FORMS),
}


class MixedLevelStep:
    """Mixin: the MiLeNAS α step."""

    def mixed_level_alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        lam = float(self.cfg.get("lam", 1.0))  # type: ignore[attr-defined]
        form = self.cfg.get("lambda_form", "paper")  # type: ignore[attr-defined]
        if form not in LAMBDA_FORMS:
            raise ValueError(f"lambda_form must be one of {LAMBDA_FORMS}, not {form!r}")
        g_tr, _, _ = self.alpha_grad(*train_batch)  # type: ignore[attr-defined]
        g_val, loss_val, logits_val = self.alpha_grad(*val_batch)  # type: ignore[attr-defined]
        if form == "paper":
            grads: List[torch.Tensor] = [gt + lam * gv for gt, gv in zip(g_tr, g_val)]
        else:
            grads = [gv + lam * gt for gt, gv in zip(g_tr, g_val)]
        self.apply_alpha_grad(grads)  # type: ignore[attr-defined]
        return self.batch_stats("val", loss_val, logits_val, val_batch[1])  # type: ignore[attr-defined]


@register_method("milenas")
class MiLeNAS(MixedLevelStep, SearchMethod):
    label = "MiLeNAS"
    color = "#d62728"
    display_rank = 10
    reference = "chaoyanghe/MiLeNAS search_algorithm/architect.py step_milenas"
    speed_compared_with = "darts-2nd"   # paper Fig. 3b: "3× faster than DARTS 2nd order"
    nb201_reference = False
    options = {**BASE_OPTIONS, **MIXED_LEVEL_OPTIONS}

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        return self.mixed_level_alpha_step(train_batch, val_batch)


@register_method("milenas-gumbel")
class MiLeNASGumbel(GumbelTemperature, MiLeNAS):
    """MiLeNAS α step on the GDAS hard-sampled supernet (MiLeNAS paper §5, train_gdas.py --optimization MiLeNAS)."""

    label = "MiLeNAS (Gumbel)"
    color = "#ff7f0e"
    display_rank = 60
    role = "variant"
    reference = "chaoyanghe/MiLeNAS search_algorithm/train_gdas.py --optimization MiLeNAS"
    options = {**BASE_OPTIONS, **MIXED_LEVEL_OPTIONS, **GUMBEL_OPTIONS}


@register_method("darts2-then-milenas")
class Darts2ThenMiLeNAS(MixedLevelStep, DartsSecondOrder):
    """DARTS 2nd order before ``switch_fraction``·epochs (rounded), MiLeNAS from then on."""

    label = "DARTS-2nd → MiLeNAS"
    color = "#8c564b"
    display_rank = 70
    role = "variant"
    reference = "chaoyanghe/MiLeNAS search_algorithm/train_milenas_later_phase_of_bilevel.py"
    nb201_reference = False
    options = {**DartsSecondOrder.options, **MIXED_LEVEL_OPTIONS,
               "switch_fraction": Option("fraction of epochs run as DARTS 2nd order before MiLeNAS (Fig. 3a: 0.7)",
                                         float, minimum=0)}

    @property
    def switch_epoch(self) -> int:
        return int(round(float(self.cfg.get("switch_fraction", 0.7)) * self.epochs))

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        if self.epoch < self.switch_epoch:
            return DartsSecondOrder.alpha_step(self, train_batch, val_batch)
        return self.mixed_level_alpha_step(train_batch, val_batch)
