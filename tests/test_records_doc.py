"""The record schema page (docs/records.md) documents every key the runner actually writes.

Real records of tiny runs (an NB201 GDAS search, a DARTS-space MiLeNAS search with a hook-free config, and a
DARTS-space evaluation) are walked key by key; each key must appear on the page as `key`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterable, Set

import pytest
import torch

from harness import config as C
from harness import evaluate as E
from harness.runner import SearchRun
from tests.test_evaluate import TINY as TINY_RECIPE
from tests.test_evaluate import ns, write_profile

TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"

DOC = Path(__file__).resolve().parents[1] / "docs" / "records.md"
#: sub-objects whose keys are data, not schema (config sections have their own pages; benchmark columns, conv
#: counts, α tensors and variants are named by the space or method)
DATA_KEYED = {"config", "variant", "versions", "benchmark", "conv_counts", "alpha_probs", "evaluate"}


def documented() -> Set[str]:
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", DOC.read_text()))


def keys_of(obj: Any, parent: str = "") -> Iterable[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            if key not in DATA_KEYED:
                yield from keys_of(value, key)
    elif isinstance(obj, list):
        for value in obj:
            yield from keys_of(value, parent)


@pytest.fixture(scope="module")
def tiny_records(tmp_path_factory, shared_data) -> Dict[str, Dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("records-doc")
    prof = C.load_profile(TINY)
    out = {}
    for space, method in (("nb201", "gdas"), ("darts", "milenas")):
        cfg = C.resolve(space, method, 0, prof, C.find_part(prof, space), {"epochs": 2})
        out[f"{space}/{method}"] = SearchRun(cfg, tmp / "search", shared_data, torch.device("cpu")).run()
    out["evaluation"] = E.run_evaluate(ns(write_profile(tmp, TINY_RECIPE), tmp / "eval"))
    return out


def test_every_written_key_is_documented(tiny_records):
    doc = documented()
    missing = {name: sorted(set(keys_of(rec)) - doc) for name, rec in tiny_records.items()}
    assert all(rec["status"] == "ok" for rec in tiny_records.values())
    assert {k: v for k, v in missing.items() if v} == {}
