"""The fixed benchmark workloads: one search method on one space at a small, fixed size.

``python -m tests.benchmarks.workload SPACE METHOD [STEPS]`` runs STEPS search iterations in a
fresh process and prints JSON with its peak resident memory (VmHWM): how the benchmark
suite measures peak memory per method (tracemalloc does not see torch's allocations).
"""
from __future__ import annotations

import json
import resource
import sys
from typing import Any, Dict, Tuple

import torch

#: fixed sizes (kept small so that the whole bench run stays within ~10 minutes on 2 CPU cores)
SIZES: Dict[str, Dict[str, Any]] = {
    "nb201": {"supernet": {"C": 8, "N": 1}, "image_size": 16, "batch_size": 64},
    "darts": {"supernet": {"C": 8, "layers": 5}, "image_size": 16, "batch_size": 32},
}


def describe(space: str) -> str:
    s = SIZES[space]
    sup = ", ".join(f"{k}={v}" for k, v in s["supernet"].items())
    return f"{sup}, {s['image_size']}px, batch {s['batch_size']}"


def build(space: str, method: str, seed: int = 0):
    """(method object, train batch, val batch) with the protocol's config for ``method`` on ``space``."""
    from harness import config as C
    from harness.registry import get_method, get_space

    size = SIZES[space]
    profile = {"name": "bench", "scale": "custom"}
    part = {"space": space, "supernet": dict(size["supernet"]),
            "data": {"image_size": size["image_size"], "batch_size": size["batch_size"]}}
    cfg = C.resolve(space, method, seed, profile, part)
    torch.manual_seed(seed)
    net = get_space(space)().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    m = get_method(method)(net, {**cfg["optim"], **cfg["method_cfg"]}, cfg["epochs"], 100)
    net.set_mode(m.forward_mode)
    m.on_epoch_start(0)
    net.train()
    g = torch.Generator().manual_seed(seed)
    b, px = size["batch_size"], size["image_size"]

    def batch() -> Tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(b, 3, px, px, generator=g), torch.randint(0, 10, (b,), generator=g)

    return m, batch(), batch()


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): VmHWM, which exec resets.

    ``ru_maxrss`` is not used on Linux: it survives fork+exec, so a subprocess started from a big
    pytest process would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    space, method = argv[0], argv[1]
    steps = int(argv[2]) if len(argv) > 2 else 3
    torch.set_num_threads(1)
    m, tr, va = build(space, method)
    before = peak_rss_mb()
    for _ in range(steps):
        m.step(tr, va)
    print(json.dumps({"space": space, "method": method, "steps": steps, "rss_before_steps_mb": before,
                      "peak_rss_mb": peak_rss_mb(), "step_rss_mb": peak_rss_mb() - before}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
