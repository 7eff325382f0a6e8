"""A mistake in params.yaml stops `dvc repro` / `dvc exp run` before DVC removes any output.

The `validate` stage (pipelines/validate.py) checks the whole file; every other stage depends on
its stamp, so DVC runs it first. Checked on a real DVC repository with every stage's outputs in
place: after the failed run each file is still there with the same bytes.
"""

import copy
import hashlib
import subprocess

import pytest
from repo_utils import TINY, copy_repo, deep_update, dvc, env_for, ran_stages


@pytest.fixture(scope="module")
def repo(tmp_path_factory, shared_dvc_cache):
    repo = copy_repo(tmp_path_factory.mktemp("repo"), copy.deepcopy(TINY), cache=shared_dvc_cache,
                     tracking=False)
    dvc(repo, "repro")
    return repo


def snapshot(repo) -> dict[str, str]:
    """Every output file (artifacts/, reports/, dvc.lock) by its bytes' digest."""
    files = [p for d in ("artifacts", "reports") for p in (repo / d).rglob("*") if p.is_file()]
    files.append(repo / "dvc.lock")
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def failing(repo, *args: str) -> str:
    p = subprocess.run(["dvc", *args], cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert p.returncode != 0, p.stdout[-2000:]
    return p.stdout + p.stderr


@pytest.mark.slow
@pytest.mark.parametrize("edit, words", [
    ("train:\n  lrr: 0.02\n", ["train.lrr: unknown key", "did you mean train.lr?"]),  # a typo the report stage caught
    ("train:\n  lr_steps: [0]\n", ["train.lr_steps", ">= 1"]),  # a bad value of the train stages' params
])
def test_a_bad_params_file_stops_dvc_repro_before_any_output_is_removed(repo, edit, words):
    params = (repo / "params.yaml").read_text()
    assert (repo / "reports/report.html").is_file() and (repo / "artifacts/models/seed-1/model.pt").is_file()
    before = snapshot(repo)
    patched = params.replace("train:\n", edit, 1) if "lrr" in edit else \
        params.replace("  lr_steps:\n  - 2\n", "  lr_steps:\n  - 0\n", 1)
    assert patched != params
    try:
        (repo / "params.yaml").write_text(patched)
        out = failing(repo, "repro")
    finally:
        (repo / "params.yaml").write_text(params)
    assert all(w in out for w in words), out[-2000:]
    assert "Traceback" not in out
    assert ran_stages(out) == {"validate"}, out[-2000:]
    assert snapshot(repo) == before  # nothing removed, nothing rewritten


@pytest.mark.slow
def test_exp_run_with_a_bad_value_stops_before_any_output_is_removed(repo):
    before = snapshot(repo)
    params = (repo / "params.yaml").read_text()
    try:
        out = failing(repo, "exp", "run", "-S", "train.lr=-0.01")
    finally:
        (repo / "params.yaml").write_text(params)
    assert "train.lr: must be > 0" in out, out[-2000:]
    assert snapshot(repo) == before


@pytest.mark.slow
def test_exp_run_with_fewer_epochs_than_the_lr_steps_runs(repo):
    """The issue's `dvc exp run -S train.epochs=2` against lr_steps [10, 13]: here the tiny profile's
    lr_steps [2] against train.epochs 1. It trains, with a note that the drop lies past the end."""
    params = (repo / "params.yaml").read_text()
    try:
        out = dvc(repo, "exp", "run", "-S", "train.epochs=1")
    finally:
        (repo / "params.yaml").write_text(params)
    assert {"validate", "train@1", "train@2", "report"} <= ran_stages(out), out[-2000:]
    assert "note: train.lr_steps 2 lie at or past train.epochs (1)" in out
    assert "never lowers the lr" in out
