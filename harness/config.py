"""Profiles, protocols and the resolved config of one run.

* A **protocol** holds the reference hyperparameters of a space: data split, supernet size, optimizers,
  epochs (the shared settings, ``harness/protocols/<space>.yaml``), and per-method rows.  Rows come from
  every package named in the ``harness.protocols`` entry-point group (``harness.registry.protocol_packages``:
  the harness's own ``harness/protocols``, and a plugin's folder of ``<space>.yaml`` files holding
  ``methods:`` rows for its own methods; see ``docs/plugins.md``); the resolved config's
  ``protocol_provenance`` names the package and file of the shared settings and of the method's row.
* A **profile** (``harness/profiles/<name>.yaml`` or any YAML path) sets the scale: seeds, and per
  space a "part" (keys: space, methods, seeds, data, supernet, optim, epochs, epochs_by_method,
  max_steps_per_epoch, method_overrides) with methods or method variants
  (``{method: milenas, variant: {lam: 0.1}}``; an entry's own ``seeds: [...]`` replaces the part's), data subset
  sizes, image size, supernet size, epochs.  ``smoke``, ``cpu``, ``paper``, ``gpu-quick`` ship with the harness.
* The **resolved config** of one run = protocol ⊕ protocol.methods[method] ⊕ profile part ⊕
  variant ⊕ command-line ``--set`` overrides.  It is validated, written into the record, hashed.

Resolved config layout::

    {space, method, variant, label, seed, profile, scale,
     data: {split, val_sampling, n_train, n_val, n_eval, image_size, batch_size, augment, dataset},
     space_cfg: {...supernet kwargs...},
     optim: {w_lr, w_lr_min, momentum, nesterov, w_wd, a_lr, a_betas, a_wd, grad_clip, grad_clip_target},
     method_cfg: {...method options...},
     epochs, max_steps_per_epoch, early_stop, eval_batch_size, selection, precision: {allow_tf32[, deterministic]},
     speed: {memory_format, autocast, compile[, compile_mode]}, protocol_source,
     protocol_provenance: {settings: {package, file}, method_row: {package, file} | null}, deviations: [str]}

``method_cfg`` holds every option of the method with its effective value: the protocol row's, the profile's,
the variant's, ``--set``'s, else the option's default (``harness.schema.with_defaults``), so the config hash
covers them.  Every section is checked by ``harness.schema.validate_section`` against its table of
``Option``s (``DATA_OPTIONS``, ``OPTIM_OPTIONS``, ``harness.methods.SPEED_OPTIONS``,
``harness.precision.PRECISION_OPTIONS``, the method's ``options``, the space's ``supernet_options``); number
text such as ``1e-3`` (a string to PyYAML) becomes a number where the option is a number.

``speed`` (``harness.methods.SPEED_DEFAULTS``): how a step runs (memory layout, bf16 autocast, torch.compile);
a profile may set it (``speed:`` at the top level) and ``--set speed.KEY=VALUE`` / ``--compile`` override it.

``selection`` (``last`` | ``best_val_reference`` | ``best_val_batchstats``, see ``harness.runner``) and
``precision`` (``harness.precision``) default per protocol row; a protocol row's ``reference_optim``
names optimizer settings its reference code used where the harness runs every method alike (e.g.
the MiLeNAS code clips α, not the weights): each difference is listed in the run's deviations.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from harness import registry
from harness.data import SPLITS  # data split names (coincide with the space names; see harness/data.py)
from harness.errors import ConfigError
from harness.methods import CLIP_TARGETS, SPEED_DEFAULTS, SPEED_OPTIONS, speed_deviations, validate_speed
from harness.precision import DEFAULT_PRECISION, PRECISION_OPTIONS, validate_precision
from harness.registry import UnknownNameError, get_method, get_space
from harness.scales import SCALES
from harness.schema import Option, coerce_section, validate_section, with_defaults
from harness.selection import SELECTION_RULES

HERE = Path(__file__).resolve().parent
PROFILE_DIR = HERE / "profiles"
PROTOCOL_DIR = HERE / "protocols"


def _subset_rule(value: int) -> Optional[str]:
    ok = value % 10 == 0 and value <= 25000
    return None if ok else "a positive multiple of 10 up to 25000 (class-balanced subset)"


def _betas_rule(value: Sequence[float]) -> Optional[str]:
    return None if len(value) == 2 and all(0 <= b < 1 for b in value) else "two numbers in [0, 1)"


def _subset_option(doc: str) -> Option:
    """A class-balanced subset size: null (all) or a positive multiple of 10 up to 25000."""
    return Option(doc, int, nullable=True, minimum=1, rule=_subset_rule)


#: the config section ``data`` (harness.data reads it)
DATA_OPTIONS: Dict[str, Option] = {
    "split": Option("search-train / search-val split (harness.data.SPLITS)", str, choices=tuple(SPLITS)),
    "val_sampling": Option(
        "paired: a random val image per train image (xautodl) | fresh-iterator (quark0)",
        str,
        choices=("paired", "fresh-iterator"),
    ),
    "n_train": _subset_option("search-train images (class-balanced subset; null: all 25000)"),
    "n_val": _subset_option("search-val images (class-balanced subset; null: all 25000)"),
    "n_eval": _subset_option("search-val images evaluated per epoch (null: n_val)"),
    "image_size": Option("image side in pixels (downsampled from 32)", int, minimum=8, maximum=32),
    "batch_size": Option("images per batch", int, minimum=1),
    "augment": Option("crop + flip on the search-train batches", bool),
    "reference_eval_augment": Option("the per-epoch evaluation uses the training transform (quark0)", bool),
    "dataset": Option("the dataset", str, choices=("cifar10",)),
}
#: the config section ``optim`` (harness.methods reads it)
OPTIM_OPTIONS: Dict[str, Option] = {
    "w_lr": Option("weight SGD learning rate at epoch 0", float, minimum=0, exclusive=True),
    "w_lr_min": Option("weight learning rate at the end of the cosine schedule", float, minimum=0),
    "momentum": Option("weight SGD momentum", float, minimum=0, maximum=1, exclusive_maximum=True),
    "nesterov": Option("Nesterov momentum", bool),
    "w_wd": Option("weight decay of the weights", float, minimum=0),
    "a_lr": Option("α Adam learning rate", float, minimum=0, exclusive=True),
    "a_betas": Option("α Adam betas", list, item_kind=float, rule=_betas_rule),
    "a_wd": Option("α Adam weight decay (coupled L2)", float, minimum=0),
    "grad_clip": Option("max total gradient norm (<= 0: no clipping)", float),
    "grad_clip_target": Option("which gradients the clip norm covers (harness.methods)", str, choices=CLIP_TARGETS),
}
#: the resolved config's top-level settings
RUN_OPTIONS: Dict[str, Option] = {
    "epochs": Option("search epochs", int, minimum=1),
    "max_steps_per_epoch": Option(
        "at most this many iterations per epoch (null: the whole split)", int, minimum=1, nullable=True
    ),
    "early_stop": Option("stop the search early (harness.runner)", bool),
    "eval_batch_size": Option("batch size of the per-epoch evaluation", int, minimum=1),
    "selection": Option("which epoch's cell a run reports (harness.selection)", str, choices=tuple(SELECTION_RULES)),
}
#: keys of a protocol file and of one method row in it
PROTOCOL_KEYS = {"source", "data", "space", "optim", "epochs", "selection", "methods"}
ROW_KEYS = {
    "method",
    "data",
    "space",
    "optim",
    "epochs",
    "selection",
    "reference_optim",
    "reference_note",
    "reference_deviations",  # texts every run of the row records as deviations (e.g. a reconstructed reference)
}
PART_KEYS = {
    "space",
    "methods",
    "data",
    "supernet",
    "optim",
    "epochs",
    "epochs_by_method",
    "max_steps_per_epoch",
    "seeds",
    "method_overrides",
    "early_stop",
    "selection",
    "hooks",
}


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
            raise ConfigError(
                f"unknown {what} {str(name_or_path)!r}; known {what}s: "
                f"{', '.join(list_yaml_names(directory))} (or give the path of a {what} YAML file)"
            )
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


def protocol_files(space: str) -> List[Tuple[Dict[str, str], Path]]:
    """``({package, file}, path)`` of every ``<space>.yaml`` in the protocol packages
    (``harness.registry.protocol_packages``), the harness's own first.  ``file`` is the path inside the
    installed package (``harness/protocols/nb201.yaml``), the same on every machine."""
    out = []
    for dist, module in registry.protocol_packages():
        folder = _package_folder(module)
        path = folder / f"{space}.yaml" if folder is not None else None
        if path is not None and path.is_file():
            out.append(({"package": dist, "file": f"{module.replace('.', '/')}/{space}.yaml"}, path))
    return out


def _package_folder(module: str) -> Optional[Path]:
    if module == registry.HARNESS_PROTOCOLS:
        return PROTOCOL_DIR
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ConfigError(
            f"protocol package {module!r} (entry-point group harness.protocols) cannot be imported: {exc}"
        ) from exc
    if spec is None:
        raise ConfigError(f"protocol package {module!r} (entry-point group harness.protocols) not found")
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


def load_protocol(space: str) -> Dict[str, Any]:
    """The protocol of ``space``: the shared settings from the one file that has them, the method rows of
    every file; ``origins`` maps ``"settings"`` and each method to its ``{package, file}``.  A row given by
    two files, or shared settings given twice: one ``ConfigError`` line naming both."""
    protocol: Dict[str, Any] = {}
    origins: Dict[str, Dict[str, str]] = {}
    rows: Dict[str, Any] = {}
    for origin, path in protocol_files(space):
        doc = _read_yaml(path)
        where = f"protocol {origin['file']} ({origin['package']})"
        unknown = sorted(set(doc) - PROTOCOL_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {', '.join(sorted(PROTOCOL_KEYS))}")
        shared = {k: v for k, v in doc.items() if k != "methods"}
        if set(shared) - {"source"}:
            if "settings" in origins:
                first = origins["settings"]
                raise ConfigError(
                    f"{where} sets the {space} protocol's shared settings, which {first['file']} "
                    f"({first['package']}) already sets; a plugin's file holds only 'methods:' rows"
                )
            protocol.update(shared)
            origins["settings"] = origin
        methods = doc.get("methods") or {}
        if not isinstance(methods, dict):
            raise ConfigError(f"{where}: 'methods' must be a mapping of method name to row")
        for name, row in methods.items():
            if name in rows:
                raise ConfigError(
                    f"{where}: the {space} row of {name} is given twice (also by "
                    f"{origins[name]['file']} ({origins[name]['package']}))"
                )
            if not isinstance(row, dict) or set(row) - ROW_KEYS:
                raise ConfigError(
                    f"{where}: the row of {name} must be a mapping with keys among "
                    f"{', '.join(sorted(ROW_KEYS))}, not {row!r}"
                )
            rows[name] = row
            origins[name] = origin
    if "settings" not in origins:
        looked = ", ".join(f"{m} ({d})" for d, m in registry.protocol_packages())
        raise ConfigError(f"no protocol for space {space!r} (looked for {space}.yaml in: {looked})")
    protocol["methods"] = rows
    protocol["origins"] = origins
    return protocol


def deep_merge(base: Dict[str, Any], over: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A deep copy of ``base`` with ``over`` laid on it: nested mappings merge key by key, anything else
    (lists too) is replaced.  The one deep merge of the harness (profiles, protocols, hypergrad settings)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


_merge = deep_merge  # the name this module's resolution code uses


def method_entry(entry: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A part's method entry: ``"milenas"`` or ``{method: milenas, variant: {lam: 0.1}, seeds: [0, 1]}``
    (``seeds``, optional: this entry's seeds instead of the part's, e.g. fewer seeds of a costly method)."""
    if isinstance(entry, str):
        return {"method": entry, "variant": {}, "seeds": None}
    if isinstance(entry, dict) and isinstance(entry.get("method"), str):
        unknown = set(entry) - {"method", "variant", "label", "seeds"}
        if unknown:
            raise ConfigError(
                f"method entry {entry['method']}: unknown key(s) {', '.join(sorted(unknown))} "
                "(allowed: method, variant, label, seeds)"
            )
        variant = entry.get("variant") or {}
        if not isinstance(variant, dict):
            raise ConfigError(f"variant of {entry['method']} must be a mapping, not {variant!r}")
        seeds = entry.get("seeds")
        if seeds is not None:
            _check_seeds(seeds, f"method entry {entry['method']}")
        return {"method": entry["method"], "variant": dict(variant), "label": entry.get("label"), "seeds": seeds}
    raise ConfigError(f"a method entry must be a name or {{method: NAME, variant: {{...}}}}, not {entry!r}")


def variant_suffix(variant: Optional[Dict[str, Any]]) -> str:
    """The variant's part of run ids and cell names: ``-lam0.1`` (keys sorted; empty for no variant)."""
    return "".join(f"-{k}{v}" for k, v in sorted((variant or {}).items()))


def make_label(method: str, variant: Dict[str, Any]) -> str:
    """The method class's display label, with the variant (``MiLeNAS (λ=0.1)``)."""
    return get_method(method).display_label(variant)


def _compose_run_id(space: str, middle: str, seed: int) -> str:
    """The one builder of run ids: ``{space}__{middle}__s{seed}``, ``middle`` made file-name safe."""
    return f"{space}__{re.sub(r'[^A-Za-z0-9._-]+', '_', middle)}__s{seed}"


def run_id(space: str, method: str, variant: Dict[str, Any], seed: int) -> str:
    """A search run's id: ``nb201__milenas-lam0.1__s3``."""
    return _compose_run_id(space, f"{method}{variant_suffix(variant)}", seed)


def eval_run_id(space: str, cell_name: str, seed: int) -> str:
    """An evaluation run's id: ``darts__eval__DARTS_V2__s0`` (``cell_name``: harness.selection.resolve_cell)."""
    return _compose_run_id(space, f"eval__{cell_name}", seed)


def config_run_id(cfg: Dict[str, Any]) -> str:
    """The run id of a resolved config: an evaluation config carries its own, a search config's is built."""
    if cfg.get("run_id"):
        return str(cfg["run_id"])
    return run_id(cfg["space"], cfg["method"], cfg["variant"], cfg["seed"])


def validate(cfg: Dict[str, Any]) -> None:
    d, m = cfg["data"], cfg["method_cfg"]
    for section, options in (("data", DATA_OPTIONS), ("optim", OPTIM_OPTIONS)):
        validate_section(cfg[section], options, section)
        missing = [k for k in options if k not in cfg[section]]
        if missing:
            raise ConfigError(f"{section}: missing key(s) {missing} (the space's protocol file sets them)")
    if d.get("n_eval") and d.get("n_val") and d["n_eval"] > d["n_val"]:
        raise ConfigError(f"data.n_eval ({d['n_eval']}) cannot exceed data.n_val ({d['n_val']})")
    supernet_options = getattr(get_space(cfg["space"]), "supernet_options", None)
    if supernet_options is not None:
        validate_section(cfg["space_cfg"], supernet_options, f"{cfg['space']} supernet", noun="option")
    validate_section({k: cfg[k] for k in RUN_OPTIONS if k in cfg}, RUN_OPTIONS, "")
    get_method(cfg["method"]).validate_options(m)
    validate_precision(cfg["precision"])
    validate_speed(cfg["speed"])


def _coerce_numbers(cfg: Dict[str, Any]) -> None:
    """Number text (``1e-3`` from ``--set`` or a YAML file) becomes a number where the option is a number."""
    for section, options in (
        ("data", DATA_OPTIONS),
        ("optim", OPTIM_OPTIONS),
        ("speed", SPEED_OPTIONS),
        ("precision", PRECISION_OPTIONS),
        ("method_cfg", get_method(cfg["method"]).options),
        ("space_cfg", getattr(get_space(cfg["space"]), "supernet_options", None) or {}),
    ):
        if isinstance(cfg.get(section), dict):
            cfg[section] = coerce_section(cfg[section], options)
    for key, option in RUN_OPTIONS.items():
        if key in cfg:
            cfg[key] = option.coerce(cfg[key])


def _protocol_row_deviations(cfg: Dict[str, Any], protocol: Dict[str, Any]) -> List[str]:
    """Where the method's protocol row came from when it is not the harness's own file, or that it has none."""
    settings, row = protocol["origins"]["settings"], protocol["origins"].get(cfg["method"])
    if row is None:
        return [
            f"no {cfg['space']} protocol row for {cfg['method']}: run with the protocol's shared settings "
            f"({settings['file']}, {settings['package']}) and the method's option defaults"
        ]
    if row != settings:
        return [
            f"{cfg['space']} protocol row of {cfg['method']} from {row['file']} ({row['package']}); shared "
            f"settings from {settings['file']} ({settings['package']})"
        ]
    return []


#: data settings that change what a search computes (compared with the protocol; subsets and image size have
#: their own deviation texts, the per-epoch measurement's ``n_eval`` changes no search)
SEARCH_DATA_KEYS = ("split", "val_sampling", "batch_size", "augment", "reference_eval_augment")


def _deviations(cfg: Dict[str, Any], protocol: Dict[str, Any], proto_epochs: int, prow: Dict[str, Any]) -> List[str]:
    """How this run differs from its space's reference protocol (labels for reports)."""
    out = []
    d, pd = cfg["data"], protocol["data"]
    if d["image_size"] != pd["image_size"]:
        out.append(
            f"images downsampled to {d['image_size']}x{d['image_size']} "
            f"(reference {pd['image_size']}x{pd['image_size']})"
        )
    if d.get("n_train") or d.get("n_val"):
        out.append(
            f"class-balanced subsets: {d.get('n_train') or 25000} search-train / {d.get('n_val') or 25000} "
            "search-val images (reference 25000/25000)"
        )
    ref_data = deep_merge(pd, prow.get("data"))
    for key in SEARCH_DATA_KEYS:  # what the search computes on (n_eval, eval batches: measurement only)
        if key in ref_data and d.get(key) != ref_data[key]:
            out.append(f"data.{key}={d.get(key)} (reference {ref_data[key]})")
    space_options = get_space(cfg["space"]).supernet_options
    ref_space = deep_merge(protocol["space"], prow.get("space"))
    for key, value in cfg["space_cfg"].items():
        ref = ref_space.get(key, space_options[key].default if key in space_options else None)
        if ref is not None and value != ref:
            out.append(f"supernet {key}={value} (reference {ref})")
    if cfg["epochs"] != proto_epochs:
        out.append(f"{cfg['epochs']} search epochs (reference {proto_epochs})")
    if cfg.get("max_steps_per_epoch"):
        out.append(f"at most {cfg['max_steps_per_epoch']} iterations per epoch")
    if cfg.get("early_stop"):
        out.append("early_stop: the search ends at the first epoch whose cell meets the MiLeNAS early-stop rule")
    ref_optim = deep_merge(protocol["optim"], prow.get("optim"))
    for key, value in cfg["optim"].items():
        if ref_optim.get(key) != value:
            out.append(f"optim.{key}={value} (reference {ref_optim.get(key)})")
    for key, ref in (prow.get("reference_optim") or {}).items():
        if cfg["optim"].get(key) != ref:
            out.append(
                f"optim.{key}={cfg['optim'].get(key)} (the {cfg['method']} reference code uses {ref}: "
                f"{prow.get('reference_note', 'see the protocol file')})"
            )
    out.extend(get_method(cfg["method"]).option_deviations(cfg["method_cfg"], prow.get("method") or {}))
    out.extend(speed_deviations(cfg["speed"]))
    if cfg["precision"].get("allow_tf32"):
        out.append("TF32 allowed for cuDNN and matmul (the references ran in full FP32)")
    if cfg["selection"] != prow.get("selection", protocol.get("selection", "last")):
        out.append(f"cell selection {cfg['selection']} (reference {prow.get('selection', protocol.get('selection'))})")
    out.extend(get_space(cfg["space"]).method_deviations(get_method(cfg["method"])))
    out.extend(str(d) for d in prow.get("reference_deviations") or [])
    out.extend(_protocol_row_deviations(cfg, protocol))
    return out


def resolve(
    space: str,
    entry: Union[str, Dict[str, Any]],
    seed: int,
    profile: Dict[str, Any],
    part: Dict[str, Any],
    overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The validated, fully resolved config of one run."""
    me = method_entry(entry)
    method, variant = me["method"], me["variant"]
    try:
        get_space(space)
        get_method(method)
    except UnknownNameError as exc:
        raise ConfigError(str(exc)) from exc
    supported = get_method(method).spaces
    if supported is not None and space not in supported:
        raise ConfigError(f"method {method} does not search space {space} (it supports: {', '.join(supported)})")
    protocol = load_protocol(space)
    prow = protocol["methods"].get(method, {})
    variant = coerce_section(variant, get_method(method).options)  # --variant sigma=1e-1: a number
    proto_epochs = int(prow.get("epochs", protocol["epochs"]))
    cfg: Dict[str, Any] = {
        "space": space,
        "method": method,
        "variant": variant,
        "label": me.get("label") or make_label(method, variant),
        "seed": int(seed),
        "profile": profile.get("name", "custom"),
        "scale": profile.get("scale", "custom"),
        "data": _merge(
            _merge({"dataset": "cifar10", "n_train": None, "n_val": None, "n_eval": None}, protocol["data"]),
            prow.get("data"),
        ),
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
        "protocol_provenance": {
            "settings": protocol["origins"]["settings"],
            "method_row": protocol["origins"].get(method),
        },
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
    # after-epoch hooks (harness.hooks): the default-on ones (collapse diagnostics), the part's merged over them
    from harness.hooks import DEFAULT_HOOKS

    cfg["hooks"] = _merge(copy.deepcopy(DEFAULT_HOOKS), part.get("hooks") or {})
    cfg["method_cfg"] = _merge(cfg["method_cfg"], (part.get("method_overrides") or {}).get(method))
    cfg["method_cfg"] = _merge(cfg["method_cfg"], variant)
    for dotted, value in (overrides or {}).items():
        _set_dotted(cfg, dotted, value)
    _coerce_numbers(cfg)
    validate(cfg)
    cfg["method_cfg"] = with_defaults(cfg["method_cfg"], get_method(method).options)
    from harness.hooks import resolve_hooks

    cfg["hooks"] = resolve_hooks(cfg["hooks"], cfg)
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
    """``["optim.w_lr=0.05", "method_cfg.lam=0.1"]`` → dict; values parsed as YAML scalars (number text that
    YAML 1.1 keeps as a string, ``1e-3``, becomes a number when the config is resolved, where the key is a
    number: ``harness.schema.coerce_section``)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


def select_matrix(
    profile_name: Union[str, Path],
    spaces: Optional[Sequence[str]] = None,
    methods: Optional[Sequence[str]] = None,
    overrides: Optional[Dict[str, Any]] = None,
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The profile and its resolved run configs narrowed to ``spaces`` / ``methods`` (``reproduce``, ``plan``,
    ``calibrate``). An unknown name, or a selection without runs, is one ``ConfigError`` line."""
    profile = load_profile(profile_name)
    try:
        for name in methods or []:
            get_method(name)
        for name in spaces or []:
            get_space(name)
    except UnknownNameError as exc:
        raise ConfigError(str(exc)) from exc
    configs = expand_profile(profile, spaces=spaces, methods=methods, overrides=overrides)
    if not configs:
        raise ConfigError("no runs selected (check --spaces / --methods against the profile)")
    return profile, configs


def expand_profile(
    profile: Dict[str, Any],
    spaces: Optional[Sequence[str]] = None,
    methods: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    overrides: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]:
    """Every run of a profile (optionally filtered), resolved, in a stable order.  A registered method in
    ``methods`` that no part of the profile names is added to every part (with the part's sizes and seeds)."""
    configs = []
    named = {method_entry(e)["method"] for part in profile["parts"] for e in part.get("methods", [])}
    added = [m for m in methods or [] if m not in named]
    for part in profile["parts"]:
        space = part["space"]
        if spaces and space not in spaces:
            continue
        part_seeds = part.get("seeds", profile.get("seeds", [0]))
        _check_seeds(part_seeds, f"profile {profile.get('name')}")
        for entry in list(part.get("methods", [])) + added:
            me = method_entry(entry)
            if methods and me["method"] not in methods:
                continue
            for seed in seeds if seeds is not None else me["seeds"] or part_seeds:
                configs.append(resolve(space, entry, seed, profile, part, overrides))
    return configs


def find_part(profile: Dict[str, Any], space: str) -> Dict[str, Any]:
    for part in profile["parts"]:
        if part["space"] == space:
            return part
    raise ConfigError(
        f"profile {profile.get('name')} has no part for space {space!r}; "
        f"it covers: {', '.join(p['space'] for p in profile['parts'])}"
    )
