"""The precision policy's ``deterministic`` option (harness/precision.py, README.md#precision-and-reproducibility).

On CPU: the global-pooling swap gives the same forward bits and the same gradients; the option validates;
the flags it sets and the ``bit_reproducible`` verdict are in every record (and on docs/records.md, checked by
tests/test_records_doc.py); the CUDA verdicts and the ``CUBLAS_WORKSPACE_CONFIG`` rules are checked without a
GPU (the flags are process-wide settings; nothing here launches CUDA work)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import config as C
from harness import precision as P
from harness.errors import ConfigError
from harness.registry import get_space
from tests.test_records_doc import TINY


@pytest.fixture(autouse=True)
def _restore_flags(monkeypatch):
    """Every test leaves the process-wide flags as the default policy sets them, and the environment as it was."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    P.apply_precision(None, torch.device("cpu"))


def _pools(net: nn.Module):
    return [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]


def _networks():
    nb201 = get_space("nb201")()
    darts = get_space("darts")()
    recipe = {"C": 4, "layers": 4, "auxiliary": False, "drop_path_prob": 0.0}
    arch = darts.parse_arch("DARTS_V2")
    return {
        "nb201 supernet": nb201.build_supernet({"C": 4, "N": 1}, num_classes=10),
        "darts supernet": darts.build_supernet({"C": 4, "layers": 3}, num_classes=10),
        "darts eval network": darts.eval_network(arch, recipe, num_classes=10),
    }


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", list(_networks()))
def test_global_pooling_swap_gives_the_same_values_and_gradients(name):
    torch.manual_seed(0)
    net = _networks()[name]
    net.train()
    swapped = _networks()[name]
    swapped.load_state_dict(net.state_dict())
    swapped.train()
    assert _pools(swapped), "the network has a global average pool to swap"
    keys = list(swapped.state_dict())
    n = P.prepare_network({"deterministic": True}, swapped)
    assert n == len(_pools(net)) and not _pools(swapped)
    assert sum(isinstance(m, P.GlobalMeanPool) for m in swapped.modules()) == n
    assert list(swapped.state_dict()) == keys  # no parameter or buffer changed
    x = torch.randn(4, 3, 8, 8)
    out_a, out_b = _logits(net(x)), _logits(swapped(x))
    assert torch.equal(out_a, out_b)  # eager AdaptiveAvgPool2d(1) is this very mean
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    for (k, p), q in zip(net.named_parameters(), swapped.parameters()):
        if p.grad is None:
            assert q.grad is None, k
            continue
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=1e-7), k
        assert torch.equal(p.grad, q.grad), k


def test_without_deterministic_nothing_is_swapped():
    net = _networks()["nb201 supernet"]
    assert P.prepare_network(None, net) == 0 and P.prepare_network({"deterministic": False}, net) == 0
    assert _pools(net)


def test_swap_keeps_other_adaptive_pools():
    net = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Sequential(nn.AdaptiveAvgPool2d((1, 1))))
    assert P.swap_global_pooling(net) == 1
    assert isinstance(net[0], nn.AdaptiveAvgPool2d) and isinstance(net[1][0], P.GlobalMeanPool)


def test_the_option_validates_and_stays_out_of_configs_that_do_not_set_it():
    P.validate_precision({"deterministic": True})
    P.validate_precision({"deterministic": None})
    with pytest.raises(ConfigError, match="precision.deterministic must be true or false"):
        P.validate_precision({"deterministic": "yes"})
    prof = C.load_profile(TINY)
    plain = C.resolve("nb201", "darts-1st", 0, prof, C.find_part(prof, "nb201"))
    assert "deterministic" not in plain["precision"]  # configs (and run ids) from before the option are unchanged
    det = C.resolve(
        "nb201", "darts-1st", 0, prof, C.find_part(prof, "nb201"), C.parse_overrides(["precision.deterministic=true"])
    )
    assert det["precision"]["deterministic"] is True
    assert not any("determin" in d for d in det["deviations"])  # rounding order only: not a deviation
    with pytest.raises(ConfigError):
        C.resolve(
            "nb201", "darts-1st", 0, prof, C.find_part(prof, "nb201"), C.parse_overrides(["precision.deterministic=2"])
        )


def test_apply_sets_the_flags_and_says_cpu_runs_are_bit_reproducible():
    cpu = torch.device("cpu")
    on = P.apply_precision({"deterministic": True}, cpu)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled()
    assert on["deterministic"] and on["deterministic_algorithms"] and on["cudnn_deterministic"]
    assert on["cublas_workspace_config"] == ":4096:8"
    assert on["bit_reproducible"] is True and on["bit_reproducible_reason"].startswith("CPU")
    off = P.apply_precision(None, cpu)  # the next run's policy resets the process-wide flags
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    assert off["deterministic"] is False and off["bit_reproducible"] is True


def test_cuda_verdicts(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    off = P.apply_precision(None, cuda)
    assert off["bit_reproducible"] is False and "precision.deterministic" in off["bit_reproducible_reason"]
    on = P.apply_precision({"deterministic": True}, cuda)
    assert on["bit_reproducible"] is True and "CUBLAS_WORKSPACE_CONFIG=:4096:8" in on["bit_reproducible_reason"]
    # set only after CUDA was initialised in this process: cuBLAS may have read the old value
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    late = P.apply_precision({"deterministic": True}, cuda)
    assert late["bit_reproducible"] is False and "after CUDA was initialised" in late["bit_reproducible_reason"]
    # a non-deterministic workspace setting is one error line
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    with pytest.raises(ConfigError, match="CUBLAS_WORKSPACE_CONFIG=:4096:8"):
        P.apply_precision({"deterministic": True}, cuda)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    assert P.apply_precision({"deterministic": True}, cuda)["bit_reproducible"] is True


def test_cublas_workspace_is_set_early_and_never_overridden():
    env = {}
    P.set_cublas_workspace_early(env)
    assert env == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    env = {"CUBLAS_WORKSPACE_CONFIG": ":16:8"}
    P.set_cublas_workspace_early(env)
    assert env["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_a_deterministic_search_run_records_it_and_runs_the_swapped_network(tmp_path, shared_data):
    from harness.runner import SearchRun

    prof = C.load_profile(TINY)
    over = C.parse_overrides(["precision.deterministic=true", "epochs=1"])
    cfg = C.resolve("nb201", "darts-1st", 0, prof, C.find_part(prof, "nb201"), over)
    run = SearchRun(cfg, tmp_path, shared_data, torch.device("cpu"))
    rec = run.run()
    assert rec["status"] == "ok", rec["failure"]
    prec = rec["provenance"]["precision"]
    assert prec["deterministic"] is True and prec["bit_reproducible"] is True
    assert prec["deterministic_algorithms"] is True and prec["bit_reproducible_reason"]
    assert not _pools(run.net) and any(isinstance(m, P.GlobalMeanPool) for m in run.net.modules())


# ------------------------------------------------------------------------------ evaluation: precision and layout


def test_eval_recipe_training_options_validate_and_are_deviations():
    from harness import eval_recipe as ER
    from tests.test_evaluate import TINY as TINY_RECIPE

    prof = {"name": "t", "evaluate": dict(TINY_RECIPE)}
    plain = ER.resolve_eval_config(prof)
    assert "precision" not in plain and "memory_format" not in plain  # absent: the reference's FP32 NCHW
    explicit = ER.resolve_eval_config(prof, {"precision": "fp32", "memory_format": "contiguous"})
    assert ER.eval_deviations(explicit) == ER.eval_deviations(plain)
    for over, needle in (
        ({"precision": "tf32"}, "precision=tf32"),
        ({"precision": "bf16"}, "precision=bf16"),
        ({"memory_format": "channels_last"}, "memory_format=channels_last"),
    ):
        devs = ER.eval_deviations(ER.resolve_eval_config(prof, over))
        assert [d for d in devs if d.startswith(needle)], (over, devs)
    assert "no effect on CPU" in " ".join(ER.eval_deviations(ER.resolve_eval_config(prof, {"precision": "tf32"})))
    for over, match in (
        ({"precision": "fp16"}, "evaluate.precision must be one of"),
        ({"memory_format": "nhwc"}, "evaluate.memory_format must be one of"),
    ):
        with pytest.raises(ConfigError, match=match):
            ER.resolve_eval_config(prof, over)
    assert ER.run_precision_policy({"allow_tf32": True}, plain) == {"allow_tf32": True}  # absent: the profile's
    assert ER.run_precision_policy(None, dict(plain, precision="tf32")) == {"allow_tf32": True}
    assert ER.run_precision_policy({"allow_tf32": True}, dict(plain, precision="fp32")) == {"allow_tf32": False}


@pytest.mark.parametrize(
    "over,layout", [(["precision=bf16", "memory_format=channels_last"], True), (["precision=tf32"], False)]
)
def test_evaluation_run_trains_with_the_recipe_precision_and_layout(tmp_path, shared_data, monkeypatch, over, layout):
    from harness import evaluate as E
    from tests.test_evaluate import TINY as TINY_RECIPE
    from tests.test_evaluate import ns, write_profile

    monkeypatch.setenv("HARNESS_DATA", str(shared_data))
    seen = []
    orig = E.EvalRun.build

    def build(self):
        orig(self)
        seen.append(self)

    monkeypatch.setattr(E.EvalRun, "build", build)
    autocast_on = []
    forward = E.EvalRun.run_epoch

    def run_epoch(self, epoch, record):
        hook = self.net.register_forward_hook(
            lambda m, i, o: autocast_on.append(torch.is_autocast_enabled("cpu")) if m.training else None
        )
        try:
            return forward(self, epoch, record)
        finally:
            hook.remove()

    monkeypatch.setattr(E.EvalRun, "run_epoch", run_epoch)
    rec = E.run_evaluate(ns(write_profile(tmp_path, dict(TINY_RECIPE, epochs=1)), tmp_path / "out", overrides=over))
    assert rec["status"] == "ok", rec["failure"]
    names = [o.split("=")[0] for o in over]
    assert sorted(d.split("=")[0] for d in rec["deviations"] if d.split("=")[0] in names) == sorted(names)
    (run,) = seen
    conv = next(m for m in run.net.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is layout
    if "precision=bf16" in over:
        assert autocast_on and all(autocast_on)
    else:
        assert autocast_on and not any(autocast_on)
        prec = rec["provenance"]["precision"]
        assert prec["cudnn_allow_tf32"] is True and prec["note"].endswith("no effect on CPU")
