"""Evaluation runs: train a found cell's evaluation network from scratch (docs/evaluation.md).

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
from harness.eval_recipe import (
    RECIPE_SOURCES,
    drop_path_at,
    eval_deviations,
    lr_at,
    parse_eval_overrides,
    resolve_eval_config,
    run_precision_policy,
    training_setting,
)
from harness.lifecycle import ProgressFn, Run, check_finite, check_output_dir, read_finished_record, sync
from harness.methods import MEMORY_FORMATS
from harness.precision import check_bf16
from harness.registry import get_space
from harness.selection import default_space, resolve_cell
from harness.spaces.base import count_parameters_millions


class EvalRun(Run):
    kind = "evaluation"
    seconds_key = "train_seconds"

    def __init__(
        self,
        cfg: Dict[str, Any],
        out_dir: Path,
        data_root: Optional[Path] = None,
        device: Optional[torch.device] = None,
        download: bool = False,
        progress: bool = True,
    ):
        super().__init__(cfg, cfg["run_id"], out_dir, data_root, device, self._print_progress if progress else None)
        self.recipe = cfg["evaluate"]
        self.download = download
        self.show_progress = progress

    def build(self) -> None:
        r = self.recipe
        torch.manual_seed(self.cfg["seed"])
        self.data = TrainTestData(r, self.device, self.data_root, self.download)
        space = get_space(self.cfg["space"])(data_dir=self.data_root)
        self.net = space.eval_network(space.parse_arch(self.cfg["genotype"]), r, num_classes=10).to(self.device)
        self.memory_format = MEMORY_FORMATS[training_setting(r, "memory_format")]
        self.net = self.net.to(memory_format=self.memory_format)  # before the optimizer sees the parameters
        self.bf16 = training_setting(r, "precision") == "bf16"
        if self.bf16:
            check_bf16(self.device)
        self.optimizer = torch.optim.SGD(
            self.net.parameters(), lr=r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"]
        )
        self.gen = torch.Generator().manual_seed(self.cfg["seed"] + 1)

    def total_epochs(self) -> int:
        return int(self.recipe["epochs"])

    def record_fields(self) -> Dict[str, Any]:
        cfg = self.cfg
        return {
            "genotype": cfg["genotype"],
            "genotype_name": cfg["genotype_name"],
            "params_M": round(count_parameters_millions(self.net), 6),
            "selection": cfg["selection"],
        }

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
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):  # recipe precision
                logits, logits_aux = self.net(xb.contiguous(memory_format=self.memory_format))
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
        return {
            "epoch": epoch,
            "lr": lr,
            "drop_path_prob": dp,
            "train_loss": train_loss,
            "train_acc": 100.0 * int(correct) / max(n, 1),
            **self.test(),
            "steps": -(-n // r["batch_size"]),
            "epoch_seconds": seconds,
        }

    @torch.no_grad()
    def test(self) -> Dict[str, float]:
        self.net.eval()
        loss_sum, correct, n = 0.0, 0, 0
        for xb, yb in self.data.test_batches():
            logits, _ = self.net(xb.contiguous(memory_format=self.memory_format))
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
            n += int(yb.shape[0])
        self.net.train()
        return {"test_loss": loss_sum / max(n, 1), "test_acc": 100.0 * correct / max(n, 1)}

    def progress_event(self, entry: Dict[str, Any]) -> Dict[str, Any]:
        return {"entry": entry}

    def _print_progress(self, ev: Dict[str, Any]) -> None:
        e = ev["entry"]
        print(
            f"[{self.run_id}] epoch {e['epoch'] + 1}/{ev['epochs']} lr {e['lr']:.5f} "
            f"dp {e['drop_path_prob']:.3f} train loss {e['train_loss']:.4f} acc {e['train_acc']:.2f} | "
            f"test loss {e['test_loss']:.4f} acc {e['test_acc']:.2f} | {e['epoch_seconds']:.1f} s"
            f" (eta {ev['eta_seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    def final_fields(self, record: Dict[str, Any]) -> Dict[str, Any]:
        epochs = record["epochs"]
        last = epochs[-1]
        return {
            "test_acc": last["test_acc"],
            "test_error": 100.0 - last["test_acc"],
            "best_test_acc": max(e["test_acc"] for e in epochs),
            "test_loss": last["test_loss"],
            "train_acc": last["train_acc"],
            "params_M": record["params_M"],
            "steps": sum(e["steps"] for e in epochs),
        }


# ---------------------------------------------------------------------------------------- entry point


def build_eval_config(args) -> Dict[str, Any]:
    """The full resolved config of one evaluation run (recipe + cell + identity), validated."""
    from harness.config import eval_run_id, load_profile, parse_overrides

    profile = load_profile(getattr(args, "profile", None) or "smoke")
    recipe = resolve_eval_config(profile, parse_eval_overrides(getattr(args, "overrides", None)))
    seed = getattr(args, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, not {seed!r}")
    space = getattr(args, "space", None) or default_space()
    cell = resolve_cell(
        space,
        genotype=getattr(args, "genotype", None),
        from_runs=getattr(args, "from_runs", None),
        method=getattr(args, "method", None),
        variant=parse_overrides(getattr(args, "variant", None) or []) or None,
        run_id=getattr(args, "run_id", None),
    )
    return {
        "kind": "evaluation",
        "run_id": eval_run_id(space, cell["name"], seed),
        "space": space,
        "method": cell["method"],
        "variant": {},
        "label": cell["label"],
        "seed": seed,
        "profile": profile.get("name", "custom"),
        "scale": profile.get("scale", "custom"),
        "genotype": cell["text"],
        "genotype_name": cell["name"],
        "selection": cell["selection"],
        "evaluate": recipe,
        "recipe_source": RECIPE_SOURCES[recipe["recipe"]],
        "precision": run_precision_policy(profile.get("precision"), recipe),
        "deviations": eval_deviations(recipe),
    }


# ---------------------------------------------------------------------------------- for executors


def make_eval_run(
    cfg: Dict[str, Any], out_dir: Path, data_root: Optional[Path], device: torch.device, progress: Optional[ProgressFn]
):
    """An ``EvalRun`` whose progress events go to ``progress`` (an executor's channel) instead of stderr."""
    run = EvalRun(cfg, out_dir, data_root=data_root, device=device, download=False, progress=False)
    if progress is not None:
        run.progress = progress
    return run


class EvalProgressPrinter:
    """One line per finished evaluation epoch, and one per finished run."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def __call__(self, ev: Dict[str, Any]) -> None:
        if ev.get("event") == "run_done":
            msg = f"{ev['run_id']}: {ev['status']}"
            if ev.get("failure"):
                msg += f" ({ev['failure']['reason']})"
            if ev.get("holder"):
                msg += f" (held by {ev['holder']})"
            print(msg, file=self.stream, flush=True)
            return
        e = ev.get("entry") or {}
        print(
            f"[{ev.get('run_id')}] epoch {ev.get('epoch', 0) + 1}/{ev.get('epochs')} lr {e.get('lr', 0):.5f} "
            f"train loss {e.get('train_loss', float('nan')):.4f} acc {e.get('train_acc', float('nan')):.2f} | "
            f"test acc {e.get('test_acc', float('nan')):.2f} | {e.get('epoch_seconds', 0):.1f} s "
            f"(eta {ev.get('eta_seconds', 0):.0f} s)",
            file=self.stream,
            flush=True,
        )


def run_evaluate(args, executor: str = "local", options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``python -m harness evaluate``: resolve config and cell, run the one evaluation run on ``executor``
    (``harness.executors``, with its ``options``; the local one runs it in this process), print and return
    its record.  When the run did not end here, the executor's summary: status ``submitted`` (Slurm
    ``--no-wait``), ``planned`` (a dry run), ``running-elsewhere``, or ``error`` (a task lost)."""
    from harness import records
    from harness.data import load_cifar10
    from harness.executors import get_executor

    run_on = get_executor(executor)
    options = dict(options or {})
    cfg = build_eval_config(args)
    out = Path(args.out)
    data_root = Path(args.data_dir) if getattr(args, "data_dir", None) else None
    for split in ("train", "test"):  # bad data fails in one line, before anything is written; workers never download
        load_cifar10(split, data_root, download=bool(getattr(args, "download", False)))
    check_output_dir(out)
    if cfg["selection"]:
        print(f"selected {cfg['selection']['selected_run']}: {cfg['selection']['reason']}", file=sys.stderr)
    path = out / "records" / f"{cfg['run_id']}.json"
    done = read_finished_record(path, records.config_hash(cfg))
    dry_run = bool(options.get("dry_run"))
    if done is not None and done.get("status") in ("ok", "failed") and not dry_run:
        print(f"run already finished (status {done['status']}): {path}; delete it to run again", file=sys.stderr)
        return done
    results = run_on(
        [cfg],
        make_eval_run,
        out,
        data_root,
        getattr(args, "device", None) or "auto",
        EvalProgressPrinter(),
        workers=1,
        **options,
    )
    if dry_run:
        return {"run_id": cfg["run_id"], "status": "planned", "failure": None}
    result = (
        results[0]
        if results
        else {
            "run_id": cfg["run_id"],
            "status": "error",
            "failure": {"reason": "the executor returned no result", "epoch": None},
        }
    )
    if result["status"] not in ("ok", "failed"):
        return result
    rec = records.read_record(path)
    if rec.get("status") == "ok":
        f = rec["final"]
        print(
            f"{rec['run_id']}: test acc {f['test_acc']:.2f} % (error {f['test_error']:.2f} %), "
            f"{rec['params_M']:.3f} M params, {f['train_seconds']:.1f} s -> {path}",
            file=sys.stderr,
        )
    elif rec.get("failure"):
        print(f"[{rec['run_id']}] failed: {rec['failure']['reason']}", file=sys.stderr)
    return rec
