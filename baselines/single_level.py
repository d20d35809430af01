"""Single-level search (MiLeNAS paper eq. 3–4; chaoyanghe/MiLeNAS train_single_level.py;
docs/methods/single-level.md).

α and w are both trained on the search-train split: α step with ∇α L_tr on the train batch
(Adam), then the w step on the same batch.  The val half is only used for reporting.
It is MiLeNAS with λ = 0.  ``fused: true`` (a deviation, ``--variant fused=true``): α and w steps both from one
forward/backward of the train batch (``MixedLevelStep.fused_step`` without its val pass): one pass per
iteration instead of two.
"""

from __future__ import annotations

from typing import Dict

import torch

from baselines.milenas import FUSED_OPTION, MixedLevelStep
from harness.methods import BASE_OPTIONS, Batch
from harness.registry import register_method


@register_method("single-level")
class SingleLevel(MixedLevelStep):
    label = "Single-level"
    color = "#9467bd"
    display_rank = 50
    reference = "chaoyanghe/MiLeNAS search_algorithm/train_single_level.py"
    nb201_reference = False
    options = {**BASE_OPTIONS, **FUSED_OPTION}
    fused_val_pass = False  # λ = 0: the fused iteration is the train batch's one forward/backward

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        grads, _, _ = self.alpha_grad(*train_batch)
        self.apply_alpha_grad(grads)
        return {}

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """∇α L_tr(w, α) (``alpha_step``), for measurements (``SearchMethod.alpha_directions``)."""
        return {"": probe.grad_alpha("train")}
