"""MiLeNAS (He et al., CVPR 2020; chaoyanghe/MiLeNAS search_algorithm/architect.py step_milenas;
docs/methods/milenas.md).

Mixed-level reformulation min_{α,w} L_tr(w, α) + λ·L_val(w, α):
    α ← α − η_α (∇α L_tr(w, α) + λ ∇α L_val(w, α))      (``lambda_form: paper``, the default)
The reference code weights the *train* term instead, g = ∇α L_val + λ_t ∇α L_tr
(``lambda_form: code``); both equal the paper for λ = 1.  Each term is its own forward/backward
w.r.t. α only; then one Adam step; then the w step on the same train batch with the updated α.

``fused: true`` (a deviation; ``--variant fused=true``): 2 passes per iteration instead of 3 (see
``MixedLevelStep.fused_step``).

Registered variants: ``milenas-gumbel`` (GDAS sampling + mixed-level α step, docs/methods/milenas-gumbel.md) and
``darts2-then-milenas`` (DARTS 2nd order for the first 70 % of epochs — 35 of 50 in the paper's
Fig. 3a — then MiLeNAS; train_milenas_later_phase_of_bilevel.py, whose second-order phase is MiLeNAS's
Architect: ``unrolled_form: milenas_architect`` by default, see ``baselines.darts``).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import Tensor

from baselines.darts import UNROLLED_FORM_DOC, UNROLLED_FORMS, DartsSecondOrder
from baselines.gdas import GUMBEL_OPTIONS, GumbelTemperature
from harness.methods import BASE_OPTIONS, Batch, Option, SearchMethod
from harness.registry import register_method

LAMBDA_FORMS = ("paper", "code")
MIXED_LEVEL_OPTIONS = {
    "lam": Option("λ, the weight of the validation term (paper form; Fig. 2 sweeps 0.1, 1, 999)", float, minimum=0),
    "lambda_form": Option(
        "paper: g_tr + λ·g_val; code: g_val + λ·g_tr (chaoyanghe/MiLeNAS architect.py)", str, choices=LAMBDA_FORMS
    ),
}


FUSED_OPTION = {
    "fused": Option(
        "true: the train batch's one forward/backward gives both ∇w L_tr (weight step) and ∇α L_tr "
        "(the α step's train term): one pass per iteration fewer (MiLeNAS 2 instead of 3, single-level "
        "1 instead of 2); the weight step then sees α before this iteration's α step.  false: the "
        "reference's passes",
        bool,
        default=False,
        deviation="fused step: the α-gradient's train term comes from the weight step's forward/backward "
        "(one pass fewer per iteration); the weight step uses α before this iteration's α step "
        "(the reference: after it)",
    ),
}


def mixed_level_gradient(g_tr: Sequence[Tensor], g_val: Sequence[Tensor], lam: float, form: str) -> List[Tensor]:
    """The MiLeNAS α-gradient from its two terms: ``paper`` g_tr + λ·g_val (He et al. 2020, eq. 6) or ``code``
    g_val + λ·g_tr (chaoyanghe/MiLeNAS search_algorithm/architect.py step_milenas); equal for λ = 1."""
    if form not in LAMBDA_FORMS:
        raise ValueError(f"lambda_form must be one of {LAMBDA_FORMS}, not {form!r}")
    if form == "paper":
        return [gt + lam * gv for gt, gv in zip(g_tr, g_val)]
    return [gv + lam * gt for gt, gv in zip(g_tr, g_val)]


class MixedLevelStep(SearchMethod):
    """A method with the MiLeNAS α step, and the fused two-pass iteration (``fused: true``)."""

    fused_val_pass = True  #: the fused iteration's α-gradient has the val term (single-level: no)

    def step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        if self.cfg.get("fused", False):
            return self.fused_step(train_batch, val_batch)
        return super().step(train_batch, val_batch)

    def mixed_gradient(self, g_tr: List[torch.Tensor], g_val: List[torch.Tensor]) -> List[torch.Tensor]:
        return mixed_level_gradient(g_tr, g_val, float(self.cfg.get("lam", 1.0)), self.cfg.get("lambda_form", "paper"))

    def fused_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        """One iteration in two passes (``fused: true``), at the current (w, α) throughout:

        1. train batch: one forward, one ``backward()`` → ∇w L_tr(w, α) in w.grad and g_tr = ∇α L_tr(w, α);
        2. val batch (``fused_val_pass``): one forward, ∇α L_val(w, α) w.r.t. α only (weights not yet stepped);
        3. α step: Adam on g_tr + λ·g_val (``lambda_form`` as the reference), exactly the reference's α update;
        4. w step: clip per config, SGD, with the gradient of step 1, i.e. taken at α *before* this
           iteration's α step — the reference's w step runs a third pass at the α *after* it.  For the
           ``weights+alphas`` clip norm α.grad holds the α step's gradient plus ∇α L_tr, as after the
           reference's w-step backward (there at the updated α, here at the old one).
        """
        (x_tr, y_tr), (x_val, y_val) = train_batch, val_batch
        self.w_opt.zero_grad(set_to_none=self.cfg.get("zero_grad", "zero") == "none")
        for a in self.alphas:
            a.grad = None
        loss_tr, logits_tr = self.loss(x_tr, y_tr)
        loss_tr.backward()
        g_tr = [torch.zeros_like(a) if a.grad is None else a.grad.detach().clone() for a in self.alphas]
        stats = self.batch_stats("train", loss_tr, logits_tr, y_tr)
        if self.fused_val_pass:
            g_val, loss_val, logits_val = self.alpha_grad(x_val, y_val)
            grads = self.mixed_gradient(g_tr, g_val)
            stats.update(self.batch_stats("val", loss_val, logits_val, y_val))
        else:
            grads = g_tr
        self.apply_alpha_grad(grads)  # resets α.grad only; w.grad kept
        with torch.no_grad():
            for a, gt in zip(self.alphas, g_tr):
                a.grad = gt.clone() if a.grad is None else a.grad.add_(gt)
        self.clip_gradients()
        self.w_opt.step()
        return stats

    def mixed_level_alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        g_tr, _, _ = self.alpha_grad(*train_batch)
        g_val, loss_val, logits_val = self.alpha_grad(*val_batch)
        grads: List[torch.Tensor] = self.mixed_gradient(g_tr, g_val)
        self.apply_alpha_grad(grads)
        return self.batch_stats("val", loss_val, logits_val, val_batch[1])


@register_method("milenas")
class MiLeNAS(MixedLevelStep):
    label = "MiLeNAS"
    color = "#d62728"
    display_rank = 10
    reference = "chaoyanghe/MiLeNAS search_algorithm/architect.py step_milenas"
    speed_compared_with = "darts-2nd"  # paper Fig. 3b: "3× faster than DARTS 2nd order"
    nb201_reference = False
    options = {**BASE_OPTIONS, **MIXED_LEVEL_OPTIONS, **FUSED_OPTION}

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        return self.mixed_level_alpha_step(train_batch, val_batch)

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """``mixed_level_gradient`` of ∇α L_tr and ∇α L_val at the probe's point (``mixed_level_alpha_step``)."""
        return {
            "": mixed_level_gradient(
                probe.grad_alpha("train"),
                probe.grad_alpha("val"),
                float(method_cfg.get("lam", 1.0)),
                method_cfg.get("lambda_form", "paper"),
            )
        }


@register_method("milenas-gumbel")
class MiLeNASGumbel(GumbelTemperature, MiLeNAS):
    """MiLeNAS α step on the GDAS hard-sampled supernet (MiLeNAS paper §5, train_gdas.py --optimization MiLeNAS)."""

    label = "MiLeNAS (Gumbel)"
    color = "#ff7f0e"
    display_rank = 60
    role = "variant"
    reference = "chaoyanghe/MiLeNAS search_algorithm/train_gdas.py --optimization MiLeNAS"
    options = {**BASE_OPTIONS, **MIXED_LEVEL_OPTIONS, **GUMBEL_OPTIONS}

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """Not measurable on the softmax relaxation: its gradient is that of a Gumbel-sampled path."""
        return None


@register_method("darts2-then-milenas")
class Darts2ThenMiLeNAS(MixedLevelStep, DartsSecondOrder):
    """DARTS 2nd order before ``switch_fraction``·epochs (rounded), MiLeNAS from then on."""

    label = "DARTS-2nd → MiLeNAS"
    color = "#8c564b"
    display_rank = 70
    role = "variant"
    reference = "chaoyanghe/MiLeNAS search_algorithm/train_milenas_later_phase_of_bilevel.py"
    nb201_reference = False
    options = {
        **DartsSecondOrder.options,
        **MIXED_LEVEL_OPTIONS,
        "switch_fraction": Option(
            "fraction of epochs run as DARTS 2nd order before MiLeNAS (Fig. 3a: 0.7)", float, minimum=0
        ),
        # its script steps α with MiLeNAS's Architect (α an nn.Parameter of the model), not quark0's
        "unrolled_form": Option(
            UNROLLED_FORM_DOC,
            str,
            choices=UNROLLED_FORMS,
            default="milenas_architect",
            deviation="second-order phase's unrolled α-gradient as quark0/darts "
            "architect.py (momentum in the virtual step, α neither stepped nor "
            "perturbed) instead of the script's chaoyanghe/MiLeNAS architect.py",
        ),
    }

    @property
    def switch_epoch(self) -> int:
        return int(round(float(self.cfg.get("switch_fraction", 0.7)) * self.epochs))

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        if self.epoch < self.switch_epoch:
            return DartsSecondOrder.alpha_step(self, train_batch, val_batch)
        return self.mixed_level_alpha_step(train_batch, val_batch)

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """Not measured apart: before the switch its direction is darts-2nd's, after it milenas'."""
        return None
