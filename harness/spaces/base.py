"""The search-space contract.

A search space (registered with ``@register_space``) turns a space config into a supernet,
derives an architecture from the supernet's α, and reads/writes architectures in the field's
own text form.  It knows nothing about search methods.

Supernet contract (an ``nn.Module``; see ``Supernet`` below):

* ``forward(x) -> logits`` (B, classes).
* ``weights()`` -> list of weight parameters (everything except α);
  ``alphas()`` -> list of α parameters (registered ``nn.Parameter``s, kept apart from weights).
* ``mode``: ``"softmax"`` (DARTS-style mixture of all ops on every edge) or ``"gumbel"``
  (GDAS: one hard Gumbel-softmax straight-through sample per forward, only the sampled op is
  computed); ``tau``: the Gumbel temperature used in ``"gumbel"`` mode.
* ``derive() -> arch``: the architecture value for the current α, by the space's reference rule.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

FORWARD_MODES = ("softmax", "gumbel")


def count_parameters_millions(model: nn.Module) -> float:
    """quark0 ``count_parameters_in_MB``: Σ numel of parameters whose name lacks "auxiliary", / 1e6."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name) / 1e6


def chain_sum(terms: List[torch.Tensor]) -> torch.Tensor:
    """``sum(terms)`` without Python's leading ``0 +`` (an extra full-size add that changes no value)."""
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def hard_gumbel_softmax(alpha: torch.Tensor, tau: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """GDAS sampler (xautodl ``get_gumbel_prob`` / ``TinyNetworkGDAS.forward``): row-wise hard Gumbel-softmax,
    straight-through.  Returns ``hardwts`` (value one-hot, gradient of the soft sample
    softmax((log_softmax(α) + g) / τ)) and the sampled index of every row, shape (rows, 1), on the device.

    Same draws, in the same order, as xautodl (torch global RNG).  xautodl redraws while a Gumbel value or a
    probability is inf/NaN, a host sync per draw; here the guard is on the device: the Exp(1) draw is clamped
    to [smallest positive float, largest float] before the log (a draw of 0 or inf is the only way to an
    infinite Gumbel value).  Bit-identical whenever xautodl keeps its first draw; a non-finite α (a diverged
    run) gives a non-finite loss instead of an endless redraw loop.
    """
    u = torch.empty_like(alpha).exponential_()
    info = torch.finfo(u.dtype)
    gumbels = -u.clamp(info.tiny, info.max).log()
    logits = (alpha.log_softmax(dim=-1) + gumbels) / tau
    probs = torch.softmax(logits, dim=-1)
    index = probs.max(-1, keepdim=True)[1]
    one_h = torch.zeros_like(logits).scatter_(-1, index, 1.0)
    hardwts = one_h - probs.detach() + probs
    return hardwts, index


class Supernet(nn.Module):
    """Base class of the search supernets of every space."""

    mode: str = "softmax"
    tau: float = 1.0
    #: layout of conv weights and inputs (``set_memory_format``); None: PyTorch's default (contiguous)
    memory_format: Optional[torch.memory_format] = None

    def set_memory_format(self, memory_format: torch.memory_format) -> "Supernet":
        """Store every 4-D tensor (conv weights) in ``memory_format`` and feed inputs in it (``as_input``).

        ``torch.channels_last`` (NHWC) is the fast layout for convolutions, pools and batch norms on CPU
        (oneDNN) and GPU (cuDNN); the values are those of the default layout up to float rounding.
        """
        self.to(memory_format=memory_format)
        self.memory_format = memory_format
        return self

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input batch in the supernet's memory format (unchanged without one)."""
        return x if self.memory_format is None else x.contiguous(memory_format=self.memory_format)

    def weights(self) -> List[nn.Parameter]:
        alpha_ids = {id(a) for a in self.alphas()}
        return [p for p in self.parameters() if id(p) not in alpha_ids]

    def alphas(self) -> List[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_mode(self, mode: str, tau: float | None = None) -> None:
        if mode not in FORWARD_MODES:
            raise ValueError(f"unknown forward mode {mode!r}; expected one of {FORWARD_MODES}")
        self.mode = mode
        if tau is not None:
            self.tau = float(tau)

    def derive(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def alpha_probabilities(self) -> Dict[str, List[List[float]]]:
        """softmax(α) per α tensor, as nested lists (for records and heatmaps)."""
        raise NotImplementedError


class SearchSpace:
    """Base class of a registered search space (instances are cheap; hold config only)."""

    name: str = ""
    #: α column order (operation names)
    ops: tuple = ()

    def __init__(self, data_dir=None):
        #: the data folder (``--data-dir``) a space reads its benchmark files from; None = the default lookup
        self.data_dir = data_dir

    def build_supernet(self, cfg: Dict[str, Any], num_classes: int) -> Supernet:  # pragma: no cover
        raise NotImplementedError

    def parse_arch(self, text: str) -> Any:  # pragma: no cover
        """Parse the field's text form (NB201 arch string / DARTS ``Genotype(...)``); ValueError if malformed."""
        raise NotImplementedError

    def arch_info(self, arch: Any) -> Dict[str, Any]:  # pragma: no cover
        """JSON-able facts about an architecture recorded every epoch (benchmark accuracies, params...)."""
        raise NotImplementedError

    def known_archs(self) -> List[str]:
        """Names of published architectures ``parse_arch`` accepts (e.g. ``DARTS_V2``)."""
        return []

    def eval_network(self, arch: Any, recipe: Dict[str, Any], num_classes: int = 10) -> nn.Module:
        """The network that trains ``arch`` from scratch under an evaluation recipe (``harness evaluate``).

        Its forward returns ``(logits, aux_logits or None)`` and it has a ``drop_path_prob`` attribute."""
        from harness.errors import ConfigError

        raise ConfigError(f"space {self.name} has no evaluation network: its cells are evaluated by "
                          "benchmark lookup (see the search records' arch_info)")
