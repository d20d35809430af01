"""SDARTS — Smooth DARTS, random smoothing (RS) and adversarial training (ADV) (Chen & Hsieh, ICML 2020;
xiangning-chen/SmoothDARTS@d3dbfed sota/cnn/train_search.py:201-245, nasbench201/train_search.py, attacker/perturb.py;
docs/methods/sdarts-rs.md, docs/methods/sdarts-adv.md).

One iteration (α → w, the same train batch in both halves of the w step):

1. α step: DARTS first order, Adam on ∇α L_val(w, softmax(α)).
2. w step on probabilities p = softmax(α) (no gradient to α), perturbed, used directly as the mixing weights
   (``GivenWeighting``; the reference writes p into α.data, ``softmax_arch_parameters``, and restores α after):
   * RS (``perturbation: random``): p̃ = Π(p + δ), δ ~ U(−ε, ε) per entry, one draw per α tensor in ``alphas()``
     order;
   * ADV (``perturbation: pgd``): with the supernet in eval mode (BN running statistics where the space tracks
     them), L_before = L_tr(p); random start p̃ = Π(p + U(−ε, ε)); ``pgd_steps`` (7) times
     p̃ ← Π(p + clamp(p̃ + (2ε/7)·sign(∇_p̃ L_tr(p̃)) − p, −ε, ε)); L_after = L_tr(p̃); if L_before > L_after the
     attack is discarded (p̃ = p); train mode restored;
   * none (``perturbation: none``, β-DARTS' NB201 loop): p̃ = p.
   Then CE on the train batch at p̃, backward, clip, SGD.  α.grad holds ∂L_tr/∂p̃ afterwards, as in the reference
   (where α.data is p̃ during that backward): the ``weights+alphas`` clip norm of the NB201 scripts includes it.
Π (``clip``, SmoothDARTS model_search.py:170-177): per row remember the argmax, clamp to [0, 1], a row summing to 0
gets a 1 at its remembered argmax, divide by the row sum (clamp-and-renormalise, not a Euclidean projection).
ε(e) = ε_min + (ε_max − ε_min)·e/E (train_search.py:170; ε_min 0.03, ε_max ``--epsilon_alpha`` 0.3), e 0-based.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Tuple

import torch
import torch.nn.functional as F

from baselines.darts import DartsFirstOrder
from harness.methods import BASE_OPTIONS, Option
from harness.registry import register_method
from harness.spaces.base import EdgeWeighting, EdgeWeights

PERTURBATIONS = ("none", "random", "pgd")


def simplex_clip(p: torch.Tensor) -> torch.Tensor:
    """Π of SmoothDARTS (model_search.py:170-177 ``clip``), row-wise and on the device (no host read)."""
    best = p.argmax(dim=-1, keepdim=True)
    q = p.clamp(0.0, 1.0)
    total = q.sum(dim=-1, keepdim=True)
    onehot = torch.zeros_like(q).scatter_(-1, best, 1.0)
    q = torch.where(total == 0, onehot, q)
    return q / q.sum(dim=-1, keepdim=True)


def epsilon_at(epoch: int, epochs: int, eps_min: float, eps_max: float) -> float:
    """ε(e) = ε_min + (ε_max − ε_min)·e/E (SmoothDARTS train_search.py:170)."""
    return float(eps_min + (eps_max - eps_min) * epoch / max(int(epochs), 1))


class GivenWeighting(EdgeWeighting):
    """Explicit mixing weights for one pass: ``weights[i]`` for ``alphas[i]`` (or a row slice of it, as a supernet
    that asks row by row passes); no softmax.  The perturbed probabilities of SDARTS' weight step."""

    name = "given"
    scope = "network"

    def __init__(self, alphas: List[torch.Tensor], weights: List[torch.Tensor]):
        self._pairs = list(zip(alphas, weights))

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        for a, w in self._pairs:
            if alpha is a:
                return EdgeWeights(w)
            if alpha._base is a and alpha.dim() == a.dim():  # a row slice a[i:j] of a contiguous α
                row = (alpha.storage_offset() - a.storage_offset()) // a.stride(0)
                return EdgeWeights(w[row : row + alpha.shape[0]])
        raise KeyError("GivenWeighting was asked for an α tensor it holds no weights for")


SDARTS_OPTIONS: Dict[str, Option] = {
    "epsilon_min": Option("ε at epoch 0 (SmoothDARTS train_search.py:170: 0.03)", float, minimum=0, default=0.03),
    "epsilon_max": Option("ε_max of the linear ramp (--epsilon_alpha, 0.3)", float, minimum=0, default=0.3),
    "pgd_steps": Option("PGD steps of SDARTS-ADV (attacker/perturb.py: 7)", int, minimum=1, default=7),
}


class PerturbedWeightStep(DartsFirstOrder):
    """DARTS first-order α step; the w step on explicit (perturbed) probabilities (``perturbation``)."""

    perturbation: str = "none"
    logs: ClassVar[Tuple[str, ...]] = ("lr", "eps")

    def __init__(self, supernet, cfg, epochs, steps_per_epoch, speed=None):
        super().__init__(supernet, cfg, epochs, steps_per_epoch, speed=speed)
        self.eps = self.epsilon(0)
        #: attacks discarded because they did not raise the loss (device counter; ADV only)
        self.rejected = torch.zeros((), dtype=torch.long, device=self.weights[0].device)

    def epsilon(self, epoch: int) -> float:
        return epsilon_at(
            epoch, self.epochs, float(self.cfg.get("epsilon_min", 0.03)), self.cfg.get("epsilon_max", 0.3)
        )

    def on_epoch_start(self, epoch: int) -> None:
        self.eps = self.epsilon(epoch)
        super().on_epoch_start(epoch)

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """None: the α step is DARTS-1st's (measured there); the perturbation acts on the weight step only."""
        return None

    def schedule_state(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {**super().schedule_state(), "eps": self.eps}
        if self.perturbation == "pgd":
            state["attacks_rejected"] = int(self.rejected)  # cumulative, read once per epoch
        return state

    # ------------------------------------------------------------------ the perturbation
    def _loss_at(self, x: torch.Tensor, y: torch.Tensor, probs: List[torch.Tensor]) -> torch.Tensor:
        weighting = self.net.weighting
        self.net.set_weighting(GivenWeighting(self.alphas, probs))
        try:
            loss, _ = self.loss(x, y)
        finally:
            self.net.set_weighting(weighting)
        return loss

    def perturbed(self, x: torch.Tensor, y: torch.Tensor, probs: List[torch.Tensor]) -> List[torch.Tensor]:
        """p̃ from p = softmax(α) (detached) by ``perturbation``."""
        eps = self.eps
        if self.perturbation == "none":
            return probs
        if self.perturbation == "random":
            return [simplex_clip(p + torch.zeros_like(p).uniform_(-eps, eps)) for p in probs]
        return self.pgd(x, y, probs, eps)

    def pgd(self, x: torch.Tensor, y: torch.Tensor, probs: List[torch.Tensor], eps: float) -> List[torch.Tensor]:
        """SDARTS-ADV: L∞ PGD on L_tr in eval mode, random start, sign steps of 2ε/steps, discarded without gain."""
        steps = int(self.cfg.get("pgd_steps", 7))
        step_size = 2.0 * eps / steps
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                loss_before = self._loss_at(x, y, probs)
            adv = [simplex_clip(p + torch.zeros_like(p).uniform_(-eps, eps)) for p in probs]
            for _ in range(steps):
                leaves = [a.detach().requires_grad_(True) for a in adv]
                grads = torch.autograd.grad(self._loss_at(x, y, leaves), leaves)
                with torch.no_grad():
                    adv = [
                        simplex_clip(p + (a + step_size * g.sign() - p).clamp(-eps, eps))
                        for p, a, g in zip(probs, leaves, grads)
                    ]
            with torch.no_grad():
                loss_after = self._loss_at(x, y, adv)
        finally:
            self.net.train(was_training)
        keep = loss_before <= loss_after  # the reference discards the attack when loss_before > loss_after
        self.rejected += (~keep).long()
        return [torch.where(keep, a, p) for a, p in zip(adv, probs)]

    # ------------------------------------------------------------------ the weight step
    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        self.w_opt.zero_grad(set_to_none=self.cfg.get("zero_grad", "zero") == "none")
        for a in self.alphas:
            a.grad = None
        with torch.no_grad():
            probs = [F.softmax(a.detach(), dim=-1) for a in self.alphas]
        leaves = [p.detach().requires_grad_(True) for p in self.perturbed(x, y, probs)]
        weighting = self.net.weighting
        self.net.set_weighting(GivenWeighting(self.alphas, leaves))
        try:
            loss, logits = self.loss(x, y)
            loss.backward()
        finally:
            self.net.set_weighting(weighting)
        for a, p in zip(self.alphas, leaves):  # the reference's α.grad: ∂L_tr/∂p̃ (α.data was p̃)
            a.grad = p.grad
        self.clip_gradients()
        self.w_opt.step()
        return self.batch_stats("train", loss, logits, y)

    def extra_state(self) -> Dict[str, Any]:
        return {"rejected": int(self.rejected)} if self.perturbation == "pgd" else {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        if "rejected" in state:
            self.rejected.fill_(int(state["rejected"]))


@register_method("sdarts-rs")
class SDartsRS(PerturbedWeightStep):
    """SDARTS-RS: the weight step on uniformly perturbed probabilities."""

    label = "SDARTS-RS"
    color = "#bcbd22"
    display_rank = 82
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "xiangning-chen/SmoothDARTS sota/cnn/train_search.py --perturb_alpha random"
    perturbation = "random"
    options = {
        **BASE_OPTIONS,
        "epsilon_min": SDARTS_OPTIONS["epsilon_min"],
        "epsilon_max": SDARTS_OPTIONS["epsilon_max"],
    }


@register_method("sdarts-adv")
class SDartsADV(PerturbedWeightStep):
    """SDARTS-ADV: the weight step on PGD-attacked probabilities."""

    label = "SDARTS-ADV"
    color = "#dbdb8d"
    display_rank = 83
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "xiangning-chen/SmoothDARTS sota/cnn/train_search.py --perturb_alpha pgd_linf"
    perturbation = "pgd"
    logs: ClassVar[Tuple[str, ...]] = ("lr", "eps", "attacks_rejected")
    options = {**BASE_OPTIONS, **SDARTS_OPTIONS}
