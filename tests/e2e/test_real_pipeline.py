"""ILSVRC layouts built from the real sample JPEGs, prepared and run through `dvc repro`.

The same pipeline a user points at ImageNet, on 6 classes: archives with a devkit and
extracted folders, ILSVRC-2012 (validation) and ILSVRC-2010 (its labelled test set).
"""

import copy
import json

import imagenet_fixtures as FX
import numpy as np
import pytest
from repo_utils import TINY, copy_repo, dvc, ran_stages

pytestmark = pytest.mark.slow


def real_params(source: str, root, **evaluate) -> dict:
    patch = copy.deepcopy(TINY)
    patch["data"] = {"source": source, "root": str(root), "image_size": 72, "shard_size": 8}
    patch["train"].update({"seeds": [1, 2], "epochs": 1, "lr_steps": [1], "batch_size": 4})
    patch["evaluate"] = {"batch_size": 16, **evaluate}
    return patch


def test_ilsvrc2012_archives_through_dvc_repro(tmp_path):
    FX.sample_dir()
    root = FX.make_ilsvrc2012(tmp_path / "ILSVRC2012", archives=True)
    repo = copy_repo(tmp_path / "repo", real_params("ilsvrc2012", root))
    out = dvc(repo, "repro")
    assert {"prepare", "train@1", "evaluate@2", "compare", "report"} <= ran_stages(out)
    m = json.loads((repo / "artifacts/data/manifest.json").read_text())
    assert m["classes"] == sorted(FX.ILSVRC_IDS, key=FX.ILSVRC_IDS.get)
    assert m["descriptions"][0] == FX.WORDS[m["classes"][0]]
    ev = json.loads((repo / "reports/metrics/evaluate/seed-1.json").read_text())
    assert ev["dataset"] == "ilsvrc2012" and ev["split"] == "val" and ev["n_images"] == len(FX.VAL_WNIDS)
    probs = np.load(repo / "artifacts/predictions/seed-1/center.npy")
    assert probs.shape == (len(FX.VAL_WNIDS), 6)
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    c = next(c for c in compare["claims"] if c["dataset"] == "ilsvrc2012" and c["kind"] == "headline")
    assert not c["tested"] and "6 classes" in c["reason"] or "1000" in c["reason"], c["reason"]
    assert ran_stages(dvc(repo, "repro")) == set()  # nothing re-runs (but list_data), extraction included


def test_ilsvrc2010_folders_evaluate_the_test_set(tmp_path):
    FX.sample_dir()
    root = FX.make_ilsvrc2010(tmp_path / "ILSVRC2010", archives=False)
    repo = copy_repo(tmp_path / "repo", real_params("ilsvrc2010", root, split="test"), tracking=False)
    dvc(repo, "repro")
    ev = json.loads((repo / "reports/metrics/evaluate/seed-2.json").read_text())
    assert ev["split"] == "test" and ev["n_images"] == len(FX.TEST_WNIDS)
    labels = np.load(repo / "artifacts/data/test/labels.npy")
    assert labels.tolist() == [FX.ILSVRC_IDS[w] - 1 for w in FX.TEST_WNIDS]
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    c = next(c for c in compare["claims"] if c["dataset"] == "ilsvrc2010" and c["split"] == "test"
             and c["kind"] == "headline")
    assert "test split" not in c["reason"]  # the split matches; only the class count differs
    report = (repo / "reports/report.md").read_text()
    assert "ilsvrc2010" in report


@pytest.mark.parametrize("source,builder,archives", [
    ("ilsvrc2012", FX.make_ilsvrc2012, False),
    ("ilsvrc2010", FX.make_ilsvrc2010, True),
])
def test_other_layouts_prepare_through_dvc(tmp_path, source, builder, archives):
    FX.sample_dir()
    root = builder(tmp_path / "data", archives=archives)
    repo = copy_repo(tmp_path / "repo", real_params(source, root), tracking=False)
    dvc(repo, "repro", "prepare")
    m = json.loads((repo / "artifacts/data/manifest.json").read_text())
    assert m["counts"]["train"] == sum(FX.TRAIN_COPIES.values())
    assert m["counts"]["val"] == len(FX.VAL_WNIDS)
