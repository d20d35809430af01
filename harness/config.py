"""Profiles, protocols and the resolved config of one run.

* A **protocol** (``harness/protocols/<space>.yaml``) holds the reference hyperparameters of a
  space: data split, supernet size, optimizers, epochs, and per-method rows.
* A **profile** (``harness/profiles/<name>.yaml`` or any YAML path) sets the scale: seeds, and per
  space a "part" (keys: space, methods, seeds, data, supernet, optim, epochs, epochs_by_method,
  max_steps_per_epoch, method_overrides) with methods or method variants
  (``{method: milenas, variant: {lam: 0.1}}``; an entry's own ``seeds: [...]`` replaces the part's), data subset sizes, image size, supernet size, epochs.  ``smoke``, ``cpu``, ``paper``, ``gpu-quick`` ship with the harness.
* The **resolved config** of one run = protocol ⊕ protocol.methods[method] ⊕ profile part ⊕
  variant ⊕ command-line ``--set`` overrides.  It is validated, written into the record, hashed.

Resolved config layout::

    {space, method, variant, label, seed, profile, scale,
     data: {split, val_sampling, n_train, n_val, n_eval, image_size, batch_size, augment, dataset},
     space_cfg: {...supernet kwargs...},
     optim: {w_lr, w_lr_min, momentum, nesterov, w_wd, a_lr, a_betas, a_wd, grad_clip, grad_clip_target},
     method_cfg: {...method options...},
     epochs, max_steps_per_epoch, early_stop, eval_batch_size, selection, precision: {allow_tf32},
     speed: {memory_format, autocast, compile}, protocol_source, deviations: [str]}

``speed`` (``harness.methods.SPEED_DEFAULTS``): how a step runs (memory layout, bf16 autocast, torch.compile);
a profile may set it (``speed:`` at the top level) and ``--set speed.KEY=VALUE`` / ``--compile`` override it.

``selection`` (``last`` | ``best_val_reference`` | ``best_val_batchstats``, see ``harness.runner``) and
``precision`` (``harness.precision``) default per protocol row; a protocol row's ``reference_optim``
names optimizer settings its reference code used where the harness runs every method alike (e.g.
the MiLeNAS code clips α, not the weights): each difference is listed in the run's deviations.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

from harness.errors import ConfigError
from harness.methods import CLIP_TARGETS, SPEED_DEFAULTS, speed_deviations, validate_speed
from harness.precision import DEFAULT_PRECISION, validate_precision
from harness.registry import UnknownNameError, get_method, get_space
from harness.selection import SELECTION_RULES

HERE = Path(__file__).resolve().parent
PROFILE_DIR = HERE / "profiles"
PROTOCOL_DIR = HERE / "protocols"

SCALES = ("smoke", "cpu", "gpu-quick", "paper", "custom")

DATA_KEYS = {"split": ("nb201", "darts"), "val_sampling": ("paired", "fresh-iterator"), "n_train": int,
             "n_val": int, "n_eval": int, "image_size": int, "batch_size": int, "augment": bool,
             "reference_eval_augment": bool, "dataset": ("cifar10",)}
OPTIM_KEYS = {"w_lr": float, "w_lr_min": float, "momentum": float, "nesterov": bool, "w_wd": float,
              "a_lr": float, "a_betas": list, "a_wd": float, "grad_clip": float,
              "grad_clip_target": CLIP_TARGETS}
PART_KEYS = {"space", "methods", "data", "supernet", "optim", "epochs", "epochs_by_method",
             "max_steps_per_epoch", "seeds", "method_overrides", "early_stop", "selection"}


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def list_yaml_names(directory: Path) -> List[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def locate_named_yaml(name_or_path: Union[str, Path], directory: Path, what: str = "profile") -> Path:
    """The YAML file given by a path or by its name in ``directory``; an unknown name is one ``ConfigError``
    line naming the known ones."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown {what} {str(name_or_path)!r}; known {what}s: "
                              f"{', '.join(list_yaml_names(directory))} (or give the path of a {what} YAML file)")
    return path


def read_named_yaml(name_or_path: Union[str, Path], directory: Path, what: str = "profile") -> Dict[str, Any]:
    """The mapping in ``locate_named_yaml``'s file (``name`` defaults to the file stem); unreadable file or
    bad YAML: one ``ConfigError`` line."""
    path = locate_named_yaml(name_or_path, directory, what)
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    return data


def list_profiles() -> List[str]:
    return list_yaml_names(PROFILE_DIR)


def load_profile(name_or_path: Union[str, Path]) -> Dict[str, Any]:
    prof = read_named_yaml(name_or_path, PROFILE_DIR)
    if prof.get("scale", "custom") not in SCALES:
        raise ConfigError(f"profile {prof['name']}: scale must be one of {SCALES}")
    if not isinstance(prof.get("parts"), list) or not prof["parts"]:
        raise ConfigError(f"profile {prof['name']}: needs a non-empty 'parts' list")
    for part in prof["parts"]:
        unknown = set(part) - PART_KEYS
        if unknown:
            raise ConfigError(f"profile {prof['name']}: unknown key(s) {sorted(unknown)} in a part")
    _check_seeds(prof.get("seeds", [0]), prof["name"])
    return prof


def _check_seeds(seeds: Any, where: str) -> None:
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: seeds must be a non-empty list of non-negative integers, not {seeds!r}")


def load_protocol(space: str) -> Dict[str, Any]:
    path = PROTOCOL_DIR / f"{space}.yaml"
    if not path.is_file():
        raise ConfigError(f"no protocol for space {space!r} (looked for {path})")
    return _read_yaml(path)


def _merge(base: Dict[str, Any], over: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def method_entry(entry: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A part's method entry: ``"milenas"`` or ``{method: milenas, variant: {lam: 0.1}, seeds: [0, 1]}``
    (``seeds``, optional: this entry's seeds instead of the part's, e.g. fewer seeds of a costly method)."""
    if isinstance(entry, str):
        return {"method": entry, "variant": {}, "seeds": None}
    if isinstance(entry, dict) and isinstance(entry.get("method"), str):
        unknown = set(entry) - {"method", "variant", "label", "seeds"}
        if unknown:
            raise ConfigError(f"method entry {entry['method']}: unknown key(s) {', '.join(sorted(unknown))} "
                              "(allowed: method, variant, label, seeds)")
        variant = entry.get("variant") or {}
        if not isinstance(variant, dict):
            raise ConfigError(f"variant of {entry['method']} must be a mapping, not {variant!r}")
        seeds = entry.get("seeds")
        if seeds is not None:
            _check_seeds(seeds, f"method entry {entry['method']}")
        return {"method": entry["method"], "variant": dict(variant), "label": entry.get("label"), "seeds": seeds}
    raise ConfigError(f"a method entry must be a name or {{method: NAME, variant: {{...}}}}, not {entry!r}")


def variant_suffix(variant: Dict[str, Any]) -> str:
    return "".join(f"-{k}{v}" for k, v in sorted(variant.items()))


def make_label(method: str, variant: Dict[str, Any]) -> str:
    """The method class's display label, with the variant (``MiLeNAS (λ=0.1)``)."""
    return get_method(method).display_label(variant)


def run_id(space: str, method: str, variant: Dict[str, Any], seed: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{method}{variant_suffix(variant)}")
    return f"{space}__{slug}__s{seed}"


def _validate_section(section: Dict[str, Any], schema: Dict[str, Any], where: str) -> None:
    for key, value in section.items():
        if key not in schema:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(schema))}")
        rule = schema[key]
        if value is None:
            continue
        if isinstance(rule, tuple):
            if value not in rule:
                raise ConfigError(f"{where}.{key} must be one of {list(rule)}, not {value!r}")
        elif rule is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}.{key} must be a number, not {value!r}")
        elif rule is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}.{key} must be an integer, not {value!r}")
        elif not isinstance(value, rule):
            raise ConfigError(f"{where}.{key} must be a {rule.__name__}, not {value!r}")


def validate(cfg: Dict[str, Any]) -> None:
    d, o, m = cfg["data"], cfg["optim"], cfg["method_cfg"]
    _validate_section(d, DATA_KEYS, "data")
    _validate_section(o, OPTIM_KEYS, "optim")
    for key in ("n_train", "n_val", "n_eval"):
        v = d.get(key)
        if v is not None and (v <= 0 or v % 10 or v > 25000):
            raise ConfigError(f"data.{key} must be a positive multiple of 10 up to 25000 (class-balanced subset), not {v}")
    if d.get("n_eval") and d.get("n_val") and d["n_eval"] > d["n_val"]:
        raise ConfigError(f"data.n_eval ({d['n_eval']}) cannot exceed data.n_val ({d['n_val']})")
    if not 8 <= d["image_size"] <= 32:
        raise ConfigError(f"data.image_size must be between 8 and 32 pixels, not {d['image_size']}")
    if d["batch_size"] <= 0:
        raise ConfigError(f"data.batch_size must be positive, not {d['batch_size']}")
    for key in ("w_lr", "a_lr"):
        if o[key] <= 0:
            raise ConfigError(f"optim.{key} must be positive, not {o[key]}")
    for key in ("w_lr_min", "w_wd", "a_wd"):
        if o[key] < 0:
            raise ConfigError(f"optim.{key} must be >= 0, not {o[key]}")
    if not 0 <= o["momentum"] < 1:
        raise ConfigError(f"optim.momentum must be in [0, 1), not {o['momentum']}")
    if len(o["a_betas"]) != 2 or not all(0 <= b < 1 for b in o["a_betas"]):
        raise ConfigError(f"optim.a_betas must be two numbers in [0, 1), not {o['a_betas']}")
    if not isinstance(cfg["epochs"], int) or isinstance(cfg["epochs"], bool) or cfg["epochs"] < 1:
        raise ConfigError(f"epochs must be a positive integer, not {cfg['epochs']!r}")
    msteps = cfg.get("max_steps_per_epoch")
    if msteps is not None and (not isinstance(msteps, int) or msteps < 1):
        raise ConfigError(f"max_steps_per_epoch must be a positive integer or null, not {msteps!r}")
    get_method(cfg["method"]).validate_options(m)
    if cfg["selection"] not in SELECTION_RULES:
        raise ConfigError(f"selection must be one of {list(SELECTION_RULES)}, not {cfg['selection']!r}")
    if not isinstance(cfg["precision"], dict):
        raise ConfigError(f"precision must be a mapping such as {{allow_tf32: false}}, not {cfg['precision']!r}")
    validate_precision(cfg["precision"])
    validate_speed(cfg["speed"])


def _deviations(cfg: Dict[str, Any], protocol: Dict[str, Any], proto_epochs: int,
                prow: Dict[str, Any]) -> List[str]:
    """How this run differs from its space's reference protocol (labels for reports)."""
    out = []
    d, pd = cfg["data"], protocol["data"]
    if d["image_size"] != pd["image_size"]:
        out.append(f"images downsampled to {d['image_size']}x{d['image_size']} (reference {pd['image_size']}x{pd['image_size']})")
    if d.get("n_train") or d.get("n_val"):
        out.append(f"class-balanced subsets: {d.get('n_train') or 25000} search-train / {d.get('n_val') or 25000} search-val images (reference 25000/25000)")
    for key, value in cfg["space_cfg"].items():
        ref = protocol["space"].get(key)
        if ref is not None and value != ref:
            out.append(f"supernet {key}={value} (reference {ref})")
    if cfg["epochs"] != proto_epochs:
        out.append(f"{cfg['epochs']} search epochs (reference {proto_epochs})")
    if cfg.get("max_steps_per_epoch"):
        out.append(f"at most {cfg['max_steps_per_epoch']} iterations per epoch")
    for key, value in cfg["optim"].items():
        if protocol["optim"].get(key) != value:
            out.append(f"optim.{key}={value} (reference {protocol['optim'].get(key)})")
    for key, ref in (prow.get("reference_optim") or {}).items():
        if cfg["optim"].get(key) != ref:
            out.append(f"optim.{key}={cfg['optim'].get(key)} (the {cfg['method']} reference code uses {ref}: "
                       f"{prow.get('reference_note', 'see the protocol file')})")
    out.extend(get_method(cfg["method"]).option_deviations(cfg["method_cfg"], prow.get("method") or {}))
    out.extend(speed_deviations(cfg["speed"]))
    if cfg["precision"].get("allow_tf32"):
        out.append("TF32 allowed for cuDNN and matmul (the references ran in full FP32)")
    if cfg["selection"] != prow.get("selection", protocol.get("selection", "last")):
        out.append(f"cell selection {cfg['selection']} (reference {prow.get('selection', protocol.get('selection'))})")
    if cfg["space"] == "nb201" and not get_method(cfg["method"]).nb201_reference:
        out.append(f"{cfg['method']} has no NAS-Bench-201 reference implementation: run under the NB201 DARTS protocol")
    return out


def resolve(space: str, entry: Union[str, Dict[str, Any]], seed: int, profile: Dict[str, Any],
            part: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The validated, fully resolved config of one run."""
    me = method_entry(entry)
    method, variant = me["method"], me["variant"]
    try:
        get_space(space)
        get_method(method)
    except UnknownNameError as exc:
        raise ConfigError(str(exc)) from exc
    protocol = load_protocol(space)
    prow = (protocol.get("methods") or {}).get(method, {})
    proto_epochs = int(prow.get("epochs", protocol["epochs"]))
    cfg: Dict[str, Any] = {
        "space": space, "method": method, "variant": variant,
        "label": me.get("label") or make_label(method, variant),
        "seed": int(seed), "profile": profile.get("name", "custom"), "scale": profile.get("scale", "custom"),
        "data": _merge(_merge({"dataset": "cifar10", "n_train": None, "n_val": None, "n_eval": None},
                              protocol["data"]), prow.get("data")),
        "space_cfg": _merge(protocol["space"], prow.get("space")),
        "optim": _merge(protocol["optim"], prow.get("optim")),
        "method_cfg": copy.deepcopy(prow.get("method", {})),
        "epochs": proto_epochs,
        "max_steps_per_epoch": None,
        "early_stop": False,
        "eval_batch_size": 256,
        "selection": prow.get("selection", protocol.get("selection", "last")),
        "precision": _merge(DEFAULT_PRECISION, profile.get("precision")),
        "speed": _merge(SPEED_DEFAULTS, profile.get("speed")),
        "protocol_source": protocol.get("source", space),
    }
    cfg["data"] = _merge(cfg["data"], part.get("data"))
    cfg["space_cfg"] = _merge(cfg["space_cfg"], part.get("supernet"))
    cfg["optim"] = _merge(cfg["optim"], part.get("optim"))
    if "epochs" in part:
        cfg["epochs"] = part["epochs"]
    if method in (part.get("epochs_by_method") or {}):
        cfg["epochs"] = part["epochs_by_method"][method]
    if "early_stop" in part:
        cfg["early_stop"] = bool(part["early_stop"])
    if "max_steps_per_epoch" in part:
        cfg["max_steps_per_epoch"] = part["max_steps_per_epoch"]
    if "selection" in part:
        cfg["selection"] = part["selection"]
    cfg["method_cfg"] = _merge(cfg["method_cfg"], (part.get("method_overrides") or {}).get(method))
    cfg["method_cfg"] = _merge(cfg["method_cfg"], variant)
    for dotted, value in (overrides or {}).items():
        _set_dotted(cfg, dotted, value)
    validate(cfg)
    cfg["deviations"] = _deviations(cfg, protocol, proto_epochs, prow)
    return cfg


def _set_dotted(cfg: Dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            raise ConfigError(f"--set {dotted}: {k!r} is not a config section")
        node = node[k]
    if len(keys) == 1 and keys[0] not in cfg:
        raise ConfigError(f"--set {dotted}: unknown config key")
    node[keys[-1]] = value


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """``["optim.w_lr=0.05", "method_cfg.lam=0.1"]`` → dict; values parsed as YAML scalars."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


def expand_profile(profile: Dict[str, Any], spaces: Optional[Sequence[str]] = None,
                   methods: Optional[Sequence[str]] = None, seeds: Optional[Sequence[int]] = None,
                   overrides: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Every run of a profile (optionally filtered), resolved, in a stable order."""
    configs = []
    for part in profile["parts"]:
        space = part["space"]
        if spaces and space not in spaces:
            continue
        part_seeds = part.get("seeds", profile.get("seeds", [0]))
        _check_seeds(part_seeds, f"profile {profile.get('name')}")
        for entry in part.get("methods", []):
            me = method_entry(entry)
            if methods and me["method"] not in methods:
                continue
            for seed in (seeds if seeds is not None else me["seeds"] or part_seeds):
                configs.append(resolve(space, entry, seed, profile, part, overrides))
    return configs


def find_part(profile: Dict[str, Any], space: str) -> Dict[str, Any]:
    for part in profile["parts"]:
        if part["space"] == space:
            return part
    raise ConfigError(f"profile {profile.get('name')} has no part for space {space!r}; "
                      f"it covers: {', '.join(p['space'] for p in profile['parts'])}")
