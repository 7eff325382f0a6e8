"""MLflow: the only module that imports mlflow (house rule 4).

Store: a SQLite file at the repository root (never the working directory: DVC runs queued
experiments in a throw-away copy), artifacts beside it in mlartifacts/. The database and the
experiment are created once under a file lock, because several processes creating a fresh
SQLite store at once corrupt it. One parent run per pipeline execution (found by a key
computed from params + commit), one child run per stage and seed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from harness.errors import UserError  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)

PARENT_TAG = "harness.pipeline_key"
BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch


class TrackingError(UserError):
    """The tracking store cannot be reached or written."""


def default_uri(root: Path) -> str:
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def resolve_uri(param_uri: str | None, env_uri: str | None, root: Path) -> str:
    """MLFLOW_TRACKING_URI beats the tracking.uri param, which beats the repository store."""
    return env_uri or param_uri or default_uri(root)


def experiment_name(dataset: str, profile: str, override: str | None) -> str:
    return override or f"{dataset}-{profile}"


@contextmanager
def _lock(root: Path):
    with open(root / ".mlflow.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_experiment(uri: str, name: str, root: Path) -> str:
    """Create the store and experiment once (under a lock); returns the experiment id."""
    mlflow.set_tracking_uri(uri)
    try:
        with _lock(root):
            client = MlflowClient(uri)  # may create and migrate the database: inside the lock
            exp = client.get_experiment_by_name(name)
            if exp is None:
                artifacts = (root / "mlartifacts" / name).resolve().as_uri()
                return client.create_experiment(name, artifact_location=artifacts)
            return exp.experiment_id
    except UserError:
        raise
    except Exception as exc:  # the store is unreachable or broken: say which
        raise TrackingError(f"MLflow tracking store {uri} is not usable: {exc}") from None


def parent_run(uri: str, experiment_id: str, key: str, tags: dict, root: Path, name: str = "pipeline") -> str:
    """The parent run for this pipeline execution, created by the first stage that asks."""
    client = MlflowClient(uri)
    with _lock(root):
        found = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{key}'", max_results=1)
        if found:
            return found[0].info.run_id
        run = client.create_run(experiment_id, run_name=f"{name}-{key[:8]}",
                                tags={PARENT_TAG: key, **_str_tags(tags)})
        return run.info.run_id


def _str_tags(tags: dict) -> dict:
    return {k: str(v) for k, v in tags.items()}


@contextmanager
def child_run(uri: str, experiment_id: str, parent_id: str, name: str, params: dict, tags: dict,
              resume_run_id: str | None = None):
    """A stage run nested under the parent; yields its run id; ends FAILED on exceptions.

    resume_run_id: the run of an interrupted stage (from its checkpoint) is reopened, so a
    resumed training keeps one run with one continuous metric history.
    """
    client = MlflowClient(uri)
    if resume_run_id and _run_exists(client, resume_run_id):
        client.update_run(resume_run_id, "RUNNING")
        run_id = resume_run_id
        client.set_tag(run_id, "resumed", "true")
    else:
        run = client.create_run(experiment_id, run_name=name,
                                tags={"mlflow.parentRunId": parent_id, **_str_tags(tags)})
        run_id = run.info.run_id
        log_params(client, run_id, params)
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def _run_exists(client: MlflowClient, run_id: str) -> bool:
    try:
        client.get_run(run_id)
        return True
    except Exception:  # deleted, or another store
        return False


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # log_batch takes at most 100 params
        client.log_batch(run_id, params=items[i:i + 100])


def log_metrics(uri: str, run_id: str, metrics: dict, step: int = 0) -> None:
    """Log {name: value} at one step in one batch call (DESIGN.md: batches, not single calls)."""
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
    client = MlflowClient(uri)
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, metrics=items[i:i + BATCH])


def log_series(uri: str, run_id: str, name: str, points: list[tuple[int, float]]) -> None:
    """One metric at many steps, 1000 points per call."""
    now = int(time.time() * 1000)
    items = [Metric(name, float(v), now, int(step)) for step, v in points]
    client = MlflowClient(uri)
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, metrics=items[i:i + BATCH])


def log_dataset(uri: str, run_id: str | None, manifest: dict, split: str, context: str) -> None:
    """Record the prepared data as an MLflow dataset input (name, digest, counts), so runs on
    different data never look comparable in the UI."""
    if not run_id:
        return
    from mlflow.entities import Dataset, DatasetInput, InputTag
    import json as _json
    ds = Dataset(name=f"{manifest['source']}-{split}", digest=manifest["digest"][:36], source_type="local",
                 source=_json.dumps({"source": manifest["source"], "image_size": manifest["image_size"]}),
                 profile=_json.dumps({"num_images": manifest["counts"].get(split), "num_classes": len(manifest["classes"])}))
    MlflowClient(uri).log_inputs(run_id, [DatasetInput(ds, [InputTag("mlflow.data.context", context)])])


def set_tags(uri: str, run_id: str, tags: dict) -> None:
    MlflowClient(uri).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_artifact(uri: str, run_id: str, path: Path, subdir: str | None = None) -> None:
    MlflowClient(uri).log_artifact(run_id, str(path), subdir)


def log_artifacts(uri: str, run_id: str, folder: Path, subdir: str | None = None) -> None:
    MlflowClient(uri).log_artifacts(run_id, str(folder), subdir)


@contextmanager
def system_metrics(uri: str, run_id: str | None, interval_s: float = 5.0):
    """CPU, memory (and GPU when present) sampled into the run as system/* metrics."""
    if not run_id:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval_s, resume_logging=True,
                                   tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def finish_parent(uri: str, run_id: str) -> None:
    MlflowClient(uri).set_terminated(run_id, "FINISHED")


def run_url(uri: str, experiment_id: str, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """Link to a run in the MLflow UI started by `make mlflow-ui`."""
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"
