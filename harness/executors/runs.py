"""Run factories and progress printers for executors beyond search runs.

``make_eval_run`` is the evaluation counterpart of ``harness.runner.make_run``: module level, so a
Ray worker or a Slurm task can import it by name.  ``EvalProgressPrinter`` prints an evaluation
run's epochs on the driver, as ``python -m harness evaluate`` prints them in-process.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from harness.lifecycle import ProgressFn


def make_eval_run(cfg: Dict[str, Any], out_dir: Path, data_root: Optional[Path], device: torch.device,
                  progress: Optional[ProgressFn]):
    """An ``EvalRun`` whose progress events go to ``progress`` (an executor's channel) instead of stderr."""
    from harness.evaluate import EvalRun

    run = EvalRun(cfg, out_dir, data_root=data_root, device=device, download=False, progress=False)
    if progress is not None:
        run.progress = progress
    return run


class EvalProgressPrinter:
    """One line per finished evaluation epoch, and one per finished run."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream

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
        print(f"[{ev.get('run_id')}] epoch {ev.get('epoch', 0) + 1}/{ev.get('epochs')} lr {e.get('lr', 0):.5f} "
              f"train loss {e.get('train_loss', float('nan')):.4f} acc {e.get('train_acc', float('nan')):.2f} | "
              f"test acc {e.get('test_acc', float('nan')):.2f} | {e.get('epoch_seconds', 0):.1f} s "
              f"(eta {ev.get('eta_seconds', 0):.0f} s)", file=self.stream, flush=True)


__all__ = ["make_eval_run", "EvalProgressPrinter"]
