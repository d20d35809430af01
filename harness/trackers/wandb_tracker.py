"""Weights & Biases: a W&B run per harness run, in ``OUT/wandb/wandb/<offline-run|run>-<time>-<id>/``.

Offline unless the command's environment asked for online (``WANDB_MODE=online``) and a W&B login exists there
(``harness.trackers.wandb_mode``): the harness never prompts; offline it never touches the network, online
``wandb.init`` waits at most ``INIT_TIMEOUT`` seconds (then one warning line; uploads run in W&B's background
process).  ``wandb sync OUT/wandb/wandb/offline-run-*`` uploads offline runs later.  Run name = run id; W&B
id = run id + a hash of the run store (``RunInfo.key``), so a resumed run continues its W&B run
(``resume="allow"``); group = space/method/variant; tags seed, scale, commit, device; config = the resolved config
(flattened) with its hash.

Per epoch (step = epoch): every number of the record's epoch entry under its own key (as TensorBoard), the derived
cell as text (``arch``), softmax(α) as an image (``alpha``).  Console capture, system metrics, code and pip-list
saving are off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from harness.trackers.base import RunInfo, Tracker, group, hyperparameters, scalars, tags, texts

#: how long ``wandb.init`` / ``finish`` may take (seconds) before the tracker gives up (a warning line)
INIT_TIMEOUT = 30.0


def run_dir(info: RunInfo) -> Path:
    return Path(info.settings.wandb_dir) if info.settings.wandb_dir else info.out_dir / "wandb"


def settings_of(wandb: Any) -> Dict[str, Any]:
    """Quiet and light: no console capture, no system metrics, no code or pip list saved; the settings this wandb
    version knows (newer ones add fields)."""
    wanted = {
        "silent": True,
        "console": "off",
        "x_disable_stats": True,
        "save_code": False,
        "x_save_requirements": False,
        "init_timeout": INIT_TIMEOUT,
        "finish_timeout": INIT_TIMEOUT,
    }
    known = getattr(wandb.Settings, "model_fields", None)
    return {k: v for k, v in wanted.items() if known is None or k in known}


class WandbTracker(Tracker):
    name = "wandb"
    package = "wandb"

    def open(self, record: Dict[str, Any]) -> int:
        import wandb

        s = self.info.settings
        folder = run_dir(self.info)
        folder.mkdir(parents=True, exist_ok=True)
        earlier = list((folder / "wandb").glob(f"*-{self.info.key}")) if (folder / "wandb").is_dir() else []
        t = tags(record)
        self.run = wandb.init(
            project=s.wandb_project,
            entity=s.wandb_entity,
            id=self.info.key,
            name=self.info.run_id,
            group=group(record),
            job_type=str(record.get("kind")),
            tags=[f"{k}={t[k]}"[:64] for k in ("seed", "scale", "commit", "device")],
            config=hyperparameters(record),
            dir=str(folder),
            mode=s.wandb_mode,
            resume="allow",
            reinit="create_new",
            settings=wandb.Settings(**settings_of(wandb)),
        )
        if s.wandb_mode == "online":
            return int(self.run.starting_step) - 1  # W&B knows the steps it holds
        # offline: every attempt is a folder of its own (synced into one run); an earlier one of this run holds the
        # epochs the record held when this attempt started
        return len(record.get("epochs") or []) - 1 if earlier else -1

    def log_epoch(self, record: Dict[str, Any], entry: Dict[str, Any], image: Any) -> None:
        import wandb

        data: Dict[str, Any] = {"epoch": int(entry["epoch"]), **scalars(entry), **texts(entry)}
        if image is not None:
            data["alpha"] = wandb.Image(image, caption=f"softmax(α), epoch {entry['epoch']}")
        self.run.log(data, step=int(entry["epoch"]))

    def close(self, record: Dict[str, Any]) -> None:
        self.run.finish(exit_code=0 if record.get("status") == "ok" else 1)

    def abandon(self) -> None:
        run = getattr(self, "run", None)
        if run is not None:
            try:
                run.finish(exit_code=1)
            except Exception:
                pass


TRACKER = WandbTracker
