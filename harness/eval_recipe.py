"""The evaluation recipe of DARTS-space cells (``python -m harness evaluate``): schema, named recipes,
resolution and deviations (spec §1.5, §1.6, §3.8).

The recipe is config (``EVAL_KEYS``).  Base = the DARTS paper recipe (quark0/darts ``cnn/train.py``
defaults + README flags ``--auxiliary --cutout``): 600 epochs, batch 96, SGD lr 0.025 momentum 0.9
wd 3e-4, cosine to 0, grad-norm clip 5 (all parameters), crop pad 4 + flip, cutout 16 after
normalisation, drop path 0.2 ramped linearly (p = 0.2·epoch/epochs, epoch 0-based), auxiliary head
weight 0.4, C = 36, 20 cells, all 50k training images, the 10k test images evaluated (``eval()``)
after every epoch.  ``recipe: milenas-repo`` swaps in the MiLeNAS repo's evaluation defaults
(batch 64, lr 0.03, eta_min 0.001; spec §3.8 / §8 pitfall 13).  A profile's top-level
``evaluate:`` section scales the recipe; ``--set KEY=VALUE`` overrides single keys.

Resolution order: DARTS base → recipe overlay → profile ``evaluate:`` section → ``--set``.

* The learning rate of epoch e is the closed-form cosine value
  ``lr_min + (lr - lr_min)·(1 + cos(π e / epochs)) / 2`` (quark0 calls ``scheduler.step()`` before
  the epoch, which on PyTorch ≥ 1.1 shifts the schedule by one epoch; spec §8 pitfall 6).
* The auxiliary head needs 8×8 features at cell 2L/3, i.e. 32×32 inputs; profiles on smaller
  images switch it off (listed in the deviations).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Sequence

from harness.errors import ConfigError

#: quark0/darts cnn/train.py defaults + README ``--auxiliary --cutout`` (spec §1.5)
DARTS_RECIPE: Dict[str, Any] = {
    "recipe": "darts",
    "C": 36, "layers": 20, "epochs": 600, "batch_size": 96,
    "lr": 0.025, "lr_min": 0.0, "momentum": 0.9, "weight_decay": 3e-4, "grad_clip": 5.0,
    "crop_pad": 4, "flip": True, "cutout": 16,
    "drop_path_prob": 0.2, "auxiliary": True, "auxiliary_weight": 0.4,
    "image_size": 32, "n_train": None, "n_test": None,
    "max_steps_per_epoch": None, "eval_batch_size": 500,
}
#: overlays per named recipe
RECIPES: Dict[str, Dict[str, Any]] = {
    "darts": {},
    # chaoyanghe/MiLeNAS evaluation/train.py defaults + README lr (spec §3.8)
    "milenas-repo": {"batch_size": 64, "lr": 0.03, "lr_min": 0.001},
}
RECIPE_SOURCES = {
    "darts": "quark0/darts cnn/train.py + README (--auxiliary --cutout); DARTS paper App. A.2.1",
    "milenas-repo": "chaoyanghe/MiLeNAS evaluation/train.py defaults + run_eval_cifar10.sh (lr 0.03)",
}
N_TRAIN_FULL, N_TEST_FULL = 50000, 10000

_INT_KEYS = ("C", "layers", "epochs", "batch_size", "crop_pad", "cutout", "image_size", "eval_batch_size")
_FLOAT_KEYS = ("lr", "lr_min", "momentum", "weight_decay", "grad_clip", "drop_path_prob", "auxiliary_weight")
_BOOL_KEYS = ("flip", "auxiliary")
_OPT_INT_KEYS = ("n_train", "n_test", "max_steps_per_epoch")
EVAL_KEYS = ("recipe",) + _INT_KEYS + _FLOAT_KEYS + _BOOL_KEYS + _OPT_INT_KEYS


# ---------------------------------------------------------------------------------------- config

def lr_at(cfg: Dict[str, Any], epoch: int) -> float:
    """Closed-form cosine annealing (per epoch, 0-based) from ``lr`` to ``lr_min`` over ``epochs``."""
    lo, hi = cfg["lr_min"], cfg["lr"]
    return lo + (hi - lo) * (1.0 + math.cos(math.pi * epoch / cfg["epochs"])) / 2.0


def drop_path_at(cfg: Dict[str, Any], epoch: int) -> float:
    """quark0 ramp: ``drop_path_prob · epoch / epochs`` (epoch 0-based, so 0 in the first epoch)."""
    return cfg["drop_path_prob"] * epoch / cfg["epochs"]


def _check_type(key: str, value: Any, where: str) -> None:
    if key == "recipe":
        if value not in RECIPES:
            raise ConfigError(f"{where}.recipe must be one of {list(RECIPES)}, not {value!r}")
    elif key in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}.{key} must be true or false, not {value!r}")
    elif key in _INT_KEYS or key in _OPT_INT_KEYS:
        if value is None and key in _OPT_INT_KEYS:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}.{key} must be an integer{' or null' if key in _OPT_INT_KEYS else ''}, "
                              f"not {value!r}")
    elif key in _FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}.{key} must be a number, not {value!r}")


def validate_eval_config(cfg: Dict[str, Any], where: str = "evaluate") -> None:
    """Types and ranges of a resolved evaluation recipe; raises ``ConfigError`` with one clear message."""
    unknown = sorted(set(cfg) - set(EVAL_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {', '.join(EVAL_KEYS)}")
    for key in EVAL_KEYS:
        if key not in cfg:
            raise ConfigError(f"{where}: missing key {key!r}")
        _check_type(key, cfg[key], where)
    positive = ("C", "layers", "epochs", "batch_size", "eval_batch_size")
    for key in positive:
        if cfg[key] < 1:
            raise ConfigError(f"{where}.{key} must be a positive integer, not {cfg[key]}")
    if cfg["layers"] < 3:
        raise ConfigError(f"{where}.layers must be at least 3 (two reduction cells), not {cfg['layers']}")
    if not 8 <= cfg["image_size"] <= 32:
        raise ConfigError(f"{where}.image_size must be between 8 and 32 pixels, not {cfg['image_size']}")
    if cfg["lr"] <= 0:
        raise ConfigError(f"{where}.lr must be positive, not {cfg['lr']}")
    if not 0 <= cfg["lr_min"] <= cfg["lr"]:
        raise ConfigError(f"{where}.lr_min must be in [0, lr={cfg['lr']}], not {cfg['lr_min']}")
    if not 0 <= cfg["momentum"] < 1:
        raise ConfigError(f"{where}.momentum must be in [0, 1), not {cfg['momentum']}")
    for key in ("weight_decay", "auxiliary_weight"):
        if cfg[key] < 0:
            raise ConfigError(f"{where}.{key} must be >= 0, not {cfg[key]}")
    if cfg["grad_clip"] < 0:
        raise ConfigError(f"{where}.grad_clip must be >= 0 (0 = no clipping), not {cfg['grad_clip']}")
    if not 0 <= cfg["drop_path_prob"] < 1:
        raise ConfigError(f"{where}.drop_path_prob must be in [0, 1), not {cfg['drop_path_prob']}")
    if not 0 <= cfg["crop_pad"] <= cfg["image_size"] // 2:
        raise ConfigError(f"{where}.crop_pad must be in [0, image_size/2 = {cfg['image_size'] // 2}], "
                          f"not {cfg['crop_pad']}")
    if not 0 <= cfg["cutout"] <= cfg["image_size"]:
        raise ConfigError(f"{where}.cutout must be in [0, image_size = {cfg['image_size']}] (0 = off), "
                          f"not {cfg['cutout']}")
    if cfg["auxiliary"] and cfg["image_size"] != 32:
        raise ConfigError(f"{where}.auxiliary needs 32x32 images (the auxiliary head pools 8x8 features), "
                          f"image_size is {cfg['image_size']}; set auxiliary: false")
    for key, full in (("n_train", N_TRAIN_FULL), ("n_test", N_TEST_FULL)):
        v = cfg[key]
        if v is not None and (v <= 0 or v % 10 or v > full):
            raise ConfigError(f"{where}.{key} must be null (all) or a positive multiple of 10 up to {full} "
                              f"(class-balanced subset), not {v}")
    ms = cfg["max_steps_per_epoch"]
    if ms is not None and ms < 1:
        raise ConfigError(f"{where}.max_steps_per_epoch must be a positive integer or null, not {ms}")


def parse_eval_overrides(items: Optional[Sequence[str]]) -> Dict[str, Any]:
    from harness.config import parse_overrides

    out = {}
    for key, value in parse_overrides(list(items or [])).items():
        key = key[len("evaluate."):] if key.startswith("evaluate.") else key
        out[key] = value
    return out


def resolve_eval_config(profile: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The validated evaluation recipe: DARTS base → recipe overlay → profile ``evaluate:`` → overrides."""
    name = profile.get("name", "custom")
    section = profile.get("evaluate")
    if section is None:
        raise ConfigError(f"profile {name} has no 'evaluate:' section (the evaluation recipe); "
                          "add one, e.g. 'evaluate: {recipe: darts}' for the full DARTS recipe")
    if not isinstance(section, dict):
        raise ConfigError(f"profile {name}: 'evaluate' must be a mapping, not {section!r}")
    overrides = dict(overrides or {})
    for where, src in ((f"profile {name}: evaluate", section), ("--set", overrides)):
        unknown = sorted(set(src) - set(EVAL_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {', '.join(EVAL_KEYS)}")
    recipe = overrides.get("recipe", section.get("recipe", "darts"))
    _check_type("recipe", recipe, "evaluate")
    cfg = copy.deepcopy(DARTS_RECIPE)
    cfg.update(RECIPES[recipe])
    cfg.update(copy.deepcopy(section))
    cfg.update(overrides)
    cfg["recipe"] = recipe
    validate_eval_config(cfg)
    return cfg


def eval_deviations(cfg: Dict[str, Any]) -> List[str]:
    """How a resolved recipe differs from the DARTS paper recipe (labels for reports)."""
    out: List[str] = []
    ref = DARTS_RECIPE
    if cfg["recipe"] != "darts":
        changed = ", ".join(f"{k} {v}" for k, v in RECIPES[cfg["recipe"]].items())
        out.append(f"recipe {cfg['recipe']} ({RECIPE_SOURCES[cfg['recipe']]}: {changed}) instead of the DARTS "
                   "paper recipe (spec §3.8)")
    if cfg["image_size"] != ref["image_size"]:
        out.append(f"images downsampled to {cfg['image_size']}x{cfg['image_size']} (reference 32x32)")
    if cfg["n_train"] is not None or cfg["n_test"] is not None:
        out.append(f"class-balanced subsets: {cfg['n_train'] or N_TRAIN_FULL} train / {cfg['n_test'] or N_TEST_FULL} "
                   f"test images (reference {N_TRAIN_FULL}/{N_TEST_FULL})")
    if cfg["C"] != ref["C"] or cfg["layers"] != ref["layers"]:
        out.append(f"network C={cfg['C']}, {cfg['layers']} cells (reference C=36, 20 cells)")
    if cfg["epochs"] != ref["epochs"]:
        out.append(f"{cfg['epochs']} epochs (reference 600; cosine schedule and drop-path ramp span the shorter run)")
    if cfg["max_steps_per_epoch"]:
        out.append(f"at most {cfg['max_steps_per_epoch']} steps per epoch (reference: the whole training set)")
    base = dict(ref, **RECIPES[cfg["recipe"]])
    for key in ("batch_size", "lr", "lr_min", "momentum", "weight_decay", "grad_clip", "crop_pad", "flip",
                "cutout", "drop_path_prob", "auxiliary", "auxiliary_weight"):
        if cfg[key] != base[key]:
            out.append(f"{key}={cfg[key]} (reference {base[key]})")
    return out
