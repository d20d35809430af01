"""TensorBoard: event files in ``OUT/tb/<space>/<method>/<variant>/<run_id>/`` (``tensorboard --logdir OUT/tb``).

Per epoch (step = epoch): every number of the record's epoch entry as a scalar under the entry's own key
(``train_loss``, ``val_acc``, ``lr``, ``tau``, ``arch_info/benchmark/...``, ``hooks/<hook>/...``,
``seconds_per_iteration``), the derived cell as text (``arch``), softmax(α) as an image (``alpha``).  Once: the
resolved config as TensorBoard hyperparameters (HPARAMS tab) and as text, with its hash and the run's tags.
Written with ``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard`` package) and flushed after
every epoch.  A resumed run writes to the same folder; the epochs its event files already hold are not written
again (read back with tensorboard's ``EventFileLoader``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict

from harness.trackers.base import RunInfo, Tracker, group, hyperparameters, scalars, tags, texts


def log_dir(info: RunInfo, record: Dict[str, Any]) -> Path:
    root = Path(info.settings.tensorboard_dir) if info.settings.tensorboard_dir else info.out_dir / "tb"
    parts = [re.sub(r"[^A-Za-z0-9._=,-]+", "_", p) for p in group(record).split("/")]
    return root.joinpath(*parts, info.run_id)


def last_step(folder: Path) -> int:
    """The highest step of any scalar the event files in ``folder`` hold (-1: none)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    last = -1
    for path in sorted(folder.glob("events.out.tfevents.*")):
        try:
            for event in EventFileLoader(str(path)).Load():
                if any(v.metadata.plugin_data.plugin_name == "scalars" for v in event.summary.value):
                    last = max(last, int(event.step))
        except Exception:  # a torn tail of a killed writer: what was read counts
            continue
    return last


class TensorBoardTracker(Tracker):
    name = "tensorboard"
    package = "tensorboard"

    def open(self, record: Dict[str, Any]) -> int:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = log_dir(self.info, record)
        last = last_step(self.dir) if self.dir.is_dir() else -1
        self.writer = SummaryWriter(log_dir=str(self.dir), flush_secs=30)
        if last < 0:
            self._hyperparameters(record)
        return last

    def _hyperparameters(self, record: Dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        hp = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in hyperparameters(record).items()}
        writer = self.writer._get_file_writer()
        for summary in hparams(hp, {"val_acc": 0.0} if record.get("kind") == "search" else {"test_acc": 0.0}):
            writer.add_summary(summary)
        self.writer.add_text("config", "```\n" + json.dumps(record.get("config"), indent=1, default=str) + "\n```", 0)
        self.writer.add_text("tags", "  \n".join(f"{k}: {v}" for k, v in tags(record).items()), 0)

    def log_epoch(self, record: Dict[str, Any], entry: Dict[str, Any], image: Any) -> None:
        step = int(entry["epoch"])
        for key, value in scalars(entry).items():
            self.writer.add_scalar(key, value, step, new_style=True, double_precision=True)  # the record's float64
        for key, text in texts(entry).items():
            self.writer.add_text(key, text, step)
        if image is not None:
            self.writer.add_image("alpha", image, step, dataformats="HWC")
        self.writer.flush()

    def close(self, record: Dict[str, Any]) -> None:
        self.writer.close()

    def abandon(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass


TRACKER = TensorBoardTracker
