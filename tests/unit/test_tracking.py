"""MLflow tracking against a real SQLite store (no mocks)."""

import multiprocessing as mp
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import runtime, tracking


def _create(args):
    uri, root = args
    return tracking.ensure_experiment(uri, "synthetic-default", Path(root))


def test_concurrent_creation_gives_one_experiment(tmp_path):
    uri = tracking.default_uri(tmp_path)
    with mp.get_context("spawn").Pool(3) as pool:
        ids = pool.map(_create, [(uri, str(tmp_path))] * 3)
    assert len(set(ids)) == 1
    exp = MlflowClient(uri).get_experiment(ids[0])
    assert exp.artifact_location == (tmp_path / "mlartifacts" / "synthetic-default").resolve().as_uri()


def test_parent_is_found_again_and_children_nest(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    parent = tracking.parent_run(uri, exp, "key1", {"git_commit": "abc"}, tmp_path)
    assert tracking.parent_run(uri, exp, "key1", {}, tmp_path) == parent
    assert tracking.parent_run(uri, exp, "key2", {}, tmp_path) != parent
    with tracking.child_run(uri, exp, parent, "train-seed1", {"train.lr": 0.01}, {"seed": 1}) as rid:
        tracking.log_series(uri, rid, "step_loss", [(i, 1.0 / (i + 1)) for i in range(1500)])
        tracking.log_metrics(uri, rid, {"val_top1_error": 50.0}, step=1)
    run = MlflowClient(uri).get_run(rid)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.01"
    history = MlflowClient(uri).get_metric_history(rid, "step_loss")
    assert len(history) == 1500 and history[-1].step == 1499


def test_failed_stage_marks_run_failed(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    parent = tracking.parent_run(uri, exp, "k", {}, tmp_path)
    with pytest.raises(RuntimeError):
        with tracking.child_run(uri, exp, parent, "train-seed1", {}, {}) as rid:
            raise RuntimeError("boom")
    assert MlflowClient(uri).get_run(rid).info.status == "FAILED"


def test_unusable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(tracking.TrackingError, match="not usable"):
        tracking.ensure_experiment(f"sqlite:///{blocker}/sub/mlflow.db", "e", tmp_path)


def test_uri_precedence_and_repo_root(tmp_path, monkeypatch):
    root = tmp_path
    assert tracking.resolve_uri(None, None, root) == f"sqlite:///{root.resolve()}/mlflow.db"
    assert tracking.resolve_uri("http://127.0.0.1:1", None, root) == "http://127.0.0.1:1"
    assert tracking.resolve_uri("http://127.0.0.1:1", "sqlite:///x.db", root) == "sqlite:///x.db"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir("/")
    assert runtime.repo_root() == tmp_path.resolve()


def test_a_failed_stage_marks_the_pipeline_parent_failed(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    parent = tracking.parent_run(uri, exp, "k", {}, tmp_path)
    with pytest.raises(RuntimeError):
        with tracking.child_run(uri, exp, parent, "evaluate-seed1", {}, {}):
            raise RuntimeError("boom")
    assert MlflowClient(uri).get_run(parent).info.status == "FAILED"
    tracking.finish_parent(uri, parent)  # the report stage of a later, complete repro
    assert MlflowClient(uri).get_run(parent).info.status == "FINISHED"


def test_importing_tracking_sets_no_environment_variable():
    import os
    import subprocess
    import sys
    code = ("import os; before = dict(os.environ); import harness.tracking; "
            "print(sorted(set(os.environ) - set(before)))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DO_NOT_TRACK"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_report_links_follow_the_tracking_store():
    assert tracking.run_url("http://mlflow.team:5000/", "3", "abc") == "http://mlflow.team:5000/#/experiments/3/runs/abc"
    assert tracking.run_url("sqlite:////x/mlflow.db", "3", "abc").startswith("http://127.0.0.1:5000/#/")
