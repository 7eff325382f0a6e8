"""End to end: one small ablation arm through `dvc repro` in a temporary copy of the repository.

With ablations off (the default) no ablation stage exists or would run; switching one arm on
trains and evaluates that arm's seeds, and compare.json then holds arm minus baseline,
recomputed here with scipy from the evaluation files. (compare.json without arms and the
report section are checked in test_ablation.py, without DVC.)
"""

import json
import re
import sqlite3

import numpy as np
import pandas as pd
import pytest
from repo_utils import copy_repo, dvc, get_params, ran_stages, set_params
from scipy import stats as sps


@pytest.mark.slow
def test_one_arm_through_dvc_repro(tmp_path):
    repo = copy_repo(tmp_path)
    # ablations off (the default): the matrix is empty, so no ablation stage exists or would run
    assert "ablation" not in dvc(repo, "stage", "list")
    pending = set(re.findall(r"^(\S+):$", dvc(repo, "status"), re.M))  # stages `dvc repro` would run
    assert {"train@1", "compare"} <= pending and not any("ablation" in s for s in pending), pending

    params = get_params(repo)
    params["ablations"].update(enabled=["no_lrn"])  # every arm trains train.seeds (1, 2 here)
    set_params(repo, params)
    on = ran_stages(dvc(repo, "repro", "compare"))  # not the report stage: 1 process less (~60 s budget)
    arm_stages = {"train_ablation@no_lrn-1", "train_ablation@no_lrn-2",
                  "evaluate_ablation@no_lrn-1", "evaluate_ablation@no_lrn-2"}
    assert arm_stages <= on and {"train@1", "train@2", "compare"} <= on, on

    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    res = compare["ablation_results"]["no_lrn"]
    assert res["overrides"] == {"model.lrn": "none"} and res["seeds"] == [1, 2]
    e = res["protocols"]["center"]["top1_error"]
    ev = lambda d, s: json.loads((repo / f"reports/metrics/{d}/seed-{s}.json").read_text())  # noqa: E731
    arm = np.array([ev("ablations/no_lrn/evaluate", s)["protocols"]["center"]["top1_error"] for s in (1, 2)])
    base = np.array([ev("evaluate", s)["protocols"]["center"]["top1_error"] for s in (1, 2)])
    assert e["diff"] == pytest.approx(arm.mean() - base.mean())
    assert e["paired"] is True and e["paired_seeds"] == [1, 2]  # the arm shares the baseline's seeds
    if np.std(arm - base) > 0:
        # rel 1e-4: the paired variance is taken of the differences rounded to the values' own
        # decimal step (41.6 - 41.0 is 0.6 to the data; stats.paired_diff_var), which moves p in
        # its fifth digit; a Welch or unpaired p would differ in the first
        assert e["p_value"] == pytest.approx(sps.ttest_rel(arm, base).pvalue, rel=1e-4)
    assert ev("ablations/no_lrn/evaluate", 1)["arm"] == "no_lrn"
    lrn = {r["id"]: r for r in compare["claims"]}["lrn-top1"]
    assert not lrn["tested"] and lrn["measured_on_run"]["arm"] == "no_lrn"
    assert res["convergence"]["arm_iterations"].keys() == {"1", "2"}
    # convergence at step resolution: the arm's window series is an output of its train stage
    steps = pd.read_csv(repo / "reports/plots/ablations/no_lrn/train/seed-1.steps.csv")
    assert steps["images"].sum() == 2 * (6 * 24 // 16) * 16  # 2 epochs of 9 batches of 16
    assert res["convergence"]["resolution_steps"] > 0
    assert compare["ablations"]["enabled"] == ["no_lrn"]

    # the arm's runs are children of the same MLflow parent as this execution's baseline seeds
    db = sqlite3.connect(repo / "mlflow.db")
    parent = dict(db.execute("select r.name, t.value from runs r join tags t on t.run_uuid = r.run_uuid "
                             "where t.key = 'mlflow.parentRunId'").fetchall())
    assert parent["train-no_lrn-seed1"] == parent["train-seed1"] == parent["evaluate-no_lrn-seed2"]
    assert parent["compare"] == parent["train-no_lrn-seed2"]
