"""End to end: two arms of "What came after" (AlexNet-BN and ResNet-18) through `dvc exp run -S`
on the tiny profile: they train and evaluate as DVC matrix stages and MLflow child runs, compare.json
holds their effects, sizes and throughput, and the report has its section and figure.
(Every net's shapes and sizes: tests/unit/test_successors.py.)"""

import json
import re
import sqlite3

import numpy as np
import pytest
from repo_utils import dvc, copy_repo, ran_stages

ARMS = ("alexnet_bn", "resnet18")


@pytest.mark.slow
def test_bn_and_resnet_arms_through_dvc_exp_run(tmp_path, shared_dvc_cache):
    repo = copy_repo(tmp_path, cache=shared_dvc_cache)  # the tiny baseline may come from another test's run
    ran = ran_stages(dvc(repo, "exp", "run", "-S", f"ablations.enabled=[{','.join(ARMS)}]"))
    assert {f"{s}_ablation@{a}-{seed}" for s in ("train", "evaluate") for a in ARMS for seed in (1, 2)} <= ran, ran
    assert {"compare", "report"} <= ran

    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    nets = compare["arm_costs"]["nets"]
    assert set(nets) == {"baseline", *ARMS}
    # torchvision's ResNet-18 has 11,689,512 parameters at 1000 classes; here fc reads 512 features
    # into the tiny profile's 6 classes
    assert nets["resnet18"]["n_parameters"] == 11_689_512 - (512 * 1000 + 1000) + (512 * 6 + 6)
    assert nets["resnet18"]["arch"] == "resnet18" and nets["alexnet_bn"]["arch"] == "paper"
    assert nets["resnet18"]["mult_adds"] > 10 * nets["baseline"]["mult_adds"] > 0
    ev = lambda d, s: json.loads((repo / f"reports/metrics/{d}/seed-{s}.json").read_text())  # noqa: E731
    tr = lambda a, s: json.loads((repo / f"reports/metrics/ablations/{a}/train/seed-{s}.json").read_text())  # noqa: E731
    base = np.array([ev("evaluate", s)["protocols"]["center"]["top1_error"] for s in (1, 2)])
    for arm in ARMS:
        err = np.array([ev(f"ablations/{arm}/evaluate", s)["protocols"]["center"]["top1_error"] for s in (1, 2)])
        assert nets[arm]["errors"]["top1_error"]["mean"] == pytest.approx(err.mean())
        assert nets[arm]["images_per_s"] == pytest.approx(np.mean([tr(arm, s)["images_per_s"] for s in (1, 2)]))
        e = compare["ablation_results"][arm]["protocols"]["center"]["top1_error"]
        assert e["paired"] and e["diff"] == pytest.approx(err.mean() - base.mean())
    assert compare["ablation_results"]["alexnet_bn"]["overrides"] == {
        "model.norm": "batchnorm", "model.norm_every_conv": True}

    report = (repo / "reports/report.md").read_text()
    section = re.split(r"^## \d+\. What came after", report, flags=re.M)[1]
    assert "resnet18" in section and "alexnet_bn" in section and "NOT this run's result" in section
    assert "69.76" in section  # torchvision's published ResNet-18 top-1, 69.758 rounded by the report (context, harness/report/published.yaml)
    assert (repo / "reports/figures/what_came_after.png").stat().st_size > 1000

    db = sqlite3.connect(repo / "mlflow.db")
    names = {n for (n,) in db.execute("select name from runs")}
    assert {"train-resnet18-seed1", "evaluate-alexnet_bn-seed2"} <= names, names
