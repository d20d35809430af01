"""GDAS (Dong & Yang, CVPR 2019; D-X-Y/AutoDL-Projects exps/NAS-Bench-201-algos/GDAS.py;
docs/methods/gdas.md).

The method installs a ``GumbelWeighting`` (``harness.spaces.base``): one hard Gumbel-softmax straight-through
sample per forward, only the sampled op computed (the space implements it).  Per iteration (NB201 order): w step
on the train batch, then α step = first-order ∇α L_val on the val batch (a fresh sample each).
τ is annealed linearly per epoch from ``tau_max`` to ``tau_min``:
``tau_schedule: nb201``   τ(e) = τ_max − (τ_max − τ_min)·e/(E−1)  (reaches τ_min at the last epoch)
``tau_schedule: milenas`` τ(e) = τ_max − (τ_max − τ_min)·e/E      (chaoyanghe/MiLeNAS train_gdas.py)

The α step's backward (``alpha_backward``): ``full`` (the reference: xautodl GDAS.py ``arch_loss.backward()``,
chaoyanghe/MiLeNAS architect.py ``_backward_step``) also writes ∇w L_val into the weights' ``.grad``.  It changes
no step directly — the next w step zeroes them first — but a weight of an op sampled only in the α step then holds
a (zeroed) gradient from there on, so SGD keeps applying weight decay and momentum to it when it is not sampled.
``alphas_only`` (a deviation) differentiates w.r.t. α only, leaving such weights' ``.grad`` None.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from harness.methods import BASE_OPTIONS, Batch, Option, SearchMethod
from harness.registry import register_method
from harness.spaces.base import GumbelWeighting

TAU_SCHEDULES = ("nb201", "milenas")
ALPHA_BACKWARDS = ("full", "alphas_only")


def gumbel_tau(epoch: int, epochs: int, tau_max: float, tau_min: float, schedule: str) -> float:
    if schedule not in TAU_SCHEDULES:
        raise ValueError(f"tau_schedule must be one of {TAU_SCHEDULES}, not {schedule!r}")
    denom = (epochs - 1) if schedule == "nb201" else epochs
    if denom <= 0:
        return float(tau_max)
    return float(tau_max - (tau_max - tau_min) * epoch / denom)


GUMBEL_OPTIONS = {
    "tau_max": Option("Gumbel-softmax temperature at the first epoch", float, minimum=0, exclusive=True),
    "tau_min": Option("Gumbel-softmax temperature at the end of the schedule", float, minimum=0, exclusive=True),
    "tau_schedule": Option(
        "nb201: τ reaches tau_min at the last epoch (e/(E−1)); milenas: e/E (train_gdas.py)", str, choices=TAU_SCHEDULES
    ),
}
ALPHA_BACKWARD_OPTION = {
    "alpha_backward": Option(
        "full: the α step's backward() also writes ∇w L_val into the weights' .grad (xautodl "
        "GDAS.py arch_loss.backward()); alphas_only: gradient w.r.t. α only",
        str,
        choices=ALPHA_BACKWARDS,
        default="full",
        deviation="GDAS α step differentiates w.r.t. α only: weights of ops sampled only in α "
        "steps keep .grad None, so SGD skips their weight decay and momentum (the "
        "reference's backward() gives them a gradient, zeroed in place afterwards)",
    ),
}


class GumbelTemperature(SearchMethod):
    """A method searching on GDAS samples: installs ``GumbelWeighting(τ)``, τ set at every epoch start (and logged)."""

    forward_mode = "gumbel"
    logs = ("lr", "tau")

    def __init__(
        self,
        supernet: nn.Module,
        cfg: Dict[str, Any],
        epochs: int,
        steps_per_epoch: int,
        speed: Optional[Dict[str, Any]] = None,
    ):
        super().__init__(supernet, cfg, epochs, steps_per_epoch, speed=speed)
        self.tau = self.tau_at(0)

    def tau_at(self, epoch: int) -> float:
        return gumbel_tau(epoch, self.epochs, self.cfg["tau_max"], self.cfg["tau_min"], self.cfg["tau_schedule"])

    def edge_weighting(self) -> GumbelWeighting:
        return GumbelWeighting(self.tau)

    def schedule_state(self) -> Dict[str, Any]:
        return {**super().schedule_state(), "tau": self.tau}

    def on_epoch_start(self, epoch: int) -> None:
        self.tau = self.tau_at(epoch)
        super().on_epoch_start(epoch)  # installs edge_weighting() at this τ


@register_method("gdas")
class GDAS(GumbelTemperature):
    label = "GDAS"
    color = "#2ca02c"
    display_rank = 40
    reference = "D-X-Y/AutoDL-Projects exps/NAS-Bench-201-algos/GDAS.py"
    options = {**BASE_OPTIONS, **GUMBEL_OPTIONS, **ALPHA_BACKWARD_OPTION}

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        x_val, y_val = val_batch
        if self.cfg.get("alpha_backward", "full") == "full":
            for a in self.alphas:  # the w step's backward left ∇α L_tr there (xautodl: a_optimizer.zero_grad())
                a.grad = None
            loss, logits = self.loss(x_val, y_val)
            loss.backward()  # α.grad = ∇α L_val; weights' .grad += ∇w L_val (zeroed by the next w step)
            grads = [a.grad if a.grad is not None else torch.zeros_like(a) for a in self.alphas]
        else:
            grads, loss, logits = self.alpha_grad(x_val, y_val)
        self.apply_alpha_grad(grads)
        return self.batch_stats("val", loss, logits, y_val)


@register_method("gdas-milenas-repo")
class GDASMiLeNASRepo(GDAS):
    """GDAS as the MiLeNAS repo ran it for its Fig. 5 comparison (train_gdas.py --optimization DARTS,
    run_gdas.sh): per-cell sampling and α → w (set by the protocol row), batch 128, 250 epochs.
    The Fig. 5 comparison with ``milenas-gumbel`` uses this variant, so both differ only in the α step."""

    label = "GDAS (MiLeNAS repo, Fig. 5)"
    color = "#98df8a"
    display_rank = 45
    role = "variant"
    reference = "chaoyanghe/MiLeNAS search_algorithm/train_gdas.py + run_gdas.sh"
