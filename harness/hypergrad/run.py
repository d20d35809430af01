"""``python -m harness hypergrad``: one search trajectory on NB201 with hypergradient measurements.

The search is the harness's own: config resolved by ``harness.config.resolve`` (NB201 protocol ⊕
the profile's ``search`` part ⊕ method/variant), built by ``harness.runner.SearchRun.build``
(seed, ``SearchData``, the registered ``nb201`` supernet, the registered method, the data
generator), trained epoch by epoch with the method's ``step()`` as ``SearchRun`` does (so α follows
the trajectory of ``python -m harness search`` with that config; tests check it).  After each measured epoch the
search is frozen and measured (:func:`harness.hypergrad.measure.measure_point`) on private copies:
the search itself is not disturbed (no RNG is drawn, no parameter or buffer of it is touched).

Output folder: ``hypergrad.json`` (schema ``harness.hypergrad/1``, keys documented in
:func:`assemble`), ``hypergrad.png`` / ``hypergrad.svg`` (:mod:`harness.hypergrad.figure`).
"""
from __future__ import annotations

import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from harness.errors import ConfigError
from harness.hypergrad import measure as M

SCHEMA = "harness.hypergrad/1"
SPACE = "nb201"
JSON_NAME = "hypergrad.json"


# --------------------------------------------------------------------------------------------
# config

def resolve_trajectory(profile: Dict[str, Any], method: Optional[str] = None, variant: Optional[Dict[str, Any]] = None,
                       seed: Optional[int] = None, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The resolved search config of the trajectory (``harness.config.resolve`` on the nb201 part)."""
    from harness import config as C
    from harness.registry import UnknownNameError, get_method

    name = method or profile["method"]
    try:
        cls = get_method(name)
    except UnknownNameError as exc:
        raise ConfigError(str(exc)) from exc
    if getattr(cls, "forward_mode", "softmax") != "softmax":
        raise ConfigError(f"hypergrad measures the softmax relaxation; method {name!r} searches on Gumbel samples "
                          "(choose a softmax-forward method: darts-1st, darts-2nd, milenas, single-level, "
                          "darts2-then-milenas)")
    part_keys = set(getattr(C, "PART_KEYS", ())) - {"space", "methods", "seeds"}
    unknown = set(profile["search"]) - part_keys if part_keys else set()
    if unknown:
        raise ConfigError(f"hypergrad profile {profile['name']}: unknown search key(s) {sorted(unknown)}; "
                          f"known: {', '.join(sorted(part_keys))}")
    part = {"space": SPACE, **profile["search"]}
    prof = {"name": profile["name"], "scale": profile["scale"]}
    entry = {"method": name, "variant": dict(variant if variant is not None else profile.get("variant") or {})}
    return C.resolve(SPACE, entry, int(profile["seed"] if seed is None else seed), prof, part, overrides)


def measured_epochs(spec: Any, epochs: int) -> List[int]:
    if spec == "all":
        return list(range(epochs))
    bad = [e for e in spec if e >= epochs]
    if bad:
        raise ConfigError(f"measure.epochs {bad} beyond the search's {epochs} epochs (0-based)")
    return sorted(set(spec))


def milenas_settings(measure: Dict[str, Any], method_cfg: Dict[str, Any]) -> List[Tuple[float, str]]:
    """(λ, form) of the MiLeNAS directions: the profile's λ list (paper form) plus the run's own λ."""
    out = [(float(lam), "paper") for lam in measure["milenas_lams"]]
    if "lam" in method_cfg:
        own = (float(method_cfg["lam"]), method_cfg.get("lambda_form", "paper"))
        if own[0] == 1.0:
            own = (1.0, "paper")
        if M.milenas_name(*own) not in {M.milenas_name(*x) for x in out}:
            out.append(own)
    if not any(M.milenas_name(*x) == "milenas" for x in out):
        out.insert(0, (1.0, "paper"))
    return out


# --------------------------------------------------------------------------------------------
# fixed measurement batches

def fixed_batches(data, k: int, batch_size: int, seed: int) -> Tuple[List[M.Batch], List[M.Batch], Dict[str, Any]]:
    """K train and K val batches: the first K·B images of a seeded permutation of each split, normalised,
    not augmented; the same for every measured epoch."""
    n_tr, n_va = len(data.y_train), len(data.y_val)
    need = k * batch_size
    if need > n_tr or need > n_va:
        raise ConfigError(f"measure.batches × batch_size = {need} images exceeds the search split "
                          f"({n_tr} train / {n_va} val)")
    gen = torch.Generator().manual_seed(int(seed))

    def pick(x, y, n):
        idx = torch.randperm(n, generator=gen)[:need].to(y.device)
        xs, ys = data.normalize(x[idx]), y[idx]
        return [(xs[i * batch_size:(i + 1) * batch_size], ys[i * batch_size:(i + 1) * batch_size]) for i in range(k)]

    train = pick(data.x_train, data.y_train, n_tr)
    val = pick(data.x_val, data.y_val, n_va)
    info = {"k": k, "batch_size": batch_size, "seed": int(seed), "augmentation": "none (normalised only)",
            "images": {"train": need, "val": need}, "of_split": {"train": n_tr, "val": n_va}}
    return train, val, info


# --------------------------------------------------------------------------------------------
# the run

def _finite(x: Any) -> Any:
    """JSON-safe: non-finite floats become null, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _apply_precision(cfg: Dict[str, Any], device: torch.device) -> None:
    """The run's numeric precision policy (full FP32 by default), as a search run applies it."""
    try:
        from harness.precision import apply_precision
    except ImportError:  # older harness without a precision policy
        return
    apply_precision(cfg.get("precision"), device)


def _supernet_val(res: Dict[str, float]) -> Dict[str, float]:
    """val_loss / val_acc (%) of ``harness.runner.evaluate_supernet`` (batch-statistics BN, no grad)."""
    return {"val_loss": res.get("loss", res.get("val_loss")), "val_acc": res.get("acc", res.get("val_acc"))}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_hypergrad(profile: Dict[str, Any], out_dir: Path, method: Optional[str] = None,
                  variant: Optional[Dict[str, Any]] = None, seed: Optional[int] = None,
                  data_root: Optional[Path] = None, device: Optional[torch.device] = None,
                  overrides: Optional[Dict[str, Any]] = None,
                  progress: Callable[[str], None] = _stderr) -> Dict[str, Any]:
    """Run the trajectory, measure, write ``hypergrad.json`` + the figure into ``out_dir``; return the document."""
    from harness.provenance import provenance
    from harness.records import atomic_write_bytes
    from harness.runner import SearchRun, check_output_dir, evaluate_supernet, pick_device

    started = _now()
    t_start = time.perf_counter()
    cfg = resolve_trajectory(profile, method, variant, seed, overrides)
    measure = dict(profile["measure"])
    epochs_to_measure = measured_epochs(measure["epochs"], cfg["epochs"])
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    device = device or pick_device("auto")
    _apply_precision(cfg, device)
    progress(f"hypergrad profile {profile['name']} (scale {profile['scale']}): {cfg['label']} on nb201, "
             f"{cfg['epochs']} epochs, measured after epochs {[e + 1 for e in epochs_to_measure]} -> {out_dir}")

    # -- build with the search run's own build (seed, data, supernet, method, data generator);
    #    nothing is written by SearchRun until its run() is called, which never happens here
    search = SearchRun(cfg, out_dir, data_root, device)
    search.build()
    data, net, method_obj, gen, steps = search.data, search.net, search.method, search.gen, search.steps_per_epoch

    train_b, val_b, batch_info = fixed_batches(data, int(measure["batches"]), int(cfg["data"]["batch_size"]),
                                               int(measure["batch_seed"]))
    inner = dict(measure["inner"])
    if inner["weight_decay"] == "run":
        inner["weight_decay"] = float(cfg["optim"]["w_wd"])
    measure["inner"] = inner
    if "fd_radius" in cfg["method_cfg"]:
        measure["fd_radius"] = float(cfg["method_cfg"]["fd_radius"])
    lams = milenas_settings(measure, cfg["method_cfg"])

    trajectory: List[Dict[str, Any]] = []
    points: List[Dict[str, Any]] = []
    alphas: List[torch.Tensor] = []
    search_seconds = 0.0
    for epoch in range(cfg["epochs"]):
        method_obj.on_epoch_start(epoch)
        net.train()
        t0 = time.perf_counter()
        loss_sum, n = 0.0, 0
        for step, (tb, vb) in enumerate(data.epoch(gen)):
            if step >= steps:
                break
            stats = method_obj.step(tb, vb)
            loss_sum += float(stats["train_loss_sum"])
            n += int(stats["train_n"])
        epoch_seconds = time.perf_counter() - t0
        search_seconds += epoch_seconds
        if not math.isfinite(loss_sum):
            raise ConfigError(f"the search diverged (non-finite training loss in epoch {epoch}); "
                              "lower the learning rates of the profile")
        alpha = torch.cat([a.detach().reshape(-1) for a in method_obj.alphas]).double().cpu()
        alphas.append(alpha)
        entry = {"epoch": epoch, "lr": method_obj.lr, "train_loss": loss_sum / max(n, 1),
                 **_supernet_val(evaluate_supernet(net, data.eval_batches(cfg["eval_batch_size"]),
                                                   seed=cfg["seed"] * 1000 + epoch)),
                 "arch": str(net.derive()), "alpha_probs": net.alpha_probabilities(), "epoch_seconds": epoch_seconds}
        trajectory.append(entry)
        if epoch in epochs_to_measure:
            point = M.SearchPoint.from_method(method_obj)
            res = M.measure_point(net, point, train_b, val_b, measure, lams)
            res["epoch"] = epoch
            points.append(res)
            cos = ", ".join(f"{k} {v:+.3f}" for k, v in res["cosine"].items())
            ref = res["reference"]
            progress(f"  epoch {epoch + 1}/{cfg['epochs']}: cosine vs reference: {cos} | inner ‖∇F‖ "
                     f"{ref['inner']['grad_norm']:.2e} ({ref['inner']['iterations']} it), CG residual "
                     f"{ref['cg']['relative_residual']:.1e} ({ref['cg']['iterations']} it) | {res['seconds']['total']:.0f} s")
        else:
            progress(f"  epoch {epoch + 1}/{cfg['epochs']}: search only ({epoch_seconds:.1f} s)")

    prov = provenance(device)
    prov.update(data.provenance)
    doc = assemble(profile, cfg, measure, lams, batch_info, trajectory, points, alphas, prov)
    doc["timing"] = {"total_seconds": time.perf_counter() - t_start, "search_seconds": search_seconds,
                     "measure_seconds": sum(p["seconds"]["total"] for p in points)}
    doc["started_at"], doc["finished_at"] = started, _now()
    doc = _finite(doc)
    atomic_write_bytes(out_dir / JSON_NAME, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode())
    from harness.hypergrad.figure import save_figure

    doc["figures"] = [str(p) for p in save_figure(doc, out_dir)]
    return doc


def assemble(profile, cfg, measure, lams, batch_info, trajectory, points, alphas, prov) -> Dict[str, Any]:
    """The ``hypergrad.json`` document.

    Per-method series (one value per measured epoch, in ``epochs`` order; directions on the smooth
    surrogate unless ``settings.smooth_activation`` is null): ``cosine`` / ``rel_error`` /
    ``norm_ratio`` (K-batch direction vs the reference, the last δ), ``cosine_minibatch`` /
    ``rel_error_minibatch`` (one-minibatch-pair direction), ``cosine_by_proximal[δ]`` (vs the
    reference of each δ), ``surrogate_cosine`` (direction on the surrogate vs on the supernet as it
    runs), ``cosine_as_run`` (direction on the supernet as it runs vs the reference);
    ``milenas_comparisons[name][key]``; ``fd_hvp_rel_error`` (float32 FD vs exact float64, supernet as
    it runs), ``fd_hvp_rel_error_float64``, ``exact_hvp_float32_rel_error`` (precision floor),
    ``fd_hvp_rel_error_surrogate`` (float32, surrogate); ``alpha_distance_to_final``
    (‖α_e − α_final‖₂ over all α entries, raw logits); ``reference`` / ``references`` (inner and CG
    diagnostics per epoch, per δ) and ``reference_ok``.
    """
    methods = list(points[0]["cosine"]) if points else []
    series = lambda key: {m: [p[key][m] for p in points] for m in methods}  # noqa: E731
    final = alphas[-1]
    dist_all = [float((a - final).norm()) for a in alphas]
    epochs = [p["epoch"] for p in points]
    mil_names = list(points[0]["milenas_comparisons"]) if points else []
    mil_keys = list(points[0]["milenas_comparisons"][mil_names[0]]) if mil_names else []
    deltas = list(points[0]["cosine_by_proximal"]) if points else []
    return {
        "schema": SCHEMA, "kind": "hypergrad", "space": SPACE,
        "profile": profile["name"], "scale": profile["scale"],
        "trajectory": {"method": cfg["method"], "variant": cfg["variant"], "label": cfg["label"], "seed": cfg["seed"],
                       "epochs": trajectory, "config": cfg},
        "epochs": epochs,
        "methods": methods,
        "cosine": series("cosine"), "rel_error": series("rel_error"), "norm_ratio": series("norm_ratio"),
        "cosine_minibatch": series("cosine_minibatch"), "rel_error_minibatch": series("rel_error_minibatch"),
        "cosine_by_proximal": {d: {m: [p["cosine_by_proximal"][d][m] for p in points] for m in methods} for d in deltas},
        "surrogate_cosine": series("surrogate_cosine"), "cosine_as_run": series("cosine_as_run"),
        "milenas_comparisons": {n: {k: [p["milenas_comparisons"][n][k] for p in points] for k in mil_keys}
                                for n in mil_names},
        "fd_hvp_rel_error": [p["fd_hvp"]["float32"] for p in points],
        "fd_hvp_rel_error_float64": [p["fd_hvp"]["float64"] for p in points],
        "exact_hvp_float32_rel_error": [p["fd_hvp"]["exact_float32"] for p in points],
        "fd_hvp_rel_error_surrogate": [p["fd_hvp_surrogate"]["float32"] for p in points],
        "fd_radius_R": [p["fd_hvp"]["radius_R"] for p in points],
        "alpha_distance_to_final": [dist_all[e] for e in epochs],
        "alpha_distance_to_final_all_epochs": dist_all,
        "xi": [p["xi"] for p in points],
        "reference": [p["reference"] for p in points],
        "references": [p["references"] for p in points],
        "reference_ok": [p["reference"]["ok"] for p in points],
        "direction_norms": series("direction_norms"),
        "measure_seconds": [p["seconds"] for p in points],
        "settings": settings_block(profile, cfg, measure, lams, batch_info),
        "provenance": prov,
    }


def settings_block(profile, cfg, measure, lams, batch_info) -> Dict[str, Any]:
    inner, cg = measure["inner"], measure["cg"]
    return {
        "profile_path": profile.get("path"),
        "measured_after": "the last search iteration of each listed epoch (0-based)",
        "objectives": ("L_tr, L_val = mean over K fixed batches of the batch-mean cross-entropy of the supernet "
                       "(softmax relaxation, BN with batch statistics, each batch its own forward)"),
        "fixed_batches": batch_info,
        "directions_precision": "float32 (the search's precision), at the current w, on the K fixed batches; "
                                "'_minibatch' series on batch 0 of each split only",
        "smooth_activation": measure.get("smooth_activation"),
        "smooth_activation_note": ("directions and reference on a copy with every ReLU replaced by Softplus(beta): "
                                   "the IFT needs a twice-differentiable inner objective with a stationary point, "
                                   "which a ReLU network does not offer to a precise tolerance; surrogate_cosine "
                                   "compares each direction with the same direction on the supernet as it runs"),
        "reference": {
            "precision": "float64 copy of the supernet",
            "definition": "dL_val(w*(α), α)/dα = ∇α L_val(w*) − ∇²_{αw} L_tr(w*)·H⁻¹ ∇w L_val(w*), "
                          "H = ∇²_ww L_tr(w*) + (λ_w + δ)I, exact double-backward products, CG",
            "inner_objective": (f"L_tr(w, α) + (λ_w/2)‖w‖² + (δ/2)‖w − w_t‖², λ_w = {inner['weight_decay']} (the run's "
                                f"weight decay), w_t = the search's current weights, δ in {inner['proximal']} in turn "
                                f"(warm-started); the reference is the last δ = {inner['proximal'][-1]}"),
            "proximal_note": ("δ > 0 is required: with weight decay a BN network has no stationary point (the loss is "
                              "scale-invariant in each conv followed by BN, the decay term is not); δ → 0 is the plain "
                              "bilevel problem, large δ approaches a one-step unroll with step 1/δ"),
            "inner_solver": (f"{inner['solver']} (≤ {inner['max_iters']} iterations, stopped after {inner['patience']}×10 "
                             f"iterations without progress), then ≤ {inner['newton_steps']} Newton-CG steps "
                             f"(≤ {inner['newton_cg_iters']} exact Hessian products each)"),
            "inner_tol_grad_norm": inner["tol"],
            "inner_max_iters": inner["max_iters"], "cg_tol_relative_residual": cg["tol"],
            "cg_max_iters": cg["max_iters"], "cg_damping": cg["damping"],
            "ok_rule": "inner ‖∇F‖₂ < inner tol and CG relative residual < CG tol without negative curvature",
            "caveat": "the supernet is non-convex: w* is the local minimiser L-BFGS reaches from the current w",
        },
        "darts_2nd": {"xi": "the run's current weight learning rate η_w(e)", "momentum": cfg["optim"]["momentum"],
                      "weight_decay": cfg["optim"]["w_wd"], "fd_radius": measure["fd_radius"],
                      "virtual_step": "w′ = w − ξ(μ·b + ∇w L_tr + λ_w·w) (spec §2.4; no Nesterov, no clipping)"},
        "milenas": [{"name": M.milenas_name(l, f), "lam": l, "form": f} for l, f in lams],
        "milenas_note": ("MiLeNAS' direction is the gradient of the mixed-level objective L_tr + λ·L_val at the "
                         "current w, not a bilevel hypergradient estimator: cosine/rel_error compare it with the "
                         "bilevel reference; milenas_comparisons also compare it with the exact gradient of its own "
                         "objective (K batches, float64: identical to the K-batch direction up to float32 rounding "
                         "by construction; the minibatch entry measures one iteration's sampling error) and with "
                         "the mixed-level hypergradient ∇α L_tr(w*) + λ·h_ref"),
        "fd_hvp_rel_error": "‖FD − exact‖/‖exact‖ of ∇²_{αw} L_tr·v, v = ∇w′ L_val(w′) (float64), R = r/‖v‖; "
                            "FD in float32 (fd_hvp_rel_error) and float64; exact in float64",
        "scale_note": "smoke/cpu scale: a measurement on a tiny supernet, never a reproduction",
        "trajectory_deviations": cfg.get("deviations", []),
    }
