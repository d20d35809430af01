"""Hypergradient-measurement profiles: ``smoke`` / ``cpu`` (``harness/hypergrad/profiles``) or any YAML path.

Layout (every key of ``measure`` optional; defaults in ``MEASURE_DEFAULTS``)::

    name: smoke
    scale: smoke                 # same scale labels as harness/profiles/*.yaml (smoke | cpu | ...)
    description: "..."
    method: darts-1st            # the search whose trajectory is measured (a softmax-forward method)
    variant: {}                  # method variant, e.g. {lam: 0.1}
    seed: 0
    search:                      # a profile part for the nb201 space (keys of harness/profiles parts)
      data: {n_train: 320, n_val: 320, image_size: 8, batch_size: 32}
      supernet: {C: 4, N: 1}
      epochs: 4
    measure:
      epochs: all                # or a list of 0-based epochs; measured after that epoch's last step
      batches: 2                 # K fixed train and K fixed val batches (data.batch_size images each)
      ...

The trajectory's config is resolved by ``harness.config.resolve`` exactly as a ``search`` run of
the same space/method/part would be, so the search itself is the harness's own.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Union

from harness.errors import ConfigError

HERE = Path(__file__).resolve().parent
PROFILE_DIR = HERE / "profiles"

TOP_KEYS = {"name", "scale", "description", "method", "variant", "seed", "search", "measure"}
INNER_SOLVERS = ("lbfgs", "gd")

#: measurement settings and their defaults (documented in the README section of the package)
MEASURE_DEFAULTS: Dict[str, Any] = {
    "epochs": "all",          # "all" or list of 0-based epochs
    "batches": 2,             # K: fixed train/val batches forming the deterministic objectives
    "batch_seed": 20200612,   # seed of the permutation that picks the fixed images
    "milenas_lams": [1.0],    # λ values of the MiLeNAS directions (plus the run's own λ, if any)
    "fd_radius": 0.01,        # r in R = r/‖v‖ (DARTS footnote 2; the run's fd_radius wins if it has one)
    # the reference and the compared directions use a copy with ReLU -> Softplus(beta) (null: keep ReLU)
    "smooth_activation": {"kind": "softplus", "beta": 20.0},
    # inner problem: min_w L_tr + (λ_w/2)‖w‖² + (δ/2)‖w − w_t‖² for each δ of ``proximal`` in turn
    # (warm-started; the last δ gives the reference; δ → 0 is the plain bilevel problem)
    # (L-BFGS, stopped early after `patience` chunks of 10 iterations without progress, then up to
    # `newton_steps` Newton-CG steps with exact Hessian products)
    "inner": {"solver": "lbfgs", "tol": 1.0e-5, "max_iters": 500, "weight_decay": "run", "proximal": [10.0, 3.0],
              "history_size": 50, "patience": 5, "newton_steps": 2, "newton_cg_iters": 100},
    "cg": {"tol": 1.0e-6, "max_iters": 300, "damping": 0.0},
}


def list_profiles():
    from harness.config import list_yaml_names

    return list_yaml_names(PROFILE_DIR)


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _positive(where: str, value: Any, kind=float, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"hypergrad profile: {where} must be a {'non-negative' if allow_zero else 'positive'} "
                          f"{'integer' if kind is int else 'number'}, not {value!r}")


def validate_measure(m: Dict[str, Any]) -> None:
    unknown = set(m) - set(MEASURE_DEFAULTS)
    if unknown:
        raise ConfigError(f"hypergrad profile: unknown measure key(s) {sorted(unknown)}; "
                          f"known: {', '.join(MEASURE_DEFAULTS)}")
    ep = m["epochs"]
    if ep != "all" and not (isinstance(ep, list) and ep and all(isinstance(e, int) and e >= 0 for e in ep)):
        raise ConfigError(f"hypergrad profile: measure.epochs must be 'all' or a list of 0-based epochs, not {ep!r}")
    _positive("measure.batches", m["batches"], int)
    lams = m["milenas_lams"]
    if not isinstance(lams, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                                             for x in lams):
        raise ConfigError(f"hypergrad profile: measure.milenas_lams must be a list of numbers >= 0, not {lams!r}")
    _positive("measure.fd_radius", m["fd_radius"])
    inner, cg = m["inner"], m["cg"]
    for sect, keys in (("inner", MEASURE_DEFAULTS["inner"]), ("cg", MEASURE_DEFAULTS["cg"])):
        if not isinstance(m[sect], dict):
            raise ConfigError(f"hypergrad profile: measure.{sect} must be a mapping, not {m[sect]!r}")
        bad = set(m[sect]) - set(keys)
        if bad:
            raise ConfigError(f"hypergrad profile: unknown measure.{sect} key(s) {sorted(bad)}; known: {', '.join(keys)}")
    if inner["solver"] not in INNER_SOLVERS:
        raise ConfigError(f"hypergrad profile: measure.inner.solver must be one of {INNER_SOLVERS}, not {inner['solver']!r}")
    _positive("measure.inner.tol", inner["tol"])
    _positive("measure.inner.max_iters", inner["max_iters"], int, allow_zero=True)
    _positive("measure.inner.history_size", inner["history_size"], int)
    _positive("measure.inner.patience", inner["patience"], int)
    _positive("measure.inner.newton_steps", inner["newton_steps"], int, allow_zero=True)
    _positive("measure.inner.newton_cg_iters", inner["newton_cg_iters"], int)
    prox = inner["proximal"]
    if not isinstance(prox, list) or not prox:
        raise ConfigError(f"hypergrad profile: measure.inner.proximal must be a non-empty list of δ values, not {prox!r}")
    for i, d in enumerate(prox):
        _positive(f"measure.inner.proximal[{i}]", d, allow_zero=True)
    sm = m["smooth_activation"]
    if sm is not None:
        if not isinstance(sm, dict) or set(sm) - {"kind", "beta"} or sm.get("kind", "softplus") != "softplus":
            raise ConfigError("hypergrad profile: measure.smooth_activation must be null or "
                              f"{{kind: softplus, beta: B}}, not {sm!r}")
        _positive("measure.smooth_activation.beta", sm.get("beta"))
    if inner["weight_decay"] != "run":
        _positive("measure.inner.weight_decay", inner["weight_decay"], allow_zero=True)
    _positive("measure.cg.tol", cg["tol"])
    _positive("measure.cg.max_iters", cg["max_iters"], int)
    _positive("measure.cg.damping", cg["damping"], allow_zero=True)


def load_profile(name_or_path: Union[str, Path]) -> Dict[str, Any]:
    """A validated hypergrad profile (``measure`` filled with defaults).  Bad input: ``ConfigError``."""
    from harness.config import SCALES, locate_named_yaml, read_named_yaml

    path = locate_named_yaml(name_or_path, PROFILE_DIR, what="hypergrad profile")
    prof = read_named_yaml(path, PROFILE_DIR, what="hypergrad profile")
    unknown = set(prof) - TOP_KEYS
    if unknown:
        raise ConfigError(f"hypergrad profile {prof['name']}: unknown key(s) {sorted(unknown)}; "
                          f"known: {', '.join(sorted(TOP_KEYS))}")
    prof.setdefault("scale", "custom")
    if prof["scale"] not in SCALES:
        raise ConfigError(f"hypergrad profile {prof['name']}: scale must be one of {SCALES}, not {prof['scale']!r}")
    prof.setdefault("method", "darts-1st")
    prof.setdefault("variant", {})
    prof.setdefault("seed", 0)
    if not isinstance(prof["variant"], dict):
        raise ConfigError(f"hypergrad profile {prof['name']}: variant must be a mapping, not {prof['variant']!r}")
    if not isinstance(prof["seed"], int) or isinstance(prof["seed"], bool) or prof["seed"] < 0:
        raise ConfigError(f"hypergrad profile {prof['name']}: seed must be a non-negative integer")
    if not isinstance(prof.get("search"), dict):
        raise ConfigError(f"hypergrad profile {prof['name']}: needs a 'search' mapping (a profile part for nb201)")
    if not isinstance(prof.get("measure") or {}, dict):
        raise ConfigError(f"hypergrad profile {prof['name']}: measure must be a mapping")
    prof["measure"] = _merge(MEASURE_DEFAULTS, prof.get("measure") or {})
    validate_measure(prof["measure"])
    prof["path"] = str(path)
    return prof
