"""The course as a static website, built from one nightly report folder.

    python -m course_lib.tools.site --report reports/nightly-smoke-20260101-120000 --out site/_build
    make site REPORT=reports/nightly-smoke-...     # without REPORT: the newest folder under reports/

The README is the landing page; every notebook is rendered with the outputs the nightly run
gave it (``<report>/executed/<nb>.ipynb``; never re-executed: ``nb_execution_mode = "off"``),
and a notebook the report did not run is shown without outputs, marked "not run in this
report". Beside them: the notebooks' contract and glossary (``notebooks/README.md``), how to
run the course locally, and the claims ledger page, one row per claim of ``claims.md`` with
the run's verdicts, the committed baselines' verdicts, the key numbers and the notebook that
tests it. Every number and verdict on the site comes from the report's results JSON or the
baseline files; none is typed.

Sphinx with myst-nb and sphinx-book-theme, because all three are pure Python and build offline
(Jupyter Book 2 / mystmd download their theme at build time). The generated Sphinx source goes
to ``<out>/source``, the HTML to ``<out>/html``: copy that folder to any static host.

A verdict record may carry ``kind`` (``"experiment"`` or ``"demonstration"``) and
``published`` (the published result the notebook quotes beside its own); both are shown when
present and left blank when not.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..core.claims import VERDICTS, load_claims

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).with_name("templates")
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
KINDS = ("experiment", "demonstration")
NOT_RUN = "not run in this report"


def notebook_page(stem: str) -> str:
    """The site page of a notebook, relative to the site's root (the nightly report links it)."""
    return f"notebooks/{stem}.html"


# ----------------------------------------------------------------------------- reading a report
def newest_report(reports_dir: Path) -> Path | None:
    """The most recently written nightly report folder under ``reports_dir`` (one that has a
    ``summary.json``), or None."""
    found = sorted(Path(reports_dir).glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def load_report(report: Path) -> dict:
    """A nightly report folder as ``{"environment", "profile", "records": {stem: record}}``.

    Each record holds the run's ``status``, ``error``, ``duration_s``, the ``executed``
    notebook's path (None if absent) and the ``results`` JSON (None if absent). Paths are
    taken inside ``report``, so a moved or copied report folder still works.
    """
    report = Path(report)
    summary_file = report / "summary.json"
    if not summary_file.exists():
        raise FileNotFoundError(
            f"{report} is not a nightly report folder (no summary.json). Run one first: "
            "`make nightly PROFILE=smoke` (about 4 minutes on 2 CPU cores), then `make site`.")
    summary = json.loads(summary_file.read_text())
    env = summary.get("environment", {})
    records = {}
    for n in summary.get("notebooks", []):
        stem = n["notebook"]
        executed = report / "executed" / f"{stem}.ipynb"
        result_file = report / "results" / f"{stem}.json"
        records[stem] = {"status": n.get("status", "failed"), "error": n.get("error"),
                         "duration_s": n.get("duration_s"),
                         "executed": executed if executed.exists() else None,
                         "results": json.loads(result_file.read_text()) if result_file.exists() else None}
    return {"environment": env, "profile": env.get("profile", "unknown"), "records": records}


def load_baselines(baselines_dir: Path) -> dict:
    """The committed baselines, ``{profile: document}``, from ``baselines_dir/<profile>.json``."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(baselines_dir).glob("*.json"))}


def baseline_verdict(entry) -> tuple[str, str | None]:
    """(verdict, kind) of a baseline's verdict entry: a plain string, or {"verdict", "kind"}."""
    if isinstance(entry, dict):
        return entry["verdict"], entry.get("kind")
    return entry, None


def notebook_title(path: Path) -> str:
    """The first markdown heading of a notebook (its page title), else its file name."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


# ----------------------------------------------------------------------------- the claims ledger
def format_interval(interval) -> str:
    """An evidence ``interval`` as text: ``[low, high]`` for a pair of numbers, else as given."""
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(
            isinstance(x, (int, float)) for x in interval):
        return f"[{interval[0]:.4g}, {interval[1]:.4g}]"
    if isinstance(interval, dict):
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in interval.items())
    return "" if interval is None else str(interval)


def ledger_rows(claims: dict, report: dict, baselines: dict) -> list[dict]:
    """One row per claim, in ``claims.md`` order.

    ``run`` lists the report's verdicts on the claim (a claim judged twice by a notebook, e.g.
    LR-6 for SGD and for Adam, has two), each with its kind, summary, interval, published result
    and notebook; ``baselines`` maps each committed baseline's profile to its verdicts; ``tested_by``
    lists the notebooks that judged the claim in the run or in a baseline.
    """
    run: dict = {cid: [] for cid in claims}
    for stem, rec in report["records"].items():
        for v in (rec["results"] or {}).get("verdicts", []):
            evidence = v.get("evidence") or {}
            run.setdefault(v["claim"], []).append({
                "verdict": v["verdict"], "kind": v.get("kind"), "notebook": stem,
                "summary": v.get("summary", ""), "interval": format_interval(evidence.get("interval")),
                "published": v.get("published") or ""})
    base: dict = {cid: {} for cid in claims}
    base_nbs: dict = {cid: [] for cid in claims}
    for profile, doc in baselines.items():
        for stem, nb in doc.get("notebooks", {}).items():
            for key, entry in nb.get("verdicts", {}).items():
                cid = key.split("#")[0]
                verdict, kind = baseline_verdict(entry)
                base.setdefault(cid, {}).setdefault(profile, []).append({"verdict": verdict, "kind": kind})
                if stem not in base_nbs.setdefault(cid, []):
                    base_nbs[cid].append(stem)
    rows = []
    for cid, info in claims.items():
        verdicts = run.get(cid, [])
        tested_by = list(dict.fromkeys([v["notebook"] for v in verdicts] + base_nbs.get(cid, [])))
        kinds = {v["kind"] for v in verdicts if v["kind"]} or {
            b["kind"] for bs in base.get(cid, {}).values() for b in bs if b["kind"]}
        rows.append({"id": cid, "text": info["claim"], "source": info["source"], "topic": info["section"],
                     "kind": ", ".join(sorted(kinds)), "run": verdicts, "baselines": base.get(cid, {}),
                     "tested_by": tested_by})
    return rows


def ledger_summary(rows: list[dict]) -> dict:
    """Counts for the top of the ledger page, over the run's verdict records: per kind
    (``experiment``, ``demonstration``, and ``None`` for records that carry no kind) the number
    supported / not supported / inconclusive; and how many claims the run judged or not."""
    counts = {kind: dict.fromkeys(VERDICTS, 0) for kind in (*KINDS, None)}
    for row in rows:
        for v in row["run"]:
            counts[v["kind"] if v["kind"] in KINDS else None][v["verdict"]] += 1
    tested = sum(1 for r in rows if r["run"])
    return {"by_kind": counts, "claims": len(rows), "tested": tested, "not_tested": len(rows) - tested,
            "verdicts": sum(len(r["run"]) for r in rows)}


# ----------------------------------------------------------------------------- the Sphinx source
def templates() -> Environment:
    """The Jinja2 templates of the site (HTML escaped automatically in ``*.html.j2``)."""
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                       autoescape=select_autoescape(["html.j2"]), keep_trailing_newline=True)


def course_notebooks(nb_dir: Path, report: dict) -> list[dict]:
    """Every notebook of the course, and any other the report ran, in order, each with the file
    the site renders (the executed copy if the report has one, else the committed notebook
    without outputs) and its status in this report."""
    committed = {p.stem: p for p in sorted(Path(nb_dir).glob(NOTEBOOK_PATTERN))}
    out = []
    for stem in sorted(set(committed) | set(report["records"])):
        rec = report["records"].get(stem)
        source = (rec or {}).get("executed") or committed.get(stem)
        if source is None:  # the report lists it but kept no executed copy, and the course has none
            continue
        out.append({"stem": stem, "source": source, "title": notebook_title(source),
                    "page": notebook_page(stem), "status": rec["status"] if rec else NOT_RUN,
                    "error": (rec or {}).get("error"), "duration_s": (rec or {}).get("duration_s"),
                    "has_outputs": bool(rec and rec.get("executed"))})
    return out


def write_notebook_page(nb: dict, dest: Path, banner: str) -> None:
    """Copy a notebook into the Sphinx source with the banner as a markdown cell after its
    first cell (the title and question), so the page says what it is and how to run it live."""
    doc = nbformat.read(nb["source"], as_version=4)
    doc.metadata.pop("widgets", None)  # saved widget state would need widget JS from the web
    cell = nbformat.v4.new_markdown_cell(banner)
    doc.cells.insert(1 if doc.cells and doc.cells[0].cell_type == "markdown" else 0, cell)
    nbformat.write(doc, dest)


def landing_page(readme: str, build_note: str) -> str:
    """The README as the landing page: the build note after its title, links to files that are
    site pages pointed at those pages."""
    lines = readme.splitlines()
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    text = "\n".join(lines[:at] + ["", build_note, ""] + lines[at:]) + "\n\n"
    return re.sub(r"\[[^\]]*\]\(course_lib/core/claims\.md\)", "[the claims ledger](ledger.md)", text)


def write_source(report_dir: Path, src: Path, nb_dir: Path = ROOT / "notebooks",
                 baselines_dir: Path = ROOT / "baselines", readme: Path = ROOT / "README.md",
                 launch_url: str | None = None) -> dict:
    """Write the Sphinx source tree of the site into ``src`` (emptied first). Returns the data
    the pages were made from: ``report``, ``notebooks``, ``rows``, ``summary``."""
    report = load_report(report_dir)
    notebooks = course_notebooks(nb_dir, report)
    rows = ledger_rows(load_claims(), report, load_baselines(baselines_dir))
    summary = ledger_summary(rows)
    env = report["environment"]
    titles = {nb["stem"]: nb["title"] for nb in notebooks}
    ctx = {"env": env, "profile": report["profile"], "report_name": Path(report_dir).name,
           "notebooks": notebooks, "rows": rows, "summary": summary, "titles": titles,
           "baseline_profiles": sorted({p for r in rows for p in r["baselines"]}),
           "verdicts": VERDICTS, "topics": list(dict.fromkeys(r["topic"] for r in rows)),
           "launch_url": launch_url, "not_run": NOT_RUN, "has_contract": (nb_dir / "README.md").exists()}
    t = templates()
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    (src / "conf.py").write_text(t.get_template("conf.py.j2").render(**ctx))
    shutil.copy(TEMPLATES / "favicon.svg", src / "favicon.svg")
    (src / "index.md").write_text(landing_page(readme.read_text(), t.get_template("build_note.md.j2").render(**ctx))
                                  + t.get_template("toctree.md.j2").render(**ctx))
    (src / "running.md").write_text(t.get_template("running.md.j2").render(**ctx))
    table = t.get_template("ledger_table.html.j2").render(**ctx)
    (src / "ledger.md").write_text(t.get_template("ledger.md.j2").render(table=table, **ctx))
    contract = nb_dir / "README.md"
    if contract.exists():
        (src / "notebooks" / "README.md").write_text(contract.read_text())
    banner = t.get_template("notebook_banner.md.j2")
    for nb in notebooks:
        write_notebook_page(nb, src / "notebooks" / f"{nb['stem']}.ipynb", banner.render(nb=nb, **ctx))
    return {"report": report, "notebooks": notebooks, "rows": rows, "summary": summary}


def build(report_dir: Path, out: Path, jobs: str = "auto", **kwargs) -> Path:
    """Generate the source under ``out/source`` and build the HTML into ``out/html`` (both
    replaced) with sphinx-build; returns the HTML folder. Extra arguments go to ``write_source``."""
    out = Path(out)
    src, html = out / "source", out / "html"
    write_source(Path(report_dir), src, **kwargs)
    if html.exists():
        shutil.rmtree(html)  # no stale page of an earlier report survives
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", str(jobs),
           "-d", str(out / "doctrees"), str(src), str(html)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"sphinx-build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    if proc.stderr.strip():
        print(proc.stderr.strip(), file=sys.stderr)
    return html


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", type=Path, default=None,
                   help="nightly report folder (default: the newest under reports/)")
    p.add_argument("--out", type=Path, default=ROOT / "site" / "_build",
                   help="build folder: source/ and html/ are written inside it")
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    p.add_argument("--baselines", type=Path, default=ROOT / "baselines")
    p.add_argument("--launch-url", default=None,
                   help="where the course is hosted live, with {path} for the notebook's path, e.g. "
                        "https://mybinder.org/v2/gh/ORG/REPO/HEAD?labpath={path}")
    p.add_argument("--jobs", default="auto", help="sphinx-build processes (-j)")
    a = p.parse_args(argv)
    if a.launch_url and "{path}" not in a.launch_url:
        p.error(f"--launch-url needs {{path}} where the notebook's path goes, got {a.launch_url!r}")
    report = a.report or newest_report(ROOT / "reports")
    if report is None:
        print("no nightly report under reports/: run `make nightly PROFILE=smoke` first (about 4 minutes "
              "on 2 CPU cores), then `make site` (or `make site REPORT=<report folder>`)", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        html = build(report, a.out, jobs=a.jobs, nb_dir=a.notebooks, baselines_dir=a.baselines,
                     launch_url=a.launch_url)
    except (FileNotFoundError, RuntimeError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"site built from {report} in {time.time() - t0:.0f} s: open {html / 'index.html'} "
          f"(claims ledger: {html / 'ledger.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
