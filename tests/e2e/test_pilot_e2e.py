"""`harness pilot` as a user runs it, after `dvc repro prepare`: on the default profile, and on the
ilsvrc2012 preset cut down to a CPU (an ILSVRC-2012 layout built from the real sample JPEGs)."""

import json
import math
import subprocess
import sys

import imagenet_fixtures as FX
import pytest
from repo_utils import copy_repo, dvc, env_for, get_params, set_params

from harness import config as C

pytestmark = pytest.mark.slow


def harness(repo, *args) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=repo, env=env_for(repo),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def test_pilot_on_the_default_profile(tmp_path):
    """The default profile learns within 300 steps; the projection covers every seed and the arm."""
    repo = copy_repo(tmp_path / "repo", {"train": {"threads": 1}, "ablations": {"enabled": ["no_conv5"]}})
    dvc(repo, "repro", "prepare")
    run = harness(repo, "pilot", "--steps", "300")
    p = json.loads((repo / "reports/pilot.json").read_text())
    assert p["loss"]["verdict"] == "decreasing" and p["loss"]["ln_classes"] == pytest.approx(math.log(20))
    assert p["loss"]["last_mean"] < math.log(20) - p["loss"]["required_drop"]
    assert p["training_digest"] == C.training_digest(C.load_config(repo / "params.yaml"))  # the report's staleness check
    base, arm = p["projection"]["groups"]
    assert (base["what"], base["seeds"], arm["what"], arm["seeds"]) == ("baseline", 3, "arm no_conv5", 3)
    assert arm["scale"] != 1.0  # costed by its own multiply-adds
    # 14 epochs of 4000 images at the measured rate, plus validation and evaluation of 1000 images
    r = p["throughput"]
    assert base["train_s"] == pytest.approx(14 * 4000 / r["train_images_per_s"])
    assert p["projection"]["device_hours"] == pytest.approx(3 * (base["total_s"] + arm["total_s"]) / 3600)
    assert "full run:" in run.stdout and "the loss left ln 20" in run.stdout


def test_pilot_on_the_ilsvrc2012_preset_cut_down_to_cpu(tmp_path):
    """The paper's recipe (init N(0, 0.01), lr 0.01, 224 crops of 256) on 6 real classes, one CPU:
    the pilot reports the flat loss the paper's init is known for, before any long run."""
    FX.sample_dir()
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=False)
    repo = copy_repo(tmp_path / "repo")
    harness(repo, "preset", "ilsvrc2012", "--root", str(root))
    params = get_params(repo)
    params["train"].update({"devices": ["cpu"], "decode_device": "cpu", "threads": 1, "num_workers": 0, "batch_size": 4})
    params["model"]["width"] = 0.25
    params["data"]["shard_size"] = 8
    params["evaluate"]["batch_size"] = 8
    set_params(repo, params)
    dvc(repo, "repro", "prepare")
    run = harness(repo, "pilot", "--steps", "30", "--eval-images", "5")
    p = json.loads((repo / "reports/pilot.json").read_text())
    assert (p["dataset"], p["num_classes"], p["recipe"]["init"], p["recipe"]["input_size"]) == ("ilsvrc2012", 6, "paper", 224)
    assert p["loss"]["verdict"] == "flat" and p["loss"]["init_logit_sd"] < 1e-3
    assert "FLAT LOSS" in run.stderr
    g = p["projection"]["groups"][0]
    assert g["seeds"] == 5 and p["projection"]["wall_s"] == pytest.approx(5 * g["total_s"])
    assert p["unit_costs"]["basis"].startswith("scaled by multiply-adds")  # width 0.25: not the paper net
    assert p["backend"]["cudnn_conv_fp32_precision"] == "ieee"
