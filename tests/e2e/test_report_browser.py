"""The report in a real browser: headless Chromium (Debian's package) loads reports/report.html,
every figure renders, and the page requests nothing from any network."""

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real subprocesses, servers or browsers; `make test` runs them

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must run the browser test: `make browser` did not install chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser installs it)")


def render(html: Path, screenshot: Path):
    from playwright.sync_api import sync_playwright
    requests = []
    with sync_playwright() as p:
        # flags: no sandbox as root, and no background connections (this machine has no network)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html.as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => ({alt: e.alt, ok: e.complete && e.naturalWidth > 100}))")
        title = page.title()
        tables = page.eval_on_selector_all("table", "els => els.length")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return requests, images, title, tables


def test_report_renders_offline_with_every_figure():
    html = REPO / "reports" / "report.html"
    requests, images, title, tables = render(html, REPO / "reports" / "screens" / "report.png")
    assert title == "AlexNet reproducibility report"
    assert len(images) >= 5 and all(i["ok"] for i in images), images
    assert tables >= 6
    external = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert external == [], external


def test_dvc_plots_page_renders_offline(tmp_path):
    """`dvc plots show` uses .dvc/plots/offline.html (vega inlined): the overlaid all-seed
    curves render in Chromium with no network request and no script error."""
    import subprocess
    import sys

    from playwright.sync_api import sync_playwright

    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc), "plots", "show", "-o", str(tmp_path)], cwd=REPO, check=True, capture_output=True)
    page_html = (tmp_path / "index.html").read_text()
    assert "cdn.jsdelivr" not in page_html and "Validation top-1 error, all seeds" in page_html
    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tmp_path / "index.html").as_uri(), wait_until="load")
        page.wait_for_selector(".vega-embed svg, .vega-embed canvas", timeout=15000)
        drawn = page.eval_on_selector_all(".vega-embed svg, .vega-embed canvas", "els => els.length")
        browser.close()
    assert errors == [] and drawn >= 2
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
