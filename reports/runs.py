"""Reading run records (``harness.records`` schema ``harness.run/1``) into report-ready values.

Only ``harness.records.load_runs`` is used to read files; everything else here is pure lookup
with tolerant defaults, so a partial or odd record never breaks the report.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from harness.records import load_runs
from harness.registry import find_method, list_methods

# weakest first; "custom" (a user's own profile) is treated as a reduced scale below cpu
SCALE_ORDER = ["smoke", "custom", "cpu", "gpu-quick", "paper"]
GREY = "#7f7f7f"          # colour of a method the registry does not know (old records)
SPACE_NAMES = {"nb201": "NAS-Bench-201", "darts": "DARTS space"}
BENCH_COLS = [
    ("cifar10_test_200ep", "CIFAR-10"),
    ("cifar100_test_200ep", "CIFAR-100"),
    ("imagenet16_120_test_200ep", "ImageNet16-120"),
]


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
    """Methods a complete run store holds for ``space``: the core methods on NB201; core methods and the
    paper's variants on the DARTS space (in display order)."""
    if space == "nb201":
        return list_methods(order="display", role="core")
    if space == "darts":
        keep = set(list_methods(role="core")) | set(list_methods(role="variant"))
        return [m for m in list_methods(order="display") if m in keep]
    return []


def group_label(rec: Dict[str, Any]) -> str:
    """Display label of a record's group: the registry's label (with the variant), else the record's own."""
    cls = find_method(rec.get("method"))
    if cls is not None and hasattr(cls, "display_label"):
        return cls.display_label(rec.get("variant") or {})
    return rec.get("label") or str(rec.get("method"))


def group(records: Iterable[Dict[str, Any]], kind: str = "search", space: Optional[str] = None,
          scale: Optional[str] = None) -> "OrderedDict[Tuple[str, str, str], List[Dict[str, Any]]]":
    """(space, method, variant_key) -> records sorted by seed, groups in display order; ``scale`` keeps
    only the records of that scale (groups never pool scales when the caller loops over them)."""
    g: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
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
    if not scales:
        return "none"
    known = [s for s in scales if s in SCALE_ORDER]
    if len(known) < len(scales):
        return "smoke"     # unknown scale label: treat as the weakest
    return min(known, key=SCALE_ORDER.index)


def scales_present(records) -> List[str]:
    return sorted({scale_label(r) for r in records},
                  key=lambda s: (SCALE_ORDER.index(s) if s in SCALE_ORDER else -1, s))


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
    xs, ys = [], []
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


def last_val(rec) -> Optional[float]:
    if not is_ok(rec):
        return None
    _, ys = series(rec, "val_acc")
    return ys[-1] if ys else None


def bench_series(rec, col: str):
    xs, ys = [], []
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
    s = c.get("search") if isinstance(c.get("search"), dict) else {}
    if isinstance(s.get("epochs"), (int, float)):
        return int(s["epochs"])
    return None
