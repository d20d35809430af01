"""Provenance of every number: code commit, package versions, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from typing import Any, Dict, Optional

import torch

from harness.paths import PROJECT_ROOT


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def git_state() -> Dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def git_diff() -> str:
    return _git("diff", "HEAD") or ""


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        return f"cuda: {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return f"cpu: {cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} torch thread(s)"


def versions() -> Dict[str, str]:
    import numpy

    out = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if torch.backends.cudnn.is_available():
        out["cudnn"] = str(torch.backends.cudnn.version())
    return out


def provenance(device: torch.device) -> Dict[str, Any]:
    state = git_state()
    return {
        "commit": state["commit"],
        "dirty": state["dirty"],
        "versions": versions(),
        "device": device_description(device),
        "threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }
