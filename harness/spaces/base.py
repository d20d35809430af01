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

from typing import Any, Dict, List

import torch
from torch import nn

FORWARD_MODES = ("softmax", "gumbel")


def count_parameters_millions(model: nn.Module) -> float:
    """quark0 ``count_parameters_in_MB``: Σ numel of parameters whose name lacks "auxiliary", / 1e6."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name) / 1e6


class Supernet(nn.Module):
    """Base class of the search supernets of every space."""

    mode: str = "softmax"
    tau: float = 1.0

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
