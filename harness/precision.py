"""The numeric precision policy of a run (config key ``precision``), applied before it builds.

PyTorch lets cuDNN convolutions use TF32 on Ampere and newer GPUs by default
(``torch.backends.cudnn.allow_tf32 = True``).  TF32 keeps a 10-bit mantissa, so a relative
input resolution of about 1e-3.  DARTS-2nd's finite-difference Hessian-vector product perturbs
each weight by R·v with R = 0.01/‖v‖, about 1e-5 per weight on the NB201 supernet: below TF32's
resolution, so (∇α L⁺ − ∇α L⁻)/2R becomes mostly rounding noise on A100/H100.  The reference
implementations ran in full FP32 (PyTorch 1.x, pre-TF32 GPUs).  The default policy is therefore
full FP32 for both cuDNN and matmul; ``precision.allow_tf32: true`` allows TF32 (labelled as a
deviation).  The policy is applied explicitly on every device (on CPU the flags have no numeric
effect, but they are set and recorded all the same) and written into the record's provenance.

Bit-reproducibility (``precision.deterministic``).  On CPU the kernels are deterministic for a fixed build,
thread count and input: a run repeated (or resumed) gives the same bits.  On a GPU it does not by default:
cuDNN may pick its convolution algorithms by timing them, and some backward kernels accumulate with atomic
additions whose order changes from run to run, so two runs of one config differ in the last bits and then
drift apart.  ``precision.deterministic: true`` asks for bit-reproducible CUDA runs: deterministic cuDNN
algorithms (``cudnn.deterministic``, no ``cudnn.benchmark``), ``torch.use_deterministic_algorithms(True)``
(an op without a deterministic CUDA kernel then fails the run with PyTorch's error naming it, rather than
silently varying), cuBLAS with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``), and every global
average pool ``nn.AdaptiveAvgPool2d(1)`` of the built network replaced by ``GlobalMeanPool`` (the same values:
eager PyTorch already computes that pool as a mean; the swap keeps it so on every path).  It is slower, and not a
deviation: it changes rounding order, not what is computed.  cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` once, at its
first call in a process, so it must be in the environment before any GPU work: every ``python -m harness``
process sets it at start-up (``set_cublas_workspace_early``; a value already set is kept), and a run that finds
it missing after CUDA was initialised (a process not started through the harness) is recorded as not
bit-reproducible.  Every record says which guarantee it has: ``provenance.precision.bit_reproducible`` with
``bit_reproducible_reason``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, MutableMapping, Optional, Tuple

import torch
from torch import nn

from harness.errors import ConfigError
from harness.schema import Option, validate_section

#: the config section ``precision``
PRECISION_OPTIONS: Dict[str, Option] = {
    "allow_tf32": Option(
        "TF32 for cuDNN convolutions and matmul (a deviation: the references ran in full FP32)", bool, default=False
    ),
    "deterministic": Option(
        "bit-reproducible CUDA runs: deterministic cuDNN/cuBLAS algorithms, torch.use_deterministic_algorithms, "
        "global average pooling as a mean (slower; CPU runs are bit-reproducible without it); absent = false",
        bool,
        nullable=True,
    ),
}
#: the cuBLAS workspace setting that makes cuBLAS deterministic (PyTorch docs, "Reproducibility"), and the other
#: value those docs allow
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
DETERMINISTIC_CUBLAS_CONFIGS = (":4096:8", ":16:8")
#: the default policy: what the references ran (full FP32).  An option without a default (``deterministic``) is
#: absent from resolved configs unless set, so configs (and their hashes, hence run stores) written before it
#: existed stay the same
DEFAULT_PRECISION: Dict[str, Any] = {k: o.default for k, o in PRECISION_OPTIONS.items() if o.default is not None}


def validate_precision(policy: Any) -> None:
    """Raise ``ConfigError`` (one line) on an unknown key or a bad value of the ``precision`` section."""
    validate_section(policy, PRECISION_OPTIONS, "precision")


def set_cublas_workspace_early(environ: Optional[MutableMapping[str, str]] = None) -> None:
    """Put ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` into the environment unless it is set: called at the start of every
    ``python -m harness`` process, before any GPU work, because cuBLAS reads it once, at its first call (a run's
    ``precision`` is known only later).  Worker processes inherit it.  Without ``precision.deterministic`` it only
    fixes cuBLAS's workspace size (32 MiB; PyTorch's default on Hopper GPUs)."""
    env = os.environ if environ is None else environ
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)


def apply_precision(policy: Optional[Dict[str, Any]], device: torch.device) -> Dict[str, Any]:
    """Set the process-wide precision flags from ``policy`` and return what is now in force."""
    policy = {**DEFAULT_PRECISION, **(policy or {})}
    validate_precision(policy)
    tf32 = bool(policy["allow_tf32"])
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    deterministic = bool(policy.get("deterministic"))
    late = None
    if deterministic:
        late = _require_cublas_workspace(device)
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
    return current_precision(device, requested_deterministic=deterministic, cublas_set_late=late)


def _require_cublas_workspace(device: torch.device) -> Optional[str]:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` if it is missing; ``ConfigError`` if it holds a non-deterministic value.
    Returns why the setting may come too late (CUDA already initialised in this process), else None."""
    value = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if value is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
        if device.type == "cuda" and torch.cuda.is_initialized():
            return (
                "CUBLAS_WORKSPACE_CONFIG was set after CUDA was initialised in this process (cuBLAS may have read "
                "it already); start runs through `python -m harness`, or export it"
            )
        return None
    if value not in DETERMINISTIC_CUBLAS_CONFIGS:
        raise ConfigError(
            f"precision.deterministic needs CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE_CONFIG} (or :16:8), "
            f"not {value!r}: unset it or export one of those"
        )
    return None


def current_precision(
    device: torch.device, requested_deterministic: Optional[bool] = None, cublas_set_late: Optional[str] = None
) -> Dict[str, Any]:
    """The precision flags in force (for provenance), and whether the run is bit-reproducible and why."""
    deterministic = (
        torch.are_deterministic_algorithms_enabled() if requested_deterministic is None else requested_deterministic
    )
    reproducible, reason = _bit_reproducible(device, deterministic, cublas_set_late)
    return {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic": bool(deterministic),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "bit_reproducible": reproducible,
        "bit_reproducible_reason": reason,
        "device_type": device.type,
        "note": (
            (
                "TF32 allowed (deviation: references ran in full FP32)"
                + ("; no effect on CPU" if device.type == "cpu" else "")
            )
            if torch.backends.cudnn.allow_tf32
            else "full FP32 (as the references)"
        ),
    }


def _bit_reproducible(device: torch.device, deterministic: bool, cublas_set_late: Optional[str]) -> Tuple[bool, str]:
    """(bit-reproducible?, why) for a run on ``device`` (see the module doc)."""
    if device.type == "cpu":
        return True, "CPU: deterministic kernels (same build, thread count and inputs give the same bits)"
    if device.type != "cuda":
        return False, f"{device.type}: reproducibility not established for this device type"
    if not deterministic:
        return False, (
            "CUDA without precision.deterministic: cuDNN algorithm choice and atomic accumulations in backward "
            "kernels can change the last bits from run to run"
        )
    if cublas_set_late:
        return False, cublas_set_late
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in DETERMINISTIC_CUBLAS_CONFIGS:
        return False, "CUBLAS_WORKSPACE_CONFIG is not a deterministic setting"
    return True, (
        "CUDA with precision.deterministic: deterministic cuDNN/cuBLAS algorithms, deterministic-algorithms mode, "
        f"CUBLAS_WORKSPACE_CONFIG={os.environ.get('CUBLAS_WORKSPACE_CONFIG')}, global pooling as a mean "
        "(same GPU model, driver, library versions and inputs)"
    )


class GlobalMeanPool(nn.Module):
    """``x.mean((2, 3), keepdim=True)``: the values of ``nn.AdaptiveAvgPool2d(1)`` (eager PyTorch computes that pool
    as this mean; ATen adaptive_avg_pool2d), written out so that no path reaches adaptive pooling's CUDA backward,
    which ``torch.use_deterministic_algorithms`` refuses (it accumulates with atomics)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def _is_global(output_size: Any) -> bool:
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    return all(s == 1 for s in sizes)


def swap_global_pooling(net: nn.Module) -> int:
    """Replace every ``nn.AdaptiveAvgPool2d`` with output size 1 inside ``net`` by ``GlobalMeanPool``, in place, by
    walking its modules; returns how many were replaced.  Pooling has no parameters or buffers: optimizers and
    state dicts are unchanged."""
    count = 0
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and _is_global(child.output_size):
                setattr(parent, name, GlobalMeanPool())
                count += 1
    return count


def prepare_network(policy: Optional[Dict[str, Any]], net: nn.Module) -> int:
    """What the policy changes in a built network (called right after a run builds it): with
    ``deterministic``, ``swap_global_pooling``.  Returns the number of modules replaced."""
    policy = {**DEFAULT_PRECISION, **(policy or {})}
    return swap_global_pooling(net) if policy.get("deterministic") else 0


def check_bf16(device: torch.device) -> None:
    """``speed.autocast=bf16`` needs a device with bfloat16 arithmetic: every CPU (fast only with AVX-512 BF16 or
    AMX), a GPU only from compute capability 8.0 (Ampere) on.  Raise ``ConfigError`` (one line) otherwise."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        raise ConfigError(f"speed.autocast=bf16: {name} has no bfloat16 support; use speed.autocast=none")
