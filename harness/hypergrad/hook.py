"""The ``hypergrad`` after-epoch hook: the hypergradient error of each method's α-direction along a search.

Enable it in a search config (``hooks: {hypergrad: {...}}`` in a profile part, e.g. the profiles of
``harness/hypergrad/profiles``; ``python -m harness hypergrad`` does it for you).  After each listed
epoch the running search is frozen at (w, α) and measured on private copies
(:func:`harness.hypergrad.measure.measure_point`); the lifecycle forks the RNG, so the search follows
the same trajectory as without the hook (tests/test_hypergrad.py checks it).

Record keys (``epochs[e]["hooks"]["hypergrad"]``): ``alpha`` (the search's raw α logits, flattened,
every epoch); on measured epochs also ``directions`` (name → registered method, variant and estimator),
``cosine`` / ``rel_error`` / ``norm_ratio`` / ``cosine_minibatch`` / ``rel_error_minibatch`` (name →
value against the reference), ``cosine_by_proximal``, ``surrogate_cosine``, ``cosine_as_run``,
``objective_comparisons``, ``hvp_error``, ``reference`` / ``references`` (inner-solver and CG
diagnostics, ``ok``), ``direction_norms``, ``xi``, ``fixed_batches``, ``seconds``
(:func:`harness.hypergrad.measure.measure_point`).  :func:`series` turns a record into per-epoch series.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import torch

from harness.errors import ConfigError
from harness.hooks import EpochHook, EpochState, register_hook
from harness.hypergrad import measure as M
from harness.schema import Option, validate_section, with_defaults

SMOOTH_OPTIONS: Dict[str, Option] = {
    "kind": Option("the smooth activation replacing every ReLU", str, choices=("softplus",), default="softplus"),
    "beta": Option("Softplus sharpness β", float, minimum=0, exclusive=True, default=20.0),
}
#: the inner problem min_w L_tr + (λ_w/2)‖w‖² + (δ/2)‖w − w_t‖² for each δ of ``proximal`` in turn
INNER_OPTIONS: Dict[str, Option] = {
    "solver": Option(
        "lbfgs (strong-Wolfe L-BFGS) | gd (plain gradient descent, for checks)",
        str,
        choices=("lbfgs", "gd"),
        default="lbfgs",
    ),
    "tol": Option("stop when ‖∇F‖₂ < tol", float, minimum=0, exclusive=True, default=1.0e-5),
    "max_iters": Option("iteration cap of the solver", int, minimum=0, default=500),
    "weight_decay": Option("λ_w of the inner objective; null: the run's optim.w_wd", float, minimum=0, nullable=True),
    "proximal": Option(
        "δ values, lowered in turn with warm starts; the last gives the reference (δ → 0: plain bilevel problem)",
        list,
        item_kind=float,
        default=[10.0, 3.0],
    ),
    "history_size": Option("L-BFGS history", int, minimum=1, default=50),
    "patience": Option("stop after this many chunks of 10 iterations without progress", int, minimum=1, default=5),
    "newton_steps": Option("Newton-CG polishing steps after L-BFGS", int, minimum=0, default=2),
    "newton_cg_iters": Option("exact Hessian products per Newton step", int, minimum=1, default=100),
}
CG_OPTIONS: Dict[str, Option] = {
    "tol": Option("CG stops at relative residual < tol", float, minimum=0, exclusive=True, default=1.0e-6),
    "max_iters": Option("CG iteration cap", int, minimum=1, default=300),
    "damping": Option("εI added to H inside CG only (an approximation)", float, minimum=0, default=0.0),
}
#: the hook's settings (``hooks.hypergrad``)
OPTIONS: Dict[str, Option] = {
    "epochs": Option(
        "0-based epochs measured after their last iteration; null: every epoch", list, item_kind=int, nullable=True
    ),
    "batches": Option(
        "K: fixed train and K fixed val batches (data.batch_size images each) forming the objectives",
        int,
        minimum=1,
        default=2,
    ),
    "batch_seed": Option("seed of the permutation that picks the fixed images", int, minimum=0, default=20200612),
    "variants": Option(
        "method entries measured besides every registered method's default direction and the run's "
        "own, e.g. [{method: milenas, variant: {lam: 0.1}}]",
        list,
        default=[],
    ),
    "smooth_activation": Option(
        "directions and reference on a copy with ReLU -> Softplus(beta) (null: ReLU)",
        dict,
        nullable=True,
        default={"kind": "softplus", "beta": 20.0},
    ),
    "inner": Option("the inner problem of the reference (keys: " + ", ".join(INNER_OPTIONS) + ")", dict, default={}),
    "cg": Option("CG of the IFT (keys: " + ", ".join(CG_OPTIONS) + ")", dict, default={}),
}
WHERE = "hooks.hypergrad"


def _nested(settings: Dict[str, Any], key: str, options: Dict[str, Option]) -> Dict[str, Any]:
    validate_section(settings[key], options, f"{WHERE}.{key}")
    return with_defaults(settings[key], options)


def direction_specs(cfg: Dict[str, Any], settings: Dict[str, Any]) -> List[M.DirectionSpec]:
    """What is measured: every registered method with its default options, the run's own method and variant
    (its resolved ``method_cfg``), and the settings' ``variants`` (a method returning no direction drops out)."""
    from harness.config import method_entry
    from harness.registry import get_method, list_methods

    specs: Dict[str, M.DirectionSpec] = {}
    for name in list_methods(order="display"):
        specs[name] = M.DirectionSpec(name, name, {}, dict(cfg["method_cfg"]) if name == cfg["method"] else {})
    own = M.direction_name(cfg["method"], cfg.get("variant") or {})
    specs[own] = M.DirectionSpec(own, cfg["method"], dict(cfg.get("variant") or {}), dict(cfg["method_cfg"]))
    for entry in settings.get("variants") or []:
        me = method_entry(entry)
        cls = get_method(me["method"])
        cls.validate_options(me["variant"])
        name = M.direction_name(me["method"], me["variant"])
        specs.setdefault(name, M.DirectionSpec(name, me["method"], dict(me["variant"]), dict(me["variant"])))
    return list(specs.values())


def fixed_batches(data, k: int, batch_size: int, seed: int) -> Tuple[List[M.Batch], List[M.Batch], Dict[str, Any]]:
    """K train and K val batches: the first K·B images of a seeded permutation of each split, normalised,
    not augmented; the same for every measured epoch (their own generator: the run's is not drawn from)."""
    n_tr, n_va = len(data.y_train), len(data.y_val)
    need = k * batch_size
    if need > n_tr or need > n_va:
        raise ConfigError(
            f"{WHERE} option batches × data.batch_size = {need} images exceeds the search split "
            f"({n_tr} train / {n_va} val)"
        )
    gen = torch.Generator().manual_seed(int(seed))

    def pick(x, y, n):
        idx = torch.randperm(n, generator=gen)[:need].to(y.device)
        xs, ys = data.normalize(x[idx]), y[idx]
        return [
            (xs[i * batch_size : (i + 1) * batch_size], ys[i * batch_size : (i + 1) * batch_size]) for i in range(k)
        ]

    train = pick(data.x_train, data.y_train, n_tr)
    val = pick(data.x_val, data.y_val, n_va)
    info = {
        "k": k,
        "batch_size": batch_size,
        "seed": int(seed),
        "augmentation": "none (normalised only)",
        "images": {"train": need, "val": need},
        "of_split": {"train": n_tr, "val": n_va},
    }
    return train, val, info


@register_hook("hypergrad")
class HypergradHook(EpochHook):
    """Hypergradient error of every method's α-direction (MiLeNAS §2.2–3) after chosen epochs of a search."""

    options = OPTIONS

    @classmethod
    def resolve_settings(cls, settings: Dict[str, Any], cfg: Dict[str, Any]) -> Dict[str, Any]:
        from harness.registry import get_method

        out = super().resolve_settings(settings, cfg)
        if getattr(get_method(cfg["method"]), "forward_mode", "softmax") != "softmax":
            raise ConfigError(
                f"{WHERE} measures the softmax relaxation; method {cfg['method']!r} searches on "
                "sampled paths (choose a softmax-forward method such as darts-1st or milenas)"
            )
        epochs = out.get("epochs")
        if epochs is not None:
            bad = [e for e in epochs if e < 0 or e >= cfg["epochs"]]
            if bad or not epochs:
                raise ConfigError(
                    f"{WHERE} option epochs {epochs!r}: each must be a 0-based epoch of the search's "
                    f"{cfg['epochs']} epochs"
                )
            out["epochs"] = sorted(set(epochs))
        if not isinstance(out["variants"], list):
            raise ConfigError(f"{WHERE} option variants must be a list of method entries, not {out['variants']!r}")
        if out["smooth_activation"] is not None:
            out["smooth_activation"] = _nested(out, "smooth_activation", SMOOTH_OPTIONS)
        out["inner"] = _nested(out, "inner", INNER_OPTIONS)
        out["cg"] = _nested(out, "cg", CG_OPTIONS)
        prox = out["inner"]["proximal"]
        if not prox or any(d < 0 for d in prox):
            raise ConfigError(f"{WHERE}.inner option proximal must be a non-empty list of δ >= 0, not {prox!r}")
        if out["inner"].get("weight_decay") is None:
            out["inner"]["weight_decay"] = float(cfg["optim"]["w_wd"])  # the run's weight decay
        direction_specs(cfg, out)  # unknown methods / bad variant options: one error line now
        return out

    def setup(self, run: Any) -> None:
        s = self.settings
        self.train_b, self.val_b, self.batch_info = fixed_batches(
            run.data, int(s["batches"]), int(run.cfg["data"]["batch_size"]), int(s["batch_seed"])
        )
        self.specs = direction_specs(run.cfg, s)

    def after_epoch(self, state: EpochState) -> Optional[Dict[str, Any]]:
        method = state.method
        alpha = torch.cat([a.detach().reshape(-1) for a in method.alphas]).double().cpu()
        out: Dict[str, Any] = {"alpha": alpha.tolist()}
        epochs = self.settings.get("epochs")
        if epochs is not None and state.epoch not in epochs:
            return out
        point = M.SearchPoint.from_method(method)
        res = M.measure_point(state.net, point, self.train_b, self.val_b, self.settings, self.specs)
        res["fixed_batches"] = self.batch_info
        out.update(res)
        return out


# ------------------------------------------------------------------------------------------ records → series


def measurements(record: Dict[str, Any]) -> List[Tuple[int, Dict[str, Any]]]:
    """(epoch, hook result) of the record's measured epochs."""
    out = []
    for e in record.get("epochs") or []:
        h = (e.get("hooks") or {}).get("hypergrad")
        if h and "cosine" in h:
            out.append((int(e["epoch"]), h))
    return out


def series(record: Dict[str, Any]) -> Dict[str, Any]:
    """Per-epoch series of a record's hypergrad measurements (figure, report tables, verdict): ``epochs``
    (0-based), ``methods`` (direction names), ``directions`` (name → method, variant, estimator), ``cosine`` /
    ``rel_error`` / ``cosine_minibatch`` / ``surrogate_cosine`` (name → list), ``reference`` (diagnostics),
    ``reference_ok``, ``alpha_distance_to_final`` (‖α_e − α_last‖₂ of the raw logits, α_last = the record's last
    epoch), ``hvp_error`` (name → key → list), ``objective_comparisons`` (name → key → list)."""
    pts = measurements(record)
    last = None
    for e in reversed(record.get("epochs") or []):
        h = (e.get("hooks") or {}).get("hypergrad")
        if h and h.get("alpha") is not None:
            last = h["alpha"]
            break
    names: List[str] = []
    directions: Dict[str, Any] = {}
    for _, h in pts:
        for n in h["cosine"]:
            if n not in names:
                names.append(n)
                directions[n] = (h.get("directions") or {}).get(n, {"method": n, "variant": {}, "estimator": ""})

    def col(key: str, name: str) -> List[Any]:
        return [(h.get(key) or {}).get(name) for _, h in pts]

    def dist(alpha):
        if alpha is None or last is None:
            return None
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(alpha, last)))

    hvp_names = sorted({n for _, h in pts for n in (h.get("hvp_error") or {})})
    hvp_keys = sorted({k for _, h in pts for v in (h.get("hvp_error") or {}).values() for k in v})
    obj_names = [n for n in names if any(n in (h.get("objective_comparisons") or {}) for _, h in pts)]
    obj_keys = sorted({k for _, h in pts for v in (h.get("objective_comparisons") or {}).values() for k in v})
    return {
        "run_id": record.get("run_id"),
        "label": record.get("label"),
        "method": record.get("method"),
        "seed": record.get("seed"),
        "scale": record.get("scale"),
        "space": record.get("space"),
        "config": record.get("config") or {},
        "provenance": record.get("provenance") or {},
        "settings": ((record.get("config") or {}).get("hooks") or {}).get("hypergrad") or {},
        "epochs": [e for e, _ in pts],
        "methods": names,
        "directions": directions,
        **{
            key: {n: col(key, n) for n in names}
            for key in ("cosine", "rel_error", "cosine_minibatch", "surrogate_cosine", "cosine_as_run")
        },
        "reference": [h.get("reference") or {} for _, h in pts],
        "reference_ok": [bool((h.get("reference") or {}).get("ok")) for _, h in pts],
        "cosine_by_proximal": [h.get("cosine_by_proximal") or {} for _, h in pts],
        "alpha_distance_to_final": [dist(h.get("alpha")) for _, h in pts],
        "hvp_error": {
            n: {k: [((h.get("hvp_error") or {}).get(n) or {}).get(k) for _, h in pts] for k in hvp_keys}
            for n in hvp_names
        },
        "objective_comparisons": {
            n: {k: [((h.get("objective_comparisons") or {}).get(n) or {}).get(k) for _, h in pts] for k in obj_keys}
            for n in obj_names
        },
        "seconds": [(h.get("seconds") or {}).get("total") for _, h in pts],  # wall-clock of each measurement
    }
