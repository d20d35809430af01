"""The evaluation recipe of DARTS-space cells (``python -m harness evaluate``): schema, named recipes,
resolution and deviations (docs/evaluation.md#recipe, docs/evaluation.md#recipe-deviations).

The recipe is config (``EVAL_OPTIONS``, checked by ``harness.schema.validate_section``).  Base = the
DARTS paper recipe (quark0/darts ``cnn/train.py`` defaults + README flags ``--auxiliary --cutout``):
600 epochs, batch 96, SGD lr 0.025 momentum 0.9 wd 3e-4, cosine to 0, grad-norm clip 5 (all parameters),
crop pad 4 + flip, cutout 16 after normalisation, drop path 0.2 ramped linearly (p = 0.2·epoch/epochs,
epoch 0-based), auxiliary head weight 0.4, C = 36, 20 cells, all 50k training images, the 10k test images
evaluated (``eval()``) after every epoch.  ``recipe: milenas-repo`` swaps in the MiLeNAS repo's evaluation defaults
(batch 64, lr 0.03, eta_min 0.001; chaoyanghe/MiLeNAS evaluation/train.py, evaluation/run_eval_cifar10.sh;
docs/evaluation.md#recipe).  A profile's top-level
``evaluate:`` section scales the recipe; ``--set KEY=VALUE`` overrides single keys.

Resolution order: DARTS base → recipe overlay → profile ``evaluate:`` section → ``--set``.

* The learning rate of epoch e is the closed-form cosine value
  ``lr_min + (lr - lr_min)·(1 + cos(π e / epochs)) / 2`` (quark0 calls ``scheduler.step()`` before
  the epoch, which on PyTorch ≥ 1.1 shifts the schedule by one epoch; docs/evaluation.md#how-a-run-trains).
* The auxiliary head needs 8×8 features at cell 2L/3, i.e. 32×32 inputs; profiles on smaller
  images switch it off (listed in the deviations).
* How the network trains on the device (``TRAINING_OPTIONS``, absent = the reference's FP32 NCHW, so recipes
  written before these keys keep their run ids): ``precision`` ``fp32`` | ``tf32`` (TF32 cuDNN convolutions
  and matmul, GPUs from Ampere on; it sets the run's ``precision.allow_tf32``; no effect on a CPU, which the
  record's ``provenance.precision.note`` says) | ``bf16`` (bfloat16 autocast of the training forward pass and
  loss; the test pass stays FP32); ``memory_format`` ``contiguous`` | ``channels_last`` (weights and input
  batches NHWC).  Each non-reference value is a deviation (docs/evaluation.md#training-precision-and-layout).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Sequence

from harness.errors import ConfigError
from harness.schema import Option, coerce_section, validate_section

#: quark0/darts cnn/train.py defaults + README ``--auxiliary --cutout`` (docs/evaluation.md#recipe)
DARTS_RECIPE: Dict[str, Any] = {
    "recipe": "darts",
    "C": 36,
    "layers": 20,
    "epochs": 600,
    "batch_size": 96,
    "lr": 0.025,
    "lr_min": 0.0,
    "momentum": 0.9,
    "weight_decay": 3e-4,
    "grad_clip": 5.0,
    "crop_pad": 4,
    "flip": True,
    "cutout": 16,
    "drop_path_prob": 0.2,
    "auxiliary": True,
    "auxiliary_weight": 0.4,
    "image_size": 32,
    "n_train": None,
    "n_test": None,
    "max_steps_per_epoch": None,
    "eval_batch_size": 500,
}
#: overlays per named recipe
RECIPES: Dict[str, Dict[str, Any]] = {
    "darts": {},
    # chaoyanghe/MiLeNAS evaluation/train.py defaults + README lr (docs/evaluation.md#recipe)
    "milenas-repo": {"batch_size": 64, "lr": 0.03, "lr_min": 0.001},
}
RECIPE_SOURCES = {
    "darts": "quark0/darts cnn/train.py + README (--auxiliary --cutout); DARTS paper App. A.2.1",
    "milenas-repo": "chaoyanghe/MiLeNAS evaluation/train.py defaults + run_eval_cifar10.sh (lr 0.03)",
}
N_TRAIN_FULL, N_TEST_FULL = 50000, 10000


def _subset_rule(full: int):
    def rule(value: int) -> Optional[str]:
        return (
            None
            if value % 10 == 0 and value <= full
            else f"null (all) or a positive multiple of 10 up to {full} (class-balanced subset)"
        )

    return rule


def _opt(doc: str, kind: type, key: str, **kw: Any) -> Option:
    return Option(doc, kind, default=DARTS_RECIPE[key], **kw)


#: the recipe's keys (``harness.schema.Option``; defaults = the DARTS paper recipe)
EVAL_OPTIONS: Dict[str, Option] = {
    "recipe": _opt("named recipe the keys below overlay (RECIPES)", str, "recipe", choices=tuple(RECIPES)),
    "C": _opt("initial channels", int, "C", minimum=1),
    "layers": _opt("cells (at least 3: two reduction cells)", int, "layers", minimum=3),
    "epochs": _opt("training epochs", int, "epochs", minimum=1),
    "batch_size": _opt("training batch size", int, "batch_size", minimum=1),
    "lr": _opt("SGD learning rate at epoch 0", float, "lr", minimum=0, exclusive=True),
    "lr_min": _opt("learning rate at the end of the cosine schedule (<= lr)", float, "lr_min", minimum=0),
    "momentum": _opt("SGD momentum", float, "momentum", minimum=0, maximum=1, exclusive_maximum=True),
    "weight_decay": _opt("weight decay", float, "weight_decay", minimum=0),
    "grad_clip": _opt("max total gradient norm (0 = no clipping)", float, "grad_clip", minimum=0),
    "crop_pad": _opt("random-crop padding in pixels (<= image_size/2)", int, "crop_pad", minimum=0),
    "flip": _opt("random horizontal flip", bool, "flip"),
    "cutout": _opt("cutout side in pixels (0 = off; <= image_size)", int, "cutout", minimum=0),
    "drop_path_prob": _opt(
        "final drop-path probability (linear ramp)",
        float,
        "drop_path_prob",
        minimum=0,
        maximum=1,
        exclusive_maximum=True,
    ),
    "auxiliary": _opt("auxiliary head (needs 32x32 images)", bool, "auxiliary"),
    "auxiliary_weight": _opt("auxiliary loss weight", float, "auxiliary_weight", minimum=0),
    "image_size": _opt("image side in pixels", int, "image_size", minimum=8, maximum=32),
    "n_train": _opt(
        "training images (null: all 50000)", int, "n_train", nullable=True, minimum=1, rule=_subset_rule(N_TRAIN_FULL)
    ),
    "n_test": _opt(
        "test images (null: all 10000)", int, "n_test", nullable=True, minimum=1, rule=_subset_rule(N_TEST_FULL)
    ),
    "max_steps_per_epoch": _opt(
        "at most this many steps per epoch (null: the whole training set)",
        int,
        "max_steps_per_epoch",
        nullable=True,
        minimum=1,
    ),
    "eval_batch_size": _opt("test batch size", int, "eval_batch_size", minimum=1),
}
#: how the evaluation network trains on the device: optional keys, absent = the reference's value (below)
TRAINING_OPTIONS: Dict[str, Option] = {
    "precision": Option(
        "training arithmetic: fp32 (reference) | tf32 (TF32 convolutions and matmul on GPUs from Ampere on; "
        "no effect on CPU) | bf16 (bfloat16 autocast of the training forward pass)",
        str,
        choices=("fp32", "tf32", "bf16"),
        nullable=True,
    ),
    "memory_format": Option(
        "layout of the network's weights and input batches: contiguous (NCHW, reference) | channels_last (NHWC)",
        str,
        choices=("contiguous", "channels_last"),
        nullable=True,
    ),
}
#: the references' values of ``TRAINING_OPTIONS`` (quark0/darts cnn/train.py: FP32, NCHW)
TRAINING_REFERENCE: Dict[str, str] = {"precision": "fp32", "memory_format": "contiguous"}
EVAL_OPTIONS.update(TRAINING_OPTIONS)
EVAL_KEYS = tuple(EVAL_OPTIONS)


# ---------------------------------------------------------------------------------------- config


def lr_at(cfg: Dict[str, Any], epoch: int) -> float:
    """Closed-form cosine annealing (per epoch, 0-based) from ``lr`` to ``lr_min`` over ``epochs``."""
    lo, hi = cfg["lr_min"], cfg["lr"]
    return lo + (hi - lo) * (1.0 + math.cos(math.pi * epoch / cfg["epochs"])) / 2.0


def drop_path_at(cfg: Dict[str, Any], epoch: int) -> float:
    """quark0 ramp: ``drop_path_prob · epoch / epochs`` (epoch 0-based, so 0 in the first epoch)."""
    return cfg["drop_path_prob"] * epoch / cfg["epochs"]


def validate_eval_config(cfg: Dict[str, Any], where: str = "evaluate") -> None:
    """Types and ranges of a resolved evaluation recipe; raises ``ConfigError`` with one clear message."""
    validate_section(cfg, EVAL_OPTIONS, where)
    for key in EVAL_KEYS:
        if key not in cfg and key not in TRAINING_OPTIONS:
            raise ConfigError(f"{where}: missing key {key!r}")
    if cfg["lr_min"] > cfg["lr"]:
        raise ConfigError(f"{where}.lr_min must be in [0, lr={cfg['lr']}], not {cfg['lr_min']}")
    if cfg["crop_pad"] > cfg["image_size"] // 2:
        raise ConfigError(
            f"{where}.crop_pad must be in [0, image_size/2 = {cfg['image_size'] // 2}], not {cfg['crop_pad']}"
        )
    if cfg["cutout"] > cfg["image_size"]:
        raise ConfigError(
            f"{where}.cutout must be in [0, image_size = {cfg['image_size']}] (0 = off), not {cfg['cutout']}"
        )
    if cfg["auxiliary"] and cfg["image_size"] != 32:
        raise ConfigError(
            f"{where}.auxiliary needs 32x32 images (the auxiliary head pools 8x8 features), "
            f"image_size is {cfg['image_size']}; set auxiliary: false"
        )


def training_setting(cfg: Dict[str, Any], key: str) -> str:
    """``precision`` or ``memory_format`` of a resolved recipe (absent: the reference's ``fp32`` / ``contiguous``)."""
    return str(cfg.get(key) or TRAINING_REFERENCE[key])


def run_precision_policy(profile_precision: Optional[Dict[str, Any]], cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The evaluation run's ``precision`` section (``harness.precision``): the profile's, with TF32 allowed when
    the recipe says ``precision: tf32`` and refused when it says ``fp32`` or ``bf16`` explicitly."""
    out = dict(profile_precision or {})
    if cfg.get("precision"):
        out["allow_tf32"] = training_setting(cfg, "precision") == "tf32"
    return out


def parse_eval_overrides(items: Optional[Sequence[str]]) -> Dict[str, Any]:
    from harness.config import parse_overrides

    out = {}
    for key, value in parse_overrides(list(items or [])).items():
        key = key[len("evaluate.") :] if key.startswith("evaluate.") else key
        out[key] = value
    return out


def resolve_eval_config(profile: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The validated evaluation recipe: DARTS base → recipe overlay → profile ``evaluate:`` → overrides."""
    name = profile.get("name", "custom")
    section = profile.get("evaluate")
    if section is None:
        raise ConfigError(
            f"profile {name} has no 'evaluate:' section (the evaluation recipe); "
            "add one, e.g. 'evaluate: {recipe: darts}' for the full DARTS recipe"
        )
    if not isinstance(section, dict):
        raise ConfigError(f"profile {name}: 'evaluate' must be a mapping, not {section!r}")
    overrides = coerce_section(overrides or {}, EVAL_OPTIONS)  # --set lr=1e-3: a number
    section = coerce_section(section, EVAL_OPTIONS)
    for where, src in ((f"profile {name}: evaluate", section), ("--set", overrides)):
        unknown = sorted(set(src) - set(EVAL_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {', '.join(EVAL_KEYS)}")
    recipe = overrides.get("recipe", section.get("recipe", "darts"))
    EVAL_OPTIONS["recipe"].check("evaluate", "recipe", recipe)
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
        out.append(
            f"recipe {cfg['recipe']} ({RECIPE_SOURCES[cfg['recipe']]}: {changed}) instead of the DARTS "
            "paper recipe (docs/evaluation.md#recipe)"
        )
    if cfg["image_size"] != ref["image_size"]:
        out.append(f"images downsampled to {cfg['image_size']}x{cfg['image_size']} (reference 32x32)")
    if cfg["n_train"] is not None or cfg["n_test"] is not None:
        out.append(
            f"class-balanced subsets: {cfg['n_train'] or N_TRAIN_FULL} train / {cfg['n_test'] or N_TEST_FULL} "
            f"test images (reference {N_TRAIN_FULL}/{N_TEST_FULL})"
        )
    if cfg["C"] != ref["C"] or cfg["layers"] != ref["layers"]:
        out.append(f"network C={cfg['C']}, {cfg['layers']} cells (reference C=36, 20 cells)")
    if cfg["epochs"] != ref["epochs"]:
        out.append(f"{cfg['epochs']} epochs (reference 600; cosine schedule and drop-path ramp span the shorter run)")
    if cfg["max_steps_per_epoch"]:
        out.append(f"at most {cfg['max_steps_per_epoch']} steps per epoch (reference: the whole training set)")
    base = dict(ref, **RECIPES[cfg["recipe"]])
    for key in (
        "batch_size",
        "lr",
        "lr_min",
        "momentum",
        "weight_decay",
        "grad_clip",
        "crop_pad",
        "flip",
        "cutout",
        "drop_path_prob",
        "auxiliary",
        "auxiliary_weight",
    ):
        if cfg[key] != base[key]:
            out.append(f"{key}={cfg[key]} (reference {base[key]})")
    precision = training_setting(cfg, "precision")
    if precision == "tf32":
        out.append(
            "precision=tf32: TF32 cuDNN convolutions and matmul on GPUs from Ampere on (10-bit mantissa inputs; "
            "reference FP32; no effect on CPU)"
        )
    elif precision == "bf16":
        out.append("precision=bf16: training forward pass and loss in bfloat16 autocast (reference FP32)")
    if training_setting(cfg, "memory_format") == "channels_last":
        out.append(
            "memory_format=channels_last: weights and batches in NHWC (the same values up to float rounding; "
            "reference NCHW)"
        )
    return out
