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
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from harness.schema import Option, validate_section

#: the config section ``precision``
PRECISION_OPTIONS: Dict[str, Option] = {
    "allow_tf32": Option(
        "TF32 for cuDNN convolutions and matmul (a deviation: the references ran in full FP32)", bool, default=False
    ),
}
#: the default policy: what the references ran (full FP32)
DEFAULT_PRECISION: Dict[str, Any] = {k: o.default for k, o in PRECISION_OPTIONS.items()}


def validate_precision(policy: Any) -> None:
    """Raise ``ConfigError`` (one line) on an unknown key or a bad value of the ``precision`` section."""
    validate_section(policy, PRECISION_OPTIONS, "precision")


def apply_precision(policy: Optional[Dict[str, Any]], device: torch.device) -> Dict[str, Any]:
    """Set the process-wide precision flags from ``policy`` and return what is now in force."""
    policy = {**DEFAULT_PRECISION, **(policy or {})}
    validate_precision(policy)
    tf32 = bool(policy["allow_tf32"])
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return current_precision(device)


def current_precision(device: torch.device) -> Dict[str, Any]:
    """The precision flags in force (for provenance)."""
    return {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "device_type": device.type,
        "note": (
            "TF32 allowed (deviation: references ran in full FP32)"
            if torch.backends.cudnn.allow_tf32
            else "full FP32 (as the references)"
        ),
    }


def check_bf16(device: torch.device) -> None:
    """``speed.autocast=bf16`` needs a device with bfloat16 arithmetic: every CPU (fast only with AVX-512 BF16 or
    AMX), a GPU only from compute capability 8.0 (Ampere) on.  Raise ``ConfigError`` (one line) otherwise."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        from harness.errors import ConfigError

        name = torch.cuda.get_device_name(device)
        raise ConfigError(f"speed.autocast=bf16: {name} has no bfloat16 support; use speed.autocast=none")
