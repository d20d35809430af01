"""The reference side of the speed benchmark: xautodl's own NB201 supernets driven by steps written
to the reference rules, for timing side by side with ours (same process, same batches, same weights).

* Supernets: ``TinyNetworkDarts`` (DARTS-V1/V2, MiLeNAS, single-level) and ``TinyNetworkGDAS`` (GDAS)
  from ``xautodl.models.cell_searchs`` (PyPI xautodl 1.0.0, installed ``--no-deps``), built as
  ``tests/test_nb201_xautodl.py`` builds them; their state is loaded into ours, so both start equal.
* Steps (one search iteration each), written out from the reference scripts:

  - ``darts-1st``: D-X-Y/AutoDL-Projects ``exps/NAS-Bench-201-algos/DARTS-V1.py`` ``search_func``: w step
    (forward, ``backward()``, ``clip_grad_norm_(network.parameters(), 5)``, SGD), then α step (forward on
    the val batch, full ``backward()``, Adam).
  - ``darts-2nd``: ``DARTS-V2.py`` ``backward_step_unrolled`` (virtual step from the concatenated weights and
    momentum, ``deepcopy`` of the network + ``load_state_dict``, unrolled val ``backward()``, the
    finite-difference Hessian-vector product with ``p.data.add_``), Adam, then the w step.
  - ``gdas``: ``GDAS.py`` ``search_func``: w step then α step, full ``backward()`` each, one Gumbel sample
    per forward.
  - ``milenas``: chaoyanghe/MiLeNAS ``architect.py`` ``step_milenas`` (∇α L_tr and ∇α L_val, each by
    ``autograd.grad`` w.r.t. α, summed into α.grad, Adam), then the w step (``train_milenas.py``).
  - ``single-level``: ``step_single_level`` (∇α L_tr by ``autograd.grad``, Adam), then the w step.

  The w step's clip is the NB201 protocol's (over weights and α) for every method, so all five time the
  same work as our NB201 rows.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, Dict, Tuple

import numpy as np
import torch
from torch import nn

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
XAUTODL_NAME = {
    "darts-1st": "DARTS-V1",
    "darts-2nd": "DARTS-V2",
    "gdas": "GDAS",
    "milenas": "DARTS-V1",
    "single-level": "DARTS-V1",
}
REFERENCE_METHODS = tuple(XAUTODL_NAME)


def available() -> bool:
    try:
        import xautodl.models  # noqa: F401
    except Exception:
        return False
    return True


def build_reference(method: str, C: int, N: int, lr: float = 0.025, tau: float = 10.0):
    """(xautodl network, w optimizer, a optimizer) with the NB201 protocol's optimizers."""
    from xautodl.models import get_cell_based_tiny_net

    config = dict(
        name=XAUTODL_NAME[method],
        C=C,
        N=N,
        max_nodes=4,
        num_classes=10,
        space=list(NB201_OPS),
        affine=False,
        track_running_stats=False,
    )
    net = get_cell_based_tiny_net(config)
    if method == "gdas":
        net.set_tau(tau)
    # xautodl get_optim_scheduler(SGD, nesterov) + the scripts' Adam
    w_opt = torch.optim.SGD(net.get_weights(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    net.train()
    return net, w_opt, a_opt


def _concat(xs):
    return torch.cat([x.view(-1) for x in xs])


class ReferenceStep:
    """One reference-rule search iteration on an xautodl supernet (``__call__(train_batch, val_batch)``)."""

    def __init__(self, method: str, net: nn.Module, w_opt, a_opt):
        if method not in XAUTODL_NAME:
            raise ValueError(f"no reference step for {method!r}")
        self.method, self.net, self.w_opt, self.a_opt = method, net, w_opt, a_opt
        self.criterion = nn.CrossEntropyLoss()

    # -- the shared pieces ------------------------------------------------------------------------
    def w_step(self, x, y):
        self.w_opt.zero_grad()
        _, logits = self.net(x)
        loss = self.criterion(logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 5)
        self.w_opt.step()
        return loss.detach()

    def a_step_full_backward(self, x, y):
        self.a_opt.zero_grad()
        _, logits = self.net(x)
        loss = self.criterion(logits, y)
        loss.backward()
        self.a_opt.step()
        return loss.detach()

    # -- DARTS-V2 ---------------------------------------------------------------------------------
    def _hessian_vector_product(self, vector, x, y, r=1e-2):
        net = self.net
        R = r / _concat(vector).norm()
        for p, v in zip(net.get_weights(), vector):
            p.data.add_(v, alpha=R)
        _, logits = net(x)
        grads_p = torch.autograd.grad(self.criterion(logits, y), net.get_alphas())
        for p, v in zip(net.get_weights(), vector):
            p.data.sub_(v, alpha=2 * R)
        _, logits = net(x)
        grads_n = torch.autograd.grad(self.criterion(logits, y), net.get_alphas())
        for p, v in zip(net.get_weights(), vector):
            p.data.add_(v, alpha=R)
        return [(a - b).div_(2 * R) for a, b in zip(grads_p, grads_n)]

    def backward_step_unrolled(self, x_tr, y_tr, x_val, y_val):
        net, w_opt = self.net, self.w_opt
        _, logits = net(x_tr)
        loss = self.criterion(logits, y_tr)
        group = w_opt.param_groups[0]
        LR, WD, momentum = group["lr"], group["weight_decay"], group["momentum"]
        with torch.no_grad():
            theta = _concat(net.get_weights())
            try:
                moment = _concat(w_opt.state[v]["momentum_buffer"] for v in net.get_weights())
                moment = moment.mul_(momentum)
            except Exception:
                moment = torch.zeros_like(theta)
            dtheta = _concat(torch.autograd.grad(loss, net.get_weights())) + WD * theta
            params = theta.sub(moment + dtheta, alpha=LR)
        unrolled = deepcopy(net)
        model_dict = unrolled.state_dict()
        new_params, offset = {}, 0
        for k, v in net.named_parameters():
            if "arch_parameters" in k:
                continue
            n = int(np.prod(v.size()))
            new_params[k] = params[offset : offset + n].view(v.size())
            offset += n
        model_dict.update(new_params)
        unrolled.load_state_dict(model_dict)
        unrolled.zero_grad()
        _, u_logits = unrolled(x_val)
        u_loss = self.criterion(u_logits, y_val)
        u_loss.backward()
        dalpha = unrolled.arch_parameters.grad
        vector = [v.grad.data for v in unrolled.get_weights()]
        [implicit] = self._hessian_vector_product(vector, x_tr, y_tr)
        dalpha.data.sub_(implicit.data, alpha=LR)
        if net.arch_parameters.grad is None:
            net.arch_parameters.grad = deepcopy(dalpha)
        else:
            net.arch_parameters.grad.data.copy_(dalpha.data)
        return u_loss.detach()

    # -- MiLeNAS / single level ---------------------------------------------------------------------
    def _alpha_grad(self, x, y):
        _, logits = self.net(x)
        return torch.autograd.grad(self.criterion(logits, y), self.net.get_alphas())

    def __call__(
        self, train_batch: Tuple[torch.Tensor, torch.Tensor], val_batch: Tuple[torch.Tensor, torch.Tensor]
    ) -> Dict[str, Any]:
        (x_tr, y_tr), (x_val, y_val) = train_batch, val_batch
        m = self.method
        if m in ("darts-1st", "gdas"):  # DARTS-V1.py / GDAS.py: w, then α
            return {"w": self.w_step(x_tr, y_tr), "a": self.a_step_full_backward(x_val, y_val)}
        if m == "darts-2nd":  # DARTS-V2.py: unrolled α, then w
            self.a_opt.zero_grad()
            a = self.backward_step_unrolled(x_tr, y_tr, x_val, y_val)
            self.a_opt.step()
            return {"a": a, "w": self.w_step(x_tr, y_tr)}
        if m == "milenas":  # architect.step_milenas, then the w step
            self.a_opt.zero_grad()
            g_tr = self._alpha_grad(x_tr, y_tr)
            g_val = self._alpha_grad(x_val, y_val)
            for a, gt, gv in zip(self.net.get_alphas(), g_tr, g_val):
                a.grad = gv + 1.0 * gt
            self.a_opt.step()
            return {"w": self.w_step(x_tr, y_tr)}
        # single-level: architect.step_single_level, then the w step
        self.a_opt.zero_grad()
        for a, g in zip(self.net.get_alphas(), self._alpha_grad(x_tr, y_tr)):
            a.grad = g
        self.a_opt.step()
        return {"w": self.w_step(x_tr, y_tr)}
