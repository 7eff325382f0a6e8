"""MLflow: the only module that imports mlflow (docs/architecture.md, house rule 4).

Store: a SQLite file at the repository root (never the working directory: DVC runs queued
experiments in a throw-away copy), artifacts beside it in mlartifacts/. The database and the
experiment are created once under a file lock, because several processes creating a fresh
SQLite store at once corrupt it. One parent run per pipeline execution (found by a key
computed from params + commit), one child run per stage and seed.

What makes two pipeline executions comparable in the UI (select two parents, Compare): each parent
is named after its DVC experiment, carries the flattened params file as params and the headline
figures (reports/summary.json) as metrics; each child carries its stage's resolved config and
small outputs as artifacts.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from harness.errors import UserError

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)

# Client settings, applied by configure_client() before the first call (not at import time).
# A lost server must not stall training for minutes (MLflow's default: 7 retries, backoff 2,
# 120 s timeout): a call fails within seconds and is buffered instead (OfflineBuffer). Values the
# user has set in the environment win.
CLIENT_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}

PARENT_TAG = "harness.pipeline_key"
# MLflow 3 opens an experiment on its GenAI pages (traces) unless told otherwise: this experiment
# tag and the URL parameter below make the UI open the runs table of a model-training experiment.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
WORKFLOW_QUERY = "workflowType=machine_learning"
BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch
REACH_TIMEOUT_S = 5  # how long the start-up check waits for a tracking server
LOCK_RETRY_S = 60  # how long a call waits for a SQLite store locked by another process
RETRY_DOWN_S = 30  # after a failed call, calls go straight to the buffer for this long
BUFFER_NAME = ".mlflow-buffer.jsonl"  # at the repository root, beside mlflow.db
# The URI of "no tracking" (runtime.tracking_off, HARNESS_TRACKING=off): no store, no run, no
# mlflow import; every call below is a no-op for it and run ids are None, as on a non-main rank.
OFF = "off"


class TrackingError(UserError):
    """The tracking store cannot be reached or written."""


def configure_client() -> None:
    """Apply CLIENT_ENV (defaults only) before mlflow reads it; idempotent."""
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)


def _client(uri: str):
    configure_client()
    from mlflow.tracking import MlflowClient
    return MlflowClient(uri)


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


def check_reachable(uri: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """A tracking server must answer before any work starts: one request, no retries, a few
    seconds at most (MLflow's own client would retry for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return  # it answered (an auth proxy may refuse /health): reachable
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable ({reason}); start it, or fix tracking.uri "
            "in params.yaml / MLFLOW_TRACKING_URI (unset both to use the local SQLite store mlflow.db)"
        ) from None


def _set_uri(uri: str) -> None:
    """mlflow.set_tracking_uri, without its side effect of exporting MLFLOW_TRACKING_URI to
    this process's environment: child processes (a test's stage subprocess, torchrun workers)
    would inherit it and take it for the user's override of tracking.uri."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    configure_client()
    import mlflow
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def ensure_experiment(uri: str, name: str, root: Path) -> str:
    """Create the store and experiment once (under a lock); returns the experiment id.

    Also replays logging calls that an earlier stage buffered while the server was away."""
    if uri == OFF:
        return ""
    check_reachable(uri)
    _set_uri(uri)
    _buffers[uri] = OfflineBuffer(root / BUFFER_NAME)
    try:
        with _lock(root):
            client = _client(uri)  # may create and migrate the database: inside the lock
            exp = _retry_locked(client.get_experiment_by_name, name)
            if exp is None:
                artifacts = (root / "mlartifacts" / name).resolve().as_uri()
                exp_id = _retry_locked(client.create_experiment, name, artifact_location=artifacts,
                                       tags=dict([EXPERIMENT_KIND]))
            else:
                exp_id = exp.experiment_id
                if exp.tags.get(EXPERIMENT_KIND[0]) is None:  # a store made before the tag existed
                    _retry_locked(client.set_experiment_tag, exp_id, *EXPERIMENT_KIND)
    except UserError:
        raise
    except Exception as exc:  # the store is unreachable or broken: say which
        raise TrackingError(f"MLflow tracking store {uri} is not usable: {exc}") from None
    replay(uri)
    return exp_id


# --- faults: a locked SQLite store is retried; a lost server is buffered and replayed --------


def _is_locked(exc: Exception) -> bool:
    """Another process holds the SQLite store, or won a race that a retry resolves: MLflow's
    log_inputs looks a dataset up and then inserts it, so two seeds logging the same data at once
    (seeds in parallel, docs/scale-out.md) collide on its unique key; retried, it finds the row."""
    msg = str(exc)
    return "database is locked" in msg or "database table is locked" in msg \
        or "UNIQUE constraint failed: datasets." in msg


def _retry_locked(fn, *args, **kwargs):
    """Call fn; while another process holds the SQLite store locked, wait and try again."""
    deadline = time.monotonic() + LOCK_RETRY_S
    delay = 0.2
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not _is_locked(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _is_unreachable(exc: Exception) -> bool:
    """MLflow's REST client wraps connection errors, timeouts and exhausted 5xx retries so."""
    msg = str(exc)
    return msg.startswith("API request to") and "failed with" in msg


def _apply(uri: str, op: dict) -> None:
    from mlflow.entities import Metric, Param, RunTag
    client = _client(uri)
    kind, run_id = op["kind"], op["run_id"]
    if kind == "batch":
        _retry_locked(client.log_batch, run_id, metrics=[Metric(*m) for m in op.get("metrics", [])],
                      params=[Param(*p) for p in op.get("params", [])], tags=[RunTag(*t) for t in op.get("tags", [])])
    elif kind == "terminate":
        if op.get("keep_finished") and _retry_locked(client.get_run, run_id).info.status == "FINISHED":
            return  # a rerun of a finished execution's stage: its times stay those of the execution
        _retry_locked(client.set_terminated, run_id, op["status"])
    elif kind == "text":
        _retry_locked(client.log_text, run_id, op["text"], op["artifact_file"])
    elif kind == "artifact":
        if Path(op["path"]).exists():
            (client.log_artifacts if Path(op["path"]).is_dir() else client.log_artifact)(run_id, op["path"], op["subdir"])
    elif kind == "dataset":
        _log_dataset(client, run_id, op["manifest"], op["split"], op["context"])
    else:
        raise ValueError(f"unknown buffered MLflow call {kind!r}")


class OfflineBuffer:
    """Logging calls kept in a local file while the tracking server is away, replayed in order.

    One per tracking URI and process (ensure_experiment makes it). Each call that fails because
    the server does not answer is appended as one fsynced JSON line, so a kill loses at most that
    call; for RETRY_DOWN_S after a failure calls go straight to the file instead of waiting for the
    server again. The file is shared by the stages of one repository (the next stage replays it).
    """

    def __init__(self, path: Path):
        self.path = path
        self.down_until = 0.0  # monotonic time before which calls skip the server

    def call(self, uri: str, op: dict) -> None:
        """Run one logging call, or keep it here when the server is not answering."""
        if time.monotonic() < self.down_until:
            self._add(op)
            return
        error = self._send(uri, op)
        if error is not None:
            print(f"warning: MLflow server {uri} is not answering ({error[:200]}); training goes on and "
                  f"its logging calls are kept in {self.path} until the server is back", file=sys.stderr, flush=True)
            self._add(op)
            return
        if self.pending():
            self.replay(uri)

    def _send(self, uri: str, op: dict) -> str | None:
        """Apply one call; when the server does not answer, skip it for a while and return why."""
        try:
            _apply(uri, op)
        except Exception as exc:
            if not _is_unreachable(exc):
                raise
            self.down_until = time.monotonic() + RETRY_DOWN_S
            return str(exc)
        return None

    def _add(self, op: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(op) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def pending(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def _read(self) -> list[dict]:
        ops = []
        for ln in self.path.read_text().splitlines():
            if not ln.strip():
                continue
            try:
                ops.append(json.loads(ln))
            except ValueError:  # a line cut short by a kill: that one call is lost, say so
                print(f"warning: skipping an unreadable line in {self.path}", file=sys.stderr)
        return ops

    def replay(self, uri: str) -> int:
        """Send the buffered calls of this store; returns how many are still waiting."""
        if not self.pending():
            return 0
        from harness.io import atomic_write_text
        with _lock(self.path.parent):
            ops = self._read()
            keep, failed = [], False
            for op in ops:
                if failed or op.get("uri") != uri:
                    keep.append(op)
                    continue
                if self._send(uri, op) is not None:
                    failed = True
                    keep.append(op)
            sent = len(ops) - len(keep)
            if keep:
                atomic_write_text(self.path, "".join(json.dumps(op) + "\n" for op in keep))
            else:
                self.path.unlink()
        if sent:
            print(f"MLflow: replayed {sent} buffered logging calls to {uri}", file=sys.stderr, flush=True)
        return sum(op.get("uri") == uri for op in keep)


_buffers: dict[str, OfflineBuffer] = {}  # tracking URI -> this process's buffer (ensure_experiment)


def buffer_for(uri: str) -> OfflineBuffer | None:
    return _buffers.get(uri)


def _call(uri: str, op: dict) -> None:
    """One logging call through the URI's buffer (direct, without one: before ensure_experiment)."""
    if uri == OFF:
        return
    buf = _buffers.get(uri)
    if buf is None:
        _apply(uri, op)
    else:
        buf.call(uri, op)


def replay(uri: str) -> int:
    buf = _buffers.get(uri)
    return buf.replay(uri) if buf is not None else 0


def parent_name(purpose: str, exp_name: str, commit: str, params_digest: str) -> str:
    """The parent's run name: the DVC experiment's (DVC_EXP_NAME, set by `dvc exp run`), else the
    commit and a digest of the params file, so a plain `dvc repro` is named by what it ran.
    A `purpose` other than "pipeline" (reference runs: separate parents) is part of the name."""
    if not exp_name:
        return f"{purpose}-{commit[:7]}-{params_digest[:8]}"
    return exp_name if purpose == "pipeline" else f"{exp_name}-{purpose}"


def parent_run(uri: str, experiment_id: str, key: str, tags: dict, root: Path, name: str | None = None,
               params: dict | None = None, shared_name: str | None = None) -> str:
    """The parent run for this pipeline execution, created by the first stage that asks.

    name: its run name (parent_name; default pipeline-<key>). params: the flattened params file,
    logged once when it is created (the key holds the params, so every joining stage has the same
    ones); the UI's Compare of two parents then shows the params that differ. A stage that joins an
    existing parent updates it (_join_parent)."""
    if uri == OFF:
        return None
    client = _client(uri)
    tags = _str_tags(tags)
    with _lock(root):
        found = _retry_locked(client.search_runs, [experiment_id], f"tags.`{PARENT_TAG}` = '{key}'", max_results=1)
        if found:
            _join_parent(client, found[0], name, shared_name, tags)
            return found[0].info.run_id
        run = _retry_locked(client.create_run, experiment_id, run_name=name or f"pipeline-{key[:8]}",
                            tags={PARENT_TAG: key, **tags})
        if params:
            log_params(client, run.info.run_id, params)
        return run.info.run_id


def _join_parent(client, run, name: str | None, shared_name: str | None, tags: dict) -> None:
    """A stage joins a parent made by another stage or another execution with the same key.

    git_dirty: True once any stage of it ran on a work tree with changes (runtime.git_info leaves
    out what the pipeline writes itself, so one execution on a clean checkout says False
    throughout). Name: DVC's queued seeds are one experiment each but share the parent with the
    collecting `dvc repro` (docs/scale-out.md); a parent joined under another name than its own
    is no one experiment's, so it takes `shared_name` (commit and params digest) and lists the
    experiments in DVC_EXP_NAME."""
    have = run.data.tags
    update = {}
    if tags.get("git_dirty") == "True" and have.get("git_dirty") != "True":
        update["git_dirty"] = "True"
    exps = [e for e in have.get("DVC_EXP_NAME", "").split(",") if e]
    if tags.get("DVC_EXP_NAME") and tags["DVC_EXP_NAME"] not in exps:
        update["DVC_EXP_NAME"] = ",".join(exps + [tags["DVC_EXP_NAME"]])
    if update:
        from mlflow.entities import RunTag
        _retry_locked(client.log_batch, run.info.run_id, tags=[RunTag(k, v) for k, v in update.items()])
    if name and shared_name and name != run.info.run_name and run.info.run_name != shared_name:
        _retry_locked(client.update_run, run.info.run_id, name=shared_name)


def _str_tags(tags: dict) -> dict:
    return {k: str(v) for k, v in tags.items()}


@contextmanager
def child_run(uri: str, experiment_id: str, parent_id: str, name: str, params: dict, tags: dict,
              resume_run_id: str | None = None):
    """A stage run nested under the parent; yields its run id; ends FAILED on exceptions.

    resume_run_id: the run of an interrupted stage (from its checkpoint) is reopened, so a
    resumed training keeps one run with one continuous metric history.
    """
    if uri == OFF:
        yield None  # an exception of the stage passes through unchanged
        return
    client = _client(uri)
    _mark_killed(client, experiment_id, parent_id, name, keep=resume_run_id)
    if resume_run_id and _run_exists(client, resume_run_id):
        _retry_locked(client.update_run, resume_run_id, "RUNNING")
        run_id = resume_run_id
        _retry_locked(client.set_tag, run_id, "resumed", "true")
    else:
        run = _retry_locked(client.create_run, experiment_id, run_name=name,
                            tags={"mlflow.parentRunId": parent_id, **_str_tags(tags)})
        run_id = run.info.run_id
        log_params(client, run_id, params)
    try:
        yield run_id
    except BaseException:
        # the stage failed, so this execution of the pipeline failed: the parent says so too
        # (the report stage marks it FINISHED once a later repro completes)
        for rid in (run_id, parent_id):
            _call(uri, {"uri": uri, "kind": "terminate", "run_id": rid, "status": "FAILED"})
        raise
    _call(uri, {"uri": uri, "kind": "terminate", "run_id": run_id, "status": "FINISHED"})
    if replay(uri):
        print(f"warning: MLflow server {uri} still unreachable at the end of stage {name}: its calls stay "
              f"in {_buffers[uri].path} and are sent by the next stage that reaches the server", file=sys.stderr, flush=True)


def _mark_killed(client, experiment_id: str, parent_id: str, name: str, keep: str | None) -> None:
    """Runs of this stage left RUNNING by a killed process are marked KILLED, so no run of a dead
    process looks live or complete (a resumed training reopens its own run instead)."""
    stale = _retry_locked(client.search_runs, [experiment_id],
                          f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.run_name = '{name}' "
                          "and attributes.status = 'RUNNING'")
    for run in stale:
        if run.info.run_id != keep:
            _retry_locked(client.set_terminated, run.info.run_id, "KILLED")


def _run_exists(client, run_id: str) -> bool:
    try:
        client.get_run(run_id)
        return True
    except Exception:  # deleted, or another store
        return False


def log_params(client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # log_batch takes at most 100 params
        _retry_locked(client.log_batch, run_id, params=items[i:i + 100])


def _log_metric_items(uri: str, run_id: str, items: list) -> None:
    for i in range(0, len(items), BATCH):
        _call(uri, {"uri": uri, "kind": "batch", "run_id": run_id,
                    "metrics": [list(m) for m in items[i:i + BATCH]]})


def log_metrics(uri: str, run_id: str, metrics: dict, step: int = 0) -> None:
    """Log {name: value} at one step in one batch call (docs/architecture.md, "Tracking": batches, not single calls)."""
    now = int(time.time() * 1000)
    _log_metric_items(uri, run_id, [(k, float(v), now, step) for k, v in metrics.items() if v is not None])


def logged_steps(uri: str, run_id: str, keys) -> dict[str, set[int]]:
    """Steps already in the run for each metric: a resumed stage skips them (exactly once)."""
    if uri == OFF or not run_id:
        return {k: set() for k in keys}
    client = _client(uri)
    try:
        return {k: {m.step for m in _retry_locked(client.get_metric_history, run_id, k)} for k in keys}
    except Exception as exc:
        if not _is_unreachable(exc):
            raise
        return {k: set() for k in keys}


def log_metrics_once(uri: str, run_id: str, metrics: dict, step: int = 0) -> None:
    """log_metrics, skipping values the run already holds at that step (a rerun after a kill)."""
    done = logged_steps(uri, run_id, [k for k, v in metrics.items() if v is not None])
    log_metrics(uri, run_id, {k: v for k, v in metrics.items() if step not in done.get(k, ())}, step)


def log_series(uri: str, run_id: str, name: str, points: list[tuple[int, float]]) -> None:
    """One metric at many steps, 1000 points per call."""
    now = int(time.time() * 1000)
    _log_metric_items(uri, run_id, [(name, float(v), now, int(step)) for step, v in points])


def log_dataset(uri: str, run_id: str | None, manifest: dict, split: str, context: str) -> None:
    """Record the prepared data as an MLflow dataset input (name, digest, counts), so runs on
    different data never look comparable in the UI."""
    if not run_id:
        return
    keep = {k: manifest[k] for k in ("source", "digest", "image_size", "counts", "classes")}
    _call(uri, {"uri": uri, "kind": "dataset", "run_id": run_id, "manifest": keep, "split": split, "context": context})


def _log_dataset(client, run_id: str, manifest: dict, split: str, context: str) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag
    ds = Dataset(name=f"{manifest['source']}-{split}", digest=manifest["digest"][:36], source_type="local",
                 source=json.dumps({"source": manifest["source"], "image_size": manifest["image_size"]}),
                 profile=json.dumps({"num_images": manifest["counts"].get(split), "num_classes": len(manifest["classes"])}))
    _retry_locked(client.log_inputs, run_id, [DatasetInput(ds, [InputTag("mlflow.data.context", context)])])


def _numeric_leaves(tree: dict, prefix: str = "") -> dict[str, float]:
    """{'center': {'top1_error': {'mean': 41.2}}} -> {'center.top1_error.mean': 41.2}; None,
    booleans and text are left out."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_numeric_leaves(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def log_headline(uri: str, parent_id: str | None, headline: dict) -> None:
    """The headline figures (reports/summary.json, the DVC metrics) as metrics of the parent, named
    by their path in the file (top5, top1_ens), and the file itself as summary.json: the
    numbers Compare shows for two pipeline executions. A value the parent already holds is not
    logged again (a rerun after a kill); a changed one is (a rerun on changed code), and MLflow
    shows the newest."""
    if uri == OFF or not parent_id:
        return
    metrics = _numeric_leaves(headline)
    try:
        held = _retry_locked(_client(uri).get_run, parent_id).data.metrics
    except Exception as exc:
        if not _is_unreachable(exc):
            raise
        held = {}
    log_metrics(uri, parent_id, {k: v for k, v in metrics.items() if held.get(k) != v})
    log_dict(uri, parent_id, headline, "summary.json")


def log_dict(uri: str, run_id: str | None, data: dict, artifact_file: str) -> None:
    """A dict as a JSON artifact of the run (the text travels in the call: buffered like the others)."""
    if not run_id:
        return
    _call(uri, {"uri": uri, "kind": "text", "run_id": run_id, "artifact_file": artifact_file,
                "text": json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"})


def log_stage_files(uri: str, run_id: str | None, config: dict, *outputs: Path | None) -> None:
    """What a stage was told and what it wrote, in its own run: the resolved config (ablation arm
    applied) as config.json, and its small outputs (metrics JSON, curves CSV, provenance) under
    outputs/. Large outputs (weights, predictions) stay in DVC; missing or None paths are skipped."""
    if not run_id:
        return
    log_dict(uri, run_id, config, "config.json")
    for path in outputs:
        if path is not None and Path(path).is_file():
            log_artifact(uri, run_id, Path(path), "outputs")


def set_tags(uri: str, run_id: str, tags: dict) -> None:
    _call(uri, {"uri": uri, "kind": "batch", "run_id": run_id, "tags": [[k, str(v)] for k, v in tags.items()]})


def log_artifact(uri: str, run_id: str, path: Path, subdir: str | None = None) -> None:
    _call(uri, {"uri": uri, "kind": "artifact", "run_id": run_id, "path": str(Path(path).resolve()), "subdir": subdir})


def log_artifacts(uri: str, run_id: str, folder: Path, subdir: str | None = None) -> None:
    _call(uri, {"uri": uri, "kind": "artifact", "run_id": run_id, "path": str(Path(folder).resolve()), "subdir": subdir})


@contextmanager
def system_metrics(uri: str, run_id: str | None, interval_s: float = 5.0):
    """CPU, memory (and GPU when present) sampled into the run as system/* metrics."""
    if not run_id or uri == OFF:
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


# arch -> the logged model's name stem (ablation arms and phases are named by the arm instead)
MODEL_STEMS = {"paper": "alexnet", "one_tower": "alexnet-one-tower", "torchvision": "alexnet-torchvision"}


def model_name(arm: str | None, arch: str, seed: int) -> str:
    """The name of a seed's logged model: alexnet-seed1, no_lrn-seed2 (an ablation arm), vgg11-seed3
    (a successor as the base net); every seed and arm has its own in the UI's Models list."""
    stem = arm or MODEL_STEMS.get(arch, arch)
    return re.sub(r"[/:.%\"']", "_", f"{stem}-seed{seed}")  # characters MLflow refuses in a model name


def log_model(uri: str, run_id: str, model, example, tags: dict, name: str = "model") -> str | None:
    """The trained weights as an MLflow model of the run (the UI's Models column and the model
    registry see it), in torch.export's pt2 format: it loads without unpickling code. `example`
    (a CPU batch of at least 2 images) traces the graph with a dynamic batch size and is stored as
    the input example. Returns the model id, or None with a warning when the store refused it
    (the weights are in DVC either way)."""
    configure_client()
    import mlflow
    _set_uri(uri)
    try:
        with mlflow.start_run(run_id=run_id, log_system_metrics=False):
            info = mlflow.pytorch.log_model(model, name=name, input_example=example.numpy(),
                                            serialization_format="pt2", tags=_str_tags(tags),
                                            pip_requirements=[f"torch=={_torch_version()}"])
        _retry_locked(_client(uri).update_run, run_id, "RUNNING")  # start_run's exit ended it early
        return info.model_id
    except Exception as exc:  # noqa: BLE001 - logging a copy of the weights must not fail a finished training
        print(f"warning: the model was not logged to MLflow ({type(exc).__name__}: {str(exc)[:200]}); "
              "the weights are in DVC", file=sys.stderr, flush=True)
        return None


def _torch_version() -> str:
    import torch
    return torch.__version__.split("+")[0]


def find_model(uri: str, experiment_id: str, tags: dict) -> str | None:
    """The newest logged model of the experiment carrying all `tags` (e.g. the seed and the
    training digest), or None."""
    if uri == OFF:
        return None
    flt = " AND ".join(f"tags.`{k}` = '{v}'" for k, v in _str_tags(tags).items())
    try:
        found = _retry_locked(_client(uri).search_logged_models, [experiment_id], filter_string=flt,
                              order_by=[{"field_name": "creation_time", "ascending": False}], max_results=1)
    except Exception as exc:  # noqa: BLE001 - a link, not a result
        if _is_unreachable(exc):
            return None
        raise
    return found[0].model_id if found else None


def log_model_input(uri: str, run_id: str | None, model_id: str | None) -> None:
    """Record that `run_id` used the logged model (MLflow 3 model inputs): the UI links them."""
    if not run_id or not model_id or uri == OFF:
        return
    from mlflow.entities import LoggedModelInput
    _retry_locked(_client(uri).log_inputs, run_id, models=[LoggedModelInput(model_id)])


def finish_parent(uri: str, run_id: str) -> None:
    """The report stage ends the execution. A parent already FINISHED keeps its end time: a later
    rerun of some stages with the same params and commit (the same key) adds child runs to it, and
    its duration stays that of the execution that completed it."""
    _call(uri, {"uri": uri, "kind": "terminate", "run_id": run_id, "status": "FINISHED", "keep_finished": True})


LOCAL_UI = "http://127.0.0.1:5000"  # `make mlflow-ui` (harness mlflow-ui) over a local store


def ui_url(uri: str) -> str:
    """Where a reader opens the runs of this store: the team server itself for an http(s) URI, the
    UI that `make mlflow-ui` starts for the repository's SQLite store."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI


def experiment_url(uri: str, experiment_id: str) -> str:
    """The runs table of the experiment, in MLflow 3's machine-learning view (without
    workflowType it may open the GenAI pages)."""
    return f"{ui_url(uri)}/#/experiments/{experiment_id}/runs?{WORKFLOW_QUERY}"


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    """Link to a run in the MLflow UI of the store `uri`."""
    return f"{ui_url(uri)}/#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW_QUERY}"


def compare_url(uri: str, experiment_id: str, run_ids: list[str]) -> str:
    """The UI's Compare page of runs (e.g. two pipeline parents): params side by side, with a
    switch to show only those that differ, and the metrics."""
    runs = json.dumps(list(run_ids), separators=(",", ":"))
    return f"{ui_url(uri)}/#/compare-runs?runs={runs}&experiments={json.dumps([str(experiment_id)])}&{WORKFLOW_QUERY}"
