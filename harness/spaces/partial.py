"""Partial-channel connections and edge normalisation (PC-DARTS, Xu et al., ICLR 2020), shared by the spaces.

A supernet option of both spaces (``partial_channels`` K, ``edge_norm``; docs/methods/pc-darts.md), so any
method can search with partial channels, not only PC-DARTS.  The reference is yuhuixu1993/PC-DARTS@b74702f
model_search.py:

* ``channel_shuffle`` (l.9-23): (B, C, H, W) → (B, K, C/K, H, W) → transpose(1, 2) → (B, C, H, W): output channel
  c′ = (c mod C/K)·K + ⌊c/(C/K)⌋, so the next edge's first C/K channels are a different mixture.
* ``partial_edge`` (MixedOp.forward, l.40-53): only the first C/K channels go through the edge's ops; the other
  (K−1)·C/K bypass it (``MaxPool2d(2, 2)`` on a stride-2 edge), then the two parts are concatenated and shuffled.
  The slice is fixed (the paper's random mask is the code's fixed slice plus the shuffle: README "Notes").
* ``node_softmax`` (l.139-158): edge normalisation β̃ — a softmax over the β entries of each node's incoming edges
  only; node i = Σ_j β̃_{i,j} · edge_{i,j}(h_j) (l.85).
"""

from __future__ import annotations

from typing import Callable, List, Sequence

import torch
import torch.nn.functional as F

from harness.errors import ConfigError


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """PC-DARTS ``channel_shuffle`` (model_search.py:9-23)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


def partial_edge(x: torch.Tensor, k: int, stride: int, ops: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One partial-channel edge: ``ops`` on the first C/K channels, the rest bypassed (max-pooled 2×2 on a stride-2
    edge), concatenated and shuffled in K groups (PC-DARTS MixedOp.forward)."""
    if k <= 1:
        return ops(x)
    part = x.shape[1] // k
    y = ops(x[:, :part])
    rest = x[:, part:]
    if stride == 2:
        rest = F.max_pool2d(rest, 2, 2)
    return channel_shuffle(torch.cat([y, rest], dim=1), k)


def node_softmax(beta: torch.Tensor, node_edges: Sequence[Sequence[int]]) -> torch.Tensor:
    """β̃: per node, a softmax over the β entries of its incoming edges (``node_edges[i]`` = β indices of node i);
    returns a vector shaped like β (PC-DARTS model_search.py:139-158)."""
    out = torch.empty_like(beta)
    for idx in node_edges:
        index = torch.as_tensor(list(idx), device=beta.device)
        out = out.index_copy(0, index, torch.softmax(beta.index_select(0, index), dim=-1))
    return out


def check_partial(k: int, channels: Sequence[int], where: str) -> None:
    """K ≥ 1 and C divisible by K in every searched cell (one ``ConfigError`` line otherwise)."""
    if int(k) < 1:
        raise ConfigError(f"{where}: partial_channels must be >= 1, not {k}")
    bad = [c for c in channels if c % int(k)]
    if bad:
        raise ConfigError(f"{where}: partial_channels={k} must divide the channels of every searched cell ({bad})")


def init_beta(n_edges: int) -> torch.Tensor:
    """β initialised as the reference: 1e-3·N(0, 1) (model_search.py:178-179)."""
    return 1e-3 * torch.randn(n_edges)


__all__: List[str] = ["channel_shuffle", "partial_edge", "node_softmax", "check_partial", "init_beta"]
