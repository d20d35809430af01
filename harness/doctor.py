"""``python -m harness doctor``: what to run first on a new machine — does this device compute what the CPU does?

1. The device and its numeric settings: torch, CUDA and cuDNN versions, the GPU's name and memory, the TF32
   flags in force, bfloat16 support, thread count.
2. One search iteration of every registered method on every registered space, at a tiny supernet size (the
   ``smoke`` profile's size of each space, 8×8 images, batch 8, random images), computed twice from the same
   initial state and the same batch: once as the reference (CPU, float64) and once as the candidate (the chosen
   device in float32, the precision a run uses; on a machine without a GPU the candidate is CPU float32).
   Random draws (GDAS's Gumbel noise) come from one CPU generator in float64 for both, so both runs sample the
   same path; every other random draw of an iteration (DrNAS's Dirichlet samples, SDARTS's perturbations, …) is
   recorded in the reference run and replayed, cast, in the candidate run (:class:`SharedDraws`).  Compared:
   * ``logits``: the supernet's logits on the batch before the iteration;
   * ``alpha_grad``: the gradient the method hands its α optimizer (after every term, unrolled or mixed);
   * ``weights``: every weight after the iteration.
   Each is a relative L2 error ‖a − b‖₂ / ‖b‖₂, checked against ``TOLERANCES``: float32 rounding of these small
   networks with a margin of about 10× over what CPU float32 shows.  Two α-gradients are rounding-sensitive by
   construction and get their own bound: finite differences (DARTS 2nd order, R = 0.01/‖v‖) and the GDAS
   straight-through gradient of NB201's xautodl edge form, which sums the upstream gradient over whole feature maps
   (the non-sampled ops' scalar weights) where it nearly cancels.  Adam's first step is close to lr·sign(g), so
   α-gradient rounding of near-zero entries reaches α and, in α-first methods, the weights: hence the weights' bound.
3. One line ``doctor: PASS`` or ``doctor: FAIL (…)``; exit status 0 or 1.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from harness.spaces.base import EdgeWeighting, EdgeWeights, GumbelWeighting, hard_gumbel_softmax

#: max relative difference allowed between the candidate (float32 on the device) and the CPU float64 reference
TOLERANCES: Dict[str, float] = {
    "logits": 1e-4,
    "alpha_grad": 1e-3,
    "alpha_grad_finite_differences": 5e-2,
    "alpha_grad_gumbel": 2e-1,
    "weights": 3e-3,
}
BATCH = 8
IMAGE_SIZE = 8


#: ATen operators that draw random numbers (their outputs are recorded and replayed by ``SharedDraws``)
RANDOM_OPS = frozenset(
    {
        "uniform_", "normal_", "exponential_", "bernoulli_", "bernoulli", "random_", "cauchy_", "geometric_",
        "log_normal_", "normal", "rand", "randn", "randint", "randperm", "multinomial", "poisson",
        "_standard_gamma", "_sample_dirichlet", "rand_like", "randn_like", "randint_like",
    }
)  # fmt: skip


class SharedDraws(TorchDispatchMode):
    """Records the output of every random ATen operator (``record=True``, the reference run) or overwrites each
    with the recorded value cast to the run's dtype and device (the candidate run), so that two runs of one
    iteration in different precisions draw the same noise whatever the method draws."""

    def __init__(self, tape: List[torch.Tensor], record: bool):
        super().__init__()
        self.tape, self.record, self.position = tape, record, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ not in RANDOM_OPS or not isinstance(out, torch.Tensor):
            return out
        if self.record:
            self.tape.append(out.detach().clone())
        else:
            if self.position >= len(self.tape) or self.tape[self.position].shape != out.shape:
                raise RuntimeError(
                    f"doctor: the candidate run drew different random numbers ({func}) than the reference"
                )
            with torch.no_grad():
                out.copy_(self.tape[self.position].to(device=out.device, dtype=out.dtype))
            self.position += 1
        return out


class SharedNoiseGumbel(EdgeWeighting):
    """The method's own Gumbel weighting with its Exp(1) draws taken from a CPU float64 generator, so that the
    reference and the candidate sample the same path on any device."""

    def __init__(self, inner: GumbelWeighting, gen: torch.Generator):
        self.inner, self.gen = inner, gen
        self.name, self.scope, self.tau = inner.name, inner.scope, inner.tau

    def __call__(self, alpha: torch.Tensor) -> EdgeWeights:
        draw = torch.empty(alpha.shape, dtype=torch.float64).exponential_(generator=self.gen)
        hardwts, index = hard_gumbel_softmax(alpha, self.tau, exp_draw=draw.to(alpha.device, alpha.dtype))
        return EdgeWeights(hardwts, index)


@dataclass
class Check:
    space: str
    method: str
    differences: Dict[str, float]
    limits: Dict[str, float]

    @property
    def ok(self) -> bool:
        return all(d <= self.limits[k] for k, d in self.differences.items())


def device_report(device: torch.device) -> Dict[str, Any]:
    """What a user needs to know about the device before trusting it."""
    from harness.provenance import device_description, versions

    out: Dict[str, Any] = {
        "device": device_description(device),
        "versions": versions(),
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        out.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    else:
        out["bf16_supported"] = True  # CPU autocast runs bfloat16 everywhere (fast only with AVX-512 BF16/AMX)
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm()) / max(float(b.norm()), torch.finfo(torch.float32).tiny)


def _tiny_config(space: str, method: str) -> Dict[str, Any]:
    from harness import config as C

    profile = C.load_profile("smoke")
    part = dict(C.find_part(profile, space))
    part["data"] = {**(part.get("data") or {}), "image_size": IMAGE_SIZE, "batch_size": BATCH}
    return C.resolve(space, method, 0, profile, part)


def _one_iteration(
    cfg: Dict[str, Any],
    state: Dict[str, torch.Tensor],
    batch: Tuple,
    device: torch.device,
    dtype: torch.dtype,
    noise_seed: int,
    draws: SharedDraws,
) -> Dict[str, Any]:
    """Logits, the α-gradient the α optimizer receives, and the weights after one iteration of ``cfg``'s method."""
    from harness.registry import get_method, get_space

    net = get_space(cfg["space"])().build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    net.load_state_dict(state)
    net = net.to(device=device, dtype=dtype)
    method = get_method(cfg["method"])(
        net,
        {**cfg["optim"], **cfg["method_cfg"]},
        cfg["epochs"],
        1,
        speed=dict(cfg["speed"], compile=False, autocast="none"),
    )
    method.on_epoch_start(0)
    gen = torch.Generator().manual_seed(noise_seed)
    if isinstance(net.weighting, GumbelWeighting):
        net.set_weighting(SharedNoiseGumbel(net.weighting, gen))
    x, y = (t.to(device) for t in batch)
    x = x.to(dtype)
    with torch.no_grad(), torch.random.fork_rng(devices=[]), draws:
        logits = net(x)
    grads: List[List[torch.Tensor]] = []
    a_step = method.a_opt.step

    def recording_step(*args: Any, **kwargs: Any) -> Any:
        grads.append([a.grad.detach().clone() for a in method.alphas])
        return a_step(*args, **kwargs)

    method.a_opt.step = recording_step
    with draws:
        method.step((x, y), (x, y))
    return {
        "logits": logits,
        "alpha_grad": torch.cat([g.reshape(-1) for g in grads[-1]]) if grads else None,
        "weights": torch.cat([w.detach().reshape(-1) for w in method.weights]),
    }


def check_method(space: str, method: str, device: torch.device, seed: int = 0) -> Check:
    """Reference (CPU float64) vs candidate (``device`` float32) for one method on one space."""
    from harness.registry import get_method, get_space

    cfg = _tiny_config(space, method)
    torch.manual_seed(seed)
    state = copy.deepcopy(get_space(space)().build_supernet(dict(cfg["space_cfg"]), num_classes=10).state_dict())
    gen = torch.Generator().manual_seed(seed + 1)
    batch = (
        torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen, dtype=torch.float64),
        torch.randint(0, 10, (BATCH,), generator=gen),
    )
    tape: List[torch.Tensor] = []
    torch.manual_seed(seed + 3)
    ref = _one_iteration(cfg, state, batch, torch.device("cpu"), torch.float64, seed + 2, SharedDraws(tape, True))
    torch.manual_seed(seed + 3)
    cand = _one_iteration(cfg, state, batch, device, torch.float32, seed + 2, SharedDraws(tape, False))
    diffs = {k: _rel(cand[k], ref[k]) for k in ("logits", "alpha_grad", "weights") if ref[k] is not None}
    cls = get_method(method)
    limits = dict(TOLERANCES)
    if cls.finite_differences:
        limits["alpha_grad"] = TOLERANCES["alpha_grad_finite_differences"]
    if cls.forward_mode == "gumbel":
        limits["alpha_grad"] = max(limits["alpha_grad"], TOLERANCES["alpha_grad_gumbel"])
    return Check(space, method, diffs, {k: limits[k] for k in diffs})


def run_doctor(
    device: torch.device,
    spaces: Optional[List[str]] = None,
    methods: Optional[List[str]] = None,
    out: Callable[[str], None] = print,
) -> Tuple[bool, Dict[str, Any]]:
    from harness.precision import apply_precision
    from harness.registry import list_methods, list_spaces

    apply_precision(None, device)  # the default policy every run applies (full FP32: TF32 off)
    info = device_report(device)
    out(f"device: {info['device']}")
    out(
        f"torch {info['versions']['torch']}, CUDA {info['torch_cuda']}, cuDNN {info['versions'].get('cudnn')}, "
        f"threads {info['threads']}, TF32 cuDNN/matmul {info['cudnn_allow_tf32']}/{info['matmul_allow_tf32']}, "
        f"bf16 {'yes' if info['bf16_supported'] else 'no'}"
    )
    reference = "CPU float64" if device.type == "cpu" else "CPU float64 (same initial state and batch)"
    out(f"one search iteration per method, {device} float32 vs {reference}; relative L2 differences:")
    checks = []
    for space in spaces or list_spaces():
        for method in methods or list_methods(order="display"):
            c = check_method(space, method, device)
            checks.append(c)
            cols = "  ".join(f"{k} {v:.1e} (≤ {c.limits[k]:.0e})" for k, v in c.differences.items())
            out(f"  {'ok  ' if c.ok else 'FAIL'} {space:6s} {method:<22s} {cols}")
    failed = [c for c in checks if not c.ok]
    verdict = (
        "PASS"
        if not failed
        else f"FAIL ({len(failed)} of {len(checks)}: " + ", ".join(f"{c.space}/{c.method}" for c in failed) + ")"
    )
    out(f"doctor: {verdict}")
    return not failed, {
        "device": info,
        "tolerances": TOLERANCES,
        "verdict": verdict,
        "checks": [
            {"space": c.space, "method": c.method, "differences": c.differences, "limits": c.limits, "ok": c.ok}
            for c in checks
        ],
    }


def main_json(result: Dict[str, Any]) -> None:
    print(json.dumps(result, indent=1), file=sys.stdout)


def add_parser(subparsers) -> None:
    """``python -m harness doctor`` (registered by ``harness.cli``)."""
    from harness.cli_args import add_device, add_matrix_filters

    p = subparsers.add_parser(
        "doctor",
        help="check this device: versions, precision flags, one iteration per method vs CPU float64",
        description="Run first on a new machine: device facts, then one search iteration of every method on a tiny "
        "supernet of every space, on the chosen device in float32 and on the CPU in float64 from the "
        "same state and batch; prints the relative differences and a PASS/FAIL line (exit 0/1).",
    )
    add_device(p)
    add_matrix_filters(p, of_profile=False)
    p.add_argument("--json", action="store_true", help="also print the result as JSON")


def main(args) -> int:
    from harness.lifecycle import pick_device
    from harness.registry import get_method, get_space

    for name in args.methods or []:
        get_method(name)
    for name in args.spaces or []:
        get_space(name)
    ok, result = run_doctor(pick_device(args.device), args.spaces, args.methods)
    if args.json:
        main_json(result)
    return 0 if ok else 1
