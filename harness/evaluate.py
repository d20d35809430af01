"""DARTS-space evaluation: train a genotype's evaluation network from scratch (spec §1.5, §1.6, §3.8).

The recipe is config (``EVAL_KEYS``).  Base = the DARTS paper recipe (quark0/darts ``cnn/train.py``
defaults + README flags ``--auxiliary --cutout``): 600 epochs, batch 96, SGD lr 0.025 momentum 0.9
wd 3e-4, cosine to 0, grad-norm clip 5 (all parameters), crop pad 4 + flip, cutout 16 after
normalisation, drop path 0.2 ramped linearly (p = 0.2·epoch/epochs, epoch 0-based), auxiliary head
weight 0.4, C = 36, 20 cells, all 50k training images, the 10k test images evaluated (``eval()``)
after every epoch.  ``recipe: milenas-repo`` swaps in the MiLeNAS repo's evaluation defaults
(batch 64, lr 0.03, eta_min 0.001; spec §3.8 / §8 pitfall 13).  A profile's top-level
``evaluate:`` section scales the recipe; ``--set KEY=VALUE`` overrides single keys.

Resolution order: DARTS base → recipe overlay → profile ``evaluate:`` section → ``--set``.

Notes on fidelity:

* The learning rate of epoch e is the closed-form cosine value
  ``lr_min + (lr - lr_min)·(1 + cos(π e / epochs)) / 2`` (quark0 calls ``scheduler.step()`` before
  the epoch, which on PyTorch ≥ 1.1 shifts the schedule by one epoch; spec §8 pitfall 6).
* ``train_loss`` is the optimised objective (main CE + aux_weight·aux CE, as quark0 logs it);
  ``train_acc`` is the main head's top-1 on the augmented batches.
* ``final.test_acc`` is the **last** epoch's test accuracy (the DARTS / MiLeNAS-paper protocol);
  ``final.best_test_acc`` (max over epochs, what the MiLeNAS repo also logs) is kept for reference.
* The auxiliary head needs 8×8 features at cell 2L/3, i.e. 32×32 inputs; profiles on smaller
  images switch it off (listed in the deviations).

Output layout as for search runs (``harness.runner``): ``OUT/records/<run_id>.json`` written
atomically after every epoch, ``OUT/checkpoints/<run_id>.pt`` after every unfinished epoch
(deleted when the run ends).  A finished record (ok or failed) with the same config is returned
as is; a running one resumes from its checkpoint; on CPU a resumed run gives the same numbers.
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from harness import records
from harness.errors import ConfigError, HarnessError
from harness.runner import read_checkpoint, restore_rng_states, rng_states

SPACE = "darts"

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


def _parse_overrides(items: Optional[Sequence[str]]) -> Dict[str, Any]:
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


# ---------------------------------------------------------------------------------------- genotype

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "genotype"


def genotype_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def select_from_runs(folder: Path, method: Optional[str] = None) -> Dict[str, Any]:
    """The paper's selection protocol over DARTS-space search runs (spec §3.4).

    Among search records with space "darts", status ok (and ``method`` if given), the run with the
    highest ``final.best_val_acc`` is chosen (ties → lowest seed, then run id); its genotype is the
    one derived at the epoch of that best search-val accuracy (first such epoch), i.e. "the
    architecture with the highest validation accuracy in the search stage".
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HarnessError(f"--from-runs folder {folder} does not exist")
    runs = [r for r in records.load_runs(folder)
            if r.get("kind", "search") == "search" and r.get("space") == SPACE and r.get("status") == "ok"
            and isinstance(r.get("final"), dict) and r["final"].get("best_val_acc") is not None
            and (method is None or r.get("method") == method)]
    if not runs:
        what = f"method {method!r}, " if method else ""
        raise HarnessError(f"no finished DARTS-space search runs ({what}status ok) under {folder}")
    ranked = sorted(runs, key=lambda r: (-float(r["final"]["best_val_acc"]), int(r.get("seed", 0)), r["run_id"]))
    best = ranked[0]
    best_acc = float(best["final"]["best_val_acc"])
    arch, arch_epoch = best["final"].get("arch"), None
    for e in best.get("epochs") or []:
        if e.get("val_acc") is not None and float(e["val_acc"]) == best_acc and e.get("arch"):
            arch, arch_epoch = e["arch"], e["epoch"]
            break
    if not arch:
        raise HarnessError(f"search run {best['run_id']} has no derived architecture")
    ties = [r["run_id"] for r in ranked if float(r["final"]["best_val_acc"]) == best_acc]
    reason = (f"highest final.best_val_acc ({best_acc:.2f} %) among {len(runs)} ok DARTS-space search run(s)"
              + (f" of method {method}" if method else "")
              + (f"; tie among {ties} broken by lowest seed" if len(ties) > 1 else "")
              + (f"; genotype of epoch {arch_epoch} (the best search-val epoch)" if arch_epoch is not None
                 else "; genotype = final.arch"))
    return {
        "protocol": "highest search-val accuracy (MiLeNAS §4.1 / spec §3.4)",
        "runs_folder": str(folder),
        "method_filter": method,
        "selected_run": best["run_id"], "selected_method": best.get("method"), "selected_label": best.get("label"),
        "selected_seed": best.get("seed"), "selected_variant": best.get("variant") or {},
        "best_val_acc": best_acc, "arch_epoch": arch_epoch, "arch": arch,
        "final_arch_differs": arch != best["final"].get("arch"),
        "candidates": [{"run_id": r["run_id"], "method": r.get("method"), "seed": r.get("seed"),
                        "best_val_acc": float(r["final"]["best_val_acc"])} for r in ranked],
        "reason": reason,
    }


def resolve_genotype(args) -> Dict[str, Any]:
    """{genotype (Genotype), text, name, method, label, selection} from --genotype or --from-runs."""
    from harness.config import make_label
    from harness.spaces.darts import parse_genotype, zoo_names

    from_runs = getattr(args, "from_runs", None)
    if from_runs is not None:
        sel = select_from_runs(Path(from_runs), getattr(args, "method", None))
        genotype = parse_genotype(sel.pop("arch"), steps=None)
        sel["genotype"] = str(genotype)
        text = str(genotype)
        method = sel["selected_method"] or "unknown"
        name = f"{method}-best-{genotype_hash(text)[:8]}"
        base_label = sel.get("selected_label") or make_label(method, sel["selected_variant"])
        label = f"{base_label} cell (search seed {sel['selected_seed']})"
        return {"genotype": genotype, "text": text, "name": name, "method": method, "label": label,
                "selection": sel}
    given = getattr(args, "genotype", None)
    if given is None:
        raise ConfigError("evaluate needs --genotype or --from-runs")
    if getattr(args, "method", None):
        raise ConfigError("--method selects search runs and only applies with --from-runs")
    genotype = parse_genotype(given, steps=None)  # ArchFormatError on malformed text
    text = str(genotype)
    stripped = given.strip()
    if stripped in zoo_names():
        name, label = stripped, stripped
    else:
        name, label = f"g{genotype_hash(text)}", f"genotype {genotype_hash(text)[:8]}"
    return {"genotype": genotype, "text": text, "name": name, "method": "given", "label": label, "selection": None}


# ---------------------------------------------------------------------------------------- data

class EvalData:
    """CIFAR-10 train/test decoded once, (optionally) subset and downsampled, kept on the device."""

    def __init__(self, cfg: Dict[str, Any], device: torch.device, root: Optional[Path] = None,
                 download: bool = False):
        from harness.data import Normalizer, balanced_subset, load_cifar10, resize_uint8

        self.cfg = cfg
        self.device = device
        xtr, ytr, prov = load_cifar10("train", root, download=download)
        xte, yte, prov_te = load_cifar10("test", root, download=download)
        tr_idx = balanced_subset(np.arange(len(ytr)), ytr.numpy(), cfg["n_train"])
        te_idx = balanced_subset(np.arange(len(yte)), yte.numpy(), cfg["n_test"])
        size = cfg["image_size"]
        take = lambda x, idx: resize_uint8(x if len(idx) == len(x) else x[torch.as_tensor(idx)], size)  # noqa: E731
        self.x_train, self.y_train = take(xtr, tr_idx).to(device), ytr[torch.as_tensor(tr_idx)].to(device)
        self.x_test, self.y_test = take(xte, te_idx).to(device), yte[torch.as_tensor(te_idx)].to(device)
        self.normalize = Normalizer(device)
        order = "interleaved JPEG-copy order" if prov["label"].endswith("copy)") else "official order"
        subset = "" if cfg["n_train"] is None and cfg["n_test"] is None else ", class-balanced subsets"
        self.provenance = {
            "dataset": prov["label"],
            "dataset_sha256": prov["sha256"],
            "dataset_test_sha256": prov_te["sha256"],
            "split": f"CIFAR-10 train ({len(tr_idx)} images) / test ({len(te_idx)} images){subset}, {order}",
            "image_size": size,
            "benchmark_source": None,
        }

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])

    def steps_per_epoch(self) -> int:
        steps = -(-self.n_train // self.cfg["batch_size"])
        if self.cfg["max_steps_per_epoch"]:
            steps = min(steps, self.cfg["max_steps_per_epoch"])
        return steps

    def train_batches(self, gen: torch.Generator):
        """Shuffled batches with crop+flip (uint8), normalisation, then cutout (quark0 order)."""
        from harness.data import cutout, random_crop_flip

        cfg, bs = self.cfg, self.cfg["batch_size"]
        perm = torch.randperm(self.n_train, generator=gen)
        for step, start in enumerate(range(0, self.n_train, bs)):
            if step >= self.steps_per_epoch():
                break
            idx = perm[start:start + bs].to(self.device)
            xb = self.x_train[idx]
            if cfg["crop_pad"] or cfg["flip"]:
                xb = random_crop_flip(xb, cfg["crop_pad"], gen, flip=cfg["flip"])
            xb = self.normalize(xb)
            if cfg["cutout"]:
                xb = cutout(xb, cfg["cutout"], gen)
            yield xb, self.y_train[idx]

    def test_batches(self):
        bs = self.cfg["eval_batch_size"]
        for start in range(0, int(self.y_test.shape[0]), bs):
            yield self.normalize(self.x_test[start:start + bs]), self.y_test[start:start + bs]


# ---------------------------------------------------------------------------------------- the run

class NonFiniteLoss(RuntimeError):
    pass


def _epoch_hook(run: "EvalRun", epoch: int) -> None:
    """Called before every epoch (tests monkeypatch it to interrupt a run).

    Test hook: ``HARNESS_FAULT_NAN=<run_id>@<epoch>`` poisons the classifier weights with NaN.
    """
    spec = os.environ.get("HARNESS_FAULT_NAN", "")
    if spec and spec == f"{run.run_id}@{epoch}":
        with torch.no_grad():
            run.net.classifier.weight.fill_(float("nan"))


class EvalRun:
    def __init__(self, cfg: Dict[str, Any], out_dir: Path, data_root: Optional[Path] = None,
                 device: Optional[torch.device] = None, download: bool = False, progress: bool = True):
        from harness.runner import pick_device

        self.cfg = cfg
        self.recipe = cfg["evaluate"]
        self.run_id = cfg["run_id"]
        self.out_dir = Path(out_dir)
        self.record_path = self.out_dir / "records" / f"{self.run_id}.json"
        self.ckpt_path = self.out_dir / "checkpoints" / f"{self.run_id}.pt"
        self.data_root = data_root
        self.download = download
        self.device = device or pick_device()
        self.show_progress = progress
        self.hash = records.config_hash(cfg)

    def existing(self) -> Optional[Dict[str, Any]]:
        if not self.record_path.is_file():
            return None
        try:
            rec = records.read_record(self.record_path)
        except (ValueError, OSError):
            return None
        if rec.get("config_hash") != self.hash:
            raise ConfigError(f"{self.record_path} holds run {self.run_id} with a different config; "
                              "use another --out folder or delete that record")
        return rec

    def build(self) -> None:
        from harness.spaces.darts import NetworkCIFAR

        r = self.recipe
        torch.manual_seed(self.cfg["seed"])
        self.data = EvalData(r, self.device, self.data_root, self.download)
        self.net = NetworkCIFAR(self.cfg["genotype"], C=r["C"], layers=r["layers"], num_classes=10,
                                auxiliary=r["auxiliary"], drop_path_prob=0.0).to(self.device)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=r["lr"], momentum=r["momentum"],
                                         weight_decay=r["weight_decay"])
        self.gen = torch.Generator().manual_seed(self.cfg["seed"] + 1)

    def new_record(self) -> Dict[str, Any]:
        from harness.provenance import provenance
        from harness.runner import now
        from harness.spaces.darts import count_parameters_millions

        cfg = self.cfg
        prov = provenance(self.device)
        prov.update(self.data.provenance)
        return {"schema": records.SCHEMA, "kind": "evaluation", "run_id": self.run_id, "label": cfg["label"],
                "space": SPACE, "method": cfg["method"], "variant": {}, "seed": cfg["seed"],
                "profile": cfg["profile"], "scale": cfg["scale"], "status": "running", "failure": None,
                "config": cfg, "config_hash": self.hash, "provenance": prov,
                "genotype": cfg["genotype"], "genotype_name": cfg["genotype_name"],
                "params_M": round(count_parameters_millions(self.net), 6),
                "selection": cfg["selection"], "deviations": list(cfg["deviations"]),
                "epochs": [], "final": None, "started_at": now(), "finished_at": None}

    def save_checkpoint(self, record: Dict[str, Any], next_epoch: int, train_seconds: float) -> None:
        state = {"config_hash": self.hash, "next_epoch": next_epoch, "net": self.net.state_dict(),
                 "optimizer": self.optimizer.state_dict(), **rng_states(self.gen, self.device),
                 "record": record, "train_seconds": train_seconds}
        records.atomic_torch_save(self.ckpt_path, state)

    def load_checkpoint(self) -> Optional[Dict[str, Any]]:
        state = read_checkpoint(self.ckpt_path, self.hash)
        if state is None:
            return None
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_states(state, self.gen, self.device)
        return state

    def _progress(self, entry: Dict[str, Any], epochs: int) -> None:
        if not self.show_progress:
            return
        eta = entry["epoch_seconds"] * (epochs - entry["epoch"] - 1)
        print(f"[{self.run_id}] epoch {entry['epoch'] + 1}/{epochs} lr {entry['lr']:.5f} "
              f"dp {entry['drop_path_prob']:.3f} train loss {entry['train_loss']:.4f} acc {entry['train_acc']:.2f} | "
              f"test loss {entry['test_loss']:.4f} acc {entry['test_acc']:.2f} | {entry['epoch_seconds']:.1f} s"
              f" (eta {eta:.0f} s)", file=sys.stderr, flush=True)

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        from harness.runner import _sync

        r = self.recipe
        lr, dp = lr_at(r, epoch), drop_path_at(r, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.drop_path_prob = dp
        self.net.train()
        _sync(self.device)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        n = 0
        for xb, yb in self.data.train_batches(self.gen):
            logits, logits_aux = self.net(xb)
            loss = F.cross_entropy(logits, yb)
            if r["auxiliary"] and logits_aux is not None:
                loss = loss + r["auxiliary_weight"] * F.cross_entropy(logits_aux, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if r["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), r["grad_clip"])
            self.optimizer.step()
            loss_sum += loss.detach() * yb.shape[0]
            correct += (logits.detach().argmax(1) == yb).sum()
            n += int(yb.shape[0])
        _sync(self.device)
        seconds = time.perf_counter() - t0
        train_loss = float(loss_sum) / max(n, 1)
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"non-finite training loss ({train_loss}) in epoch {epoch}")
        test = self.test()
        return {"epoch": epoch, "lr": lr, "drop_path_prob": dp, "train_loss": train_loss,
                "train_acc": 100.0 * int(correct) / max(n, 1), **test, "steps": -(-n // r["batch_size"]),
                "epoch_seconds": seconds}

    @torch.no_grad()
    def test(self) -> Dict[str, float]:
        self.net.eval()
        loss_sum, correct, n = 0.0, 0, 0
        for xb, yb in self.data.test_batches():
            logits, _ = self.net(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
            n += int(yb.shape[0])
        self.net.train()
        return {"test_loss": loss_sum / max(n, 1), "test_acc": 100.0 * correct / max(n, 1)}

    def run(self) -> Dict[str, Any]:
        from harness.runner import now, peak_memory_mb

        done = self.existing()
        if done is not None and done.get("status") in ("ok", "failed"):
            if self.show_progress:
                print(f"run already finished (status {done['status']}): {self.record_path}; delete it to run again",
                      file=sys.stderr)
            return done
        self.build()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        state = self.load_checkpoint()
        if state:
            record, start, train_seconds = state["record"], state["next_epoch"], state["train_seconds"]
            if self.show_progress:
                print(f"[{self.run_id}] resuming from {self.ckpt_path} at epoch {start + 1}", file=sys.stderr)
        else:
            record, start, train_seconds = self.new_record(), 0, 0.0
        records.write_record(self.record_path, record)
        epochs = self.recipe["epochs"]
        try:
            for epoch in range(start, epochs):
                _epoch_hook(self, epoch)
                entry = self.train_epoch(epoch)
                train_seconds += entry["epoch_seconds"]
                record["epochs"].append(entry)
                self._progress(entry, epochs)
                if epoch + 1 < epochs:
                    self.save_checkpoint(record, epoch + 1, train_seconds)
                    records.write_record(self.record_path, record)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # recorded as a failed run
            record["status"] = "failed"
            record["failure"] = {"reason": f"{type(exc).__name__}: {exc}", "epoch": len(record["epochs"])}
            record["finished_at"] = now()
            records.write_record(self.record_path, record)
            self.ckpt_path.unlink(missing_ok=True)
            if self.show_progress:
                print(f"[{self.run_id}] failed: {record['failure']['reason']}", file=sys.stderr)
            return record
        last = record["epochs"][-1]
        record["final"] = {"test_acc": last["test_acc"], "test_error": 100.0 - last["test_acc"],
                           "best_test_acc": max(e["test_acc"] for e in record["epochs"]),
                           "test_loss": last["test_loss"], "train_acc": last["train_acc"],
                           "train_seconds": train_seconds, "params_M": record["params_M"],
                           "steps": sum(e["steps"] for e in record["epochs"]),
                           **peak_memory_mb(self.device)}
        record["status"] = "ok"
        record["finished_at"] = now()
        records.write_record(self.record_path, record)
        self.ckpt_path.unlink(missing_ok=True)
        return record


# ---------------------------------------------------------------------------------------- entry point

def build_eval_config(args) -> Dict[str, Any]:
    """The full resolved config of one evaluation run (recipe + genotype + identity), validated."""
    from harness.config import load_profile

    profile = load_profile(getattr(args, "profile", None) or "smoke")
    recipe = resolve_eval_config(profile, _parse_overrides(getattr(args, "overrides", None)))
    seed = getattr(args, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, not {seed!r}")
    g = resolve_genotype(args)
    run_id = f"{SPACE}__eval__{_slug(g['name'])}__s{seed}"
    return {"kind": "evaluation", "run_id": run_id, "space": SPACE, "method": g["method"], "label": g["label"],
            "seed": seed, "profile": profile.get("name", "custom"), "scale": profile.get("scale", "custom"),
            "genotype": g["text"], "genotype_name": g["name"], "selection": g["selection"],
            "evaluate": recipe, "recipe_source": RECIPE_SOURCES[recipe["recipe"]],
            "deviations": eval_deviations(recipe)}


def run_evaluate(args) -> Dict[str, Any]:
    """``python -m harness evaluate``: resolve config and genotype, train, write and return the record."""
    from harness.runner import check_output_dir, pick_device

    cfg = build_eval_config(args)
    out = Path(args.out)
    check_output_dir(out)
    device = pick_device(getattr(args, "device", None) or "auto")
    data_root = Path(args.data_dir) if getattr(args, "data_dir", None) else None
    run = EvalRun(cfg, out, data_root=data_root, device=device, download=bool(getattr(args, "download", False)))
    if cfg["selection"] and run.show_progress:
        print(f"selected {cfg['selection']['selected_run']}: {cfg['selection']['reason']}", file=sys.stderr)
    rec = run.run()
    if rec.get("status") == "ok":
        f = rec["final"]
        print(f"{rec['run_id']}: test acc {f['test_acc']:.2f} % (error {f['test_error']:.2f} %), "
              f"{rec['params_M']:.3f} M params, {f['train_seconds']:.1f} s -> {run.record_path}", file=sys.stderr)
    return rec
