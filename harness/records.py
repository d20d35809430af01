"""Run records: one JSON file per run, the only interface between running and reporting.

Schema ``harness.run/1``: every key a search or evaluation run writes is documented in ``docs/records.md``
(``tests/test_records_doc.py`` walks real records of tiny runs and fails on an undocumented key).  In short::

    {"schema": "harness.run/1", "kind": "search" | "evaluation", "run_id", "label", "space", "method", "variant",
     "seed", "profile", "scale", "status": "running" | "ok" | "failed", "failure", "config", "config_hash",
     "provenance": {commit, versions, device, dataset, split, precision, ...}, "deviations": [str],
     "epochs": [{one entry per finished epoch}], "final": {summary} | null, "started_at", "finished_at"}

Accuracies are percentages; times are seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List

SCHEMA = "harness.run/1"


def config_hash(config: Dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_torch_save(path: Path, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints, caches): a kill never leaves a torn file."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_record(path: Path, record: Dict[str, Any]) -> None:
    atomic_write_bytes(
        Path(path), (json.dumps(record, indent=1, sort_keys=False, default=_json_default) + "\n").encode()
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def read_record(path: Path) -> Dict[str, Any]:
    with open(path) as fh:
        rec = json.load(fh)
    if rec.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a harness run record (schema {rec.get('schema')!r})")
    return rec


def iter_record_paths(root: Path) -> Iterable[Path]:
    root = Path(root)
    return sorted(p for p in root.rglob("*.json") if p.parent.name == "records")


def load_runs(root: Path) -> List[Dict[str, Any]]:
    """All run records under ``root`` (any ``records/`` folder below it); unreadable files are skipped."""
    out = []
    for p in iter_record_paths(root):
        try:
            out.append(read_record(p))
        except (ValueError, OSError, json.JSONDecodeError):
            continue
    return out
