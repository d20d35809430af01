"""Single-level search (MiLeNAS paper eq. 3–4; chaoyanghe/MiLeNAS train_single_level.py, spec §5).

α and w are both trained on the search-train split: α step with ∇α L_tr on the train batch
(Adam), then the w step on the same batch.  The val half is only used for reporting.
It is MiLeNAS with λ = 0.
"""
from __future__ import annotations

from typing import Dict

import torch

from harness.methods import Batch, SearchMethod
from harness.registry import register_method


@register_method("single-level")
class SingleLevel(SearchMethod):
    label = "Single-level"
    color = "#9467bd"
    display_rank = 50
    reference = "chaoyanghe/MiLeNAS search_algorithm/train_single_level.py"
    nb201_reference = False

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        grads, _, _ = self.alpha_grad(*train_batch)
        self.apply_alpha_grad(grads)
        return {}
