"""Run records: one JSON file per run, the only interface between running and reporting.

Schema ``harness.run/1`` (every key always present unless marked optional)::

    {
      "schema": "harness.run/1",
      "kind": "search",                     # or "evaluation" (DARTS eval-network training)
      "run_id": "nb201__milenas__s0",       # unique inside a run folder; also the file stem
      "label": "MiLeNAS",                   # display name incl. variant, e.g. "MiLeNAS (λ=0.1)"
      "space": "nb201", "method": "milenas", "variant": {},   # variant: option overrides, {} for default
      "seed": 0, "profile": "smoke",
      "scale": "smoke",                     # smoke | cpu | gpu-quick | paper: a smoke run is never a reproduction
      "status": "ok",                       # ok | failed | running
      "failure": null,                      # {"reason": str, "epoch": int} when failed
      "config": {...}, "config_hash": "sha256:…",        # the full resolved config
      "provenance": {"commit": str, "dirty": bool, "versions": {...}, "device": str,
                     "threads": int, "dataset": "CIFAR-10 (JPEG q75 copy)", "dataset_sha256": str,
                     "split": str, "image_size": int, "benchmark_source": str|null},
      "epochs": [                           # one entry per finished search epoch (0-based)
        {"epoch": 0, "lr": 0.025, "tau": null,
         "train_loss": float, "train_acc": float,        # % over the epoch's search-train batches
         "val_loss": float, "val_acc": float,            # % of the supernet on the search-val data
         "arch": str,                                    # NB201 arch string / DARTS Genotype(...) text
         "arch_info": {...},                             # space facts: nb201 index + benchmark columns;
                                                         # darts params_M, conv counts, size_key
         "alpha_probs": {"alpha": [[...]]},              # softmax(α) per α tensor
         "search_val_batch_loss"/"search_val_batch_acc": float,   # on the α-step val batches (if any)
         "iterations": int,                              # search iterations in this epoch
         "epoch_seconds": float}                         # search time of this epoch (no eval/lookup)
      ],
      "final": {"arch": str, "arch_info": {...}, "val_acc": float, "best_val_acc": float,
                "search_seconds": float, "iterations": int,
                "seconds_per_iteration": float,          # all epochs
                "seconds_per_iteration_steady": float|null,   # all epochs but the first (warm-up)
                "peak_rss_mb": float, "peak_gpu_mb": float (CUDA only)},   # null unless status ok
      "early_stopped_at": int (optional: epoch at which the early-stop rule ended the search),
      "started_at": iso8601, "finished_at": iso8601|null
    }

Evaluation records (kind "evaluation", written by ``harness.evaluate``) carry ``genotype`` (text),
``genotype_name``, ``params_M`` (auxiliary head excluded), ``selection`` (which search run was
chosen and why, or null), ``deviations``, per-epoch ``{"epoch", "lr", "drop_path_prob",
"train_loss", "train_acc", "test_loss", "test_acc", "steps", "epoch_seconds"}`` and
``final = {"test_acc", "test_error", "best_test_acc", "test_loss", "train_acc", "train_seconds",
"params_M", "steps", "peak_rss_mb"}``.

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
    atomic_write_bytes(Path(path), (json.dumps(record, indent=1, sort_keys=False, default=_json_default) + "\n").encode())


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
