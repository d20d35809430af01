"""DARTS, first and second order (Liu et al., ICLR 2019; quark0/darts cnn/architect.py;
docs/methods/darts-1st.md, docs/methods/darts-2nd.md).

First order: g_α = ∇α L_val(w, α).
Second order (unrolled): g_α = ∇α L_val(w', α) − ξ·(∇α L_tr(w⁺, α) − ∇α L_tr(w⁻, α)) / 2R with the
virtual step w' = w − ξ(μ·b + ∇w L_tr(w, α) + λ_w·w) (momentum buffer b and weight decay, no
clipping, no Nesterov), ξ = current weight lr, w± = w ± R·∇w' L_val(w', α), R = 0.01/‖∇w' L_val‖₂.
The whole second-order α step (virtual step, unrolled pass, finite differences) runs in FP32 whatever
``speed.autocast`` says (``amp=False``): the perturbation R·v is far below bfloat16's resolution.  The
unrolled model is the same module called with w' (``functional_call``), never a copy of the supernet.  The
virtual step and the finite-difference perturbations are multi-tensor operations (``torch._foreach_*``: a few
kernels on a GPU instead of several per weight tensor), bit-identical to the per-tensor formulas (docs/speed.md).

``unrolled_form`` (which reference's Architect computes the unrolled gradient):
``quark0``            as above (quark0/darts cnn/architect.py: α is not among ``model.parameters()``);
``milenas_architect`` chaoyanghe/MiLeNAS search_algorithm/architect.py, where α is an ``nn.Parameter`` of the
    model and the weight optimizer holds only w: ``_compute_unrolled_model`` concatenates *all* parameters, so the
    momentum lookup fails for α and the ``except`` makes the momentum term zero for every parameter; α is stepped
    too, α' = α − ξ(∇α L_tr + λ_w·α); g_α = ∇α' L_val(w', α') − ξ·(∇α L_tr(w⁺, α⁺) − ∇α L_tr(w⁻, α⁻)) / 2R with
    (w, α)± = (w, α) ± R·v, v = ∇(w', α') L_val, R = 0.01/‖v‖₂ (α's part inside ‖v‖).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from harness.methods import BASE_OPTIONS, Batch, Option, SearchMethod
from harness.registry import register_method


def virtual_step_weights(
    weights: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Optional[Tensor]],
    xi: float,
    momentum: float,
    weight_decay: float,
) -> List[Tensor]:
    """w' = w − ξ(μ·b + g + λ_w·w), detached: the next SGD-momentum update without clipping or Nesterov
    (quark0/darts cnn/architect.py _compute_unrolled_model); a weight without buffer b has no momentum term.

    All tensors at once (``torch._foreach_*``: a few multi-tensor kernels on a GPU instead of about six per
    weight tensor), each operation exactly as the per-tensor formula rounds it: λ_w·w, g + (λ_w·w),
    (…) + μ·b, ξ·(…), w − ξ·(…), one multiply and one add or subtract at a time (never the fused
    ``alpha=`` form, which rounds differently on some devices), so the result is bit-identical to
    ``(w − ξ·((g + λ_w·w) + μ·b))`` computed tensor by tensor (tests/test_methods.py)."""
    weights = list(weights)
    if not weights:
        return []
    with torch.no_grad():  # results are new tensors without history (detached)
        step = list(torch._foreach_add(list(grads), torch._foreach_mul(weights, weight_decay)))
        with_buf = [i for i, b in enumerate(momentum_buffers) if b is not None]
        if with_buf:
            bufs = [momentum_buffers[i] for i in with_buf]
            summed = torch._foreach_add([step[i] for i in with_buf], torch._foreach_mul(bufs, momentum))
            for i, t in zip(with_buf, summed):
                step[i] = t
        return list(torch._foreach_sub(weights, torch._foreach_mul(step, xi)))


def _by_dtype(dst: Sequence[Tensor], src: Sequence[Tensor]) -> List[Tuple[List[Tensor], List[Tensor]]]:
    """(dst, src) pairs grouped by dtype: a GPU's multi-tensor kernels take one dtype per list."""
    groups: Dict[torch.dtype, Tuple[List[Tensor], List[Tensor]]] = {}
    for d, s in zip(dst, src):
        g = groups.setdefault(d.dtype, ([], []))
        g[0].append(d)
        g[1].append(s)
    return list(groups.values())


def copy_all_(dst: Sequence[Tensor], src: Sequence[Tensor]) -> None:
    """``d.copy_(s)`` for every pair, as one multi-tensor copy per dtype (``torch._foreach_copy_``)."""
    with torch.no_grad():
        for d, s in _by_dtype(dst, src):
            torch._foreach_copy_(d, s)


class ScratchCopies:
    """Copies of a fixed list of tensors, allocated once and refilled on every ``fill`` (one multi-tensor copy
    instead of one ``clone`` per tensor): the finite differences' saved weights and the unrolled pass's BN
    buffers.  Reallocated when the list's tensors (identity, shape, dtype, layout) change."""

    def __init__(self) -> None:
        self._key: Tuple = ()
        self._copies: List[Tensor] = []

    def fill(self, tensors: Sequence[Tensor]) -> List[Tensor]:
        key = tuple((id(t), t.shape, t.dtype, t.stride(), t.device) for t in tensors)
        if key != self._key:
            self._copies = [torch.empty_like(t, memory_format=torch.preserve_format) for t in tensors]
            self._key = key
        copy_all_(self._copies, tensors)
        return self._copies


UNROLLED_FORMS = ("quark0", "milenas_architect")
UNROLLED_FORM_DOC = (
    "quark0: virtual step of w only, with momentum (quark0/darts cnn/architect.py); "
    "milenas_architect: chaoyanghe/MiLeNAS architect.py, α a model parameter: no momentum, α stepped "
    "in the virtual step and perturbed in the finite differences, inside ‖v‖"
)


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

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """∇α L_val(w, α) (DARTS eq. 7 with ξ = 0), for measurements (``SearchMethod.alpha_directions``)."""
        return {"": probe.grad_alpha("val")}


@register_method("darts-2nd")
class DartsSecondOrder(SearchMethod):
    """Bilevel, second order: one-step unrolled α-gradient with a finite-difference Hessian-vector product."""

    label = "DARTS (2nd order)"
    color = "#17becf"
    display_rank = 30
    reference = "quark0/darts cnn/architect.py (unrolled=True); xautodl DARTS-V2.py on NB201"
    finite_differences = True
    options = {
        **BASE_OPTIONS,
        "fd_radius": Option("finite-difference radius r in R = r/‖v‖ (quark0: 0.01)", float, minimum=0, exclusive=True),
        "unrolled_form": Option(
            UNROLLED_FORM_DOC,
            str,
            choices=UNROLLED_FORMS,
            default="quark0",
            deviation="unrolled α-gradient as chaoyanghe/MiLeNAS architect.py (no momentum, "
            "α stepped and perturbed too) instead of quark0/darts architect.py",
        ),
    }

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

    @property
    def unrolled_form(self) -> str:
        return str(self.cfg.get("unrolled_form", self.options["unrolled_form"].default))

    def virtual_step(self, x_tr: torch.Tensor, y_tr: torch.Tensor, xi: float) -> List[torch.Tensor]:
        """The unrolled parameters, leaves requiring grad: ``quark0`` w' = w − ξ(μ·b + ∇w L_tr + λ_w·w), the next
        SGD-momentum update without clipping; ``milenas_architect`` (w', α') = (w, α) − ξ(∇ L_tr + λ_w·(w, α))."""
        params = self.weights + (self.alphas if self.unrolled_form == "milenas_architect" else [])
        loss_tr, _ = self.loss(x_tr, y_tr, amp=False)
        g = torch.autograd.grad(loss_tr, params)
        if self.unrolled_form == "milenas_architect":  # the momentum lookup fails for α: no momentum at all
            buffers: List[Optional[torch.Tensor]] = [None] * len(params)
        else:
            buffers = [self.w_opt.state.get(p, {}).get("momentum_buffer") for p in params]
        unrolled = virtual_step_weights(params, g, buffers, xi, float(self.cfg["momentum"]), float(self.cfg["w_wd"]))
        return [w.requires_grad_(True) for w in unrolled]

    def unrolled_alpha_grad(
        self, train_batch: Batch, val_batch: Batch
    ) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
        (x_tr, y_tr), (x_val, y_val) = train_batch, val_batch
        xi = self.lr
        unrolled = self.virtual_step(x_tr, y_tr, xi)
        w_prime, alphas_used = unrolled[: len(self.weights)], unrolled[len(self.weights) :] or list(self.alphas)
        # The unrolled model: same module, weights replaced by w', BN buffers copied (the real
        # model's running statistics are not touched, as with quark0's fresh model copy).
        tensors = {n: t for n, t in zip(self._weight_names, w_prime)}
        tensors.update({n: a for n, a in zip(self._alpha_names, alphas_used)})
        names, buffers = [n for n, _ in self.net.named_buffers()], [b for _, b in self.net.named_buffers()]
        tensors.update(zip(names, self._scratch("buffers").fill(buffers)))
        with self.autocast(False):  # FP32 whatever speed.autocast: the unrolled pass feeds the finite differences
            logits = functional_call(self.net, tensors, (x_val,))
            loss_val = F.cross_entropy(logits, y_val)
        grads = torch.autograd.grad(loss_val, alphas_used + w_prime)
        d_alpha, v_w = list(grads[: len(self.alphas)]), list(grads[len(self.alphas) :])
        if self.unrolled_form == "milenas_architect":  # v covers (w', α'); α is perturbed too
            hessian = self.hessian_vector_product(v_w + d_alpha, x_tr, y_tr, self.weights + self.alphas)
        else:
            hessian = self.hessian_vector_product(v_w, x_tr, y_tr)
        return [da - xi * h for da, h in zip(d_alpha, hessian)], loss_val, logits

    def hessian_vector_product(
        self,
        v: Sequence[torch.Tensor],
        x_tr: torch.Tensor,
        y_tr: torch.Tensor,
        params: Optional[List[torch.Tensor]] = None,
    ) -> List[torch.Tensor]:
        """(∇α L_tr(p + R v) − ∇α L_tr(p − R v)) / 2R at the current parameters ``params`` (default: the weights),
        R = r/‖v‖ (r = 0.01)."""
        params = self.weights if params is None else params
        r = float(self.cfg.get("fd_radius", 0.01))
        R = r / torch.cat([t.reshape(-1) for t in v]).norm()
        original = self._scratch("fd").fill(params)
        with torch.no_grad():  # p = w + R·t, then w − R·t: each R·t rounded once, as p.copy_(w ± R * t)
            step = torch._foreach_mul(list(v), R)
            torch._foreach_add_(params, step)
        g_pos, _, _ = self.alpha_grad(x_tr, y_tr, amp=False)
        copy_all_(params, original)
        with torch.no_grad():
            torch._foreach_sub_(params, step)
        g_neg, _, _ = self.alpha_grad(x_tr, y_tr, amp=False)
        copy_all_(params, original)  # restore exactly (quark0 adds R·v back, which can drift by rounding)
        return [(gp - gn) / (2 * R) for gp, gn in zip(g_pos, g_neg)]

    def _scratch(self, name: str) -> ScratchCopies:
        """The method's reusable copies ``name`` (created on first use)."""
        store = self.__dict__.setdefault("_scratch_copies", {})
        return store.setdefault(name, ScratchCopies())

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """The unrolled α-gradient at the probe's point (DARTS eq. 7–8; ``unrolled_alpha_grad`` and
        ``hessian_vector_product`` above, ``unrolled_form: quark0``): ∇α L_val(w′) − ξ·∇²_{αw} L_tr(w)·v,
        v = ∇w′ L_val(w′), w′ = ``virtual_step_weights``, ξ = η_w.  ``""``: with the central difference at radius
        R = r/‖v‖; ``"exact"``: the same formula with the exact product; ``hvp`` / ``hvp-exact``: the two products.
        None for ``unrolled_form: milenas_architect`` (not measured)."""
        if method_cfg.get("unrolled_form", "quark0") != "quark0":
            return None
        xi = float(probe.xi)
        w_prime = virtual_step_weights(
            probe.weights,
            probe.grad_weights("train"),
            probe.momentum_buffers,
            xi,
            float(probe.momentum),
            float(probe.weight_decay),
        )
        direct, v = probe.grads("val", w_prime)
        R = float(method_cfg.get("fd_radius", 0.01)) / torch.cat([t.reshape(-1) for t in v]).norm()
        g_pos = probe.grad_alpha("train", [w.detach() + R * t for w, t in zip(probe.weights, v)])
        g_neg = probe.grad_alpha("train", [w.detach() - R * t for w, t in zip(probe.weights, v)])
        fd = [(gp - gn) / (2 * R) for gp, gn in zip(g_pos, g_neg)]
        exact = probe.mixed_hvp("train", v)
        return {
            "": [d - xi * h for d, h in zip(direct, fd)],
            "exact": [d - xi * h for d, h in zip(direct, exact)],
            "hvp": fd,
            "hvp-exact": exact,
        }
