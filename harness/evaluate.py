"""Evaluation runs: train a found cell's evaluation network from scratch (spec §1.5, §1.6, §3.8).

``EvalRun`` is the evaluation side of the one run lifecycle (``harness.lifecycle.Run``).  The
network comes from the space registry (``space.eval_network(arch, recipe)``), the recipe from
``harness.eval_recipe``, the cell from ``harness.selection``, the data from
``harness.data.TrainTestData``.

* ``train_loss`` is the optimised objective (main CE + aux_weight·aux CE, as quark0 logs it);
  ``train_acc`` is the main head's top-1 on the augmented batches.
* ``final.test_acc`` is the **last** epoch's test accuracy (the DARTS / MiLeNAS-paper protocol);
  ``final.best_test_acc`` (max over epochs, what the MiLeNAS repo also logs) is kept for reference.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from harness.data import TrainTestData
from harness.errors import ConfigError
from harness.eval_recipe import (RECIPE_SOURCES, drop_path_at, eval_deviations, lr_at, parse_eval_overrides,
                                 resolve_eval_config)
from harness.lifecycle import Run, check_finite, check_output_dir, pick_device, sync
from harness.registry import get_space
from harness.spaces.base import count_parameters_millions
from harness.selection import SPACE, _slug, resolve_cell


class EvalRun(Run):
    kind = "evaluation"
    seconds_key = "train_seconds"

    def __init__(self, cfg: Dict[str, Any], out_dir: Path, data_root: Optional[Path] = None,
                 device: Optional[torch.device] = None, download: bool = False, progress: bool = True):
        super().__init__(cfg, cfg["run_id"], out_dir, data_root, device,
                         self._print_progress if progress else None)
        self.recipe = cfg["evaluate"]
        self.download = download
        self.show_progress = progress

    def build(self) -> None:
        r = self.recipe
        torch.manual_seed(self.cfg["seed"])
        self.data = TrainTestData(r, self.device, self.data_root, self.download)
        space = get_space(self.cfg["space"])(data_dir=self.data_root)
        self.net = space.eval_network(space.parse_arch(self.cfg["genotype"]), r, num_classes=10).to(self.device)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=r["lr"], momentum=r["momentum"],
                                         weight_decay=r["weight_decay"])
        self.gen = torch.Generator().manual_seed(self.cfg["seed"] + 1)

    def total_epochs(self) -> int:
        return int(self.recipe["epochs"])

    def record_fields(self) -> Dict[str, Any]:
        cfg = self.cfg
        return {"genotype": cfg["genotype"], "genotype_name": cfg["genotype_name"],
                "params_M": round(count_parameters_millions(self.net), 6), "selection": cfg["selection"]}

    def module_state(self) -> Dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_module_state(self, state: Dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])

    def poison(self) -> None:
        with torch.no_grad():
            self.net.classifier.weight.fill_(float("nan"))

    def run_epoch(self, epoch: int, record: Dict[str, Any]) -> Dict[str, Any]:
        r = self.recipe
        lr, dp = lr_at(r, epoch), drop_path_at(r, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.drop_path_prob = dp
        self.net.train()
        sync(self.device)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        n = 0
        for xb, yb in self.data.train_batches(self.gen):
            logits, logits_aux = self.net(xb)
            loss = F.cross_entropy(logits, yb)
            if r["auxiliary"] and logits_aux is not None:
                loss = loss + r["auxiliary_weight"] * F.cross_entropy(logits_aux, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if r["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), r["grad_clip"])
            self.optimizer.step()
            loss_sum += loss.detach() * yb.shape[0]
            correct += (logits.detach().argmax(1) == yb).sum()
            n += int(yb.shape[0])
        sync(self.device)
        seconds = time.perf_counter() - t0
        train_loss = float(loss_sum) / max(n, 1)
        check_finite({"train_loss": train_loss}, epoch)
        return {"epoch": epoch, "lr": lr, "drop_path_prob": dp, "train_loss": train_loss,
                "train_acc": 100.0 * int(correct) / max(n, 1), **self.test(), "steps": -(-n // r["batch_size"]),
                "epoch_seconds": seconds}

    @torch.no_grad()
    def test(self) -> Dict[str, float]:
        self.net.eval()
        loss_sum, correct, n = 0.0, 0, 0
        for xb, yb in self.data.test_batches():
            logits, _ = self.net(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
            n += int(yb.shape[0])
        self.net.train()
        return {"test_loss": loss_sum / max(n, 1), "test_acc": 100.0 * correct / max(n, 1)}

    def progress_event(self, entry: Dict[str, Any]) -> Dict[str, Any]:
        return {"entry": entry}

    def _print_progress(self, ev: Dict[str, Any]) -> None:
        e = ev["entry"]
        print(f"[{self.run_id}] epoch {e['epoch'] + 1}/{ev['epochs']} lr {e['lr']:.5f} "
              f"dp {e['drop_path_prob']:.3f} train loss {e['train_loss']:.4f} acc {e['train_acc']:.2f} | "
              f"test loss {e['test_loss']:.4f} acc {e['test_acc']:.2f} | {e['epoch_seconds']:.1f} s"
              f" (eta {ev['eta_seconds']:.0f} s)", file=sys.stderr, flush=True)

    def final_fields(self, record: Dict[str, Any]) -> Dict[str, Any]:
        epochs = record["epochs"]
        last = epochs[-1]
        return {"test_acc": last["test_acc"], "test_error": 100.0 - last["test_acc"],
                "best_test_acc": max(e["test_acc"] for e in epochs), "test_loss": last["test_loss"],
                "train_acc": last["train_acc"], "params_M": record["params_M"],
                "steps": sum(e["steps"] for e in epochs)}


# ---------------------------------------------------------------------------------------- entry point

def build_eval_config(args) -> Dict[str, Any]:
    """The full resolved config of one evaluation run (recipe + cell + identity), validated."""
    from harness.config import load_profile, parse_overrides

    profile = load_profile(getattr(args, "profile", None) or "smoke")
    recipe = resolve_eval_config(profile, parse_eval_overrides(getattr(args, "overrides", None)))
    seed = getattr(args, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, not {seed!r}")
    space = getattr(args, "space", None) or SPACE
    cell = resolve_cell(space, genotype=getattr(args, "genotype", None), from_runs=getattr(args, "from_runs", None),
                        method=getattr(args, "method", None),
                        variant=parse_overrides(getattr(args, "variant", None) or []) or None,
                        run_id=getattr(args, "run_id", None))
    run_id = f"{space}__eval__{_slug(cell['name'])}__s{seed}"
    return {"kind": "evaluation", "run_id": run_id, "space": space, "method": cell["method"], "variant": {},
            "label": cell["label"], "seed": seed, "profile": profile.get("name", "custom"),
            "scale": profile.get("scale", "custom"), "genotype": cell["text"], "genotype_name": cell["name"],
            "selection": cell["selection"], "evaluate": recipe, "recipe_source": RECIPE_SOURCES[recipe["recipe"]],
            "precision": dict(profile.get("precision") or {}), "deviations": eval_deviations(recipe)}


def run_evaluate(args) -> Dict[str, Any]:
    """``python -m harness evaluate``: resolve config and cell, train, write and return the record."""
    cfg = build_eval_config(args)
    out = Path(args.out)
    check_output_dir(out)
    device = pick_device(getattr(args, "device", None) or "auto")
    data_root = Path(args.data_dir) if getattr(args, "data_dir", None) else None
    run = EvalRun(cfg, out, data_root=data_root, device=device, download=bool(getattr(args, "download", False)))
    if cfg["selection"]:
        print(f"selected {cfg['selection']['selected_run']}: {cfg['selection']['reason']}", file=sys.stderr)
    done = run.existing()
    if done is not None and done.get("status") in ("ok", "failed"):
        print(f"run already finished (status {done['status']}): {run.record_path}; delete it to run again",
              file=sys.stderr)
        return done
    rec = run.run()
    if rec.get("status") == "ok":
        f = rec["final"]
        print(f"{rec['run_id']}: test acc {f['test_acc']:.2f} % (error {f['test_error']:.2f} %), "
              f"{rec['params_M']:.3f} M params, {f['train_seconds']:.1f} s -> {run.record_path}", file=sys.stderr)
    elif rec.get("failure"):
        print(f"[{rec['run_id']}] failed: {rec['failure']['reason']}", file=sys.stderr)
    return rec
