"""Published reference numbers (data/published/*.yaml) and the fixed deviation list.

``load_published()`` returns ``{source: document}`` for every YAML file except the genotype file
(owned elsewhere) and ``deviations.yaml``; ``load_deviations()`` returns the fixed deviation list.
Every entry carries its citation; numbers flagged ``unconfirmed`` or with a ``doubt`` are printed
with that flag wherever they are used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

_SKIP = {"genotypes.yaml", "deviations.yaml"}
#: the NAS-Bench-201 paper's document (``source:`` of data/published/nb201.yaml).  Published documents are named
#: after their paper ("nb201", "darts", "milenas", "gdas"); the names coincide with space and method names.
NB201_SOURCE = "nb201"


def published_dir() -> Path:
    """Folder of the published-number files (``$HARNESS_PUBLISHED_DIR`` overrides)."""
    env = os.environ.get("HARNESS_PUBLISHED_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data" / "published"


def load_published(folder: Optional[Path] = None) -> Dict[str, Dict[str, Any]]:
    folder = Path(folder) if folder else published_dir()
    out: Dict[str, Dict[str, Any]] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.yaml")):
        if p.name in _SKIP:
            continue
        with open(p) as fh:
            doc = yaml.safe_load(fh) or {}
        out[doc.get("source", p.stem)] = doc
    return out


def load_deviations(folder: Optional[Path] = None) -> List[Dict[str, Any]]:
    folder = Path(folder) if folder else published_dir()
    p = folder / "deviations.yaml"
    if not p.is_file():
        return []
    with open(p) as fh:
        doc = yaml.safe_load(fh) or {}
    return list(doc.get("deviations") or [])


def nb201_sets(pub: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The weight-sharing NB201 sets ``{"A": {...}, "B": {...}}`` (empty when the file is missing)."""
    doc = pub.get(NB201_SOURCE) or {}
    return {k: v for k, v in (doc.get("sets") or {}).items() if k in ("A", "B")}


def milenas_table1_rows(pub: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """MiLeNAS Table-1 rows of MiLeNAS itself (not the quoted baselines)."""
    t = ((pub.get("milenas") or {}).get("tables") or {}).get("cifar10_table1") or {}
    return [r for r in t.get("rows", []) if r.get("method") == "MiLeNAS"]


def table1_reference_rows(pub: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """All CIFAR-10 Table-1-style rows (MiLeNAS, DARTS, GDAS papers), each with its citation and protocol."""
    rows = []
    for src, key in (("milenas", "cifar10_table1"), ("darts", "cifar10_table1"), ("gdas", "cifar_table1")):
        doc = pub.get(src) or {}
        t = (doc.get("tables") or {}).get(key)
        if not t:
            continue
        for r in t.get("rows", []):
            rr = dict(r)
            rr["citation"] = doc.get("citation", src)
            rr["protocol"] = t.get("protocol", {})
            rr["table_doubt"] = t.get("doubt")
            rows.append(rr)
    return rows


def gumbel_reference(pub: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    t = ((pub.get("milenas") or {}).get("tables") or {}).get("gumbel_section5") or {}
    out = {}
    for r in t.get("rows", []):
        key = "milenas-gumbel" if "Gumbel" in r["method"] else "gdas"
        out[key] = r
    return out


def citation(pub: Dict[str, Dict[str, Any]], source: str) -> str:
    return (pub.get(source) or {}).get("citation", source)
