"""The search-method contract and the pieces every method shares.

A method (one adapter file in ``baselines/``, registered with ``@register_method``) is built
from a supernet and a resolved config, and implements ``step(train_batch, val_batch)``: exactly
one search iteration in its reference order.  The runner owns the loop, data, timing,
evaluation, logging and checkpoints; a method never touches files.

Config keys read here (``optim``, merged with ``method_cfg``; defaults per space come from the
protocol files in ``harness/protocols``):

``w_lr, w_lr_min, momentum, nesterov, w_wd``      weight SGD and its per-epoch cosine schedule
``a_lr, a_betas, a_wd``                           α Adam (coupled L2 weight decay as torch Adam)
``grad_clip``                                     max total norm (<= 0: no clipping)
``grad_clip_target``                              which gradients the norm covers and scales:
    ``weights``          quark0/darts (weights only)
    ``weights+alphas``   xautodl NB201 scripts: clip_grad_norm_(network.parameters()), α's stale grad included
    ``alphas``           chaoyanghe/MiLeNAS quirk: the clip hits α, the weight update is unclipped
    ``none``             NATS-Bench search-cell.py
``order``                                         ``alpha_first`` (quark0, MiLeNAS) | ``w_first`` (xautodl NB201 DARTS-V1, GDAS)
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

Batch = Tuple[torch.Tensor, torch.Tensor]

CLIP_TARGETS = ("weights", "weights+alphas", "alphas", "none")
ORDERS = ("alpha_first", "w_first")


def cosine_lr(epoch: int, epochs: int, lr_max: float, lr_min: float) -> float:
    """η(e) = η_min + ½(η_max − η_min)(1 + cos(π e / E)), constant within epoch e (0-based)."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * epoch / epochs))


class SearchMethod:
    """Base class: optimizers, schedules, the weight step and α-gradient helpers."""

    name: str = ""
    #: which supernet forward the method needs: "softmax" mixture or one "gumbel" sampled path
    forward_mode: str = "softmax"
    #: config keys this method understands beyond the shared optimizer keys
    option_keys: Tuple[str, ...] = ("order",)

    def __init__(self, supernet: nn.Module, cfg: Dict[str, Any], epochs: int, steps_per_epoch: int):
        self.net = supernet
        self.cfg = dict(cfg)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.weights: List[nn.Parameter] = list(supernet.weights())
        self.alphas: List[nn.Parameter] = list(supernet.alphas())
        self.w_opt = torch.optim.SGD(self.weights, lr=cfg["w_lr"], momentum=cfg["momentum"],
                                     nesterov=bool(cfg["nesterov"]), weight_decay=cfg["w_wd"])
        self.a_opt = torch.optim.Adam(self.alphas, lr=cfg["a_lr"], betas=tuple(cfg["a_betas"]),
                                      weight_decay=cfg["a_wd"])
        if cfg.get("grad_clip_target", "weights") not in CLIP_TARGETS:
            raise ValueError(f"grad_clip_target must be one of {CLIP_TARGETS}")
        if cfg.get("order", "alpha_first") not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}")
        self.lr = float(cfg["w_lr"])
        self.epoch = 0

    # ---------------------------------------------------------------- schedule
    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch
        self.lr = cosine_lr(epoch, self.epochs, self.cfg["w_lr"], self.cfg["w_lr_min"])
        for group in self.w_opt.param_groups:
            group["lr"] = self.lr
        self.net.set_mode(self.forward_mode)

    def schedule_state(self) -> Dict[str, Any]:
        """Per-epoch values to log (lr, τ…)."""
        return {"lr": self.lr, "tau": self.net.tau if self.forward_mode == "gumbel" else None}

    # ---------------------------------------------------------------- the iteration
    def step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:
        """One search iteration.  Returns 0-dim tensors (no host sync): loss sums and correct counts."""
        if self.cfg.get("order", "alpha_first") == "w_first":
            stats = self.weight_step(*train_batch)
            stats.update(self.alpha_step(train_batch, val_batch))
        else:
            stats = self.alpha_step(train_batch, val_batch)
            stats.update(self.weight_step(*train_batch))
        return stats

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    # ---------------------------------------------------------------- shared pieces
    def loss(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return F.cross_entropy(logits, y), logits

    @staticmethod
    def batch_stats(prefix: str, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        n = y.shape[0]
        return {f"{prefix}_loss_sum": loss.detach() * n,
                f"{prefix}_correct": (logits.detach().argmax(1) == y).sum(),
                f"{prefix}_n": torch.tensor(n)}

    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """SGD step on the weights with the train batch (α as they are now), clipped per config.

        Like the references, a full ``backward()`` also accumulates ∇α into α.grad, which the next
        α step zeroes (and which the ``weights+alphas`` clip norm sees, as in the NB201 scripts).
        """
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self.loss(x, y)
        loss.backward()
        self.clip_gradients()
        self.w_opt.step()
        return self.batch_stats("train", loss, logits, y)

    def clip_gradients(self) -> None:
        limit = float(self.cfg.get("grad_clip", 5.0))
        target = self.cfg.get("grad_clip_target", "weights")
        if limit <= 0 or target == "none":
            return
        params = {"weights": self.weights, "weights+alphas": self.weights + self.alphas,
                  "alphas": self.alphas}[target]
        nn.utils.clip_grad_norm_(params, limit)

    def alpha_grad(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
        """∇α L(w, α) on one batch, computed w.r.t. α only (weights' grads untouched)."""
        loss, logits = self.loss(x, y)
        grads = torch.autograd.grad(loss, self.alphas)
        return list(grads), loss, logits

    def apply_alpha_grad(self, grads: List[torch.Tensor]) -> None:
        """Write the α-gradient into α.grad and take one Adam step."""
        self.a_opt.zero_grad(set_to_none=True)
        for a, g in zip(self.alphas, grads):
            a.grad = g.detach().clone()
        self.a_opt.step()

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {"w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
                "epoch": self.epoch, "lr": self.lr, "extra": self.extra_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.epoch, self.lr = state["epoch"], state["lr"]
        self.load_extra_state(state.get("extra") or {})

    def extra_state(self) -> Dict[str, Any]:
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        pass
