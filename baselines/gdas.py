"""GDAS (Dong & Yang, CVPR 2019; D-X-Y/AutoDL-Projects exps/NAS-Bench-201-algos/GDAS.py, spec §4).

The supernet runs in "gumbel" mode: one hard Gumbel-softmax straight-through sample per forward,
only the sampled op computed (the space implements it).  Per iteration (NB201 order): w step on
the train batch, then α step = first-order ∇α L_val on the val batch (a fresh sample each).
τ is annealed linearly per epoch from ``tau_max`` to ``tau_min``:
``tau_schedule: nb201``   τ(e) = τ_max − (τ_max − τ_min)·e/(E−1)  (reaches τ_min at the last epoch)
``tau_schedule: milenas`` τ(e) = τ_max − (τ_max − τ_min)·e/E      (chaoyanghe/MiLeNAS train_gdas.py)
"""
from __future__ import annotations

from typing import Dict

import torch

from harness.methods import BASE_OPTIONS, Batch, Option, SearchMethod
from harness.registry import register_method

TAU_SCHEDULES = ("nb201", "milenas")


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
    "tau_schedule": Option("nb201: τ reaches tau_min at the last epoch (e/(E−1)); milenas: e/E (train_gdas.py)",
                           str, choices=TAU_SCHEDULES),
}


class GumbelTemperature:
    """Mixin: sets the supernet's τ at every epoch start (and logs it)."""

    forward_mode = "gumbel"
    logs = ("lr", "tau")

    def schedule_state(self):
        return {**super().schedule_state(), "tau": self.net.tau}  # type: ignore[misc, attr-defined]

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)  # type: ignore[misc]
        cfg = self.cfg  # type: ignore[attr-defined]
        tau = gumbel_tau(epoch, self.epochs, cfg["tau_max"], cfg["tau_min"], cfg["tau_schedule"])  # type: ignore[attr-defined]
        self.net.set_mode("gumbel", tau)  # type: ignore[attr-defined]


@register_method("gdas")
class GDAS(GumbelTemperature, SearchMethod):
    label = "GDAS"
    color = "#2ca02c"
    display_rank = 40
    reference = "D-X-Y/AutoDL-Projects exps/NAS-Bench-201-algos/GDAS.py"
    options = {**BASE_OPTIONS, **GUMBEL_OPTIONS}

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        x_val, y_val = val_batch
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
