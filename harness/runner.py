"""The search loop, checkpoints, records, and the matrix of runs (profile × methods × seeds).

Layout of an output folder::

    OUT/records/<run_id>.json       one record per run (harness.records schema), written atomically
    OUT/checkpoints/<run_id>.pt     state after the last finished epoch (deleted when the run is ok)
    OUT/runs.json                   the matrix: command, profile, commit, run ids
    OUT/source.diff                 uncommitted changes of the code that produced the runs (if any)

A finished run (status ok or failed) is never recomputed; a running one resumes from its
checkpoint.  On CPU a resumed run gives the same record as an uninterrupted one (times aside).
"""
from __future__ import annotations

import math
import os
import resource
import sys
import time
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from harness import records
from harness.data import SearchData, SearchDataConfig
from harness.errors import ConfigError, HarnessError
from harness.provenance import provenance
from harness.registry import get_method, get_space

ProgressFn = Callable[[Dict[str, Any]], None]


class NonFiniteLoss(RuntimeError):
    pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available")
    return torch.device(name)


def reset_peak_rss() -> None:
    """Reset this process's peak-RSS counter (VmHWM) so that each run reports its own peak (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> Dict[str, float]:
    """Peak resident memory of this process since the last reset (VmHWM; ru_maxrss as a fallback)."""
    rss = None
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"peak_rss_mb": rss}
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_output_dir(out_dir: Path) -> None:
    """Fail early, with one clear line, if ``out_dir`` cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(f"output folder {out_dir} is not writable: {exc.strerror or exc}") from exc


@torch.no_grad()
def evaluate_supernet(net: torch.nn.Module, batches, seed: int) -> Dict[str, float]:
    """Loss and accuracy (%) of the supernet with batch-statistics BN (train-mode forward, no grad).

    A briefly trained supernet's BN running statistics are meaningless, so batch statistics are
    used (and any running buffers are restored afterwards).  The RNG is forked so that evaluating
    (GDAS samples a path) never changes the search's random stream.
    """
    saved = {k: v.clone() for k, v in net.named_buffers()}
    was_training = net.training
    net.train()
    loss_sum, correct, n = 0.0, 0, 0
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
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
    return {"val_loss": loss_sum / max(n, 1), "val_acc": 100.0 * correct / max(n, 1)}


def rng_states(gen: torch.Generator, device: torch.device) -> Dict[str, Any]:
    """Every random stream a run draws from (torch CPU, CUDA, the data generator), for checkpoints."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
            "data_rng": gen.get_state()}


def restore_rng_states(state: Dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    gen.set_state(state["data_rng"])


def read_checkpoint(path: Path, config_hash: str) -> Optional[Dict[str, Any]]:
    """A checkpoint of the same config, loaded on the CPU (RNG states must stay CPU tensors);
    None when absent, torn/corrupt (the run starts again) or from another config."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
    return state if state.get("config_hash") == config_hash else None


class SearchRun:
    """One search run: its config, paths, and the loop."""

    def __init__(self, cfg: Dict[str, Any], out_dir: Path, data_root: Optional[Path] = None,
                 device: Optional[torch.device] = None, progress: Optional[ProgressFn] = None):
        self.cfg = cfg
        self.run_id = records_run_id(cfg)
        self.out_dir = Path(out_dir)
        self.record_path = self.out_dir / "records" / f"{self.run_id}.json"
        self.ckpt_path = self.out_dir / "checkpoints" / f"{self.run_id}.pt"
        self.data_root = data_root
        self.device = device or pick_device()
        self.progress = progress or (lambda event: None)
        self.hash = records.config_hash(cfg)

    # ------------------------------------------------------------------ state
    def existing(self) -> Optional[Dict[str, Any]]:
        if not self.record_path.is_file():
            return None
        try:
            return records.read_record(self.record_path)
        except (ValueError, OSError):
            return None

    def build(self):
        cfg = self.cfg
        torch.manual_seed(cfg["seed"])
        data_cfg = SearchDataConfig(**{f.name: cfg["data"][f.name] for f in fields(SearchDataConfig)
                                       if f.name in cfg["data"]})
        self.data = SearchData(data_cfg, self.device, self.data_root)
        self.space = get_space(cfg["space"])()
        self.net = self.space.build_supernet(dict(cfg["space_cfg"]), num_classes=10).to(self.device)
        steps = self.data.steps_per_epoch
        if cfg.get("max_steps_per_epoch"):
            steps = min(steps, cfg["max_steps_per_epoch"])
        self.steps_per_epoch = steps
        method_cls = get_method(cfg["method"])
        self.method = method_cls(self.net, {**cfg["optim"], **cfg["method_cfg"]}, cfg["epochs"], steps)
        self.net.set_mode(self.method.forward_mode)
        self.gen = torch.Generator().manual_seed(cfg["seed"] + 1)

    def new_record(self) -> Dict[str, Any]:
        cfg = self.cfg
        prov = provenance(self.device)
        prov.update(self.data.provenance)
        prov["benchmark_source"] = None
        return {"schema": records.SCHEMA, "kind": "search", "run_id": self.run_id, "label": cfg["label"],
                "space": cfg["space"], "method": cfg["method"], "variant": cfg["variant"], "seed": cfg["seed"],
                "profile": cfg["profile"], "scale": cfg["scale"], "status": "running", "failure": None,
                "config": cfg, "config_hash": self.hash, "provenance": prov, "epochs": [], "final": None,
                "started_at": now(), "finished_at": None}

    def save_checkpoint(self, record: Dict[str, Any], next_epoch: int, search_seconds: float, iterations: int) -> None:
        state = {"config_hash": self.hash, "next_epoch": next_epoch, "net": self.net.state_dict(),
                 "method": self.method.state_dict(), **rng_states(self.gen, self.device), "record": record,
                 "search_seconds": search_seconds, "iterations": iterations}
        records.atomic_torch_save(self.ckpt_path, state)

    def load_checkpoint(self) -> Optional[Dict[str, Any]]:
        state = read_checkpoint(self.ckpt_path, self.hash)
        if state is None:
            return None
        self.net.load_state_dict(state["net"])
        self.method.load_state_dict(state["method"])
        restore_rng_states(state, self.gen, self.device)
        return state

    # ------------------------------------------------------------------ the loop
    def run(self) -> Dict[str, Any]:
        reset_peak_rss()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.build()
        state = self.load_checkpoint()
        if state:
            record = state["record"]
            start, search_seconds, iterations = state["next_epoch"], state["search_seconds"], state["iterations"]
        else:
            record = self.new_record()
            start, search_seconds, iterations = 0, 0.0, 0
        records.write_record(self.record_path, record)
        epochs = self.cfg["epochs"]
        try:
            for epoch in range(start, epochs):
                self._maybe_inject_fault(epoch)
                self.method.on_epoch_start(epoch)
                sched = self.method.schedule_state()
                self.net.train()
                _sync(self.device)
                t0 = time.perf_counter()
                sums: Dict[str, torch.Tensor] = {}
                steps_done = 0
                for step, (train_batch, val_batch) in enumerate(self.data.epoch(self.gen)):
                    if step >= self.steps_per_epoch:
                        break
                    for k, v in self.method.step(train_batch, val_batch).items():
                        sums[k] = sums[k] + v if k in sums else v
                    steps_done += 1
                iterations += steps_done
                _sync(self.device)
                epoch_seconds = time.perf_counter() - t0
                search_seconds += epoch_seconds
                stats = {k: float(v) for k, v in sums.items()}
                train_loss = stats["train_loss_sum"] / stats["train_n"]
                if not math.isfinite(train_loss) or not all(math.isfinite(v) for v in stats.values()):
                    raise NonFiniteLoss(f"non-finite training loss ({train_loss}) in epoch {epoch}")
                entry = {"epoch": epoch, **sched, "train_loss": train_loss,
                         "train_acc": 100.0 * stats["train_correct"] / stats["train_n"]}
                if "val_n" in stats:
                    entry["search_val_batch_loss"] = stats["val_loss_sum"] / stats["val_n"]
                    entry["search_val_batch_acc"] = 100.0 * stats["val_correct"] / stats["val_n"]
                entry.update(evaluate_supernet(self.net, self.data.eval_batches(self.cfg["eval_batch_size"]),
                                               seed=self.cfg["seed"] * 1000 + epoch))
                arch = self.net.derive()
                entry["arch"] = str(arch)
                entry["arch_info"] = self.space.arch_info(arch)
                entry["alpha_probs"] = self.net.alpha_probabilities()
                entry["epoch_seconds"] = epoch_seconds
                entry["iterations"] = steps_done
                record["epochs"].append(entry)
                if record["provenance"].get("benchmark_source") is None:
                    record["provenance"]["benchmark_source"] = entry["arch_info"].get("benchmark_source")
                self.progress({"run_id": self.run_id, "label": self.cfg["label"], "space": self.cfg["space"],
                               "seed": self.cfg["seed"], "epoch": epoch, "epochs": epochs,
                               "loss": train_loss, "val_acc": entry["val_acc"], "epoch_seconds": epoch_seconds,
                               "eta_seconds": epoch_seconds * (epochs - epoch - 1)})
                if self.cfg.get("early_stop") and entry["arch_info"].get("early_stop"):
                    record["early_stopped_at"] = epoch  # MiLeNAS §3.4 rule (normal 6 convs, reduce 0)
                    break
                if epoch + 1 < epochs:
                    self.save_checkpoint(record, epoch + 1, search_seconds, iterations)
                    records.write_record(self.record_path, record)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a failed run is recorded, and the matrix goes on
            record["status"] = "failed"
            record["failure"] = {"reason": f"{type(exc).__name__}: {exc}",
                                 "epoch": len(record["epochs"])}
            record["finished_at"] = now()
            records.write_record(self.record_path, record)
            self.ckpt_path.unlink(missing_ok=True)
            return record
        last = record["epochs"][-1]
        record["final"] = {"arch": last["arch"], "arch_info": last["arch_info"], "val_acc": last["val_acc"],
                           "best_val_acc": max(e["val_acc"] for e in record["epochs"]),
                           "search_seconds": search_seconds, "iterations": iterations,
                           "seconds_per_iteration": search_seconds / max(iterations, 1),
                           "seconds_per_iteration_steady": steady_seconds_per_iteration(record["epochs"]),
                           **peak_memory_mb(self.device)}
        record["status"] = "ok"
        record["finished_at"] = now()
        records.write_record(self.record_path, record)
        self.ckpt_path.unlink(missing_ok=True)
        return record

    def _maybe_inject_fault(self, epoch: int) -> None:
        """Test hook: HARNESS_FAULT_NAN=<run_id>@<epoch> poisons α with NaN at that epoch."""
        spec = os.environ.get("HARNESS_FAULT_NAN", "")
        if spec and spec == f"{self.run_id}@{epoch}":
            with torch.no_grad():
                for a in self.net.alphas():
                    a.fill_(float("nan"))


def steady_seconds_per_iteration(epochs: List[Dict[str, Any]]) -> Optional[float]:
    """Seconds per iteration over every epoch but the first (which carries kernel warm-up)."""
    later = epochs[1:]
    n = sum(e.get("iterations", 0) for e in later)
    return sum(e["epoch_seconds"] for e in later) / n if n else None


def records_run_id(cfg: Dict[str, Any]) -> str:
    from harness.config import run_id

    return run_id(cfg["space"], cfg["method"], cfg["variant"], cfg["seed"])


# ---------------------------------------------------------------------- the matrix

def plan(configs: List[Dict[str, Any]], out_dir: Path, retry_failed: bool = False
         ) -> List[Dict[str, Any]]:
    """Which configs still need running.  A record of the same run id with another config is an error."""
    todo, seen = [], set()
    for cfg in configs:
        rid = records_run_id(cfg)
        if rid in seen:
            raise ConfigError(f"run {rid} appears twice in the matrix")
        seen.add(rid)
        path = out_dir / "records" / f"{rid}.json"
        if path.is_file():
            try:
                rec = records.read_record(path)
            except (ValueError, OSError):
                rec = None
            if rec is not None and rec.get("config_hash") != records.config_hash(cfg):
                raise ConfigError(f"{path} holds run {rid} with a different config; use another --out folder "
                                  "or delete that record")
            if rec is not None and (rec["status"] == "ok" or (rec["status"] == "failed" and not retry_failed)):
                continue
        todo.append(cfg)
    return todo


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when the matrix process dies (a killed `reproduce` leaves no
    orphan still computing and writing records; its runs resume from their checkpoints)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_run(cfg: Dict[str, Any], out_dir: str, data_root: Optional[str], device: str, queue) -> Dict[str, Any]:
    progress = queue.put if queue is not None else None
    run = SearchRun(cfg, Path(out_dir), Path(data_root) if data_root else None, pick_device(device), progress)
    rec = run.run()
    return {"run_id": rec["run_id"], "status": rec["status"], "failure": rec["failure"]}


class ProgressPrinter:
    """One line per finished epoch: run, epoch, loss, val accuracy, time left."""

    def __init__(self, total_runs: int, stream=sys.stderr):
        self.total = total_runs
        self.done = 0
        self.stream = stream

    def __call__(self, ev: Dict[str, Any]) -> None:
        if ev.get("event") == "run_done":
            self.done += 1
            msg = f"[{self.done}/{self.total} runs] {ev['run_id']}: {ev['status']}"
            if ev.get("failure"):
                msg += f" ({ev['failure']['reason']})"
            print(msg, file=self.stream, flush=True)
            return
        print(f"  {ev['space']:5s} {ev['label']:<22s} seed {ev['seed']} | epoch {ev['epoch'] + 1}/{ev['epochs']}"
              f" | loss {ev['loss']:.3f} | val {ev['val_acc']:5.1f}% | {ev['epoch_seconds']:.1f} s/epoch"
              f" | run done in ~{ev['eta_seconds']:.0f} s", file=self.stream, flush=True)


def run_matrix(configs: List[Dict[str, Any]], out_dir: Path, data_root: Optional[Path] = None,
               device: str = "auto", workers: int = 1, retry_failed: bool = False,
               progress: Optional[ProgressFn] = None) -> List[Dict[str, Any]]:
    """Run every config not finished yet; returns a summary per run that was run now."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    todo = plan(configs, out_dir, retry_failed)
    printer = progress or ProgressPrinter(len(todo))
    skipped = len(configs) - len(todo)
    if skipped:
        print(f"{skipped} run(s) already finished in {out_dir}: not recomputed", file=sys.stderr)
    dev = pick_device(device)
    results = []
    if workers <= 1 or dev.type == "cuda" or len(todo) <= 1:
        for cfg in todo:
            run = SearchRun(cfg, out_dir, data_root, dev, printer)
            rec = run.run()
            summary = {"run_id": rec["run_id"], "status": rec["status"], "failure": rec["failure"]}
            printer({"event": "run_done", **summary})
            results.append(summary)
        return results
    import multiprocessing as mp
    import threading
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=ctx)
    manager.start(_die_with_parent)
    queue = manager.Queue()
    stop = object()

    def pump():
        while True:
            ev = queue.get()
            if ev is stop or ev == "stop":
                return
            printer(ev)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            futures = [pool.submit(_worker_run, cfg, str(out_dir), str(data_root) if data_root else None,
                                   device, queue) for cfg in todo]
            for fut in as_completed(futures):
                summary = fut.result()
                queue.put({"event": "run_done", **summary})
                results.append(summary)
    finally:
        queue.put("stop")
        thread.join(timeout=5)
        manager.shutdown()
    return results
