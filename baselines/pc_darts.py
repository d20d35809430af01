"""PC-DARTS (Xu, Xie, Zhang, Chen, Qi, Tian, Xiong, ICLR 2020; yuhuixu1993/PC-DARTS@b74702f train_search.py,
model_search.py, architect.py; docs/methods/pc-darts.md).

The method is DARTS first order (g = ∇_{α,β} L_val(w, α, β), one Adam over α and β, then the weight step:
train_search.py:140-175) on a partial-channel supernet with edge normalisation — the space options
``partial_channels: 4`` and ``edge_norm: true`` of both spaces (``harness.spaces.partial``; its protocol rows set
them) — plus a warm-up: no α/β step while ``epoch < 15`` of 50 (train_search.py:156-157).  The cell is chosen on
softmax(α)·β̃ by the space's derivation (``DartsSupernet.edge_normalised``; NB201: per-edge argmax, which β̃
cannot change).

``warmup_epochs``: α-free epochs; null (default) scales the reference's 15 of 50 to the run's epochs,
⌊15·E/50⌋ (E = 50 → 15; a 3-epoch smoke run → 0).
"""

from __future__ import annotations

from typing import Dict

import torch

from baselines.darts import DartsFirstOrder
from harness.methods import BASE_OPTIONS, Batch, Option
from harness.registry import register_method

#: train_search.py:156 ``if epoch >= 15`` with ``--epochs 50`` (train_search.py:30)
REFERENCE_WARMUP, REFERENCE_EPOCHS = 15, 50


@register_method("pc-darts")
class PCDarts(DartsFirstOrder):
    """DARTS 1st order with an α warm-up, on the partial-channel supernet with edge normalisation."""

    label = "PC-DARTS"
    color = "#bcbd22"
    display_rank = 150
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "yuhuixu1993/PC-DARTS@b74702f train_search.py, model_search.py"
    nb201_reference = False  # the PC-DARTS repository has no NB201 code
    options = {
        **BASE_OPTIONS,
        "warmup_epochs": Option(
            "epochs without α/β steps; null: ⌊15·E/50⌋ (reference: 15 of 50)", int, minimum=0, nullable=True
        ),
    }

    @property
    def warmup_epochs(self) -> int:
        value = self.cfg.get("warmup_epochs")
        return (REFERENCE_WARMUP * self.epochs) // REFERENCE_EPOCHS if value is None else int(value)

    def step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        if self.epoch < self.warmup_epochs:  # warm-up: the weight step only (train_search.py:156-157); its backward
            return self.weight_step(*train_batch)  # still leaves ∇α L_tr in α.grad, as the reference's
        return super().step(train_batch, val_batch)

    def schedule_state(self):
        return {**super().schedule_state(), "alpha_steps": self.epoch >= self.warmup_epochs}

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """None: the direction is DARTS-1st's (measured there), the supernet differs only by the space options."""
        return None
