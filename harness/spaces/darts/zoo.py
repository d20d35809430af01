"""Published DARTS-space genotypes, read from ``<project>/data/published/genotypes.yaml``.

Each entry: ``name``, optional ``aliases``, ``genotype`` (quark0 text form), ``source``
(``owner/repo:path``), optional ``published`` numbers, ``inferred`` and ``computed_params_M``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, List

from harness.errors import DataError
from harness.paths import PROJECT_ROOT

ZOO_PATH: Path = PROJECT_ROOT / "data" / "published" / "genotypes.yaml"


@functools.lru_cache(maxsize=None)
def _load() -> Dict[str, Dict[str, Any]]:
    import yaml

    try:
        data = yaml.safe_load(ZOO_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"genotype zoo not found: {ZOO_PATH}") from None
    except yaml.YAMLError as e:
        raise DataError(f"genotype zoo {ZOO_PATH} is not valid YAML: {e}") from None
    entries = data.get("genotypes") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"genotype zoo {ZOO_PATH} has no 'genotypes' list")
    table: Dict[str, Dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry or "genotype" not in entry:
            raise DataError(f"genotype zoo {ZOO_PATH}: every entry needs 'name' and 'genotype' ({entry!r})")
        for name in [entry["name"], *entry.get("aliases", [])]:
            if name in table:
                raise DataError(f"genotype zoo {ZOO_PATH}: name {name!r} appears twice")
            table[name] = entry
    return table


def zoo_names() -> List[str]:
    """All zoo names, aliases included (e.g. ``DARTS`` = ``DARTS_V2``), in file order."""
    return list(_load())


def zoo_entry(name: str) -> Dict[str, Any]:
    """The raw YAML entry of a zoo name (KeyError naming the known names if unknown)."""
    table = _load()
    if name not in table:
        raise KeyError(f"unknown genotype name {name!r}; known names: {', '.join(table)}")
    return dict(table[name])


def zoo_text(name: str) -> str:
    return zoo_entry(name)["genotype"]
