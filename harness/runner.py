"""Search runs and the matrix of runs (profile × methods × seeds).

``SearchRun`` is the search side of the one run lifecycle (``harness.lifecycle.Run``): it builds
data, supernet and method from a resolved config, trains one epoch at a time and measures the
supernet, and picks the found cell by the run's selection rule.  ``run_matrix`` plans which runs
are left in an output folder and hands them to an executor (``harness.executors``).

Output folder: ``OUT/records/<run_id>.json``, ``OUT/checkpoints/<run_id>.pt`` (see
``harness.lifecycle``), ``OUT/runs.json`` (the matrix; written by the CLI).

Per epoch a search record holds two supernet measurements on the eval subset of search-val:
``val_acc`` / ``val_loss``: batch-statistics BN (train-mode forward, no grad) on un-augmented
images, the harness's stable measure for a briefly trained supernet; ``ref_val_acc`` /
``ref_val_loss``: what the references log, ``eval()`` mode (running BN statistics where the
supernet keeps them) on batches with the protocol's eval augmentation (quark0/MiLeNAS: the
training transform; NB201: test-time transform).  The found cell is chosen by ``selection``:
``last`` (DARTS, GDAS, the NB201 scripts: the last epoch's cell), ``best_val_reference`` (MiLeNAS
§4.1: the epoch with the highest reference-style val accuracy), ``best_val_batchstats``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from harness import records
from harness.config import config_run_id
from harness.data import SearchData, SearchDataConfig
from harness.errors import ConfigError
from harness.lifecycle import (
    NonFiniteLoss,
    ProgressFn,
    Run,
    check_finite,
    check_output_dir,
    peak_memory_mb,
    pick_device,
    read_finished_record,
    sync,
)
from harness.registry import get_method, get_space
from harness.selection import select_epoch

__all__ = [
    "SearchRun",
    "run_matrix",
    "plan",
    "make_run",
    "select_epoch",
    "steady_seconds_per_iteration",
    "ProgressPrinter",
    "check_output_dir",
    "pick_device",
    "peak_memory_mb",
    "NonFiniteLoss",
]


@torch.no_grad()
def evaluate_supernet(net: torch.nn.Module, batches, seed: int, reference_mode: bool = False) -> Dict[str, float]:
    """Loss and accuracy (%) of the supernet on ``batches``, with the RNG forked (a GDAS sample
    never changes the search's random stream) and every buffer restored afterwards.

    ``reference_mode=False``: batch-statistics BN (train-mode forward).  ``True``: ``eval()`` mode,
    as the references' ``infer()`` (running statistics where the supernet tracks them).
    """
    saved = {k: v.clone() for k, v in net.named_buffers()}
    was_training = net.training
    net.train(not reference_mode)
    loss_sum, correct, n = 0.0, 0, 0
    dev = next(net.parameters()).device  # fork the RNG of the run's own GPU (``--device cuda:N``), not of GPU 0
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for x, y in batches:
            logits = net(x)
            loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += int(y.shape[0])
    for k, v in net.named_buffers():
        v.copy_(saved[k])
    net.train(was_training)
    return {"loss": loss_sum / max(n, 1), "acc": 100.0 * correct / max(n, 1)}


def steady_seconds_per_iteration(epochs: List[Dict[str, Any]]) -> Optional[float]:
    """Seconds per iteration over every epoch but the first (which carries kernel warm-up)."""
    later = epochs[1:]
    n = sum(e.get("iterations", 0) for e in later)
    return sum(e["epoch_seconds"] for e in later) / n if n else None


def search_run_id(cfg: Dict[str, Any]) -> str:
    return config_run_id(cfg)  # the one run-id builder: harness.config


class SearchRun(Run):
    """One search run: its config, build, and one epoch of search + measurement."""

    kind = "search"
    seconds_key = "search_seconds"

    def __init__(
        self,
        cfg: Dict[str, Any],
        out_dir: Path,
        data_root: Optional[Path] = None,
        device: Optional[torch.device] = None,
        progress: Optional[ProgressFn] = None,
    ):
        super().__init__(cfg, search_run_id(cfg), out_dir, data_root, device, progress)

    def build(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg["seed"])
        data_cfg = SearchDataConfig(
            **{f.name: cfg["data"][f.name] for f in fields(SearchDataConfig) if f.name in cfg["data"]}
        )
        self.data = SearchData(data_cfg, self.device, self.data_root)
        self.space = get_space(cfg["space"])(data_dir=self.data_root)
        self.net = self.space.build_supernet(dict(cfg["space_cfg"]), num_classes=10).to(self.device)
        steps = self.data.steps_per_epoch
        if cfg.get("max_steps_per_epoch"):
            steps = min(steps, cfg["max_steps_per_epoch"])
        self.steps_per_epoch = steps
        method_cls = get_method(cfg["method"])
        self.method = method_cls(
            self.net, {**cfg["optim"], **cfg["method_cfg"]}, cfg["epochs"], steps, speed=cfg.get("speed")
        )
        self.net.set_weighting(self.method.edge_weighting())
        self.gen = torch.Generator().manual_seed(cfg["seed"] + 1)

    def total_epochs(self) -> int:
        return int(self.cfg["epochs"])

    def data_provenance(self) -> Dict[str, Any]:
        return {**self.data.provenance, "benchmark_source": None}

    def module_state(self) -> Dict[str, Any]:
        return {"net": self.net.state_dict(), "method": self.method.state_dict()}

    def load_module_state(self, state: Dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.method.load_state_dict(state["method"])

    def poison(self) -> None:
        with torch.no_grad():
            for a in self.net.alphas():
                a.fill_(float("nan"))

    def run_epoch(self, epoch: int, record: Dict[str, Any]) -> Dict[str, Any]:
        cfg = self.cfg
        self.method.on_epoch_start(epoch)
        sched = self.method.schedule_state()
        self.net.train()
        # speed.compile: warm up outside the clock, for the batch sizes this epoch feeds
        compile_seconds = self.method.warm_up(
            self.data.batch_sizes(self.steps_per_epoch), int(cfg["data"]["image_size"])
        )
        sync(self.device)
        t0 = time.perf_counter()
        sums: Dict[str, torch.Tensor] = {}
        steps_done = 0
        for step, (train_batch, val_batch) in enumerate(self.data.epoch(self.gen, self.steps_per_epoch)):
            if step >= self.steps_per_epoch:
                break
            for k, v in self.method.step(train_batch, val_batch).items():
                sums[k] = sums[k] + v if k in sums else v
            steps_done += 1
        sync(self.device)
        epoch_seconds = time.perf_counter() - t0
        stats = {k: float(v) for k, v in sums.items()}
        check_finite(stats, epoch)
        entry: Dict[str, Any] = {
            "epoch": epoch,
            **sched,
            "train_loss": stats["train_loss_sum"] / stats["train_n"],
            "train_acc": 100.0 * stats["train_correct"] / stats["train_n"],
        }
        if "val_n" in stats:
            entry["search_val_batch_loss"] = stats["val_loss_sum"] / stats["val_n"]
            entry["search_val_batch_acc"] = 100.0 * stats["val_correct"] / stats["val_n"]
        eval_seed = cfg["seed"] * 1000 + epoch
        plain = evaluate_supernet(self.net, self.data.eval_batches(cfg["eval_batch_size"]), seed=eval_seed)
        aug_gen = torch.Generator().manual_seed(eval_seed) if cfg["data"].get("reference_eval_augment") else None
        ref = evaluate_supernet(
            self.net,
            self.data.eval_batches(cfg["eval_batch_size"], augment_gen=aug_gen),
            seed=eval_seed,
            reference_mode=True,
        )
        entry.update(val_loss=plain["loss"], val_acc=plain["acc"], ref_val_loss=ref["loss"], ref_val_acc=ref["acc"])
        arch = self.net.derive()
        entry["arch"] = str(arch)
        entry["arch_info"] = self.space.arch_info(arch)
        entry["alpha_probs"] = self.net.alpha_probabilities()
        strengths = self.net.derive_strengths()  # the weights the cell was derived from, when not softmax(α)
        if strengths is not None:
            entry["derive_weights"] = strengths
        entry["epoch_seconds"] = epoch_seconds
        entry["iterations"] = steps_done
        if compile_seconds is not None:
            entry["compile_seconds"] = compile_seconds  # torch.compile warm-up, not in epoch_seconds
        if record["provenance"].get("benchmark_source") is None:
            record["provenance"]["benchmark_source"] = entry["arch_info"].get("benchmark_source")
        return entry

    def progress_event(self, entry: Dict[str, Any]) -> Dict[str, Any]:
        return {"loss": entry["train_loss"], "val_acc": entry["val_acc"]}

    def stop_early(self, record: Dict[str, Any], entry: Dict[str, Any]) -> bool:
        """The method's own stop rule first: a method with ``stop_search(epochs, ev_freq) -> Optional[int]`` (DARTS-ES,
        ``baselines/rdarts.py``) may end the search after this epoch and name the earlier epoch whose cell the run
        reports (``record["early_stop"]``; ``ev_freq``: the collapse hook's ``every``).  Then the config's
        ``early_stop`` (MiLeNAS §3.4 rule)."""
        method_rule = getattr(self.method, "stop_search", None)
        if method_rule is not None:
            every = int(((self.cfg.get("hooks") or {}).get("collapse") or {}).get("every") or 0)
            reported = method_rule(record["epochs"], every)
            if reported is not None:
                record["early_stop"] = {
                    "rule": self.cfg["method"],
                    "stopped_at_epoch": int(entry["epoch"]),
                    "reported_epoch": int(reported),
                }
                return True
        if self.cfg.get("early_stop") and entry["arch_info"].get("early_stop"):
            record["early_stopped_at"] = entry["epoch"]  # MiLeNAS §3.4 rule (normal 6 convs, reduce 0)
            return True
        return False

    def final_fields(self, record: Dict[str, Any]) -> Dict[str, Any]:
        epochs = record["epochs"]
        rule = self.cfg.get("selection", "last")
        chosen = select_epoch(epochs, rule)
        stop = record.get("early_stop")
        if stop is not None:  # the method stopped the search and reports an earlier epoch's cell (DARTS-ES)
            rule = "early_stop"
            chosen = next(e for e in epochs if e["epoch"] == stop["reported_epoch"])
        iterations = sum(e["iterations"] for e in epochs)
        seconds = sum(e["epoch_seconds"] for e in epochs)
        return {
            "arch": chosen["arch"],
            "arch_info": chosen["arch_info"],
            "selection": {"rule": rule, "epoch": chosen["epoch"], "last_epoch_arch": epochs[-1]["arch"]},
            "early_stop": {"stopped": stop is not None, **(stop or {})},
            "val_acc": epochs[-1]["val_acc"],
            "ref_val_acc": epochs[-1]["ref_val_acc"],
            "best_val_acc": max(e["val_acc"] for e in epochs),
            "best_ref_val_acc": max(e["ref_val_acc"] for e in epochs),
            "iterations": iterations,
            "seconds_per_iteration": seconds / max(iterations, 1),
            "seconds_per_iteration_steady": steady_seconds_per_iteration(epochs),
            **(
                {"compile_seconds": sum(e.get("compile_seconds") or 0.0 for e in epochs)}
                if any("compile_seconds" in e for e in epochs)
                else {}
            ),
        }


def make_run(
    cfg: Dict[str, Any], out_dir: Path, data_root: Optional[Path], device: torch.device, progress: Optional[ProgressFn]
) -> SearchRun:
    """The run factory executors call (module level, so worker processes can unpickle it)."""
    return SearchRun(cfg, out_dir, data_root, device, progress)


# ---------------------------------------------------------------------- the matrix


def plan(configs: List[Dict[str, Any]], out_dir: Path, retry_failed: bool = False) -> List[Dict[str, Any]]:
    """Which configs still need running.  A record of the same run id with another config is an error."""
    todo, seen = [], set()
    for cfg in configs:
        rid = search_run_id(cfg)
        if rid in seen:
            raise ConfigError(f"run {rid} appears twice in the matrix")
        seen.add(rid)
        rec = read_finished_record(out_dir / "records" / f"{rid}.json", records.config_hash(cfg))
        if rec is not None and (rec["status"] == "ok" or (rec["status"] == "failed" and not retry_failed)):
            continue
        todo.append(cfg)
    return todo


def set_aside_failed(todo: List[Dict[str, Any]], out_dir: Path) -> List[Path]:
    """``--retry-failed``: move the failed records of runs about to run again to ``OUT/failed/`` (kept,
    never deleted; outside ``records/`` so reports read only the new attempt)."""
    moved = []
    for cfg in todo:
        path = out_dir / "records" / f"{search_run_id(cfg)}.json"
        rec = read_finished_record(path, records.config_hash(cfg))
        if rec is not None and rec.get("status") == "failed":
            dest = (
                out_dir / "failed" / f"{path.stem}.failed-{(rec.get('finished_at') or 'unknown').replace(':', '')}.json"
            )
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            moved.append(dest)
    return moved


class ProgressPrinter:
    """One line per finished epoch: run, epoch, loss, val accuracy, time left."""

    def __init__(self, total_runs: int, stream=None):
        self.total = total_runs
        self.done = 0
        self.stream = stream or sys.stderr

    def __call__(self, ev: Dict[str, Any]) -> None:
        if ev.get("event") == "run_done":
            self.done += 1
            msg = f"[{self.done}/{self.total} runs] {ev['run_id']}: {ev['status']}"
            if ev.get("failure"):
                msg += f" ({ev['failure']['reason']})"
            print(msg, file=self.stream, flush=True)
            return
        print(
            f"  {ev['space']:5s} {ev['label']:<22s} seed {ev['seed']} | epoch {ev['epoch'] + 1}/{ev['epochs']}"
            f" | loss {ev['loss']:.3f} | val {ev['val_acc']:5.1f}% | {ev['epoch_seconds']:.1f} s/epoch"
            f" | run done in ~{ev['eta_seconds']:.0f} s",
            file=self.stream,
            flush=True,
        )


def run_matrix(
    configs: List[Dict[str, Any]],
    out_dir: Path,
    data_root: Optional[Path] = None,
    device: str = "auto",
    workers: int = 1,
    retry_failed: bool = False,
    progress: Optional[ProgressFn] = None,
    executor: str = "local",
    executor_options: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]:
    """Run every config not finished yet on ``executor`` (``harness.executors``: local, ray, slurm; with
    ``executor_options``); returns a summary per run handed to it now.  Status ``running-elsewhere``:
    another executor holds the run's lock (``harness.runlock``), so it was not run here."""
    from harness.executors import get_executor
    from harness.runlock import RUNNING_ELSEWHERE

    run_on = get_executor(executor)
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    todo = plan(configs, out_dir, retry_failed)
    if retry_failed:
        set_aside_failed(todo, out_dir)
    printer = progress or ProgressPrinter(len(todo))
    skipped = len(configs) - len(todo)
    if skipped:
        print(f"{skipped} run(s) already finished in {out_dir}: not recomputed", file=sys.stderr)

    def report(ev: Dict[str, Any]) -> None:
        if progress is None and ev.get("event") == "run_done" and ev.get("status") == RUNNING_ELSEWHERE:
            print(
                f"  {ev['run_id']}: running elsewhere ({ev.get('holder')}): not run here", file=sys.stderr, flush=True
            )
            return
        printer(ev)

    return run_on(todo, make_run, out_dir, data_root, device, report, workers=workers, **(executor_options or {}))
