"""Reading run records (``harness.records`` schema ``harness.run/1``) into report-ready values.

Only ``harness.records.load_runs`` is used to read files; everything else here is pure lookup
with tolerant defaults, so a partial or odd record never breaks the report.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple, Type

from harness.records import load_runs
from harness.registry import find_method, get_space, list_methods, list_spaces
from harness.scales import SCALES, strength, weakest

if TYPE_CHECKING:
    from harness.spaces.base import SearchSpace

#: scales weakest first (``harness.scales.SCALES``; "custom", a user's own profile, is a reduced scale below cpu)
SCALE_ORDER = SCALES
GREY = "#7f7f7f"  # colour of a method the registry does not know (old records)


def load(runs_dir) -> List[Dict[str, Any]]:
    p = Path(runs_dir)
    return load_runs(p) if p.exists() else []


def variant_key(variant: Optional[Dict[str, Any]]) -> str:
    return json.dumps(variant or {}, sort_keys=True)


def lam(rec: Dict[str, Any]) -> Optional[float]:
    """λ of a record: ``config.method_cfg.lam`` when the resolved config has it, else the variant's."""
    mc = (rec.get("config") or {}).get("method_cfg")
    v = mc.get("lam") if isinstance(mc, dict) else None
    if v is None:
        v = (rec.get("variant") or {}).get("lam")
    return _num(v)


def is_default_variant(rec: Dict[str, Any]) -> bool:
    return not (rec.get("variant") or {})


# ------------------------------------------------------------------ method metadata (asked of the registry)
def method_label(method: Optional[str]) -> str:
    """The registered class's label; the raw name for a method the registry does not know."""
    cls = find_method(method)
    return (getattr(cls, "label", "") or str(method)) if cls is not None else str(method)


def method_color(method: Optional[str]) -> str:
    cls = find_method(method)
    return getattr(cls, "color", GREY) if cls is not None else GREY


def method_rank(method: Optional[str]) -> int:
    cls = find_method(method)
    return int(getattr(cls, "display_rank", 100)) if cls is not None else 10_000


def expected_methods(space: str) -> List[str]:
    """Methods a complete run store holds for ``space`` (in display order): those of the roles the space expects
    (``SearchSpace.expected_roles``: the core methods on NB201; core methods and the paper's variants on the
    DARTS space); none for a space the registry does not know."""
    cls = space_class(space)
    if cls is None:
        return []
    return [m for m in list_methods(order="display") if getattr(find_method(m), "role", "core") in cls.expected_roles]


def core_methods() -> List[str]:
    """The core methods (the ones the paper compares), in display order."""
    return list_methods(order="display", role="core")


# ------------------------------------------------------------------ space metadata (asked of the registry)
def space_class(space: Optional[str]) -> Optional[Type[SearchSpace]]:
    """The registered space class; None for a space the registry does not know (old records)."""
    return get_space(space) if space is not None and space in list_spaces() else None


def space_label(space: Optional[str]) -> str:
    """The registered space's label ("NAS-Bench-201"); the raw name for a space the registry does not know."""
    cls = space_class(space)
    return (cls.label or str(space)) if cls is not None else str(space)


def space_rank(space: Optional[str]) -> Tuple[int, str]:
    """Sort key of a space in reports: the class's ``display_rank``, unknown spaces last, ties by name."""
    cls = space_class(space)
    return (int(cls.display_rank) if cls is not None else 10_000, str(space))


def spaces(judged_by: Optional[str] = None, figure_kind: Optional[str] = None) -> List[str]:
    """Registered spaces in display order; ``judged_by`` keeps those whose cells are judged that way
    ("benchmark" / "evaluation", ``SearchSpace.cell_judged_by``), ``figure_kind`` those that support a figure."""
    out = []
    for name in sorted(list_spaces(), key=space_rank):
        cls = get_space(name)
        if judged_by is not None and cls.cell_judged_by != judged_by:
            continue
        if figure_kind is not None and figure_kind not in cls.figure_kinds:
            continue
        out.append(name)
    return out


def spaces_present(records: Iterable[Dict[str, Any]], kind: Optional[str] = None, registered: bool = True) -> List[str]:
    """Spaces of ``records`` (of ``kind`` when given) in display order; ``registered=False`` also keeps spaces
    the registry does not know (after the known ones)."""
    names = {str(r.get("space")) for r in records if kind is None or r.get("kind", "search") == kind}
    if registered:
        names &= set(list_spaces())
    return sorted(names, key=space_rank)


class _SpaceLabels(Mapping):
    """space name → label, asked of the registry at every lookup (for readers of ``SPACE_NAMES``)."""

    def __getitem__(self, space: str) -> str:
        if space_class(space) is None:
            raise KeyError(space)
        return space_label(space)

    def __iter__(self):
        return iter(spaces())

    def __len__(self) -> int:
        return len(list_spaces())


#: read-only view of every registered space's label; prefer ``space_label``
SPACE_NAMES: Mapping = _SpaceLabels()


def report_columns(space: Optional[str]) -> List[Tuple[str, str]]:
    """(arch_info key, short name) of the benchmark columns a report shows of a cell of ``space``."""
    cls = space_class(space)
    return [(c.key, c.name) for c in cls.report_columns] if cls is not None else []


def arch_cells(space: Optional[str], text: Optional[str]) -> Dict[str, List[Tuple[int, int, str]]]:
    """Edges ``(input, node, op)`` of each cell of a recorded arch text (``SearchSpace.report_cells``);
    {} for a space the registry does not know or a text it cannot parse."""
    cls = space_class(space)
    if cls is None or not text:
        return {}
    try:
        return cls.report_cells(str(text))
    except (ValueError, NotImplementedError):  # ArchFormatError (an old or hand-edited record); no codec
        return {}


def group_label(rec: Dict[str, Any]) -> str:
    """Display label of a record's group: the registry's label (with the variant), else the record's own."""
    cls = find_method(rec.get("method"))
    if cls is not None and hasattr(cls, "display_label"):
        return cls.display_label(rec.get("variant") or {})
    return rec.get("label") or str(rec.get("method"))


def group(
    records: Iterable[Dict[str, Any]], kind: str = "search", space: Optional[str] = None, scale: Optional[str] = None
) -> "OrderedDict[Tuple[str, str, str], List[Dict[str, Any]]]":
    """(space, method, variant_key) -> records sorted by seed, groups in display order; ``scale`` keeps
    only the records of that scale (groups never pool scales when the caller loops over them)."""
    g: Dict[Tuple[Any, Any, str], List[Dict[str, Any]]] = {}  # space/method None only in malformed records
    for r in records:
        if r.get("kind", "search") != kind:
            continue
        if space is not None and r.get("space") != space:
            continue
        if scale is not None and scale_label(r) != scale:
            continue
        g.setdefault((r.get("space"), r.get("method"), variant_key(r.get("variant"))), []).append(r)
    keys = sorted(g, key=lambda k: (k[0] or "", method_rank(k[1]), k[1] or "", k[2] != "{}", k[2]))
    return OrderedDict((k, sorted(g[k], key=lambda r: (r.get("seed") is None, r.get("seed")))) for k in keys)


def is_ok(rec: Dict[str, Any]) -> bool:
    return rec.get("status") == "ok" and rec.get("final") is not None


def failure_text(rec: Dict[str, Any]) -> str:
    st = rec.get("status")
    if st == "running":
        return "running (unfinished)"
    f = rec.get("failure") or {}
    reason = f.get("reason") or "no reason recorded"
    ep = f.get("epoch")
    return f"failed: {reason}" + (f" (epoch {ep})" if ep is not None else "")


def scale_label(rec: Dict[str, Any]) -> str:
    """A record's scale ("smoke" when not recorded)."""
    return str(rec.get("scale") or "smoke")


def by_scale(records: Iterable[Dict[str, Any]]) -> "OrderedDict[str, List[Dict[str, Any]]]":
    """scale -> its records, weakest scale first: verdicts and statistics are computed per scale."""
    recs = list(records)
    return OrderedDict((s, [r for r in recs if scale_label(r) == s]) for s in scales_present(recs))


def scale_of(records: Iterable[Dict[str, Any]]) -> str:
    """The lowest scale among the records ('none' when empty): a mix is only as strong as its weakest run."""
    scales = [scale_label(r) for r in records]
    return weakest(scales) if scales else "none"


def scales_present(records) -> List[str]:
    return sorted({scale_label(r) for r in records}, key=lambda s: (strength(s), s))


def bench_value(arch_info: Optional[Dict[str, Any]], col: str) -> Optional[float]:
    """A benchmark column from arch_info (``arch_info["benchmark"][col]`` or ``arch_info[col]``)."""
    if not arch_info:
        return None
    b = arch_info.get("benchmark")
    v = b.get(col) if isinstance(b, dict) else None
    if v is None:
        v = arch_info.get(col)
    return _num(v)


def _num(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def final_value(rec: Dict[str, Any], key: str) -> Optional[float]:
    f = rec.get("final") or {}
    return _num(f.get(key))


def final_bench(rec: Dict[str, Any], col: str) -> Optional[float]:
    if not is_ok(rec):
        return None
    return bench_value((rec.get("final") or {}).get("arch_info"), col)


def epochs(rec: Dict[str, Any]) -> List[Dict[str, Any]]:
    return list(rec.get("epochs") or [])


def series(rec: Dict[str, Any], key: str) -> Tuple[List[int], List[float]]:
    xs: List[int] = []
    ys: List[float] = []
    for e in epochs(rec):
        v = _num(e.get(key))
        if v is not None:
            xs.append(int(e.get("epoch", len(xs))))
            ys.append(v)
    return xs, ys


def gap_series(rec):
    xs, ys = [], []
    for e in epochs(rec):
        a, b = _num(e.get("train_acc")), _num(e.get("val_acc"))
        if a is not None and b is not None:
            xs.append(int(e.get("epoch", len(xs))))
            ys.append(a - b)
    return xs, ys


def last_gap(rec) -> Optional[float]:
    """train_acc − val_acc at the last recorded epoch of a finished run."""
    if not is_ok(rec):
        return None
    _, ys = gap_series(rec)
    return ys[-1] if ys else None


def best_val(rec) -> Optional[float]:
    if not is_ok(rec):
        return None
    _, ys = series(rec, "val_acc")
    return max(ys) if ys else None


def bench_series(rec, col: str):
    xs: List[int] = []
    ys: List[float] = []
    for e in epochs(rec):
        v = bench_value(e.get("arch_info"), col)
        if v is not None:
            xs.append(int(e.get("epoch", len(xs))))
            ys.append(v)
    return xs, ys


def prov(rec) -> Dict[str, Any]:
    return rec.get("provenance") or {}


def dataset_label(records) -> str:
    labels = sorted({str(prov(r).get("dataset")) for r in records if prov(r).get("dataset")})
    return "; ".join(labels) if labels else "dataset not recorded"


def devices(records) -> List[str]:
    return sorted({str(prov(r).get("device")) for r in records if prov(r).get("device")})


def is_gpu_device(dev: Optional[str]) -> bool:
    d = (dev or "").lower()
    return any(k in d for k in ("cuda", "gpu", "nvidia", "h100", "h200", "a100", "v100", "rtx"))


def seeds(records) -> List[Any]:
    return sorted({r.get("seed") for r in records if r.get("seed") is not None})


def n_epochs(rec) -> int:
    return len(epochs(rec))


def search_epochs_planned(rec) -> Optional[int]:
    c = rec.get("config") or {}
    for k in ("epochs", "search_epochs"):
        if isinstance(c.get(k), (int, float)):
            return int(c[k])
    s = c.get("search")
    if isinstance(s, dict) and isinstance(s.get("epochs"), (int, float)):
        return int(s["epochs"])
    return None
