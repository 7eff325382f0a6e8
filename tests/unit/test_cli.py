"""The `harness` command as a user meets it: real subprocesses of the installed console script."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).parent / "harness")
# this checkout's harness, not the installed one; the environment's mlflow for mlflow-ui
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def harness(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([HARNESS, *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


def test_version_is_the_package_version():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert harness("--version").stdout.strip() == f"harness {version}"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from harness.cli import build_parser
    p = build_parser()
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_option_has_a_description_and_its_help_shows_the_default(name):
    text = " ".join(harness(name, "--help").stdout.split())  # argparse wraps lines
    for action in _subparsers()[name]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}: no help"
        if action.default not in (None, False):
            assert f"default: {action.default}" in text, f"{name} {action.option_strings}: default not shown"


def test_top_level_help_describes_every_subcommand():
    text = harness("--help").stdout
    for name in _subparsers():
        assert re.search(rf"^\s+{re.escape(name)}\s*\n?\s+\S", text, re.M), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_ui_works_from_a_subfolder_like_dvc(tmp_path):
    """The defaults (params.yaml, the store) are the repository root's, found by walking up to .dvc."""
    (tmp_path / ".dvc").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    sub = tmp_path / "docs" / "deeper"
    sub.mkdir(parents=True)
    proc = subprocess.Popen([HARNESS, "mlflow-ui", "--port", str(_free_port())], cwd=sub, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Runs table: http://127.0.0.1:"), line + proc.stderr.read()[-2000:]
        time.sleep(1)
        assert proc.poll() is None  # the MLflow server runs
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert (tmp_path / "mlflow.db").is_file() and not (sub / "mlflow.db").exists()


def test_paths_given_in_a_subfolder_are_relative_to_it(tmp_path):
    p = harness("model-info", "--params", "../params.yaml", "--json", cwd=REPO / "docs")
    assert json.loads(p.stdout)["num_classes"] == 20
    missing = harness("model-info", "--params", "params.yaml", cwd=REPO / "docs", check=False)
    assert missing.returncode == 2 and f"{REPO / 'docs' / 'params.yaml'}" in missing.stderr


def test_a_reader_that_stops_early_gets_no_traceback():
    """`harness verdict --list | head -1`: the reader is gone before the first write."""
    proc = subprocess.Popen([HARNESS, "verdict", "--list"], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 1 and "Traceback" not in err and "BrokenPipeError" not in err, err
    shell = subprocess.run(["bash", "-c", f"{HARNESS} verdict --list | head -1"], cwd=REPO, env=ENV,
                           capture_output=True, text=True)
    assert shell.stdout.count("\n") == 1 and "Traceback" not in shell.stderr


def test_model_info_counts_the_datas_classes(tmp_path):
    """The default dataset has 20 classes: the net the train stage builds has 3,583,092 parameters,
    not 4,587,592 (1000 classes)."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    info = json.loads(harness("model-info", "--params", "params.yaml", "--json", cwd=tmp_path).stdout)
    assert info["num_classes"] == 20 and "data.synthetic.num_classes" in info["classes_from"]
    assert info["total_params"] == 3_583_092
    paper_head = json.loads(harness("model-info", "--params", "params.yaml", "--classes", "1000", "--json",
                                    cwd=tmp_path).stdout)
    fc7 = next(r for r in info["layers"] if r["name"] == "fc7")["output"][-1]
    # hand count: fc8 holds (fc7 units + 1 bias) per class
    assert paper_head["total_params"] - info["total_params"] == (1000 - 20) * (fc7 + 1) == 4_587_592 - 3_583_092
    # the prepared data's manifest wins (what the train stage builds the net for), and is named
    data = tmp_path / "artifacts" / "data"
    data.mkdir(parents=True)
    (data / "manifest.json").write_text(json.dumps({"source": "synthetic", "classes": [f"c{i}" for i in range(7)]}))
    text = harness("model-info", "--params", "params.yaml", cwd=tmp_path).stdout
    assert text.splitlines()[0] == f"7 classes (the prepared data, {Path('artifacts/data/manifest.json')})"
    # without --params: the paper's network and its 1000 classes
    assert "60,965,224" in harness("model-info", cwd=tmp_path).stdout


def test_list_arms_without_params_says_what_to_pass():
    p = harness("model-info", "--list-arms", check=False)
    assert p.returncode == 2 and "--params params.yaml" in p.stderr and p.stdout == ""
    listed = harness("model-info", "--params", "params.yaml", "--list-arms").stdout
    assert "no_lrn" in listed


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "pipelines").glob("[a-z]*.py")))
def test_a_stage_script_outside_the_environment_says_what_to_activate(script):
    """An interpreter without the project's packages (-S: no site-packages, -E: no PYTHONPATH)."""
    p = subprocess.run([sys.executable, "-E", "-S", f"pipelines/{script}", "--help"], cwd=REPO,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "`make install` then `source .venv/bin/activate`, or use `make repro`" in p.stderr
