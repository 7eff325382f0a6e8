"""End to end: the real pipeline through `dvc repro` in a temporary copy of the repository.

Tiny profile (a few seconds of training per seed). Checks the outputs, the MLflow store, and
what DVC users expect: a second repro does nothing, a new seed runs only its own stages and
the fan-in stages, an evaluation-only param does not retrain.
"""

import json
import sqlite3

import numpy as np
import pytest

from repo_utils import copy_repo, dvc, get_params, ran_stages, set_params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def first_run(repo):
    return dvc(repo, "repro")


@pytest.mark.slow
def test_full_pipeline_outputs(repo, first_run):
    assert {"prepare", "train@1", "train@2", "evaluate@1", "evaluate@2", "ensemble", "compare",
            "report"} <= ran_stages(first_run)
    labels = np.load(repo / "artifacts/data/val/labels.npy")
    for seed in (1, 2):
        for proto in ("center", "ten_patch"):
            probs = np.load(repo / f"artifacts/predictions/seed-{seed}/{proto}.npy")
            assert probs.shape == (60, 6) and probs.dtype == np.float32
            np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        ev = json.loads((repo / f"reports/metrics/evaluate/seed-{seed}.json").read_text())
        # recompute the stored error from the saved predictions
        probs = np.load(repo / f"artifacts/predictions/seed-{seed}/center.npy")
        assert ev["protocols"]["center"]["top1_error"] == pytest.approx(100 * (probs.argmax(1) != labels).mean())
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    untested = [c for c in compare["claims"] if not c["tested"]]
    assert untested and all(c["reason"] for c in untested)
    assert "synthetic" in next(c for c in compare["claims"] if c["id"].startswith("t1-cnn"))["reason"]
    assert compare["reference"]["tested"] is False and "reference" in compare["reference"]["reason"]
    html = (repo / "reports/report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html.replace("http://127.0.0.1:5000", "")
    assert "<script" not in html


@pytest.mark.slow
def test_mlflow_store_has_parent_and_children(repo, first_run):
    db = sqlite3.connect(repo / "mlflow.db")
    runs = db.execute("SELECT run_uuid, name, status FROM runs").fetchall()
    names = {r[1] for r in runs}
    assert {"prepare", "train-seed1", "train-seed2", "evaluate-seed1", "evaluate-seed2", "ensemble",
            "compare", "report"} <= names
    parents = db.execute("SELECT value FROM tags WHERE key='mlflow.parentRunId'").fetchall()
    assert len({p[0] for p in parents}) == 1 and len(parents) == len(runs) - 1
    metrics = {r[0] for r in db.execute("SELECT DISTINCT key FROM metrics")}
    assert {"val_top1_error", "val_top5_error", "train_top1_error", "train_top5_error", "train_loss", "lr",
            "images_per_s", "epoch_time_s", "step_loss", "step_lr"} <= metrics
    epochs = db.execute("SELECT COUNT(*) FROM metrics m JOIN runs r ON m.run_uuid=r.run_uuid "
                        "WHERE r.name='train-seed1' AND m.key='val_top1_error'").fetchone()[0]
    assert epochs == 2
    train = json.loads((repo / "reports/metrics/train/seed-1.json").read_text())
    assert train["mlflow_run_id"] in {r[0] for r in runs}


@pytest.mark.slow
def test_second_repro_does_nothing(repo, first_run):
    out = dvc(repo, "repro")
    assert ran_stages(out) == set(), out


@pytest.mark.slow
def test_adding_a_seed_runs_only_that_seed(repo, first_run):
    before = (repo / "artifacts/models/seed-1/model.pt").read_bytes()
    params = get_params(repo)
    params["train"]["seeds"] = [1, 2, 3]
    set_params(repo, params)
    out = dvc(repo, "repro")
    assert ran_stages(out) == {"train@3", "evaluate@3", "ensemble", "compare", "report"}, out
    assert (repo / "artifacts/models/seed-1/model.pt").read_bytes() == before


@pytest.mark.slow
def test_evaluation_param_does_not_retrain(repo, first_run):
    params = get_params(repo)
    params["evaluate"]["batch_size"] = 7
    set_params(repo, params)
    out = dvc(repo, "repro")
    assert not any(s.startswith(("train", "prepare")) for s in ran_stages(out)), out
    assert any(s.startswith("evaluate") for s in ran_stages(out))


@pytest.mark.slow
def test_metrics_agree_with_a_recomputation_from_saved_predictions(repo, first_run):
    """Errors, ensemble errors and intervals in the metrics files, recomputed independently
    from the saved probabilities and labels (numpy, scipy, statsmodels)."""
    from scipy import stats as st
    from statsmodels.stats.proportion import proportion_confint

    labels = np.load(repo / "artifacts/data/val/labels.npy")
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    ens = json.loads((repo / "reports/metrics/ensemble.json").read_text())
    seeds = ens["seeds"]
    for proto in ("center", "ten_patch"):
        probs = [np.load(repo / f"artifacts/predictions/seed-{s}/{proto}.npy") for s in seeds]
        top1 = [100 * (p.argmax(1) != labels).mean() for p in probs]
        rank = [np.argsort(-p, 1)[:, :5] for p in probs]
        top5 = [100 * (~(r == labels[:, None]).any(1)).mean() for r in rank]
        for metric, values in (("top1_error", top1), ("top5_error", top5)):
            rows = [r for r in compare["seeds"] if r["protocol"] == proto and r["metric"] == metric]
            for r, v in zip(sorted(rows, key=lambda r: r["seed"]), values):
                assert r["error"] == pytest.approx(v)
                lo, hi = proportion_confint(round(v * len(labels) / 100), len(labels), method="wilson")
                assert (r["wilson_lo"], r["wilson_hi"]) == pytest.approx((100 * lo, 100 * hi))
            s = compare["summary"][proto][metric]
            assert s["mean"] == pytest.approx(np.mean(values)) and s["sd"] == pytest.approx(np.std(values, ddof=1))
            half = st.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
            assert (s["t_lo"], s["t_hi"]) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
        full = ens["protocols"][proto]["sizes"][-1]
        assert full["k"] == len(seeds)
        assert full["top1_error_mean"] == pytest.approx(100 * (np.mean(probs, 0).argmax(1) != labels).mean())
        singles = ens["protocols"][proto]["sizes"][0]
        assert singles["top1_error_mean"] == pytest.approx(np.mean(top1))
