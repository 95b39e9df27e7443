"""The course website (``course_lib.tools.site``): built from a small real nightly run (one
tiny planted notebook, no training, through the nightly CLI in the smoke profile), it shows every
course notebook (marked "not run in this report") and every claim, its ledger counts are the
run's verdicts, and Chromium opens the ledger and a notebook page without a console error and
without fetching anything from the web (screenshots in ``test-artifacts/site/``). The ledger's
rules are also checked on a hand-made report, with no build."""
import functools
import json
import os
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from course_lib.core.claims import load_claims
from course_lib.tools import site

ROOT = Path(__file__).resolve().parents[2]
RUN = "99_planted"
ARTIFACTS = ROOT / "test-artifacts" / "site"
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
COURSE = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PARAMS = 'profile = "auto"\nseed = 0\nresults_dir = "results"\ninteractive = True\n'
# A figure and three verdicts: one experiment (supported) and two demonstrations (one not shown).
# Verdicts without a kind (results written before verdicts carried one) are tested on fake reports below.
BODY = """import io
import matplotlib.pyplot as plt
from IPython.display import Image, display
from course_lib.core import claims, experiment
ctx = experiment.setup(profile, seed, notebook="99_planted", load_data=False)
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1], [1, 0])
buf = io.BytesIO()
fig.savefig(buf, format="png")
display(Image(buf.getvalue()))
vs = [claims.compare("DO-1", [0.90, 0.91, 0.92], [0.80, 0.80, 0.81], "acc", unit="fraction"),
      claims.check_range("DO-5", 0.2, 0.5, 1.0, "acc"), claims.check_range("LR-6", 0.9, 0.5, 1.0, "acc")]
vs[0]["published"] = "planted published figure"
experiment.record(ctx, results_dir, {"acc": 0.9}, vs, params={})
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The planted notebook through the nightly CLI in smoke, then the site from that report."""
    tmp = tmp_path_factory.mktemp("site")
    nb_dir, report = tmp / "nbs", tmp / "report"
    nb_dir.mkdir()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · Planted\n\nQuestion."), params,
                                         nbformat.v4.new_code_cell(BODY)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nb_dir / f"{RUN}.ipynb")
    r = subprocess.run([sys.executable, "-m", "course_lib.tools.nightly", "--profile", "smoke", "--notebooks",
                        str(nb_dir), "--out", str(report), "--notebook-timeout", "300"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "course_lib.tools.site", "--report", str(report),
                        "--out", str(tmp / "site")], capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return report, tmp / "site" / "html"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_every_notebook_has_a_page_and_the_skipped_ones_say_so(built):
    html = built[1]
    ledger = read(html / "ledger.html")
    for stem in COURSE + [RUN]:
        page = read(html / site.notebook_page(stem))
        assert "cannot run in a static page" in page and "opens JupyterLab" in page
        assert f'href="notebooks/{stem}.html"' in ledger
        if stem == RUN:  # a notebook the report ran, even one the course does not have
            assert "A static copy with the outputs of the nightly run" in page
            assert "<img" in page  # its figure, from the executed notebook
        else:
            assert "Not run in this report" in page and "<img" not in page
    assert ledger.count("not run in this report") == len(COURSE)


def test_the_nightly_report_names_each_notebooks_site_page(built):
    report, html = built
    pages = [n["site_page"] for n in json.loads(read(report / "summary.json"))["notebooks"]]
    assert pages == [site.notebook_page(RUN)] and (html / pages[0]).exists()


def test_every_claim_has_a_ledger_row_and_the_counts_are_the_runs(built):
    report, html = built
    ledger = read(html / "ledger.html")
    claims = load_claims()
    assert re.findall(r'<tr id="([A-Z]+-\d+)"', ledger) == list(claims)
    verdicts = json.loads(read(report / "results" / f"{RUN}.json"))["verdicts"]
    assert verdicts
    shown = {k: int(v) for k, v in re.findall(r'data-count="([^"]+)">(\d+)<', ledger)}
    for kind in ("experiment", "demonstration"):
        for verdict in ("supported", "not supported", "inconclusive"):
            assert shown[f"{kind} {verdict}"] == sum(
                1 for v in verdicts if v.get("kind") == kind and v["verdict"] == verdict)
    unrecorded = [v for v in verdicts if v.get("kind") not in ("experiment", "demonstration")]
    for verdict in ("supported", "not supported", "inconclusive"):
        assert shown.get(f"unrecorded {verdict}", 0) == sum(1 for v in unrecorded if v["verdict"] == verdict)
    tested = {v["claim"] for v in verdicts}
    assert (shown["claims"], shown["tested"], shown["not tested"], shown["verdicts"]) == (
        len(claims), len(tested), len(claims) - len(tested), len(verdicts))
    assert (shown["experiment supported"], shown["demonstration not supported"], shown["demonstration supported"],
            shown["tested"]) == (1, 1, 1, 3)  # what BODY planted
    do1 = ledger[ledger.index('<tr id="DO-1"'):ledger.index('<tr id="DO-2"')]
    lo = verdicts[0]["evidence"]["interval"][0]
    assert f"{lo:.4g}"[:5] in do1 and "planted published figure" in do1 and "experiment" in do1


def test_the_landing_page_is_the_readme_with_the_build_it_shows(built):
    report, html = built
    index = read(html / "index.html")
    assert "A Jupyter-first workbook" in index and report.name in index
    assert (html / "running.html").exists() and (html / "notebooks" / "README.html").exists()


# ----------------------------------------------------------------------------- the ledger's rules
def fake_report(tmp_path: Path, verdicts: list, status: str = "ok") -> Path:
    """A report folder by hand: one notebook 03_dropout_placement with the given verdicts."""
    (tmp_path / "results").mkdir(parents=True)
    (tmp_path / "results" / "03_dropout_placement.json").write_text(json.dumps({"verdicts": verdicts}))
    (tmp_path / "summary.json").write_text(json.dumps({
        "environment": {"profile": "quick", "date": "2026-01-01", "git_commit": "0123456789abcdef"},
        "notebooks": [{"notebook": "03_dropout_placement", "status": status, "duration_s": 12.0,
                       "error": None if status == "ok" else "RuntimeError: planted `boom`"}]}))
    return tmp_path


def verdict(claim, v, kind=None, **extra):
    return {"claim": claim, "verdict": v, "summary": f"{claim} measured", "evidence": extra.pop("evidence", {}),
            **({"kind": kind} if kind else {}), **extra}


def test_ledger_rows_merge_run_and_baselines_in_both_entry_forms(tmp_path):
    report = site.load_report(fake_report(tmp_path, [
        verdict("DO-1", "supported", "experiment", evidence={"interval": [0.01, 0.05]}, published="+0.4 points (C)"),
        verdict("DO-5", "not supported", "demonstration"),
        verdict("LR-6", "supported"), verdict("LR-6", "inconclusive")]))
    baselines = {"quick": {"notebooks": {"03_dropout_placement": {"verdicts": {
                     "DO-1": "inconclusive", "LR-6": {"verdict": "supported", "kind": "experiment"},
                     "LR-6#2": "not supported"}}}},
                 "full": {"notebooks": {"08_ensembles": {"verdicts": {"EN-1": {"verdict": "supported",
                                                                              "kind": "experiment"}}}}}}
    rows = {r["id"]: r for r in site.ledger_rows(load_claims(), report, baselines)}
    assert len(rows) == len(load_claims())
    do1 = rows["DO-1"]
    assert [(v["verdict"], v["kind"], v["interval"], v["published"]) for v in do1["run"]] == [
        ("supported", "experiment", "[0.01, 0.05]", "+0.4 points (C)")]
    assert do1["baselines"] == {"quick": [{"verdict": "inconclusive", "kind": None}]}
    assert [v["verdict"] for v in rows["LR-6"]["run"]] == ["supported", "inconclusive"]
    assert [b["verdict"] for b in rows["LR-6"]["baselines"]["quick"]] == ["supported", "not supported"]
    assert rows["EN-1"]["run"] == [] and rows["EN-1"]["tested_by"] == ["08_ensembles"]
    assert rows["EN-1"]["kind"] == "experiment"  # from the baseline, when the run has no verdict
    assert do1["topic"] == "Dropout and regularisation" and do1["source"] == "A 二, C"
    s = site.ledger_summary(list(rows.values()))
    assert s["by_kind"]["experiment"] == {"supported": 1, "not supported": 0, "inconclusive": 0}
    assert s["by_kind"]["demonstration"] == {"supported": 0, "not supported": 1, "inconclusive": 0}
    assert s["by_kind"][None] == {"supported": 1, "not supported": 0, "inconclusive": 1}
    assert (s["tested"], s["not_tested"], s["verdicts"]) == (3, len(rows) - 3, 4)


def test_a_failed_notebook_and_a_skipped_one_are_marked_in_the_source(tmp_path):
    report = fake_report(tmp_path / "report", [], status="failed")
    ex = report / "executed"
    ex.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 03 · Planted\n\nQuestion."),
                                         nbformat.v4.new_code_cell("1 / 0")])
    nbformat.write(nb, ex / "03_dropout_placement.ipynb")
    src = tmp_path / "src"
    data = site.write_source(report, src, launch_url="https://example.org/lab?path={path}")
    failed = nbformat.read(src / "notebooks" / "03_dropout_placement.ipynb", as_version=4)
    assert failed.cells[0].source.startswith("# 03 · Planted")  # the banner comes after the title
    assert "failed in the nightly run" in failed.cells[1].source and "planted 'boom'" in failed.cells[1].source
    assert "https://example.org/lab?path=notebooks/03_dropout_placement.ipynb" in failed.cells[1].source
    skipped = nbformat.read(src / "notebooks" / "00_baseline_and_sanity_checks.ipynb", as_version=4)
    assert any("Not run in this report" in c.source for c in skipped.cells)
    assert {n["stem"] for n in data["notebooks"]} == set(COURSE)
    assert "nb_execution_mode = \"off\"" in read(src / "conf.py")


def test_a_folder_that_is_no_report_gets_a_message_that_says_what_to_run(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="make nightly PROFILE=smoke"):
        site.load_report(tmp_path)
    assert site.main(["--report", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "make nightly PROFILE=smoke" in capsys.readouterr().err
    assert site.newest_report(tmp_path) is None


# ----------------------------------------------------------------------------- in the browser
class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(built):
    """The built site on a free loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(built[1])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_the_ledger_and_a_notebook_page_open_in_chromium_without_errors(served, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`make browser-deps`, i.e. "
                    f"`apt-get install -y chromium`) or point COURSE_CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors, elsewhere = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=60_000,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                          "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(served) else None)

            page.goto(f"{served}/ledger.html", wait_until="load")
            rows = page.locator("#ledger tbody tr")
            assert rows.count() == len(load_claims())
            assert page.locator("#ledger-shown").inner_text() == f"{rows.count()} of {rows.count()} claims shown"
            page.screenshot(path=str(ARTIFACTS / "ledger.png"), full_page=False)
            not_tested = int(page.locator('[data-count="not tested"]').inner_text())
            page.select_option("#ledger-verdict", "not tested")
            assert page.locator("#ledger tbody tr:visible").count() == not_tested
            page.select_option("#ledger-topic", "Dropout and regularisation")
            page.select_option("#ledger-verdict", "")
            assert page.locator("#ledger tbody tr:visible").count() == sum(
                1 for c in load_claims().values() if c["section"] == "Dropout and regularisation")

            page.goto(f"{served}/{site.notebook_page(RUN)}", wait_until="load")
            assert page.locator("text=cannot run in a static page").count() == 1
            assert page.locator("article img").count() > 0
            page.screenshot(path=str(ARTIFACTS / "notebook.png"), full_page=False)
        finally:
            browser.close()
    assert errors == [], errors
    assert elsewhere == [], f"the site fetched from the web: {elsewhere}"
