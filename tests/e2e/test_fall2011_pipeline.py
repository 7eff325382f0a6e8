"""The Fall-2011 path of paper 6 through `dvc repro` on a tiny 21k-style layout built from the real
sample JPEGs (tests/imagenet_fixtures.make_fall2011: per-synset tars and a folder, synsets shared
with the tiny ILSVRC-2012 layout, a byte copy and a PNG copy of its val images): prepare both,
pre-train one six-conv CNN on the half/half (Fall-2009) split, evaluate it on the held-out half,
fine-tune it, evaluate, the 1 + 1 ensemble, compare, report; then SIGKILL the pre-training mid-run
and check that `dvc repro` resumes it to the same weights.

One tiny repository and one `dvc repro` for the whole module (the asserts share it); the kill
test runs last and reuses the uninterrupted run's weights as its reference.
"""

import copy
import json
import shutil

import imagenet_fixtures as FX
import numpy as np
import pytest
import torch
from repo_utils import TINY, copy_repo, dvc, kill_after_writes, ran_stages, stale

pytestmark = pytest.mark.slow

BASE_SEEDS, PRE_SEEDS = [1], [1]  # each stage costs seconds of start-up: one seed each
MIX = f"{len(BASE_SEEDS)}+{len(PRE_SEEDS)}"
PRE_CKPT = "artifacts/work/train/*/seed-1/checkpoint.pt"  # only the running stage has one


def fall2011_params(il_root, f11_root) -> dict:
    patch = copy.deepcopy(TINY)
    patch["data"] = {"source": "ilsvrc2012", "root": str(il_root), "image_size": 72, "shard_size": 8}
    patch["train"].update({"seeds": BASE_SEEDS, "epochs": 1, "lr_steps": [1], "batch_size": 4,
                           "checkpoint_every": 1})
    patch["evaluate"] = {"batch_size": 16}
    patch["pretrain"] = {"enabled": ["fall2011"], "seeds": PRE_SEEDS, "epochs": 2, "lr_steps": [2],
                         "finetune_epochs": 1,
                         "data": {"source": "fall2011", "root": str(f11_root), "image_size": 72, "shard_size": 8,
                                  "fall2011": {"split": "half", "exclude_root": str(il_root)}}}
    return patch


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    FX.sample_dir()
    tmp = tmp_path_factory.mktemp("fall2011")
    il = FX.make_ilsvrc2012(tmp / "ILSVRC2012", archives=True)
    f11 = FX.make_fall2011(tmp / "fall11")
    return copy_repo(tmp / "repo", fall2011_params(il, f11))


@pytest.fixture(scope="module")
def first_run(repo):
    return dvc(repo, "repro")


def _json(repo, path):
    return json.loads((repo / path).read_text())


def test_every_stage_of_the_path_runs(repo, first_run):
    assert {"prepare_pretrain@fall2011", "pretrain@fall2011-1", "evaluate_pretrain@fall2011-1",
            "finetune@fall2011-1", "evaluate_finetune@fall2011-1", "ensemble_finetune@fall2011",
            "compare", "report"} <= ran_stages(first_run)
    # Fall 2011: 8 synsets, the two duplicates of ILSVRC-2012 val images and the two near-duplicates
    # (re-encoded val photos) excluded, half of each synset held out (3 left in two synsets: 2 + 1)
    m = _json(repo, "artifacts/pretrain/data/manifest.json")
    assert m["classes"] == sorted(FX.FALL2011_WNIDS) and m["counts"] == {"train": 16, "val": 14}
    assert m["fall2011"]["exclusion"]["n_excluded"] == 4 and m["fall2011"]["split"] == "half"
    # nothing is left to run (every output is cached or a plot/metric)
    assert stale(repo) == {}


def test_pretrained_cnn_evaluated_on_its_held_out_half(repo, first_run):
    ev = _json(repo, "reports/metrics/pretrain/evaluate/seed-1.json")
    assert ev["dataset"] == "fall2011" and ev["n_images"] == 14 and ev["arm"] == "pretrain"
    assert set(ev["protocols"]) == {"center", "ten_patch"}


def test_fine_tuned_cnn_and_mixed_ensemble(repo, first_run):
    ev = _json(repo, "reports/metrics/finetune/evaluate/seed-1.json")
    assert ev["dataset"] == "ilsvrc2012" and ev["n_images"] == len(FX.VAL_WNIDS) and ev["arm"] == "finetune"
    pre_train = _json(repo, "reports/metrics/pretrain/train/seed-1.json")
    fine_train = _json(repo, "reports/metrics/finetune/train/seed-1.json")
    assert fine_train["pretrain_run_id"] == pre_train["mlflow_run_id"] and fine_train["reinit"] == "fc8"
    # the ensemble recomputed from the saved predictions: ILSVRC-only + fine-tuned, softmax averaged
    labels = np.load(repo / "artifacts/data/val/labels.npy")
    probs = [np.load(repo / f"artifacts/predictions/seed-{s}/center.npy") for s in BASE_SEEDS]
    probs += [np.load(repo / f"artifacts/finetune/predictions/seed-{s}/center.npy") for s in PRE_SEEDS]
    top1 = 100.0 * np.mean(np.mean(probs, axis=0).argmax(1) != labels)
    mix = _json(repo, "reports/metrics/finetune/ensemble.json")["protocols"]["center"][MIX]
    assert mix["k"] == 2 and mix["groups"] == [{"base": BASE_SEEDS, "pretrained": PRE_SEEDS}]
    assert mix["top1_error"][0] == pytest.approx(top1)
    # MLflow: the fine-tune run is a child of its pre-train run
    from mlflow.tracking import MlflowClient
    run = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").get_run(fine_train["mlflow_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == pre_train["mlflow_run_id"]


def test_compare_names_what_differs_and_summary_carries_the_pretrained_headline(repo, first_run):
    compare = _json(repo, "reports/metrics/compare.json")
    rows = {c["id"]: c for c in compare["claims"]}
    for cid in ("t2-1cnn-pre-top5-val", "t2-7cnn-pre-top1-val"):
        named = rows[cid]["reason"] + str(rows[cid].get("pretraining_gaps"))
        assert rows[cid]["verdict"] == "not tested" and "split 'half'" in named, rows[cid]
    # Fall 2009 (paper 6): the path ran end to end; the tiny release is not Fall 2009
    f09 = rows["fall2009-top5"]
    assert f09["verdict"] == "not tested" and f09["category"] == "other data"
    assert "8 classes, not Fall-2009's 10,184" in f09["reason"], f09["reason"]
    ev = _json(repo, "reports/metrics/pretrain/evaluate/seed-1.json")
    assert f09["measured_on_run"]["estimate"] == pytest.approx(ev["protocols"]["ten_patch"]["top5_error"])
    assert compare["pretraining"]["facts"]["n_excluded"] == 4 and compare["pretraining"]["pretrained"][0]["seed"] == 1
    summary = _json(repo, "reports/summary.json")
    mix = _json(repo, "reports/metrics/finetune/ensemble.json")["protocols"]["ten_patch"][MIX]
    assert summary["pre_top5_ens"] == pytest.approx(mix["top5_error"][0])
    fine = _json(repo, "reports/metrics/finetune/evaluate/seed-1.json")["protocols"]["ten_patch"]["top5_error"]
    assert summary["pre_top5"] == pytest.approx(fine)
    report = (repo / "reports/report.md").read_text()
    assert "Fall 2011" in report and "fall2009-top5" in report
    # only reports/summary.json is a DVC metrics file (docs/architecture.md)
    assert "pretrain/" not in dvc(repo, "metrics", "show", "--json")


def test_sigkill_mid_pretrain_then_repro_resumes_to_the_same_weights(repo, first_run, tmp_path):
    """The uninterrupted run's weights are the reference; a forced rerun is killed after two
    checkpoint writes and `dvc repro --force` (so it cannot check the cached weights out) resumes it."""
    model = repo / "artifacts/pretrain/models/seed-1/model.pt"
    shutil.copy2(model, tmp_path / "fresh.pt")
    kill_after_writes(repo, PRE_CKPT, 2, "--force", "--single-item", "pretrain@fall2011-1")
    assert next(repo.glob(PRE_CKPT), None) is not None and not model.exists()
    out = dvc(repo, "repro", "--force", "--single-item", "pretrain@fall2011-1")
    assert "resuming seed 1" in out, out[-3000:]
    assert next(repo.glob(PRE_CKPT), None) is None  # removed once the final weights exist
    resumed = torch.load(model, map_location="cpu", weights_only=True)["state_dict"]
    fresh = torch.load(tmp_path / "fresh.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert resumed.keys() == fresh.keys()
    for k in fresh:
        assert torch.equal(resumed[k], fresh[k]), k
