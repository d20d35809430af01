"""After-epoch hooks (harness.hooks): config section, results in the record, hook time apart from epoch time,
no disturbance of the search (RNG forked), resume without re-running finished epochs, one-line bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from harness import config as C
from harness import records
from harness.errors import ConfigError
from harness.hooks import EpochHook, get_hook, list_hooks, register_hook
from harness.runner import SearchRun
from harness.schema import Option
from tests.fixtures.records_compare import strip_volatile

TINY = Path(__file__).parent / "fixtures" / "tiny.yaml"
CALLS = []


@register_hook("test-counter")
class CounterHook(EpochHook):
    """Records the epoch, draws random numbers (the lifecycle must fork the RNG) and reads the run's state."""

    options = {"scale": Option("a multiplier", float, minimum=0, exclusive=True, default=2.0)}

    def after_epoch(self, state):
        CALLS.append(state.epoch)
        noise = torch.randn(5).sum().item()  # drawn from the global stream: must not shift the search
        n_alpha = sum(a.numel() for a in state.method.alphas)
        return {
            "epoch_times_scale": state.epoch * self.settings["scale"],
            "n_alpha": n_alpha,
            "saw_val_acc": "val_acc" in state.entry,
            "noise_is_finite": noise == noise,
            "nan": float("nan"),
        }


def times_aside(rec):
    """``strip_volatile`` and the hooks' seconds (wall-clock, like epoch_seconds)."""
    out = strip_volatile(rec)
    for e in out["epochs"]:
        e.pop("hook_seconds", None)
    return out


def cfg_with(hooks=None, method="darts-1st", epochs=3):
    prof = C.load_profile(TINY)
    part = copy.deepcopy(C.find_part(prof, "nb201"))
    part["epochs"] = epochs
    if hooks is not None:
        part["hooks"] = hooks
    return C.resolve("nb201", method, 0, prof, part)


def test_registry_and_settings_are_resolved_with_defaults():
    assert "hypergrad" in list_hooks() and "test-counter" in list_hooks()
    assert get_hook("test-counter") is CounterHook
    cfg = cfg_with({"test-counter": {}})
    assert cfg["hooks"]["test-counter"] == {"scale": 2.0}
    assert set(cfg_with()["hooks"]) == {"collapse"}  # no hooks named: only the default-on collapse diagnostics


@pytest.mark.parametrize(
    "hooks,needle",
    [
        ({"no-such-hook": {}}, "unknown hook"),
        ({"test-counter": {"scale": 0}}, "scale"),
        ({"test-counter": {"other": 1}}, "unknown key"),
        ({"test-counter": 3}, "must be a mapping"),
    ],
)
def test_bad_hook_settings_are_one_config_error(hooks, needle):
    with pytest.raises(ConfigError) as exc:
        cfg_with(hooks)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_hook_results_land_in_the_record_and_do_not_disturb_the_search(shared_data, tmp_path):
    CALLS.clear()
    plain = SearchRun(cfg_with(), tmp_path / "plain", shared_data, torch.device("cpu")).run()
    hooked = SearchRun(
        cfg_with({"test-counter": {"scale": 3.0}}), tmp_path / "hooked", shared_data, torch.device("cpu")
    ).run()
    assert hooked["status"] == "ok" and CALLS == [0, 1, 2]
    for e in hooked["epochs"]:
        assert e["hooks"]["test-counter"] == {
            "epoch_times_scale": 3.0 * e["epoch"],
            "n_alpha": 30,
            "saw_val_acc": True,
            "noise_is_finite": True,
            "nan": None,
        }
        assert e["hook_seconds"]["test-counter"] >= 0
    # the search itself is the same as without the hook (RNG forked, nothing touched)
    for a, b in zip(plain["epochs"], hooked["epochs"]):
        assert a["arch"] == b["arch"] and a["alpha_probs"] == b["alpha_probs"] and a["train_loss"] == b["train_loss"]
    # hook time is not search time
    assert hooked["final"]["search_seconds"] == pytest.approx(sum(e["epoch_seconds"] for e in hooked["epochs"]))
    assert records.read_record(tmp_path / "hooked" / "records" / f"{hooked['run_id']}.json")["epochs"][0]["hooks"]


def test_resumed_run_does_not_rerun_hooks_of_finished_epochs(shared_data, tmp_path):
    cfg = cfg_with({"test-counter": {}})
    CALLS.clear()
    full = SearchRun(cfg, tmp_path / "full", shared_data, torch.device("cpu")).run()
    run = SearchRun(cfg, tmp_path / "part", shared_data, torch.device("cpu"))
    orig = run.save_checkpoint

    def save_then_die(record, next_epoch, *a):
        orig(record, next_epoch, *a)
        raise KeyboardInterrupt

    run.save_checkpoint = save_then_die
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert CALLS == [0]
    CALLS.clear()
    resumed = SearchRun(cfg, tmp_path / "part", shared_data, torch.device("cpu")).run()
    assert CALLS == [1, 2]  # epoch 0 was measured before the kill and is not measured again
    assert times_aside(resumed) == times_aside(full)
    assert [e["hooks"]["test-counter"]["epoch_times_scale"] for e in resumed["epochs"]] == [0.0, 2.0, 4.0]
