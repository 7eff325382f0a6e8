"""The Fall-2011 path of paper 6 through `dvc repro` on a tiny 21k-style layout built from the real
sample JPEGs (tests/imagenet_fixtures.make_fall2011: per-synset tars and a folder, synsets shared
with the tiny ILSVRC-2012 layout, a byte copy and a PNG copy of its val images): prepare both,
pre-train 2 six-conv CNNs, fine-tune them, evaluate, the 5 + 2 = 7-CNN ensemble, compare, report."""

import copy
import json

import imagenet_fixtures as FX
import numpy as np
import pytest
from repo_utils import TINY, copy_repo, dvc, ran_stages

pytestmark = pytest.mark.slow


def fall2011_params(il_root, f11_root) -> dict:
    patch = copy.deepcopy(TINY)
    patch["data"] = {"source": "ilsvrc2012", "root": str(il_root), "image_size": 72, "shard_size": 8}
    patch["train"].update({"seeds": [1, 2, 3, 4, 5], "epochs": 1, "lr_steps": [1], "batch_size": 4})
    patch["evaluate"] = {"batch_size": 16}
    patch["pretrain"] = {"enabled": ["fall2011"], "seeds": [1, 2], "epochs": 1, "finetune_epochs": 1,
                         "data": {"source": "fall2011", "root": str(f11_root), "image_size": 72, "shard_size": 8,
                                  "fall2011": {"val_every": 4, "exclude_root": str(il_root)}}}
    return patch


def test_pretrain_finetune_seven_cnn_ensemble_through_dvc_repro(tmp_path):
    FX.sample_dir()
    il = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=True)
    f11 = FX.make_fall2011(tmp_path / "fall11")
    repo = copy_repo(tmp_path / "repo", fall2011_params(il, f11))
    out = dvc(repo, "repro")
    assert {"prepare_pretrain@fall2011", "pretrain@fall2011-1", "finetune@fall2011-2", "evaluate_finetune@fall2011-1",
            "ensemble_finetune@fall2011", "compare", "report"} <= ran_stages(out)

    # Fall 2011: 8 synsets, the two duplicates of ILSVRC-2012 val images excluded, 1 of 4 per synset held out
    m = json.loads((repo / "artifacts/pretrain/data/manifest.json").read_text())
    assert m["classes"] == sorted(FX.FALL2011_WNIDS) and m["counts"] == {"train": 24, "val": 8}
    assert m["fall2011"]["exclusion"]["n_excluded"] == 2

    # fine-tuned: a 6-class head on the pre-trained six-conv net, evaluated on ILSVRC-2012 val
    ev = json.loads((repo / "reports/metrics/finetune/evaluate/seed-1.json").read_text())
    assert ev["dataset"] == "ilsvrc2012" and ev["n_images"] == len(FX.VAL_WNIDS) and ev["arm"] == "finetune"
    pre_train = json.loads((repo / "reports/metrics/pretrain/train/seed-1.json").read_text())
    fine_train = json.loads((repo / "reports/metrics/finetune/train/seed-1.json").read_text())
    assert fine_train["pretrain_run_id"] == pre_train["mlflow_run_id"] and fine_train["reinit"] == "fc8"

    # the 7-CNN ensemble recomputed from the saved predictions: 5 ILSVRC-only + 2 fine-tuned, softmax averaged
    labels = np.load(repo / "artifacts/data/val/labels.npy")
    probs = [np.load(repo / f"artifacts/predictions/seed-{s}/center.npy") for s in range(1, 6)]
    probs += [np.load(repo / f"artifacts/finetune/predictions/seed-{s}/center.npy") for s in (1, 2)]
    top1 = 100.0 * np.mean(np.mean(probs, axis=0).argmax(1) != labels)
    ens = json.loads((repo / "reports/metrics/finetune/ensemble.json").read_text())
    seven = ens["protocols"]["center"]["5+2"]
    assert seven["k"] == 7 and seven["groups"] == [{"base": [1, 2, 3, 4, 5], "pretrained": [1, 2]}]
    assert seven["top1_error"][0] == pytest.approx(top1)

    # compare: the pre-trained claims carry the measured value and say exactly what is missing
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    rows = {c["id"]: c for c in compare["claims"]}
    one, seven_row = rows["t2-1cnn-pre-top5-val"], rows["t2-7cnn-pre-top1-val"]
    assert one["verdict"] == "not tested" and seven_row["verdict"] == "not tested"
    assert "scaled-down" in seven_row["reason"] or "21,841 synsets" in seven_row["reason"] or \
        "1000 classes" in seven_row["reason"], seven_row["reason"]
    assert seven_row["measured_on_run"]["estimate"] == pytest.approx(top1)
    assert compare["pretraining"]["facts"]["n_excluded"] == 2
    report = (repo / "reports/report.md").read_text()
    assert "Fall 2011" in report

    # MLflow: the fine-tune run is a child of its pre-train run
    from mlflow.tracking import MlflowClient
    run = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_run(fine_train["mlflow_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == pre_train["mlflow_run_id"]
    assert dvc(repo, "repro").count("Running stage") == 0
