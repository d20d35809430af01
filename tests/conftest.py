"""Shared fixtures: the data folder, tiny models, small resolved configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.spaces.base import Supernet

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HARNESS_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "cifar10-jpeg" / "train.zip").is_file():
        pytest.skip(f"offline data not found at {SHARED_DATA} (set HARNESS_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _one_thread_and_data_env(monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("HARNESS_DATA", str(SHARED_DATA))


class ToySupernet(Supernet):
    """Two mixed edges over 3 ops on vectors, a BatchNorm (buffers), a linear head.

    Small enough for exact second-order checks in float64.  Edge weights come from the installed weighting
    (the edge-weight contract of ``harness.spaces.base``), asked once per edge row; with a sampled index only the
    sampled op is computed.
    """

    def __init__(self, d_in: int = 5, d: int = 6, classes: int = 3):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.bn = nn.BatchNorm1d(d)
        self.ops = nn.ModuleList([nn.ModuleList([nn.Linear(d, d), nn.Linear(d, d), nn.Identity()]) for _ in range(2)])
        self.head = nn.Linear(d, classes)
        self.arch = nn.Parameter(1e-3 * torch.randn(2, 3))
        self.calls = [[0, 0, 0], [0, 0, 0]]

    def alphas(self):
        return [self.arch]

    def _op(self, e, k, h):
        self.calls[e][k] += 1
        out = self.ops[e][k](h)
        return torch.tanh(out) if k == 1 else out

    def forward(self, x):
        h = self.bn(self.inp(x))
        for e in range(2):
            ew = self.edge_weights(self.arch[e : e + 1])
            w = ew.weights[0]
            if ew.index is not None:
                idx = int(ew.index.view(-1)[0])
                h = w[idx] * self._op(e, idx, h)
            else:
                h = sum(w[k] * self._op(e, k, h) for k in range(3))
        return self.head(torch.relu(h))

    def derive(self):
        return tuple(int(i) for i in self.arch.argmax(-1))

    def alpha_probabilities(self):
        return {"alpha": F.softmax(self.arch, -1).tolist()}


@pytest.fixture
def toy_net():
    torch.manual_seed(0)
    return ToySupernet()


def toy_batches(seed: int = 0, n: int = 8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n, 5, generator=g, dtype=dtype) for _ in range(2)]
    ys = [torch.randint(0, 3, (n,), generator=g) for _ in range(2)]
    return (xs[0], ys[0]), (xs[1], ys[1])


OPTIM = {
    "w_lr": 0.1,
    "w_lr_min": 0.001,
    "momentum": 0.9,
    "nesterov": False,
    "w_wd": 3e-4,
    "a_lr": 3e-3,
    "a_betas": [0.5, 0.999],
    "a_wd": 1e-3,
    "grad_clip": 5.0,
    "grad_clip_target": "weights",
}


@pytest.fixture
def optim_cfg():
    return dict(OPTIM)


def capture_alpha_grad(m):
    """Record the α-gradient a method hands to its Adam step (wraps ``apply_alpha_grad``)."""
    seen = {}
    orig = m.apply_alpha_grad

    def spy(grads):
        seen["g"] = [g.detach().clone() for g in grads]
        orig(grads)

    m.apply_alpha_grad = spy
    return seen
