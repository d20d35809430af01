"""Where data and caches live.

Data folder: ``--data-dir`` > ``$HARNESS_DATA`` > ``./data``; when ``./data`` holds neither CIFAR-10
nor a benchmark file and a ``shared/data`` folder sits beside the project (the layout of the
project's own machines and CI), that folder is used.
It may hold ``cifar10-jpeg/{train,test}.zip`` (ImageFolder-style zips, the offline copy),
``cifar-10-batches-py/`` (torchvision's official download) and ``nas-bench-201/nb201_accuracy.csv``
or the official NAS-Bench-201 / NATS-Bench files.  The data folder may be read-only: decoded
caches go to ``$HARNESS_CACHE`` or ``<project>/data/cache``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_dir(explicit: Optional[Union[str, Path]] = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("HARNESS_DATA")
    if env:
        return Path(env).expanduser()
    local = Path("data")
    sibling = PROJECT_ROOT.parent / "shared" / "data"
    if not any((local / name).exists() for name in _DATA_MARKERS) and sibling.is_dir():
        return sibling
    return local


_DATA_MARKERS = (
    "cifar10-jpeg",
    "cifar-10-batches-py",
    "nas-bench-201",
    "NAS-Bench-201-v1_1-096897.pth",
    "NAS-Bench-201-v1_0-e61699.pth",
    "NATS-tss-v1_0-3ffb9-simple",
)


def cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE")
    path = Path(env).expanduser() if env else PROJECT_ROOT / "data" / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
