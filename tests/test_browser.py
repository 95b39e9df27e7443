"""End to end, where students and lecturers work: JupyterLab from the project's environment,
driven by headless Chromium (Debian's ``chromium``; ``make browser-deps`` installs it) through
Playwright's ``executable_path`` (Playwright's own browser download needs the internet).

One test walks through notebook 00 in the smoke profile as a student would: Run All, no error
output, then the widget panel (a changed value gives a different plot, the first settings again
come from the results cache at once, a bad value is refused with its range, a long run is Stopped
and keeps its curves), then the RISE slideshow. Screenshots go to ``test-artifacts/browser/``.
Every wait is bounded; the server and its kernels are shut down whatever happens. (The last
test, slide metadata of every notebook, needs no browser.)
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "00_baseline_and_sanity_checks.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_S = 300  # only a bound against hanging: smoke's 60 s budget is tested by papermill
PANEL_RUN_TIMEOUT_S = 60

KERNEL_IDLE_JS = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle'; }"""
# Per code cell of the open notebook: its execution count and its error outputs.
CELLS_JS = """() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells; const out = [];
  for (let i = 0; i < cells.length; i++) { const c = cells.get(i); if (c.type !== 'code') continue;
    const errors = c.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);
    out.push({index: i, count: c.executionCount, errors: errors}); }
  return out; }"""
IMAGE_HASH_JS = """async img => { if (!img.src || !img.complete || img.naturalWidth < 100) return null;
  const bytes = await (await fetch(img.src)).arrayBuffer();
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, '0')).join(''); }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read()
    return json.loads(body) if body else None


def lab_env(tmp: Path) -> dict:
    """The server's environment: smoke profile, a private results cache and private Jupyter
    config/settings (no user config, no news pop-up), real inline plots (no Agg override)."""
    settings = tmp / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_CACHE_DIR": str(tmp / "cache"),
           "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces")}
    env.pop("MPLBACKEND", None)
    # The kernel shares the cores with Chromium and the server: one OpenMP thread avoids the
    # spinning of oversubscribed threads (which slows training many times over).
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free loopback port with a token, serving a temporary copy of notebooks/."""
    tmp = tmp_path_factory.mktemp("lab")
    nb_dir = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", nb_dir, ignore=shutil.ignore_patterns("results", ".ipynb_checkpoints"))
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={nb_dir}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=nb_dir, env=lab_env(tmp), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                api(base, token, "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within 90 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"base": base, "token": token, "dir": nb_dir, "cache": tmp / "cache"}
    finally:
        try:  # shut the kernels down through the server, then the server itself
            for kernel in api(base, token, "/api/kernels"):
                api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def browser_page(tmp_path):
    """A Chromium page with a fresh profile; every Playwright wait defaults to 60 s."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`make browser-deps`, i.e. "
                    f"`apt-get install -y chromium`) or point COURSE_CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1400, "height": 1000}, timeout=60_000)
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            context.close()


def shot(target, name: str) -> None:
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def run_all_cells(page, timeout_s: float) -> list:
    """Run All from JupyterLab's command registry (not awaited), then wait until the last code
    cell has run or some cell shows an error; returns the per-cell states."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cells = page.evaluate(CELLS_JS)
        if cells[-1]["count"] or any(c["errors"] for c in cells):
            return cells
        time.sleep(1)
    pytest.fail(f"Run All did not finish within {timeout_s} s: {page.evaluate(CELLS_JS)}")


def panel_parts(page):
    """The widget panel (the VBox holding a Run button) and its status line and image."""
    panel = page.locator(".widget-vbox").filter(has=page.locator("button", has_text="Run")).last
    return panel, panel.locator(":scope > .widget-html").last, panel.locator(":scope > .widget-image")


def set_value(panel, label: str, value) -> None:
    box = panel.locator(".widget-text").filter(has=panel.page.locator("label", has_text=label)).locator("input")
    box.fill(str(value))
    box.press("Enter")  # number boxes send their value on Enter or blur


def press_run_and_wait(panel, status, text: str, timeout_s: float = PANEL_RUN_TIMEOUT_S) -> str:
    panel.locator("button", has_text="Run").click()
    status.filter(has_text=text).wait_for(timeout=timeout_s * 1000)
    return status.inner_text()


@pytest.mark.browser
def test_notebook_00_and_its_widget_panel_in_jupyterlab(lab, browser_page):
    page, t0 = browser_page, time.monotonic()
    page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    page.wait_for_function(KERNEL_IDLE_JS, timeout=90_000)
    shot(page, "01_notebook_opened")

    cells = run_all_cells(page, RUN_ALL_TIMEOUT_S)
    run_all_s = time.monotonic() - t0
    shot(page, "02_after_run_all")
    errors = [c for c in cells if c["errors"]]
    assert not errors, f"error outputs after Run All: {errors}"
    assert all(c["count"] for c in cells), f"cells that did not run: {[c for c in cells if not c['count']]}"

    panel, status, image = panel_parts(page)
    panel.scroll_into_view_if_needed()
    # JupyterLab renders cells outside the viewport lazily: the panel (no longer the last cell,
    # the takeaways and exercises follow it) fills in once scrolled into view
    status.filter(has_text="Set the parameters and press Run").wait_for(timeout=30_000)
    shot(panel, "03_panel_before_run")

    first = press_run_and_wait(panel, status, "finished")
    assert "epochs=1" in first and "Saved to the results cache" in first
    image.wait_for(state="visible", timeout=10_000)
    plot_1 = image.evaluate(IMAGE_HASH_JS)
    assert plot_1, "the panel shows a plot after Run"
    shot(panel, "04_first_run")

    set_value(panel, "epochs", 2)  # a changed value: the plot must change
    second = press_run_and_wait(panel, status, "epochs=2")
    status.filter(has_text="finished").wait_for(timeout=PANEL_RUN_TIMEOUT_S * 1000)
    plot_2 = image.evaluate(IMAGE_HASH_JS)
    assert plot_2 and plot_2 != plot_1, f"the plot did not change after a new Run ({second})"
    shot(panel, "05_after_changing_epochs")

    set_value(panel, "epochs", 1)  # the first settings again: the stored curves, at once
    cached = press_run_and_wait(panel, status, "cached")
    assert "fresh run" in cached and image.evaluate(IMAGE_HASH_JS) == plot_1
    assert len(list(lab["cache"].glob("*.json"))) == 2
    shot(panel, "06_cached_result")

    set_value(panel, "batch size", 0)  # refused with the allowed range; the panel stays usable
    refused = press_run_and_wait(panel, status, "out of range")
    assert "batch size: 0 is out of range; allowed 16 to 2048" in refused
    shot(panel, "07_bad_value_refused")

    set_value(panel, "batch size", 128)
    set_value(panel, "epochs", 50)  # a long run: a second Run is refused, Stop keeps the curves
    press_run_and_wait(panel, status, "step")  # streaming: progress shown while it trains
    panel.locator("button", has_text="Run").click()
    status.filter(has_text="already going").wait_for(timeout=10_000)
    panel.locator("button", has_text="Stop").click()
    stopped = status.filter(has_text="stopped (requested)")
    stopped.wait_for(timeout=PANEL_RUN_TIMEOUT_S * 1000)
    assert "curves so far are kept" in stopped.inner_text()
    assert image.evaluate(IMAGE_HASH_JS) not in (None, plot_1, plot_2)
    shot(panel, "08_stopped")
    assert not any(c["errors"] for c in page.evaluate(CELLS_JS))
    print(f"Run All {run_all_s:.0f} s; whole browser walk-through {time.monotonic() - t0:.0f} s")


@pytest.mark.browser
def test_rise_shows_notebook_00_as_a_deck(lab, browser_page):
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    slides = sum(c.metadata.get("slideshow", {}).get("slide_type") == "slide" for c in nb.cells)
    page = browser_page
    page.goto(f"{lab['base']}/rise/{NOTEBOOK}?token={lab['token']}")
    page.locator(".reveal .slides > section").first.wait_for(timeout=90_000)
    page.wait_for_timeout(1000)  # let reveal.js lay the slide out
    assert page.locator(".reveal .slides > section").count() == slides
    title = page.locator(".reveal .slides > section").first
    assert "00 · Baseline and sanity checks" in title.inner_text()
    shot(page, "09_slides_title")
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(1000)
    assert "Look at the data" in page.locator(".reveal .slides section.present").first.inner_text()
    shot(page, "10_slides_section_1")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_is_a_deck(path):
    """RISE metadata: the title and every section heading open a slide, the parameters cell is
    hidden, and no cell has an unknown slide type."""
    nb = nbformat.read(path, as_version=4)
    kinds = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
    assert kinds[0] == "slide"
    assert set(kinds) <= {"slide", "subslide", "fragment", "-", "skip", "notes"}, set(kinds)
    for cell, kind in zip(nb.cells, kinds):
        if cell.cell_type == "markdown" and cell.source.startswith(("# ", "## ")):
            assert kind == "slide", f"heading without a slide: {cell.source[:40]!r}"
        if "parameters" in cell.metadata.get("tags", []):
            assert kind == "skip", "the parameters cell is hidden from the slides"
