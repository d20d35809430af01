"""Every registered method × every registered space: two search iterations on a tiny supernet.

New methods and spaces are tested here automatically once they register themselves.
"""

from __future__ import annotations

import pytest
import torch

from harness import config as C
from harness.registry import get_method, get_space, list_methods, list_spaces

TINY_SUPERNET = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}}


def tiny_profile(space: str, method: str) -> dict:
    return {
        "name": "tiny",
        "scale": "smoke",
        "parts": [
            {
                "space": space,
                "methods": [method],
                "data": {"n_train": 100, "n_val": 100, "image_size": 16},
                "supernet": TINY_SUPERNET.get(space, {}),
                "epochs": 2,
            }
        ],
    }


def tiny_batch(seed: int, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("space", list_spaces())
@pytest.mark.parametrize("method", list_methods())
def test_two_iterations_move_alpha_and_weights(space, method):
    torch.manual_seed(0)
    profile = tiny_profile(space, method)
    cfg = C.resolve(space, method, 0, profile, profile["parts"][0])
    sp = get_space(space)()
    net = sp.build_supernet(dict(cfg["space_cfg"]), num_classes=10)
    m = get_method(method)(net, {**cfg["optim"], **cfg["method_cfg"]}, cfg["epochs"], steps_per_epoch=2)
    alphas0 = [a.detach().clone() for a in net.alphas()]
    weights0 = [w.detach().clone() for w in net.weights()]
    for epoch in range(2):
        m.on_epoch_start(epoch)
        assert net.mode == m.forward_mode
        stats = m.step((tiny_batch(2 * epoch)), (tiny_batch(2 * epoch + 1)))
        assert all(torch.isfinite(v).all() for v in stats.values())
        assert int(stats["train_n"]) == 6
    assert all(not torch.equal(a0, a) for a0, a in zip(alphas0, net.alphas()))
    assert any(not torch.equal(w0, w) for w0, w in zip(weights0, net.weights()))
    arch = net.derive()
    assert sp.parse_arch(str(arch)) == arch
    probs = net.alpha_probabilities()
    assert probs and all(abs(sum(row) - 1) < 1e-5 for rows in probs.values() for row in rows)


@pytest.mark.parametrize("space", list_spaces())
def test_weights_and_alphas_partition_the_parameters(space):
    net = get_space(space)().build_supernet(dict(TINY_SUPERNET[space]), num_classes=10)
    w, a = net.weights(), net.alphas()
    assert {id(p) for p in w}.isdisjoint({id(p) for p in a})
    assert len(w) + len(a) == len(list(net.parameters()))
