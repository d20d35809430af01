"""The fixed benchmark workloads: one search method on one space at a small, fixed size.

``python -m tests.benchmarks.workload SPACE METHOD [STEPS] [--size paper] [--variant K=V] [--reference]
[--threads N]`` runs STEPS search iterations in a fresh process and prints JSON with its peak resident
memory (VmHWM): how the benchmark suite measures peak memory per method (tracemalloc does not see torch's
allocations).  ``--size paper``: NB201 at paper size (``PAPER``); ``--reference``: the reference-rule step on
xautodl's supernet (``tests/benchmarks/reference.py``) instead of ours.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any, Dict, Optional, Tuple

import torch

#: fixed sizes (kept small so that the whole bench run stays within ~10 minutes on 2 CPU cores)
SIZES: Dict[str, Dict[str, Any]] = {
    "nb201": {"supernet": {"C": 8, "N": 1}, "image_size": 16, "batch_size": 64},
    "darts": {"supernet": {"C": 8, "layers": 5}, "image_size": 16, "batch_size": 32},
}


#: NB201 at the paper's size (C=16, N=5, 32x32, batch 64): the size of the speed goals (README.md#speed)
PAPER: Dict[str, Any] = {"supernet": {"C": 16, "N": 5}, "image_size": 32, "batch_size": 64}


def describe(space: str, size: Optional[Dict[str, Any]] = None) -> str:
    s = size or SIZES[space]
    sup = ", ".join(f"{k}={v}" for k, v in s["supernet"].items())
    return f"{sup}, {s['image_size']}px, batch {s['batch_size']}"


def resolved_config(
    space: str,
    method: str,
    seed: int = 0,
    size: Optional[Dict[str, Any]] = None,
    variant: Optional[Dict[str, Any]] = None,
    overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The resolved config a ``search`` run of ``method`` at ``size`` (default ``SIZES[space]``) would use."""
    from harness import config as C

    size = size or SIZES[space]
    profile = {"name": "bench", "scale": "custom"}
    part = {
        "space": space,
        "supernet": dict(size["supernet"]),
        "data": {"image_size": size["image_size"], "batch_size": size["batch_size"]},
    }
    entry = {"method": method, "variant": dict(variant or {})}
    return C.resolve(space, entry, seed, profile, part, overrides)


def build(
    space: str,
    method: str,
    seed: int = 0,
    size: Optional[Dict[str, Any]] = None,
    variant: Optional[Dict[str, Any]] = None,
    overrides: Optional[Dict[str, Any]] = None,
):
    """(method object, train batch, val batch) with the protocol's config for ``method`` on ``space``,
    built as ``SearchRun.build`` builds it."""
    from harness.registry import get_method, get_space

    size = size or SIZES[space]
    cfg = resolved_config(space, method, seed, size, variant, overrides)
    torch.manual_seed(seed)
    net = get_space(space)().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    m = get_method(method)(net, {**cfg["optim"], **cfg["method_cfg"]}, cfg["epochs"], 100, speed=cfg.get("speed"))
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


def build_reference_step(method: str, size: Dict[str, Any], seed: int = 0, state: Optional[Dict] = None):
    """(reference step, train batch, val batch): xautodl's supernet at ``size`` driven by reference rules."""
    from tests.benchmarks.reference import ReferenceStep, build_reference

    torch.manual_seed(seed)
    net, w_opt, a_opt = build_reference(method, size["supernet"]["C"], size["supernet"]["N"])
    if state is not None:
        net.load_state_dict(state)
    g = torch.Generator().manual_seed(seed)
    b, px = size["batch_size"], size["image_size"]
    batch = lambda: (torch.randn(b, 3, px, px, generator=g), torch.randint(0, 10, (b,), generator=g))  # noqa: E731
    return ReferenceStep(method, net, w_opt, a_opt), batch(), batch()


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks.workload")
    ap.add_argument("space")
    ap.add_argument("method")
    ap.add_argument("steps", nargs="?", type=int, default=3)
    ap.add_argument("--size", choices=("small", "paper"), default="small")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    size = PAPER if args.size == "paper" else SIZES[args.space]
    if args.reference:
        step, tr, va = build_reference_step(args.method, size)
    else:
        import yaml

        variant = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.variant)}
        m, tr, va = build(args.space, args.method, size=size, variant=variant)
        step = m.step
    before = peak_rss_mb()
    for _ in range(args.steps):
        step(tr, va)
    print(
        json.dumps(
            {
                "space": args.space,
                "method": args.method,
                "steps": args.steps,
                "size": args.size,
                "reference": args.reference,
                "rss_before_steps_mb": before,
                "peak_rss_mb": peak_rss_mb(),
                "step_rss_mb": peak_rss_mb() - before,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
