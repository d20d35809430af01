"""Fair DARTS (Chu, Zhou, Zhang, Li, ECCV 2020; xiaomi-automl/FairDARTS@270cfc9 fairdarts/model_search.py:104-126,
separate_loss.py:6-17, train_search.py:185-224, utils.py:143-189; docs/methods/fair-darts.md).

Every op of every edge is weighted by its own sigmoid σ(α_{e,k}) (``SigmoidWeighting``; no normalisation across
ops), α initialised to 0 (σ = ½).  Both steps add the zero-one loss
L₀₁ = −mean over all entries of all α tensors of (σ(α) − ½)² (concatenated, ``ConvSeparateLoss``), weighted by
w₀₁ = ``zero_one_weight`` (10): the α step (first order, Adam) minimises CE(val) + w₀₁·L₀₁; the w step
CE(train) + w₀₁·L₀₁ (its L₀₁ gradient only reaches α.grad, which the ``weights+alphas`` clip norm sees).
``zero_one: l1`` is the reference's ``--sep_loss l1`` (−mean|σ − ½|).

Selection (``CellRule(sigmoid, threshold)``, asked by the space): per node the top-2 inputs by their strongest σ,
each kept only if that σ reaches ``threshold`` (0.85): a variable cell (DARTS space: ``SparseGenotype``, trained by
the ``DCOCell`` evaluation network; NB201: an edge below the threshold becomes ``none``, docs/spaces/nb201.md).
"""

from __future__ import annotations

from typing import Dict

import torch

from harness.methods import BASE_OPTIONS, Option, SearchMethod
from harness.registry import register_method
from harness.spaces.base import CellRule, EdgeWeighting, EdgeWeights

ZERO_ONE_FORMS = ("l2", "l1")


class SigmoidWeighting(EdgeWeighting):
    """σ(α) per op (Fair DARTS); the cell is derived by ``cell_rule`` (sigmoid strengths, a threshold)."""

    name = "sigmoid"
    scope = "network"

    def __init__(self, threshold: float = 0.85):
        self.cell_rule = CellRule("sigmoid", float(threshold))

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        return EdgeWeights(torch.sigmoid(alpha))

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """σ(α) normalised over the row (diagnostics: the collapse hook's mixing entropy of the mixture weights)."""
        s = torch.sigmoid(alpha.detach().float())
        return s / s.sum(dim=-1, keepdim=True)


def zero_one_loss(alphas, form: str = "l2") -> torch.Tensor:
    """−mean((σ(α) − ½)²) over every entry of every α tensor (separate_loss.py:6-17); ``l1``: −mean|σ(α) − ½|."""
    s = torch.cat([torch.sigmoid(a).reshape(-1) for a in alphas]) - 0.5
    return -(s.pow(2).mean() if form == "l2" else s.abs().mean())


@register_method("fair-darts")
class FairDarts(SearchMethod):
    label = "Fair DARTS"
    color = "#c49c94"
    display_rank = 85
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "xiaomi-automl/FairDARTS fairdarts/train_search.py, separate_loss.py, utils.py (threshold_sparse)"
    nb201_reference = False
    forward_mode = "sigmoid"
    options = {
        **BASE_OPTIONS,
        "zero_one_weight": Option(
            "w₀₁, weight of the zero-one loss (--aux_loss_weight 10)", float, minimum=0, default=10.0
        ),
        "zero_one": Option(
            "l2: −mean(σ−½)² (default) | l1: −mean|σ−½| (--sep_loss)", str, choices=ZERO_ONE_FORMS, default="l2"
        ),
        "threshold": Option(
            "σ an op needs to be kept in the derived cell (threshold_sparse 0.85; 0: plain argmax on NB201)",
            float,
            minimum=0,
            default=0.85,
        ),
    }

    def __init__(self, supernet, cfg, epochs, steps_per_epoch, speed=None):
        super().__init__(supernet, cfg, epochs, steps_per_epoch, speed=speed)
        with torch.no_grad():  # fairdarts/model_search.py:125-126: α = 0 (σ = ½ everywhere)
            for a in self.alphas:
                a.zero_()
        self.weighting = SigmoidWeighting(float(self.cfg.get("threshold", 0.85)))

    def edge_weighting(self) -> EdgeWeighting:
        return self.weighting

    def zero_one(self) -> torch.Tensor:
        w = float(self.cfg.get("zero_one_weight", 10.0))
        return w * zero_one_loss(self.alphas, self.cfg.get("zero_one", "l2"))

    def alpha_loss_terms(self) -> Dict[str, torch.Tensor]:
        return {"zero_one": self.zero_one()}

    def alpha_step(self, train_batch, val_batch) -> Dict[str, torch.Tensor]:
        x_val, y_val = val_batch
        grads, loss, logits = self.alpha_grad(x_val, y_val)
        self.apply_alpha_grad(grads)  # + ∇α w₀₁·L₀₁ (alpha_loss_terms)
        return self.batch_stats("val", loss, logits, y_val)

    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """CE + w₀₁·L₀₁ on the train batch (train_search.py:208-216), clipped per config, SGD."""
        self.w_opt.zero_grad(set_to_none=self.cfg.get("zero_grad", "zero") == "none")
        loss, logits = self.loss(x, y)
        (loss + self.zero_one()).backward()
        self.clip_gradients()
        self.w_opt.step()
        return self.batch_stats("train", loss, logits, y)
