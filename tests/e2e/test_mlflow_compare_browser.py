"""The MLflow UI in a real browser: two pipeline executions with different params, made through
the harness's own stage opening (open_stage: the parent run, its params, a child) and headline
logging (the compare stage's log_headline), served by `mlflow server` on 127.0.0.1 and opened in
headless Chromium at the link the harness prints. Selecting the two parents and pressing Compare
shows the param that differs (and only it, with "Show diff only") and the headline metrics."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from servers import stop_process_group

from harness import tracking
from harness.stages import open_stage

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must run the browser test: `make browser` did not install chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser installs it)")]

# two DVC experiments: `dvc exp run -n NAME -S train.lr=LR`; their top-1 errors as the compare stage would log them
EXPERIMENTS = {"lr-low": (0.01, 75.5), "lr-high": (0.02, 71.25)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pipeline_parent(root: Path, name: str, lr: float, top1: float, monkeypatch) -> tuple[str, str]:
    """One pipeline execution's parent as the stages make it: params.yaml with train.lr changed,
    DVC_EXP_NAME as `dvc exp run` sets it, a compare child, the headline of reports/summary.json."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["lr"] = lr
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("DVC_EXP_NAME", name)
    ctx = open_stage(root / "params.yaml", "compare")
    headline = json.loads((REPO / "reports" / "summary.json").read_text())  # a real run's summary.json
    headline["top1"] = top1
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "compare", {}, ctx.base_tags) as run_id:
        tracking.log_headline(ctx.uri, ctx.parent_id, headline)
        tracking.log_stage_files(ctx.uri, run_id, {"train": {"lr": lr}})
    tracking.finish_parent(ctx.uri, ctx.parent_id)
    return ctx.experiment_id, ctx.parent_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        for key in ("MLFLOW_TRACKING_URI", "HARNESS_TRACKING"):
            mp.delenv(key, raising=False)
        mp.setenv("DVC_ROOT", str(root))
        made = {name: _pipeline_parent(root, name, lr, top1, mp) for name, (lr, top1) in EXPERIMENTS.items()}
    exp_ids = {e for e, _ in made.values()}
    assert len(exp_ids) == 1  # one MLflow experiment per dataset and profile
    return root, exp_ids.pop(), {name: run for name, (_, run) in made.items()}


@pytest.fixture(scope="module")
def server(store):
    root = store[0]
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                             tracking.default_uri(root), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(0.5)
        yield url
    finally:
        stop_process_group(proc)


def _section(text: str, title: str, end: str) -> str:
    """The text of the Compare page between the `title` table's heading and the `end` one."""
    start = text.index(f"{title}\nShow diff only")
    return text[start:text.index(end, start + len(title))]


def test_compare_of_two_pipeline_parents_shows_the_changed_param_and_the_metrics(store, server, tmp_path):
    from playwright.sync_api import sync_playwright
    _, exp_id, runs = store
    link = tracking.experiment_url(server, exp_id)  # what `harness mlflow-ui` prints
    assert "workflowType=machine_learning" in link
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(link)
        # the runs table, not the GenAI pages: the parents, by their DVC experiment names
        for name in EXPERIMENTS:
            page.get_by_text(name, exact=True).first.wait_for(timeout=90_000)
        assert page.get_by_text("Run Name", exact=True).count() >= 1
        for name in EXPERIMENTS:
            page.locator(".ag-row", has=page.get_by_text(name, exact=True)).locator("input[type=checkbox]").first.check()
        page.get_by_role("button", name="Compare").click()
        page.wait_for_url("**/compare-runs**", timeout=30_000)
        page.get_by_text("train.lr", exact=True).first.wait_for(timeout=60_000)
        shown = page.url
        everything = page.inner_text("body")
        page.get_by_text("Show diff only").first.click()  # the Parameters table's switch
        page.wait_for_timeout(500)
        diff = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        browser.close()
    assert all(run in shown for run in runs.values()), shown  # the two parents, nothing else
    params_all = _section(everything, "Parameters", "Metrics\nShow diff only")
    params_diff = _section(diff, "Parameters", "Metrics\nShow diff only")
    metrics = _section(diff, "Metrics", "Artifacts")
    # every param of params.yaml is on each parent; the one that differs is train.lr
    assert "train.weight_decay" in params_all and "train.momentum" in params_all
    assert "train.lr" in params_diff and "0.01" in params_diff and "0.02" in params_diff
    assert "train.weight_decay" not in params_diff and "train.momentum" not in params_diff, params_diff
    for metric in ("top1", "top5_ens", "seeds"):
        assert metric in metrics, metrics
    assert "75.5" in metrics and "71.25" in metrics
    assert errors == [], errors
