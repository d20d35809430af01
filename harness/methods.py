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
``order``                                         ``alpha_first`` (quark0, MiLeNAS) | ``w_first`` (xautodl NB201
                                                  DARTS-V1, GDAS)

Speed settings (config section ``speed``, ``SPEED_DEFAULTS``; how a step runs, recorded in every record):

``memory_format``   ``channels_last`` (default: conv weights and inputs NHWC, the fast oneDNN/cuDNN layout;
                    same values as NCHW up to float rounding) | ``contiguous`` (PyTorch's NCHW, bit-identical
                    to the references' eager forward)
``autocast``        ``none`` (default, FP32) | ``bf16``: bfloat16 autocast for the weight step and the α
                    forward passes of first-order steps (a deviation); DARTS-2nd's virtual step, unrolled
                    pass and finite differences always run in FP32 (``fp32`` passes below)
``compile``         ``false`` (default) | ``true``: the softmax-mode supernet forward runs through
                    ``torch.compile`` (inductor); its warm-up is timed apart (``compile_seconds``) and cached
                    by inductor across runs of the same shapes (``TORCHINDUCTOR_CACHE_DIR``, default
                    ``/tmp/torchinductor_$USER``)
``compile_mode``    with ``compile``: torch.compile's ``mode``, ``default`` (absent) | ``reduce-overhead``
                    (the compiled passes replayed as CUDA graphs; a deviation; docs/speed.md says where a step
                    allows capture)
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.precision import check_bf16
from harness.schema import Option, validate_section  # Option: re-exported, adapters import it from here
from harness.spaces.base import SOFTMAX_WEIGHTING, EdgeWeighting

Batch = Tuple[torch.Tensor, torch.Tensor]

CLIP_TARGETS = ("weights", "weights+alphas", "alphas", "none")
ORDERS = ("alpha_first", "w_first")

#: the config section ``speed`` (see the module doc) and its allowed values
SPEED_DEFAULTS: Dict[str, Any] = {"memory_format": "channels_last", "autocast": "none", "compile": False}
SPEED_CHOICES: Dict[str, Tuple[Any, ...]] = {
    "memory_format": ("channels_last", "contiguous"),
    "autocast": ("none", "bf16"),
    "compile": (False, True),
}
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
#: ``speed.compile_mode``: torch.compile's ``mode`` (``reduce-overhead``: CUDA graphs)
COMPILE_MODES = ("default", "reduce-overhead")
SPEED_OPTIONS: Dict[str, Option] = {
    "memory_format": Option(
        "conv weights and inputs NHWC (channels_last) or NCHW (contiguous)",
        str,
        choices=SPEED_CHOICES["memory_format"],
        default=SPEED_DEFAULTS["memory_format"],
    ),
    "autocast": Option(
        "none: FP32 | bf16: bfloat16 autocast (a deviation)",
        str,
        choices=SPEED_CHOICES["autocast"],
        default=SPEED_DEFAULTS["autocast"],
    ),
    "compile": Option(
        "torch.compile the softmax-mode supernet forward",
        bool,
        choices=SPEED_CHOICES["compile"],
        default=SPEED_DEFAULTS["compile"],
    ),
    # absent unless set (so configs written before it keep their hash): absent = "default"
    "compile_mode": Option(
        "torch.compile mode with speed.compile: default | reduce-overhead (CUDA graphs; docs/speed.md)",
        str,
        choices=COMPILE_MODES,
        nullable=True,
    ),
}


def validate_speed(speed: Any) -> None:
    """Raise ``ConfigError`` (one line) on an unknown key or value of the ``speed`` section."""
    if not isinstance(speed, dict):
        raise ConfigError(f"speed must be a mapping such as {SPEED_DEFAULTS}, not {speed!r}")
    validate_section(speed, SPEED_OPTIONS, "speed")


def speed_deviations(speed: Dict[str, Any]) -> List[str]:
    """Deviation texts of speed settings that change what a step computes beyond float rounding."""
    out = []
    if speed.get("autocast") == "bf16":
        out.append(
            "speed.autocast=bf16: weight steps and first-order α forward passes in bfloat16 autocast "
            "(the references ran in FP32; DARTS-2nd's unrolled and finite-difference passes stay FP32)"
        )
    if speed.get("compile"):
        out.append(
            "speed.compile=true: supernet forward compiled by torch.compile (inductor); fused kernels "
            "round differently from eager FP32"
        )
        if speed.get("compile_mode") == "reduce-overhead":
            out.append(
                "speed.compile_mode=reduce-overhead: the compiled forward and backward replayed as CUDA graphs "
                "(the compiled kernels' rounding; on CPU the mode has no graphs to capture)"
            )
    return out


ZERO_GRAD_MODES = ("zero", "none")
#: options every method understands
BASE_OPTIONS: Dict[str, Option] = {
    "order": Option(
        "iteration order: alpha_first (quark0, MiLeNAS) | w_first (xautodl NB201 DARTS-V1, GDAS)",
        str,
        choices=ORDERS,
        default="alpha_first",
    ),
    # PyTorch 1.x (every reference) zeroed gradients in place: a weight that received a gradient once keeps a
    # zero gradient, so SGD keeps applying weight decay and momentum to it even in steps where it is not used
    # (GDAS: ops not sampled this step).  set_to_none=True drops them, and SGD skips those weights.
    "zero_grad": Option(
        "zero: gradients zeroed in place as PyTorch 1.x (references) | none: set_to_none",
        str,
        choices=ZERO_GRAD_MODES,
        default="zero",
        deviation="weight gradients set to None between steps "
        "(unsampled ops skip weight decay and momentum; the references zero them in place)",
    ),
}


def cosine_lr(epoch: int, epochs: int, lr_max: float, lr_min: float) -> float:
    """η(e) = η_min + ½(η_max − η_min)(1 + cos(π e / E)), constant within epoch e (0-based)."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * epoch / epochs))


class SearchMethod:
    """Base class: optimizers, schedules, the weight step and α-gradient helpers."""

    # ------------------------------------------------------------ metadata (asked by config, reports, regress)
    name: ClassVar[str] = ""  #: registry name (set by @register_method)
    label: ClassVar[str] = ""  #: display name in tables and figures
    color: ClassVar[str] = "#7f7f7f"  #: plot colour
    display_rank: ClassVar[int] = 100  #: position in tables and figures (low first)
    #: "core" = one of the five compared methods; "variant" = a paper variant (Figs. 3a, 5); "extra" = outside
    #: the paper's claims (e.g. a plugin's own method): reported where it ran, never listed missing (``ROLES``)
    role: ClassVar[str] = "core"
    reference: ClassVar[str] = ""  #: the reference implementation it follows
    #: True when the NB201 reference scripts include this method (else it runs under the DARTS-V1 protocol)
    nb201_reference: ClassVar[bool] = True
    #: a method whose per-iteration cost this one claims to beat (regress records the ratio; MiLeNAS: darts-2nd)
    speed_compared_with: ClassVar[Optional[str]] = None
    #: True when the α-gradient contains finite differences (DARTS 2nd order): float32 rounding is amplified there
    #: (``harness doctor`` allows it a wider tolerance)
    finite_differences: ClassVar[bool] = False
    #: schedule values logged per epoch (keys of ``schedule_state()``)
    logs: ClassVar[Tuple[str, ...]] = ("lr",)
    #: the name of the edge weighting ``edge_weighting()`` installs ("softmax" mixture, "gumbel" sampled path, ...)
    forward_mode: ClassVar[str] = "softmax"
    #: options this method understands beyond the shared optimizer keys (``method_cfg``)
    options: ClassVar[Dict[str, Option]] = BASE_OPTIONS
    #: the registered spaces this method can search (None: every space); another space is one ConfigError line when
    #: a config resolves
    spaces: ClassVar[Optional[Tuple[str, ...]]] = None

    @classmethod
    def validate_options(cls, method_cfg: Dict[str, Any]) -> None:
        """Raise ``ConfigError`` (one clear line) on an unknown option or a bad value."""
        validate_section(method_cfg, cls.options, f"method {cls.name}", noun="option")

    @classmethod
    def option_deviations(cls, method_cfg: Dict[str, Any], reference_cfg: Dict[str, Any]) -> List[str]:
        """Deviation texts of options whose value differs from the reference protocol row's (the option's
        ``deviation`` text where it has one; else ``method_cfg.KEY=VALUE (reference REF)``)."""
        out = []
        for key, opt in cls.options.items():
            value = method_cfg.get(key, opt.default)
            ref = reference_cfg.get(key, opt.default)
            if value == ref or (ref is None and not opt.deviation):
                continue
            out.append(
                f"method_cfg.{key}={value}: {opt.deviation}"
                if opt.deviation
                else f"method_cfg.{key}={value} (reference {ref})"
            )
        return out

    @classmethod
    def display_label(cls, variant: Optional[Dict[str, Any]] = None) -> str:
        """``MiLeNAS`` or, with a variant, ``MiLeNAS (λ=0.1)``."""
        base = cls.label or cls.name
        if not variant:
            return base
        symbols = {"lam": "λ"}
        inner = ", ".join(f"{symbols.get(k, k)}={v}" for k, v in sorted(variant.items()))
        return f"{base} ({inner})"

    def __init__(
        self,
        supernet: nn.Module,
        cfg: Dict[str, Any],
        epochs: int,
        steps_per_epoch: int,
        speed: Optional[Dict[str, Any]] = None,
    ):
        self.speed = {**SPEED_DEFAULTS, **(speed or {})}
        validate_speed(self.speed)
        if self.speed["autocast"] == "bf16":
            check_bf16(next(supernet.parameters()).device)
        if hasattr(supernet, "set_memory_format"):  # before the optimizers see the parameters
            supernet.set_memory_format(MEMORY_FORMATS[self.speed["memory_format"]])
        self.net = supernet
        self._forward = self.net  # the module the loss runs (a compiled wrapper with speed.compile)
        self.compile_seconds: Optional[float] = None
        self.cfg = dict(cfg)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.weights: List[nn.Parameter] = list(supernet.weights())
        self.alphas: List[nn.Parameter] = list(supernet.alphas())
        self.w_opt = torch.optim.SGD(
            self.weights,
            lr=cfg["w_lr"],
            momentum=cfg["momentum"],
            nesterov=bool(cfg["nesterov"]),
            weight_decay=cfg["w_wd"],
        )
        self.a_opt = torch.optim.Adam(
            self.alphas, lr=cfg["a_lr"], betas=tuple(cfg["a_betas"]), weight_decay=cfg["a_wd"]
        )
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
        self.net.set_weighting(self.edge_weighting())

    # ---------------------------------------------------------------- the edge-weight contract
    def edge_weighting(self) -> EdgeWeighting:
        """The rule the supernet asks for its edges' op weights this epoch (``harness.spaces.base``; installed by
        ``on_epoch_start``).  Its ``name`` must equal ``forward_mode``.  Default: softmax(α) (DARTS)."""
        return SOFTMAX_WEIGHTING

    def alpha_loss_terms(self) -> Dict[str, torch.Tensor]:
        """Extra 0-dim terms (name → tensor, functions of α) added to the α-step loss: their α-gradient is added
        to the α-gradient ``apply_alpha_grad`` receives.  None for the methods of the paper."""
        return {}

    def schedule_state(self) -> Dict[str, Any]:
        """Per-epoch values to log (lr, τ…)."""
        return {"lr": self.lr}

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

    # ---------------------------------------------------------------- speed: autocast, compile
    def autocast(self, enabled: bool = True):
        """Context of one pass: bf16 autocast when ``speed.autocast`` is ``bf16`` and ``enabled``; otherwise an
        explicit FP32 region (autocast disabled, also inside an outer autocast)."""
        use = bool(enabled) and self.speed["autocast"] == "bf16"
        return torch.autocast(device_type=self.weights[0].device.type, dtype=torch.bfloat16, enabled=use)

    @property
    def compiled(self) -> bool:
        """``speed.compile`` applies to softmax-mode methods (a GDAS forward's structure changes per sample)."""
        return bool(self.speed["compile"]) and self.forward_mode == "softmax"

    @property
    def compile_mode(self) -> str:
        """torch.compile's ``mode`` (``speed.compile_mode``, absent = ``default``)."""
        return str(self.speed.get("compile_mode") or "default")

    def warm_up(self, batch_sizes: List[int], image_size: int, channels: int = 3) -> Optional[float]:
        """With ``speed.compile``: compile the supernet forward and backward for every batch size an epoch
        feeds (outside the timed search loop) and return the seconds it took (None without compile; 0.0
        once warmed).  Leaves no trace: buffers restored, RNG forked, no gradient written."""
        if not self.compiled:
            return None
        if self.compile_seconds is not None:
            return 0.0
        if self._forward is self.net:
            self._forward = torch.compile(self.net, dynamic=False, mode=self.compile_mode)
        device = self.weights[0].device
        saved = {k: v.detach().clone() for k, v in self.net.named_buffers()}
        devices = [device.index or 0] if device.type == "cuda" else []
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=devices):
            for b in sorted({int(b) for b in batch_sizes if b > 0}):
                x = torch.zeros(b, channels, image_size, image_size, device=device)
                y = torch.zeros(b, dtype=torch.long, device=device)
                for amp in (True, False) if self.speed["autocast"] == "bf16" else (True,):
                    loss, _ = self.loss(x, y, amp=amp)
                    torch.autograd.grad(loss, self.weights + self.alphas, allow_unused=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.compile_seconds = time.perf_counter() - t0
        with torch.no_grad():
            for k, v in self.net.named_buffers():
                v.copy_(saved[k])
        return self.compile_seconds

    # ---------------------------------------------------------------- shared pieces
    def loss(self, x: torch.Tensor, y: torch.Tensor, amp: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the supernet on one batch.  ``amp=False``: an FP32 pass whatever ``speed.autocast``."""
        with self.autocast(amp):
            logits = self._forward(x)
            return F.cross_entropy(logits, y), logits

    @staticmethod
    def batch_stats(prefix: str, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        n = y.shape[0]
        return {
            f"{prefix}_loss_sum": loss.detach() * n,
            f"{prefix}_correct": (logits.detach().argmax(1) == y).sum(),
            f"{prefix}_n": torch.tensor(n),
        }

    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """SGD step on the weights with the train batch (α as they are now), clipped per config.

        Like the references, a full ``backward()`` also accumulates ∇α into α.grad, which the next
        α step zeroes (and which the ``weights+alphas`` clip norm sees, as in the NB201 scripts).
        """
        self.w_opt.zero_grad(set_to_none=self.cfg.get("zero_grad", "zero") == "none")
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
        params = {"weights": self.weights, "weights+alphas": self.weights + self.alphas, "alphas": self.alphas}[target]
        nn.utils.clip_grad_norm_(params, limit)

    def alpha_grad(
        self, x: torch.Tensor, y: torch.Tensor, amp: bool = True
    ) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor]:
        """∇α L(w, α) on one batch, computed w.r.t. α only (weights' grads untouched)."""
        loss, logits = self.loss(x, y, amp=amp)
        grads = torch.autograd.grad(loss, self.alphas)
        if self.compiled and self.compile_mode == "reduce-overhead":  # CUDA-graph outputs are overwritten by the
            grads = tuple(g.clone() for g in grads)  # graph's next replay: own copies (docs/speed.md)
        return list(grads), loss, logits

    def apply_alpha_grad(self, grads: List[torch.Tensor]) -> None:
        """Write the α-gradient (plus that of ``alpha_loss_terms``, if any) into α.grad and take one Adam step."""
        terms = self.alpha_loss_terms()
        if terms:
            extra = torch.autograd.grad(sum(terms.values()), self.alphas, allow_unused=True)
            grads = [g if e is None else g + e for g, e in zip(grads, extra)]
        self.a_opt.zero_grad(set_to_none=True)
        for a, g in zip(self.alphas, grads):
            a.grad = g.detach().clone()
        self.a_opt.step()

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """Optimizers, schedule, and the gradients left in ``.grad``: with in-place zeroing a weight keeps a
        zero gradient (and so its decay and momentum) once it had one, and α.grad enters the
        ``weights+alphas`` clip norm, so both are part of the state a resumed run needs."""
        grads = [None if p.grad is None else p.grad.detach().clone() for p in self.weights + self.alphas]
        return {
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "epoch": self.epoch,
            "lr": self.lr,
            "grads": grads,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.epoch, self.lr = state["epoch"], state["lr"]
        for p, g in zip(self.weights + self.alphas, state.get("grads") or []):
            p.grad = None if g is None else g.to(p.device)
        self.load_extra_state(state.get("extra") or {})

    def extra_state(self) -> Dict[str, Any]:
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        pass

    # ---------------------------------------------------------------- the α-direction, for measurements
    @classmethod
    def alpha_directions(cls, probe: Any, method_cfg: Dict[str, Any]) -> Optional[Dict[str, List[torch.Tensor]]]:
        """The α-direction this method descends at a frozen point, by the method's own formula (None: not
        measurable, e.g. a Gumbel-sampled forward).  Used by measurements (``harness.hypergrad``).

        ``probe`` (``harness.hypergrad.measure.DirectionProbe``) gives the point and the derivatives of its
        objectives L_train / L_val (``split`` = ``"train"`` | ``"val"``): ``weights``, ``alphas``,
        ``momentum_buffers`` (None where absent), ``xi`` (the current weight learning rate), ``momentum``,
        ``weight_decay``; ``grad_alpha(split, weights=None)``, ``grad_weights(split, weights=None)``,
        ``grads(split, weights) -> (∇α, ∇w)``, ``mixed_hvp(split, v)`` = exact ∇²_{αw} L·v.
        ``method_cfg``: the method's options (defaults where absent).  Returns ``{"": direction}``, optionally
        with named variants of the same formula (``"exact"``) and its Hessian–vector products (keys ``hvp…``).
        """
        return None
