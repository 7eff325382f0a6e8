"""MLflow tracking against a real SQLite store (no mocks)."""

import json
import multiprocessing as mp
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import runtime, tracking

REPO = Path(__file__).resolve().parents[2]


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
    assert tracking.run_url("http://mlflow.team:5000/", "3", "abc") == \
        "http://mlflow.team:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert tracking.run_url("sqlite:////x/mlflow.db", "3", "abc").startswith("http://127.0.0.1:5000/#/")


def test_ui_links_open_the_machine_learning_view(tmp_path):
    """MLflow 3 opens an experiment on its GenAI pages unless the URL or the experiment says
    otherwise: the links carry workflowType, the experiment its kind."""
    assert tracking.experiment_url("http://h:5000", "7") == \
        "http://h:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert tracking.compare_url("http://h:5000", "7", ["a", "b"]) == \
        'http://h:5000/#/compare-runs?runs=["a","b"]&experiments=["7"]&workflowType=machine_learning'
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    assert MlflowClient(uri).get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"


def test_parent_is_named_and_carries_the_params(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    assert tracking.parent_name("pipeline", "sober-cusk", "c" * 40, "d" * 64) == "sober-cusk"
    assert tracking.parent_name("pipeline", "", "0123456789", "abcdef0123") == "pipeline-0123456-abcdef01"
    assert tracking.parent_name("reference", "", "0123456789", "abcdef0123") == "reference-0123456-abcdef01"
    params = {f"train.p{i}": i for i in range(150)}  # more than one log_batch of params
    parent = tracking.parent_run(uri, exp, "k", {"DVC_EXP_NAME": "sober-cusk", "git_dirty": False}, tmp_path,
                                 name="sober-cusk", shared_name="pipeline-c-d", params=params)
    run = MlflowClient(uri).get_run(parent)
    assert run.info.run_name == "sober-cusk" and run.data.params == {k: str(v) for k, v in params.items()}
    # a stage of the same experiment joins it unchanged
    assert tracking.parent_run(uri, exp, "k", {"DVC_EXP_NAME": "sober-cusk", "git_dirty": False}, tmp_path,
                               name="sober-cusk", shared_name="pipeline-c-d", params=params) == parent
    assert MlflowClient(uri).get_run(parent).info.run_name == "sober-cusk"
    # a queued seed of another experiment on the same params and commit shares it (docs/scale-out.md),
    # on a changed work tree: the parent is no one experiment's, and the execution was dirty
    tracking.parent_run(uri, exp, "k", {"DVC_EXP_NAME": "seed-2", "git_dirty": True}, tmp_path,
                        name="seed-2", shared_name="pipeline-c-d", params=params)
    run = MlflowClient(uri).get_run(parent)
    assert run.info.run_name == "pipeline-c-d"
    assert run.data.tags["DVC_EXP_NAME"] == "sober-cusk,seed-2" and run.data.tags["git_dirty"] == "True"
    tracking.parent_run(uri, exp, "k", {"DVC_EXP_NAME": "", "git_dirty": False}, tmp_path,
                        name="pipeline-c-d", shared_name="pipeline-c-d", params=params)
    assert MlflowClient(uri).get_run(parent).data.tags["git_dirty"] == "True"  # stays: one stage ran dirty


def test_a_finished_parent_keeps_its_times_when_a_stage_reruns(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    parent = tracking.parent_run(uri, exp, "k", {}, tmp_path)
    tracking.finish_parent(uri, parent)
    end = MlflowClient(uri).get_run(parent).info.end_time
    time.sleep(0.05)
    with tracking.child_run(uri, exp, tracking.parent_run(uri, exp, "k", {}, tmp_path), "report", {}, {}):
        pass  # `dvc repro -f report` on the same params and commit
    tracking.finish_parent(uri, parent)
    info = MlflowClient(uri).get_run(parent).info
    assert info.status == "FINISHED" and info.end_time == end


def test_headline_on_the_parent_once_and_updated_when_it_changes(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    parent = tracking.parent_run(uri, exp, "k", {}, tmp_path)
    headline = {"seeds": 2, "center": {"top1_error": {"mean": 41.5, "sd": None}}, "claims": {"tested": 0}}
    tracking.log_headline(uri, parent, headline)
    tracking.log_headline(uri, parent, headline)  # a rerun after a kill: nothing doubled
    client = MlflowClient(uri)
    assert client.get_run(parent).data.metrics == {"seeds": 2.0, "center.top1_error.mean": 41.5, "claims.tested": 0.0}
    assert len(client.get_metric_history(parent, "center.top1_error.mean")) == 1
    headline["center"]["top1_error"]["mean"] = 40.0  # a rerun on changed code
    time.sleep(0.01)
    tracking.log_headline(uri, parent, headline)
    assert client.get_run(parent).data.metrics["center.top1_error.mean"] == 40.0
    summary = Path(client.download_artifacts(parent, "summary.json", str(tmp_path)))
    assert json.loads(summary.read_text()) == headline


def test_stage_config_and_outputs_are_artifacts_of_its_run(tmp_path):
    uri = tracking.default_uri(tmp_path)
    exp = tracking.ensure_experiment(uri, "e", tmp_path)
    parent = tracking.parent_run(uri, exp, "k", {}, tmp_path)
    (tmp_path / "seed-1.csv").write_text("epoch,val_top1_error\n1,50.0\n")
    (tmp_path / "provenance.json").write_text("{}")
    with tracking.child_run(uri, exp, parent, "train-seed1", {}, {}) as rid:
        tracking.log_stage_files(uri, rid, {"train": {"lr": 0.01}}, tmp_path / "seed-1.csv", None,
                                 tmp_path / "provenance.json", tmp_path / "missing.json")
    client = MlflowClient(uri)
    assert {a.path for a in client.list_artifacts(rid)} == {"config.json", "outputs"}
    assert {a.path for a in client.list_artifacts(rid, "outputs")} == {"outputs/seed-1.csv", "outputs/provenance.json"}
    config = Path(client.download_artifacts(rid, "config.json", str(tmp_path / "dl")))
    assert json.loads(config.read_text()) == {"train": {"lr": 0.01}}


def test_model_names_per_seed_and_arm():
    assert tracking.model_name(None, "paper", 1) == "alexnet-seed1"
    assert tracking.model_name("no_lrn", "paper", 2) == "no_lrn-seed2"
    assert tracking.model_name(None, "vgg11", 3) == "vgg11-seed3"
    assert len({tracking.model_name(a, "paper", s) for a in (None, "no_lrn") for s in (1, 2, 3)}) == 6


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


TRAIN_STAGE = "stages:\n  train:\n    matrix: {seed: [1]}\n    cmd: x\n    outs:\n      - reports/plots/seed-${item.seed}.csv\n"


def _committed(repo: Path, dvc_yaml: str, files: tuple[str, ...]) -> tuple[str, ...]:
    """A git repository holding dvc.yaml and `files` (each "a\n"), committed; the pipeline's outputs."""
    from harness.stages import pipeline_outputs
    (repo / "dvc.yaml").write_text(dvc_yaml)
    for f in files:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("a\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "code")
    return pipeline_outputs(repo)


def test_git_dirty_leaves_out_what_the_pipeline_writes(tmp_path):
    """dvc.lock and the git-tracked outputs dvc.yaml declares change during a `dvc repro`: the
    first stage and the last must agree that a clean checkout is clean."""
    ignore = _committed(tmp_path, TRAIN_STAGE + "  compare:\n    cmd: y\n    metrics:\n      - reports/summary.json:\n"
                        "          cache: false\n",
                        ("dvc.lock", "reports/plots/seed-1.csv", "reports/summary.json", "harness.py", ".gitignore"))
    assert runtime.git_info(tmp_path, ignore=ignore)["dirty"] is False
    for f in ("dvc.lock", "reports/plots/seed-1.csv", "reports/summary.json", ".gitignore"):
        (tmp_path / f).write_text("b\n")
    assert runtime.git_info(tmp_path, ignore=ignore)["dirty"] is False
    assert runtime.git_info(tmp_path)["dirty"] is True  # without the pipeline's outputs left out
    (tmp_path / "harness.py").write_text("b\n")
    assert runtime.git_info(tmp_path, ignore=ignore)["dirty"] is True


def test_code_commit_is_the_last_commit_of_code_or_params_not_of_results(tmp_path):
    """Committing regenerated results (dvc.lock, reports/...) does not move the code commit that a
    report names; a change of code or params does. Checked against `git log` by hand."""
    ignore = _committed(tmp_path, TRAIN_STAGE + "      - artifacts/models/seed-${item.seed}\n",
                        ("dvc.lock", "reports/plots/seed-1.csv", "params.yaml", "harness.py", "sub/.gitignore"))
    head = lambda: subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,  # noqa: E731
                                  text=True).stdout.strip()
    code = head()
    for f in ("dvc.lock", "reports/plots/seed-1.csv", "sub/.gitignore"):
        (tmp_path / f).write_text("b\n")
    _git(tmp_path, "commit", "-qam", "results")
    info = runtime.git_info(tmp_path, ignore=ignore)
    assert info["commit"] == head() != code and info["code_commit"] == code
    assert runtime.git_info(tmp_path)["code_commit"] == head()  # nothing left out: HEAD
    (tmp_path / "params.yaml").write_text("b\n")
    _git(tmp_path, "commit", "-qam", "params")
    assert runtime.git_info(tmp_path, ignore=ignore)["code_commit"] == head()


def test_open_stage_makes_comparable_parents(tmp_path, monkeypatch):
    """Two `dvc exp run`s with different params: two parents named after the experiments, with the
    whole params file as params, Source dvc.yaml; the stage's own run keeps its script as Source."""
    import yaml

    from harness.stages import open_stage
    for key in ("MLFLOW_TRACKING_URI", "HARNESS_TRACKING", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    parents = {}
    for name, lr in (("exp-a", 0.01), ("exp-b", 0.02)):
        params["train"]["lr"] = lr
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        monkeypatch.setenv("DVC_EXP_NAME", name)
        ctx = open_stage(tmp_path / "params.yaml", "train@1", arm="no_lrn")
        parents[name] = MlflowClient(ctx.uri).get_run(ctx.parent_id)
        assert ctx.base_tags["mlflow.source.name"] == "pipelines/train.py" and ctx.base_tags["arm"] == "no_lrn"
    a, b = parents["exp-a"], parents["exp-b"]
    assert (a.info.run_name, b.info.run_name) == ("exp-a", "exp-b")
    assert a.data.tags["mlflow.source.name"] == "dvc.yaml" and "arm" not in a.data.tags
    assert {k for k in a.data.params if a.data.params[k] != b.data.params[k]} == {"train.lr"}
    assert len(a.data.params) > 100 and a.data.params["model.lrn"] == "paper"  # the params file, not the arm's

