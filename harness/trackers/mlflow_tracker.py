"""MLflow: an MLflow run per harness run, in the experiment ``nas-harness`` (``MLFLOW_EXPERIMENT_NAME`` to change).

Where: ``--mlflow-uri`` (a tracking server ``http://HOST:PORT``, or a store such as ``sqlite:///PATH``), else a
SQLite store inside the run store: ``OUT/mlruns/mlflow.db`` with artifacts in ``OUT/mlruns/artifacts``
(``mlflow ui --backend-store-uri sqlite:///OUT/mlruns/mlflow.db``).  Requests time out after
``MLFLOW_HTTP_REQUEST_TIMEOUT`` seconds (default here 10) without retries (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
default here 0): a server that is down costs one warning line, never a stalled run.

Run name = run id; tags: seed, scale, commit, device, space, method, variant, group (space/method/variant) and
``harness_run_key`` (run id + a hash of the run store), by which a resumed run finds its MLflow run again;
params = the resolved config (flattened) and its hash.  Per epoch (step = epoch): every number of the record's
epoch entry as a metric under its own key, the derived cell as the artifact ``arch/epoch_NNN.txt`` (and the tag
``arch``), softmax(α) as the image ``alpha`` (``log_image`` with key and step).  The run ends FINISHED or FAILED
with the record's status (KILLED when interrupted).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from harness.trackers.base import RunInfo, Tracker, group, hyperparameters, scalars, tags, texts

EXPERIMENT = "nas-harness"
KEY_TAG = "harness_run_key"
#: request limits the harness sets for the MLflow client unless the environment sets them
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def local_store(info: RunInfo) -> Path:
    return info.out_dir / "mlruns"


@contextmanager
def store_lock(folder: Path) -> Iterator[None]:
    """Workers sharing one local store create its tables and the experiment one at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class MlflowTracker(Tracker):
    name = "mlflow"
    package = "mlflow"

    def open(self, record: Dict[str, Any]) -> int:
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        uri = self.info.settings.mlflow_uri
        folder: Optional[Path] = None
        if not uri:
            folder = local_store(self.info).resolve()
            uri = f"sqlite:///{folder / 'mlflow.db'}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mlflow.tracking import MlflowClient

            for logger in ("mlflow", "alembic"):  # after the import, which sets mlflow's level: no INFO lines
                logging.getLogger(logger).setLevel(logging.WARNING)

            if folder is not None:
                with store_lock(folder):
                    self.client = MlflowClient(tracking_uri=uri)
                    exp = self._experiment((folder / "artifacts").as_uri())
            else:
                self.client = MlflowClient(tracking_uri=uri)
                exp = self._experiment(None)
        found = self.client.search_runs([exp], filter_string=f"tags.{KEY_TAG} = '{self.info.key}'", max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                self.client.update_run(self.run_id, status="RUNNING")
            history = self.client.get_metric_history(self.run_id, "epoch")
            return max((int(m.step) for m in history), default=-1)
        t = tags(record)
        run = self.client.create_run(
            exp,
            run_name=self.info.run_id,
            tags={**t, "group": group(record), KEY_TAG: self.info.key, "mlflow.runName": self.info.run_id},
        )
        self.run_id = run.info.run_id
        self._params(record)
        return -1

    def _experiment(self, artifacts: Optional[str]) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifacts)
        except Exception:  # created meanwhile by another worker on the same server
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def _params(self, record: Dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in hyperparameters(record).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per request
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_epoch(self, record: Dict[str, Any], entry: Dict[str, Any], image: Any) -> None:
        from mlflow.entities import Metric

        step = int(entry["epoch"])
        now = int(time.time() * 1000)
        values = {**scalars(entry), "epoch": float(step)}  # "epoch" last: its presence marks a complete epoch
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for key, text in texts(entry).items():
            self.client.log_text(self.run_id, text, f"{key}/epoch_{step:03d}.txt")
            self.client.set_tag(self.run_id, key, text[:5000])
        if image is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.client.log_image(self.run_id, image, key="alpha", step=step)
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, record: Dict[str, Any]) -> None:
        status = {"ok": "FINISHED", "failed": "FAILED"}.get(str(record.get("status")), "KILLED")
        self.client.set_terminated(self.run_id, status=status)


TRACKER = MlflowTracker
