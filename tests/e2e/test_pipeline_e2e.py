"""End to end: the real pipeline through `dvc repro` in a temporary copy of the repository.

Tiny profile (a few seconds of training per seed). Checks the outputs, the MLflow store, and
what DVC users expect: a second repro does nothing, a new seed runs only its own stages and
the fan-in stages, an evaluation-only param does not retrain.
"""

import json
import re
import sqlite3

import numpy as np
import pandas as pd
import pytest
from repo_utils import TINY, copy_repo, deep_update, dvc, get_params, ran_stages, set_params, stale
from servers import stop_process_group


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    import copy
    return copy_repo(tmp_path_factory.mktemp("repo"), deep_update(copy.deepcopy(TINY), {"tracking": {"log_models": True}}))


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
    # the verdicts: four labels only, counted at the top of the report's verdict table
    v = compare["counts"]["verdicts"]
    assert set(v) == {"reproduced", "not reproduced", "inconclusive", "not tested"}
    arch = compare["architecture_counts"]["verdicts"]  # the size claims, counted apart from the experiments
    assert sum(v.values()) + sum(arch.values()) == len(compare["claims"])
    assert {c["verdict"] for c in compare["claims"]} <= set(v)
    rows = {c["id"]: c for c in compare["claims"]}
    assert rows["params"]["verdict"] == "not reproduced" and rows["neurons"]["verdict"] == "not reproduced"
    assert v["not reproduced"] == 0 and arch["not reproduced"] == 4  # the synthetic run decides no experiment
    md = (repo / "reports/report.md").read_text()
    assert (f"Experimental claims: Reproduced: {v['reproduced']}. Not reproduced: {v['not reproduced']}. "
            f"Inconclusive: {v['inconclusive']}. Not tested: {v['not tested']}") in md
    # no experiment is decided on synthetic data: the architecture checks have their own table
    assert "No experimental claim of the paper can be decided on this data" in md
    assert "| claim | quantity | paper | as built | band (tolerance) | verdict |" in md
    # the training error every 20 steps adds up to the per-epoch training error
    for seed in (1, 2):
        steps = pd.read_csv(repo / f"reports/plots/train/seed-{seed}.steps.csv")
        epochs = pd.read_csv(repo / f"reports/plots/train/seed-{seed}.csv")
        for epoch, rows_e in steps.groupby("epoch"):
            err = 100 * rows_e["wrong"].sum() / rows_e["images"].sum()
            assert err == pytest.approx(epochs.loc[epochs.epoch == epoch, "train_top1_error"].item())
    # every interpretation on every run, the schedule's split and drops, the backend flags,
    # the towers (Figure 3 from the kernels the train stage wrote) and the costed plan
    for words in ("Interpretations and departures", "Dropout scaling", "Weight decay on biases", "LRN constants",
                  "the val split; the lr schedule reads no split", "lr divided after epochs", "cuBLAS matmul fp32", "Tower specialisation",
                  "tower_kernels.png", "Pilot and costed reproduction plan", "device-hours"):
        assert words in md, words
    assert "which the lr schedule does not see" not in md
    for seed in (1, 2):
        train = json.loads((repo / f"reports/metrics/train/seed-{seed}.json").read_text())
        assert train["backend"]["matmul_fp32_precision"] == "ieee" and train["schedule"]["lr_drops"] == []  # step 2 of 2 epochs never applies
        t = train["towers"]
        assert len(t["colour_selectivity"]) == 2 and isinstance(t["separated"], bool)
        k = np.load(repo / f"artifacts/kernels/seed-{seed}.npy")
        assert k.shape[1:] == (3, 11, 11) and len(k) % 2 == 0


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
    tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid=?", (train["mlflow_run_id"],)).fetchall())
    assert tags["lr_drop_epochs"] == "none" and tags["backend.cudnn_conv_fp32_precision"] == "ieee"
    assert tags["lrn_kernel"].startswith("elementwise: chunked")  # the CPU's LRN (harness/model/lrn.py)
    assert {"lr_drops", "tower0_colour_selectivity"} <= metrics
    params = dict(db.execute("SELECT key, value FROM params WHERE run_uuid=?", (train["mlflow_run_id"],)).fetchall())
    assert {"model.dropout_scaling", "train.bias_decay", "train.plateau_threshold", "train.schedule_split",
            "train.crop_flip", "model.hidden_bias", "model.drop_conv"} <= params.keys()
    # the parent: named by commit and params digest (a plain repro), the params file as params, the
    # headline figures as metrics, one git_dirty for the whole execution (clean: the copy is committed)
    (parent_id,) = {p[0] for p in parents}
    name = db.execute("SELECT name FROM runs WHERE run_uuid=?", (parent_id,)).fetchone()[0]
    assert re.fullmatch(r"pipeline-[0-9a-f]{7}-[0-9a-f]{8}", name), name
    parent_params = dict(db.execute("SELECT key, value FROM params WHERE run_uuid=?", (parent_id,)).fetchall())
    assert parent_params["train.lr"] == str(get_params(repo)["train"]["lr"]) and len(parent_params) > 100
    parent_metrics = {r[0] for r in db.execute("SELECT key FROM latest_metrics WHERE run_uuid=?", (parent_id,))}
    assert {"top1", "top1_ens", "top5", "seeds", "tested"} <= parent_metrics
    assert {v for (v,) in db.execute("SELECT value FROM tags WHERE key='git_dirty'")} == {"False"}
    assert "| working tree dirty | no |" in (repo / "reports/report.md").read_text()  # the report agrees
    # each stage's config and small outputs are artifacts of its run
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    stored = {a.path for a in client.list_artifacts(train["mlflow_run_id"], "outputs")}
    assert {"outputs/seed-1.json", "outputs/seed-1.csv", "outputs/provenance.json"} <= stored, stored
    assert "config.json" in {a.path for a in client.list_artifacts(train["mlflow_run_id"])}


def ev_model_id_loads(repo, model_id: str) -> bool:
    """The logged model loads without unpickling (pt2) and predicts like the DVC weights."""
    import subprocess
    import sys
    code = ("import mlflow, torch, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "m = mlflow.pytorch.load_model('models:/' + sys.argv[2]); "
            "print(tuple(m(torch.zeros(3, 3, 64, 64)).shape))")
    out = subprocess.run([sys.executable, "-c", code, f"sqlite:///{repo / 'mlflow.db'}", model_id],
                         cwd=repo, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1] == "(3, 6)"


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_server_rest_api_shows_the_run_structure(repo, first_run):
    """`mlflow server` on 127.0.0.1 over the pipeline's store: parent/child runs, tags, metrics."""
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen([str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{repo / 'mlflow.db'}",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"

    def post(path, body):
        req = urllib.request.Request(f"{base}/{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        exps = post("experiments/search", {"max_results": 50})["experiments"]
        exp = next(e for e in exps if e["name"] == "synthetic-default")
        runs = post("runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 500})["runs"]
        ev_id = next(r["info"]["run_id"] for r in runs if r["info"]["run_name"] == "evaluate-seed1")
        with urllib.request.urlopen(f"{base}/runs/get?run_id={ev_id}", timeout=10) as r:
            ev = json.loads(r.read())["run"]  # runs/search leaves model inputs out; runs/get has them
    finally:
        stop_process_group(server)
    from mlflow.tracking import MlflowClient
    models = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").search_logged_models([exp["experiment_id"]])
    assert {m.tags["seed"] for m in models} >= {"1", "2"}, models
    assert {m.name for m in models} >= {"alexnet-seed1", "alexnet-seed2"}, models  # one name per seed
    assert ev_model_id_loads(repo, models[0].model_id)

    def tags(r):
        return {t["key"]: t["value"] for t in r["data"].get("tags", [])}

    parents = [r for r in runs if tags(r).get("harness.role") == "pipeline"]
    assert parents, "no pipeline parent run"
    parent_ids = {p["info"]["run_id"] for p in parents}
    children = [r for r in runs if "mlflow.parentRunId" in tags(r)]
    assert children and all(tags(c)["mlflow.parentRunId"] in parent_ids for c in children)
    train = [c for c in children if c["info"]["run_name"] == "train-seed1"][0]
    t = tags(train)
    for key in ("git_commit", "git_dirty", "seed", "data_digest", "torch", "devices", "DVC_STAGE"):
        assert key in t, key
    inputs = train.get("inputs", {}).get("dataset_inputs", [])
    assert {i["dataset"]["name"] for i in inputs} == {"synthetic-train", "synthetic-val"}
    metric_names = {m["key"] for m in train["data"]["metrics"]}
    assert {"val_top1_error", "train_loss", "lr", "images_per_s"} <= metric_names
    parent_metrics = {m["key"] for p in parents for m in p["data"].get("metrics", [])}
    assert "top1" in parent_metrics  # seed aggregates live on the parent
    assert t["mlflow.source.name"] == "pipelines/train.py" and len(t["mlflow.source.git.commit"]) == 40
    assert all(p["info"]["status"] == "FINISHED" for p in parents)
    # each seed's weights are an MLflow model; the evaluate run lists it and the evaluation data as inputs
    assert ev.get("inputs", {}).get("model_inputs"), ev.get("inputs")
    assert {i["dataset"]["name"] for i in ev["inputs"]["dataset_inputs"]} == {"synthetic-val"}


@pytest.mark.slow
def test_second_repro_does_nothing(repo, first_run):
    out = dvc(repo, "repro")
    assert ran_stages(out) == set(), out


def _leaves(tree, prefix=""):
    """Numeric leaves of nested dicts, as {"a.b.c": value}."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree} if isinstance(tree, (int, float)) and not isinstance(tree, bool) else {}


@pytest.mark.slow
def test_dvc_metrics_are_the_headline_figures_only(repo, first_run):
    """`dvc metrics show` (and the metric columns of `dvc exp show`) hold reports/summary.json
    alone: at most 20 numbers, each equal to its source in compare.json / ensemble.json."""
    out = dvc(repo, "metrics", "show", "--json")  # stdout, then any warnings on stderr
    shown = json.loads(out[out.index("{"):out.rindex("}") + 1])
    files = {f for rev in shown.values() for f in rev["data"]}
    assert files == {"reports/summary.json"}, files
    summary = json.loads((repo / "reports/summary.json").read_text())
    leaves = _leaves(summary)
    assert 10 <= len(leaves) <= 20, sorted(leaves)
    assert _leaves(next(iter(shown.values()))["data"]["reports/summary.json"]["data"]) == leaves
    compare = json.loads((repo / "reports/metrics/compare.json").read_text())
    ens = json.loads((repo / "reports/metrics/ensemble.json").read_text())
    assert summary["seeds"] == 2 and summary["tested"] == compare["counts"]["claims_tested"]
    proto = summary["protocol"]  # the paper's 10 patches when evaluated (paper 4.1)
    assert proto == ("ten_patch" if "ten_patch" in compare["summary"] else next(iter(compare["summary"])))
    for metric in ("top1", "top5"):
        row = compare["summary"][proto][f"{metric}_error"]
        assert (summary[metric], summary[f"{metric}_sd"]) == (row["mean"], row["sd"])
        assert summary[f"{metric}_ens"] == ens["protocols"][proto]["sizes"][-1][f"{metric}_error_mean"]
    out = dvc(repo, "exp", "show", "--json")
    rows = json.loads(out[out.index("["):out.rindex("]") + 1])
    metrics = rows[0]["data"]["metrics"]  # the workspace row: what `dvc exp show` prints as metric columns
    assert set(metrics) == {"reports/summary.json"} and _leaves(metrics["reports/summary.json"]["data"]) == leaves


@pytest.mark.slow
@pytest.mark.parametrize("module", ["harness/data/imaging.py", "harness/model/layers.py", "harness/analysis/stats.py",
                                    "harness/report/render.py", "harness/tracking.py"])
def test_dvc_status_after_an_edit_lists_exactly_the_stages_it_can_affect(repo, first_run, module):
    """Append a line to a module, as a user would, and ask DVC: the stages it lists are those
    whose scripts import the module (tests/import_graph.py), no more and no fewer."""
    import import_graph as G
    path = repo / module
    original = path.read_bytes()
    stages = G.stages()
    seeds = get_params(repo)["train"]["seeds"]
    # the seed matrices expand over train.seeds; the others (ablation arms, pre-training sources)
    # iterate lists that are empty in the tiny profile, so those stages do not exist here
    seed_matrix = {"seed": "${train.seeds}"}
    expected = {f"{name}@{s}" if "matrix" in st else name for name, st in stages.items()
                if st.get("matrix", seed_matrix) == seed_matrix and module in G.needed(G.script_of(st))
                for s in (seeds if "matrix" in st else [None])}
    try:
        path.write_bytes(original + b"\n# an edit\n")
        status = stale(repo)
    finally:
        path.write_bytes(original)
    assert set(status) == expected, status
    if module == "harness/tracking.py":
        assert expected == set()  # logging code never invalidates a result
    assert stale(repo) == {}


@pytest.mark.slow
def test_adding_a_seed_runs_only_that_seed(repo, first_run):
    before = (repo / "artifacts/models/seed-1/model.pt").read_bytes()
    params = get_params(repo)
    params["train"]["seeds"] = [1, 2, 3]
    set_params(repo, params)
    out = dvc(repo, "repro")
    assert ran_stages(out) == {"validate", "train@3", "evaluate@3", "ensemble", "compare", "report"}, out
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
def test_a_train_param_changed_and_changed_back_restores_the_weights_from_the_run_cache(repo, first_run):
    """No output persists, so DVC's run-cache works: going back to earlier params checks the earlier
    weights out instead of training again (days on ImageNet)."""
    dvc(repo, "repro")  # settle whatever earlier tests changed
    before = (repo / "artifacts/models/seed-1/model.pt").read_bytes()
    params = get_params(repo)
    original = params["train"]["pca_std"]
    params["train"]["pca_std"] = 0.2
    set_params(repo, params)
    # one seed's training is enough to show the run-cache: the other seeds and stages would only cost time
    assert ran_stages(dvc(repo, "repro", "train@1")) == {"validate", "train@1"}  # validate: params.yaml changed
    assert (repo / "artifacts/models/seed-1/model.pt").read_bytes() != before
    params["train"]["pca_std"] = original
    set_params(repo, params)
    out = dvc(repo, "repro", "train@1")
    assert not any(st.startswith(("train", "prepare")) for st in ran_stages(out)), out
    assert "Stage 'train@1' is cached - skipping run, checking out outputs" in out, out[-3000:]
    assert (repo / "artifacts/models/seed-1/model.pt").read_bytes() == before
    assert stale(repo) == {}  # nothing left stale


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


@pytest.mark.slow
def test_retraining_to_the_same_weights_does_not_reevaluate(repo, first_run):
    """model.pt holds only deterministic content, so a code change that leaves the weights
    alone reruns training but not evaluation (provenance.json carries the code commit)."""
    import subprocess
    dvc(repo, "repro")  # settle whatever earlier tests changed
    with open(repo / "harness" / "train" / "loop.py", "a") as f:
        f.write("\n# a comment: training code changed, weights do not\n")
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "comment"],
                   cwd=repo, check=True)
    out = dvc(repo, "repro", "evaluate@1")  # one seed's train -> evaluate edge; the others' are the same
    stages = ran_stages(out)
    assert "train@1" in stages and not any(s.startswith("evaluate") for s in stages), out
    prov = json.loads((repo / "artifacts/models/seed-1/provenance.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert prov["git"]["code_commit"] == head  # the commit that changed the code
