"""``python -m harness doctor`` on CPU: float32 vs float64 of one search iteration of every registered method
passes its tolerances (registry-parametrized: a new method is checked with no list to edit), and methods that
draw random numbers of their own (Dirichlet samples, perturbations) see the same draws in both runs."""

from __future__ import annotations

import pytest
import torch

from harness.doctor import RANDOM_OPS, SharedDraws, check_method
from harness.registry import list_methods

#: the space of the tiny iteration: NB201's smoke-size supernet (the DARTS space's takes ~10 s a method here)
SPACE = "nb201"


@pytest.mark.parametrize("method", list_methods())
def test_cpu_float32_matches_float64(method):
    torch.set_num_threads(1)
    check = check_method(SPACE, method, torch.device("cpu"))
    assert check.ok, (check.differences, check.limits)


def test_shared_draws_replay_every_random_op_cast_to_the_run_dtype():
    tape: list = []
    torch.manual_seed(0)
    with SharedDraws(tape, record=True):
        a = torch.empty(5, dtype=torch.float64).uniform_()
        d = torch.distributions.Dirichlet(torch.ones(3, dtype=torch.float64)).rsample()
    assert len(tape) >= 2 and {"uniform_", "_sample_dirichlet"} <= RANDOM_OPS
    torch.manual_seed(123)  # another stream: the replay must not depend on it
    with SharedDraws(tape, record=False):
        b = torch.empty(5, dtype=torch.float32).uniform_()
        e = torch.distributions.Dirichlet(torch.ones(3, dtype=torch.float32)).rsample()
    assert b.dtype == torch.float32 and torch.equal(b, a.float()) and torch.allclose(e.double(), d, atol=1e-7)
    with pytest.raises(RuntimeError, match="different random numbers"), SharedDraws(tape, record=False):
        torch.empty(7).uniform_()
