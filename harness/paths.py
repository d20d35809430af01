"""Where data and caches live.

Data folder: ``--data-dir`` > ``$HARNESS_DATA`` > ``./data`` (the project's own ``data/``).
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
    return Path("data")


def cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE")
    path = Path(env).expanduser() if env else PROJECT_ROOT / "data" / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
