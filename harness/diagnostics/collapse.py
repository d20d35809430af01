"""The ``collapse`` after-epoch hook: collapse diagnostics of every search (docs/collapse.md).

On by default for every search (``harness.hooks.DEFAULT_HOOKS``; settings ``hooks.collapse.*``).  After every epoch
it records two cheap indicators of the cell the search would report now, and every ``every`` epochs (and after the
last) the dominant eigenvalue of the α-Hessian of the validation loss, the quantity R-DARTS tracks (Zela et al.,
ICLR 2020; automl/RobustDARTS@3dec3fe src/search/train_search.py:373-425: ``--report_freq_hessian 2``, epochs 0, 2,
…, and the last):

* ``param_free_ops``: edges of the derived cell (all cells) carrying a parameter-free op (the space's
  ``parameter_free_ops``: skip and pooling) — DARTS's collapse fills cells with them;
* ``mixing_entropy``: mean over edges of the entropy (nats) of the op distribution the method's edge weighting
  gives (``EdgeWeighting.probabilities``; ``mixing_entropy_max`` = log #ops);
* ``eigenvalue``: the largest algebraic eigenvalue of ∇²_α L_val(w, α) + λ_α·I at the run's current (w, α)
  (``alpha_wd``: λ_α = optim.a_wd as R-DARTS analyze.py:174), on one fixed search-val batch (``batch_seed``;
  R-DARTS uses the epoch's last val minibatch), train-mode BN, FP32, on a private copy of the supernet, from exact
  Hessian–vector products by Lanczos (``solver: lanczos``, default: at most ``iters`` = 10 products, stopping at a
  relative change below ``tol`` = 1e-2), power iteration (``power``) or the full Hessian (``exact``, R-DARTS).
  ``relaxation: softmax`` (default) measures every method on the softmax mixture of its α (comparable across
  methods; a sampled method's own loss is random); ``as_run`` keeps the method's installed weighting (one sample
  for all products).  The α differentiated are the op weights (``Supernet.op_alphas``; PC-DARTS's β stays fixed).

Record keys (``epochs[e]["hooks"]["collapse"]``): ``param_free_ops``, ``mixing_entropy``, ``mixing_entropy_max``
every epoch; on measured epochs also ``eigenvalue`` and ``eigen`` (``solver``, ``products``, ``iterations``,
``converged``, ``dim``, ``relaxation``); the measurement's wall-clock is the lifecycle's ``hook_seconds.collapse``
(on unmeasured epochs a fraction of a millisecond).  ``series(record)`` turns a record into per-epoch series,
``final_eigenvalue(record)`` is the value an all-methods table shows.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch.func import functional_call

from harness.diagnostics.hessian import AlphaHessian, dominant_eigenvalue, mixing_entropy
from harness.errors import ConfigError
from harness.hooks import EpochHook, EpochState, register_hook
from harness.schema import Option

NAME = "collapse"
#: R-DARTS scripts pass --report_freq_hessian 2 (automl/RobustDARTS@3dec3fe scripts/DARTS_search.sh)
DEFAULT_EVERY = 2
OPTIONS: Dict[str, Option] = {
    "every": Option(
        "eigenvalue every k epochs (0-based epochs divisible by k) and after the last; 0: no eigenvalue (R-DARTS: 2)",
        int,
        minimum=0,
        default=DEFAULT_EVERY,
    ),
    "solver": Option(
        "lanczos (default) | power: power iteration on Hessian-vector products | exact: full Hessian, max eigvals "
        "(R-DARTS)",
        str,
        choices=("lanczos", "power", "exact"),
        default="lanczos",
    ),
    "iters": Option("lanczos / power: most Hessian-vector products (power: per run)", int, minimum=1, default=10),
    "tol": Option(
        "lanczos / power: stop at this relative change of the eigenvalue estimate",
        float,
        minimum=0,
        exclusive=True,
        default=1.0e-2,
    ),
    "batch_seed": Option("seed of the permutation that picks the fixed search-val batch", int, minimum=0, default=0),
    "batch_size": Option("images of the fixed val batch; null: data.batch_size", int, minimum=1, nullable=True),
    "relaxation": Option(
        "softmax: the softmax mixture of α for every method | as_run: the method's own weighting",
        str,
        choices=("softmax", "as_run"),
        default="softmax",
    ),
    "alpha_wd": Option("add optim.a_wd·I to the Hessian as R-DARTS (analyze.py:174)", bool, default=True),
}


@register_hook(NAME)
class CollapseHook(EpochHook):
    """Collapse diagnostics (module doc)."""

    options = OPTIONS

    @classmethod
    def resolve_settings(cls, settings: Dict[str, Any], cfg: Dict[str, Any]) -> Dict[str, Any]:
        from harness.registry import get_method

        out = super().resolve_settings(settings, cfg)
        needs = getattr(get_method(cfg["method"]), "needs_eigenvalues", False)
        if needs and int(out["every"]) == 0:
            raise ConfigError(
                f"method {cfg['method']} stops on the collapse hook's eigenvalues: hooks.{NAME}.every must be >= 1"
            )
        return out

    def setup(self, run: Any) -> None:
        from harness.hypergrad.hook import fixed_batches  # the one fixed-batch picker (seeded, un-augmented)

        s = self.settings
        self.every = int(s["every"])
        self.val_batch = None
        if self.every:
            bs = int(s.get("batch_size") or run.cfg["data"]["batch_size"])
            bs = min(bs, len(run.data.y_train), len(run.data.y_val))
            _, val, _ = fixed_batches(run.data, 1, bs, int(s["batch_seed"]))
            self.val_batch = val[0]

    def measured(self, epoch: int, epochs: int) -> bool:
        return bool(self.every) and (epoch % self.every == 0 or epoch == epochs - 1)

    def after_epoch(self, state: EpochState) -> Optional[Dict[str, Any]]:
        net = state.net
        space = state.run.space
        probs = [net.weighting.probabilities(a) for a in net.op_alphas()]
        ops = probs[0].shape[-1] if probs else 1
        out: Dict[str, Any] = {
            "param_free_ops": space.parameter_free_count(state.entry["arch"]),
            "mixing_entropy": mixing_entropy(probs),
            "mixing_entropy_max": math.log(ops),
        }
        if not self.measured(state.epoch, int(state.cfg["epochs"])):
            return out
        l2 = float(state.cfg["optim"]["a_wd"]) if self.settings["alpha_wd"] else 0.0
        res = alpha_hessian_eigenvalue(net, self.val_batch, self.settings, l2)
        out["eigenvalue"] = res.eigenvalue
        out["eigen"] = {
            "solver": res.solver,
            "products": res.products,
            "iterations": res.iterations,
            "converged": res.converged,
            "dim": sum(a.numel() for a in net.op_alphas()),
            "relaxation": self.settings["relaxation"],
        }
        return out


def alpha_hessian_eigenvalue(net: torch.nn.Module, batch, settings: Dict[str, Any], l2: float = 0.0):
    """The dominant α-Hessian eigenvalue of the cross-entropy on ``batch`` at the supernet's (w, α), measured on a
    private copy (train-mode BN, FP32); ``settings``: the hook's (solver, iters, tol, relaxation, batch_seed)."""
    from harness.spaces.base import SOFTMAX_WEIGHTING

    model = copy.deepcopy(net).float()
    model.train()
    if settings.get("relaxation", "softmax") == "softmax":
        model.set_weighting(SOFTMAX_WEIGHTING)
    named = dict(model.named_parameters())
    by_id = {id(p): n for n, p in named.items()}
    names = [by_id[id(a)] for a in model.op_alphas()]
    for p in model.parameters():  # only α is differentiated: no weight-gradient paths in either backward
        p.requires_grad_(False)
    x, y = batch

    def f(alphas):
        return F.cross_entropy(functional_call(model, dict(zip(names, alphas)), (x,)), y)

    H = AlphaHessian(f, [named[n] for n in names], l2)
    return dominant_eigenvalue(
        H,
        str(settings.get("solver", "lanczos")),
        int(settings.get("iters", 10)),
        float(settings.get("tol", 1e-2)),
        int(settings.get("batch_seed", 0)),
    )


# ------------------------------------------------------------------------------------------ records → series


def series(record: Dict[str, Any]) -> Dict[str, Any]:
    """Per-epoch collapse series of a search record: ``epochs`` / ``eigenvalue`` (measured epochs only),
    ``all_epochs`` / ``param_free_ops`` / ``mixing_entropy`` (every epoch with a hook result), ``seconds``
    (the hook's wall-clock on each measured epoch, ``hook_seconds``: the eigenvalue's cost)."""
    out: Dict[str, Any] = {
        "run_id": record.get("run_id"),
        "method": record.get("method"),
        "label": record.get("label"),
        "space": record.get("space"),
        "seed": record.get("seed"),
        "epochs": [],
        "eigenvalue": [],
        "seconds": [],
        "all_epochs": [],
        "param_free_ops": [],
        "mixing_entropy": [],
    }
    for e in record.get("epochs") or []:
        h = (e.get("hooks") or {}).get(NAME)
        if not h:
            continue
        out["all_epochs"].append(int(e["epoch"]))
        out["param_free_ops"].append(h.get("param_free_ops"))
        out["mixing_entropy"].append(h.get("mixing_entropy"))
        if h.get("eigenvalue") is not None:
            out["epochs"].append(int(e["epoch"]))
            out["eigenvalue"].append(float(h["eigenvalue"]))
            out["seconds"].append((e.get("hook_seconds") or {}).get(NAME))
    return out


def final_eigenvalue(record: Dict[str, Any]) -> Optional[float]:
    """The all-methods table's collapse column: the last measured dominant α-Hessian eigenvalue of a search record
    (None when the record has none)."""
    s = series(record)
    return s["eigenvalue"][-1] if s["eigenvalue"] else None


def eigenvalue_seconds(records: List[Dict[str, Any]]) -> Optional[float]:
    """Mean seconds of one eigenvalue evaluation over the records' measurements (None without any)."""
    secs = [t for r in records for t in series(r)["seconds"] if t is not None]
    return sum(secs) / len(secs) if secs else None


__all__ = ["CollapseHook", "OPTIONS", "series", "final_eigenvalue", "eigenvalue_seconds", "alpha_hessian_eigenvalue"]
