"""DARTS, first and second order (Liu et al., ICLR 2019; quark0/darts cnn/architect.py, spec §2).

First order: g_α = ∇α L_val(w, α).
Second order (unrolled): g_α = ∇α L_val(w', α) − ξ·(∇α L_tr(w⁺, α) − ∇α L_tr(w⁻, α)) / 2R with the
virtual step w' = w − ξ(μ·b + ∇w L_tr(w, α) + λ_w·w) (momentum buffer b and weight decay, no
clipping, no Nesterov), ξ = current weight lr, w± = w ± R·∇w' L_val(w', α), R = 0.01/‖∇w' L_val‖₂.
The whole second-order α step (virtual step, unrolled pass, finite differences) runs in FP32 whatever
``speed.autocast`` says (``amp=False``): the perturbation R·v is far below bfloat16's resolution.  The
unrolled model is the same module called with w' (``functional_call``), never a copy of the supernet.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch.func import functional_call

from harness.methods import BASE_OPTIONS, Batch, Option, SearchMethod
from harness.registry import register_method


@register_method("darts-1st")
class DartsFirstOrder(SearchMethod):
    """Bilevel, first-order approximation (ξ = 0): α descends ∇α L_val."""

    label = "DARTS (1st order)"
    color = "#1f77b4"
    display_rank = 20
    reference = "quark0/darts cnn/architect.py (unrolled=False); xautodl DARTS-V1.py on NB201"

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        x_val, y_val = val_batch
        grads, loss, logits = self.alpha_grad(x_val, y_val)
        self.apply_alpha_grad(grads)
        return self.batch_stats("val", loss, logits, y_val)


@register_method("darts-2nd")
class DartsSecondOrder(SearchMethod):
    """Bilevel, second order: one-step unrolled α-gradient with a finite-difference Hessian-vector product."""

    label = "DARTS (2nd order)"
    color = "#17becf"
    display_rank = 30
    reference = "quark0/darts cnn/architect.py (unrolled=True); xautodl DARTS-V2.py on NB201"
    options = {**BASE_OPTIONS,
               "fd_radius": Option("finite-difference radius r in R = r/‖v‖ (quark0: 0.01)", float, minimum=0,
                                   exclusive=True)}

    def __init__(self, supernet, cfg, epochs, steps_per_epoch, speed=None):
        super().__init__(supernet, cfg, epochs, steps_per_epoch, speed=speed)
        weight_ids = {id(p) for p in self.weights}
        alpha_ids = {id(a) for a in self.alphas}
        named = dict(supernet.named_parameters())
        self._weight_names = [n for n, p in named.items() if id(p) in weight_ids]
        self._alpha_names = [n for n, p in named.items() if id(p) in alpha_ids]
        # named_parameters() order == parameters() order, so names line up with self.weights
        assert [id(named[n]) for n in self._weight_names] == [id(p) for p in self.weights]

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        grads, loss, logits = self.unrolled_alpha_grad(train_batch, val_batch)
        self.apply_alpha_grad(grads)
        return self.batch_stats("val", loss, logits, val_batch[1])

    def virtual_step(self, x_tr: torch.Tensor, y_tr: torch.Tensor, xi: float) -> List[torch.Tensor]:
        """w' = w − ξ(μ·b + ∇w L_tr + λ_w·w): the next SGD-momentum update without clipping."""
        loss_tr, _ = self.loss(x_tr, y_tr, amp=False)
        g = torch.autograd.grad(loss_tr, self.weights)
        mu, wd = float(self.cfg["momentum"]), float(self.cfg["w_wd"])
        unrolled = []
        for p, gp in zip(self.weights, g):
            buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
            step = gp + wd * p.detach()
            if buf is not None:
                step = step + mu * buf
            unrolled.append((p.detach() - xi * step).requires_grad_(True))
        return unrolled

    def unrolled_alpha_grad(self, train_batch: Batch, val_batch: Batch
                            ) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
        (x_tr, y_tr), (x_val, y_val) = train_batch, val_batch
        xi = self.lr
        w_prime = self.virtual_step(x_tr, y_tr, xi)
        # The unrolled model: same module, weights replaced by w', BN buffers copied (the real
        # model's running statistics are not touched, as with quark0's fresh model copy).
        tensors = {n: t for n, t in zip(self._weight_names, w_prime)}
        tensors.update({n: a for n, a in zip(self._alpha_names, self.alphas)})
        tensors.update({n: b.clone() for n, b in self.net.named_buffers()})
        with self.autocast(False):  # FP32 whatever speed.autocast: the unrolled pass feeds the finite differences
            logits = functional_call(self.net, tensors, (x_val,))
            loss_val = F.cross_entropy(logits, y_val)
        grads = torch.autograd.grad(loss_val, self.alphas + w_prime)
        d_alpha, v = grads[:len(self.alphas)], grads[len(self.alphas):]
        hessian = self.hessian_vector_product(v, x_tr, y_tr)
        return [da - xi * h for da, h in zip(d_alpha, hessian)], loss_val, logits

    def hessian_vector_product(self, v, x_tr, y_tr) -> List[torch.Tensor]:
        """(∇α L_tr(w + R v) − ∇α L_tr(w − R v)) / 2R at the current w, R = r/‖v‖ (r = 0.01)."""
        r = float(self.cfg.get("fd_radius", 0.01))
        R = r / torch.cat([t.reshape(-1) for t in v]).norm()
        original = [p.detach().clone() for p in self.weights]
        with torch.no_grad():
            for p, w, t in zip(self.weights, original, v):
                p.copy_(w + R * t)
        g_pos, _, _ = self.alpha_grad(x_tr, y_tr, amp=False)
        with torch.no_grad():
            for p, w, t in zip(self.weights, original, v):
                p.copy_(w - R * t)
        g_neg, _, _ = self.alpha_grad(x_tr, y_tr, amp=False)
        with torch.no_grad():  # restore w exactly (quark0 adds R·v back, which can drift by rounding)
            for p, w in zip(self.weights, original):
                p.copy_(w)
        return [(gp - gn) / (2 * R) for gp, gn in zip(g_pos, g_neg)]
