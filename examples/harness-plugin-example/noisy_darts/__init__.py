"""A toy search method from outside the harness: DARTS first order whose α-gradient gets Gaussian noise.

g_α = ∇α L_val(w, α) + ε,  ε ~ N(0, σ² I), σ = option ``sigma`` (default 0.01), drawn from torch's global
generator (seeded per run by the harness).  Everything else is DARTS first order as the harness runs it
(quark0/darts cnn/architect.py with ``unrolled=False``).  See docs/plugins.md of the harness.
"""

from __future__ import annotations

from typing import List

import torch

from baselines.darts import DartsFirstOrder
from harness.methods import Option
from harness.registry import register_method


@register_method("darts-1st-noisy")
class NoisyDartsFirstOrder(DartsFirstOrder):
    """DARTS first order with N(0, σ²) noise added to every α-gradient entry before the Adam step."""

    label = "DARTS (1st order, noisy α-gradient)"
    color = "#8c564b"
    display_rank = 200
    role = "extra"  # outside the paper's claims: reported where it ran, never expected
    reference = "DARTS first order (quark0/darts cnn/architect.py, unrolled=False) + Gaussian α-gradient noise"
    nb201_reference = False  # no NAS-Bench-201 reference script: the deviations say so
    options = {
        **DartsFirstOrder.options,
        "sigma": Option(
            "standard deviation of the Gaussian noise added to each α-gradient entry", float, minimum=0, default=0.01
        ),
    }

    def apply_alpha_grad(self, grads: List[torch.Tensor]) -> None:
        sigma = float(self.cfg.get("sigma", self.options["sigma"].default))
        super().apply_alpha_grad([g + sigma * torch.randn_like(g) for g in grads])
