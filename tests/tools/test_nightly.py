"""The nightly job: failures isolated and reported, regressions caught and named, claims ledger
complete. Uses tiny planted notebooks (no training) plus one real notebook with a planted fault."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.tools import nightly

from .planted import planted as write_planted

ROOT = Path(__file__).resolve().parents[2]
PARAMS = 'profile = "auto"\nseed = 0\nresults_dir = "results"\ninteractive = True\nvalue = 0.9\n'
RECORD = ('from course_lib.core import experiment, claims\n'
          'ctx = experiment.setup(profile, seed, notebook=NAME, load_data=False)\n'
          'experiment.record(ctx, results_dir, {"acc": experiment.metric(value), "train_seconds": '
          'experiment.metric(3.0, higher_is_better=False)}, [claims.check_range(CLAIM, value, 0.5, 1.0, "acc")], params={})\n')


def planted(nb_dir: Path, name: str, body: str):
    return write_planted(nb_dir, name, body, PARAMS)


HEADLESS_FAILURE = '''from course_lib.ui.widgets import control_panel
def experiment_fn(params, report, should_stop):
    raise RuntimeError("planted failure on the headless path")
if interactive:
    display(control_panel({}, experiment_fn))
experiment_fn({}, print, lambda: False)
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run the nightly CLI once over three planted notebooks against a planted baseline."""
    tmp = tmp_path_factory.mktemp("nightly")
    nb_dir = tmp / "nbs"
    nb_dir.mkdir()
    planted(nb_dir, "01_good", "NAME, CLAIM = '01_good', 'DBG-1'\n" + RECORD)
    planted(nb_dir, "02_broken", HEADLESS_FAILURE)
    planted(nb_dir, "03_also_good", "NAME, CLAIM = '03_also_good', 'LR-6'\n" + RECORD)
    base = tmp / "baselines"
    base.mkdir()
    (base / "smoke.json").write_text(json.dumps({"notebooks": {
        "01_good": {"metrics": {"acc": {"value": 1.5, "higher_is_better": True, "tolerance": 0.01}},
                    "verdicts": {"DBG-1": "not supported"}},
        "03_also_good": {"metrics": {"acc": {"value": 0.9, "higher_is_better": True, "tolerance": 0.01}},
                         "verdicts": {"LR-6": {"verdict": "supported", "kind": "demonstration"}}}}}))
    out = tmp / "report"
    r = subprocess.run([sys.executable, "-m", "course_lib.tools.nightly", "--profile", "smoke", "--notebooks", str(nb_dir),
                        "--baselines", str(base), "--out", str(out), "--cell-timeout", "120",
                        "--notebook-timeout", "300"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    return r, out, base


def test_failing_notebook_is_reported_and_the_others_still_run(run):
    r, out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    status = {n["notebook"]: n["status"] for n in summary["notebooks"]}
    assert status == {"01_good": "ok", "02_broken": "failed", "03_also_good": "ok"}
    broken = next(n for n in summary["notebooks"] if n["notebook"] == "02_broken")
    assert "planted failure on the headless path" in broken["error"]
    assert (out / "executed" / "02_broken.ipynb").exists() and (out / "executed" / "01_good.ipynb").exists()
    assert r.returncode == 1


def test_planted_regression_is_caught_and_named(run):
    r, out, _ = run
    assert "REGRESSION: 01_good.acc = 0.9 (baseline 1.5" in r.stdout
    md = (out / "report.md").read_text()
    assert "| 01_good | acc | 0.9 | 1.5 | 0.01 | regression |" in md
    assert "| 03_also_good | acc | 0.9 | 0.9 | 0.01 | ok |" in md
    assert "| 01_good | train_seconds | 3 | – | – | new |" in md


def test_report_lists_every_recorded_claim_with_source_and_verdict_change(run):
    _, out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    ledger = {(c["notebook"], c["claim"]): c for c in summary["claims"]}
    assert set(ledger) == {("01_good", "DBG-1"), ("03_also_good", "LR-6")}
    assert ledger[("01_good", "DBG-1")]["changed"] and ledger[("01_good", "DBG-1")]["source"] == "B part 5"
    assert not ledger[("03_also_good", "LR-6")]["changed"]  # the new {"verdict", "kind"} form
    assert ledger[("01_good", "DBG-1")]["baseline_verdict"] == "not supported"  # an old plain-string baseline
    assert {c["kind"] for c in summary["claims"]} == {"demonstration"}  # claims.check_range demonstrates
    html = (out / "report.html").read_text()
    for text in ("DBG-1", "LR-6", "A 八.7, C", "(changed)", "torch", "git_commit"):
        assert text in html


def test_update_baselines_accepts_new_values_and_shows_the_diff(tmp_path):
    records = [{"notebook": "01_good", "status": "ok", "duration_s": 123.44, "results": {
        "finished": "2026-12-02T16:00:00+0000", "environment": {"device": "cpu (2 threads)", "torch": "2.14.1"},
        "metrics": {"acc": {"value": 0.8, "higher_is_better": True}}, "verdicts": [
            {"claim": "DBG-1", "verdict": "supported",
             "evidence": {"detectable_effect": 0.012, "unit": "fraction"}}]}}]
    old = {"notebooks": {"01_good": {"metrics": {"acc": {"value": 1.5, "higher_is_better": True, "tolerance": 0.2}},
                                     "verdicts": {"DBG-1": "not supported"}}}}
    new = nightly.baseline_from_records(records, old)
    assert new["notebooks"]["01_good"]["metrics"]["acc"] == {"value": 0.8, "higher_is_better": True, "tolerance": 0.2}
    assert new["notebooks"]["01_good"]["verdicts"] == {"DBG-1": {
        "verdict": "supported", "kind": "experiment", "detectable_effect": 0.012, "unit": "fraction"}}
    assert new["notebooks"]["01_good"]["run"] == {  # what tools/timings writes into the notebook
        "duration_s": 123.4, "finished": "2026-12-02T16:00:00+0000", "device": "cpu (2 threads)",
        "torch": "2.14.1", "git_commit": None}
    assert nightly.baseline_diff(old, new) == ["~ 01_good.acc: 1.5 -> 0.8",
                                               "~ 01_good DBG-1: not supported -> supported"]
    newer = {"notebooks": {"01_good": {**new["notebooks"]["01_good"],
                                       "verdicts": {"DBG-1": {"verdict": "supported", "kind": "demonstration"}}}}}
    assert nightly.baseline_diff(new, newer) == ["~ 01_good DBG-1: supported -> supported (experiment -> demonstration)"]


def test_lower_is_better_and_time_tolerance():
    base = {"notebooks": {"n": {"metrics": {"train_seconds": {"value": 10.0, "higher_is_better": False,
                                                              "tolerance": nightly.default_tolerance("train_seconds", 10.0)}}}}}

    def rec(v):
        return [{"notebook": "n", "status": "ok", "results": {"metrics": {
            "train_seconds": {"value": v, "higher_is_better": False}}}}]
    assert nightly.compare_metrics(rec(14.0), base)[0]["status"] == "ok"
    assert nightly.compare_metrics(rec(16.0), base)[0]["status"] == "regression"
    assert nightly.compare_metrics(rec(4.0), base)[0]["status"] == "improved"
    # a time named per arm (notebook 05's train_seconds_fixed) is still a time
    assert nightly.default_tolerance("train_seconds_fixed", 10.0) == nightly.default_tolerance("train_seconds", 10.0)


def test_a_metric_marked_timing_gets_the_time_tolerance_whatever_its_name():
    from course_lib.core.experiment import metric
    records = [{"notebook": "n", "status": "ok", "results": {"metrics": {
        "flip_cost": metric(2.0, higher_is_better=False, timing=True), "acc": metric(0.5)}}}]
    new = nightly.baseline_from_records(records)["notebooks"]["n"]["metrics"]
    assert new["flip_cost"]["tolerance"] == 1.0 and new["flip_cost"]["higher_is_better"] is False
    assert new["acc"]["tolerance"] == nightly.default_tolerance("acc", 0.5) < 0.05


def test_a_real_notebook_failing_on_its_headless_path_fails_the_run(tmp_path):
    """Notebook 00 with an invalid injected learning rate: fit raises on the headless path."""
    relative_out = os.path.relpath(tmp_path, ROOT)  # as a user would type it (the child runs elsewhere)
    r = subprocess.run([sys.executable, "-m", "course_lib.tools.nightly", "--profile", "smoke", "--only", "00",
                        "--out", relative_out, "--baselines", str(tmp_path / "none"), "-p", "lr", "-1",
                        "--notebook-timeout", "300"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["notebooks"][0]["status"] == "failed"
    assert "lr must be positive" in summary["notebooks"][0]["error"]


def test_the_baseline_keeps_one_verdict_and_kind_per_claim_and_the_ledger_counts_kinds_apart():
    def v(claim, verdict, kind):
        return {"claim": claim, "verdict": verdict, "kind": kind, "summary": ""}
    verdicts = [v("LR-6", "supported", "demonstration"), v("LR-8", "inconclusive", "experiment"),
                v("LR-9", "supported", "experiment")]
    records = [{"notebook": "01", "status": "ok", "results": {"metrics": {}, "verdicts": verdicts}}]
    base = nightly.baseline_from_records(records)
    kept = {claim: {k: e[k] for k in ("verdict", "kind")} for claim, e in base["notebooks"]["01"]["verdicts"].items()}
    assert kept == {
        "LR-6": {"verdict": "supported", "kind": "demonstration"},
        "LR-8": {"verdict": "inconclusive", "kind": "experiment"}, "LR-9": {"verdict": "supported", "kind": "experiment"}}
    assert not any("#" in k for k in base["notebooks"]["01"]["verdicts"])
    ledger = nightly.claims_ledger(records, base)
    assert [(r["claim"], r["kind"], r["changed"]) for r in ledger] == [
        ("LR-6", "demonstration", False), ("LR-8", "experiment", False), ("LR-9", "experiment", False)]
    counts = nightly.ledger_summary(ledger)
    assert counts["experiment"] == {"supported": 1, "not supported": 0, "inconclusive": 1}
    assert counts["demonstration"]["supported"] == 1 and "demonstrations" in counts["line"]
    base["notebooks"]["01"]["verdicts"]["LR-9"] = "not supported"  # an old baseline: a plain string
    assert [r["changed"] for r in nightly.claims_ledger(records, base)] == [False, False, True]


def table_cells(line: str) -> list[str]:
    """The cells of one Markdown table row, split on unescaped pipes."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_report_leads_with_summary_and_ledger_and_links_each_executed_notebook(run):
    _, out, _ = run
    md = (out / "report.md").read_text()
    assert md.index("## Summary") < md.index("## Claims ledger") < md.index("## Metrics against baseline")
    assert {"- Notebooks: 2 ok, 1 failed (02_broken)", "- Verdicts of demonstrations: 2 supported",
            "- Metrics against the baseline: 1 regression(s), 0 missing, 0 improved"} <= set(md.splitlines())
    assert "| [01_good](executed/01_good.ipynb) | ok |" in md
    assert 'href="executed/02_broken.ipynb"' in (out / "report.html").read_text()
    # the broken notebook's error joins its lines with " | ": its row still has four cells
    row = next(line for line in md.splitlines() if line.startswith("| [02_broken]"))
    assert len(table_cells(row)) == 5 and "planted failure" in table_cells(row)[3]
    good = next(line for line in md.splitlines() if line.startswith("| [01_good]"))
    assert table_cells(good)[4].strip().endswith("site/_build/html/notebooks/01_good.html)")  # its website page


def test_site_link_follows_the_published_url_or_the_local_build(tmp_path):
    assert nightly.site_link("notebooks/03_x.html", tmp_path, "https://course.example/") == \
        "https://course.example/notebooks/03_x.html"
    assert nightly.site_link("notebooks/03_x.html", nightly.ROOT / "reports" / "r1") == \
        "../../site/_build/html/notebooks/03_x.html"
    assert nightly.site_link(None, tmp_path) == ""


def fake_run(tmp_path, error: str, summary: str, kinds=None):
    """write_report on hand-made records: one failed notebook with ``error``, verdicts with ``summary``."""
    records = [{"notebook": "01_x", "status": "failed", "duration_s": 2.0, "error": error,
                "executed": str(tmp_path / "executed" / "01_x.ipynb"), "results": None}]
    ledger = [{"claim": f"LR-{i}", "text": "a rule", "source": "A", "notebook": "01_x", "verdict": verdict,
               "summary": summary, "evidence": {}, "baseline_verdict": None, "changed": False}
              for i, verdict in enumerate(["supported", "not supported", "supported"], start=1)]
    for row, kind in zip(ledger, kinds or []):
        row["kind"] = kind
    env = {"profile": "smoke", "git_commit": "abc"}
    md, html_path = nightly.write_report(tmp_path, records, [], ledger, env)
    return md.read_text(), html_path.read_text()


def test_pipes_newlines_and_markup_in_texts_cannot_break_the_report(tmp_path):
    md, html = fake_run(tmp_path, "ValueError: bad | worse\nsecond line <b>", "p < 0.05 | n=3 & more")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    error_row = next(line for line in rows if line.startswith("| [01_x]"))
    assert len(table_cells(error_row)) == 5
    assert r"bad \| worse<br>second line &lt;b&gt;" in error_row
    assert all(len(table_cells(line)) == 7 for line in rows if line.startswith("| LR-"))
    assert r"p &lt; 0.05 \| n=3 &amp; more" in md
    assert "bad | worse\nsecond line &lt;b&gt;" in html and "second line <b>" not in html
    assert "p &lt; 0.05 | n=3 &amp; more" in html


def test_verdicts_of_experiments_and_demonstrations_are_counted_apart(tmp_path):
    md, html = fake_run(tmp_path, "", "s")
    assert "- Verdicts: 2 supported, 1 not supported" in md.splitlines() and "| kind |" not in md
    md, html = fake_run(tmp_path, "", "s", kinds=["demonstration", "experiment", "experiment"])
    assert {"- Verdicts of experiments: 1 supported, 1 not supported",
            "- Verdicts of demonstrations: 1 supported"} <= set(md.splitlines())
    assert md.index("Verdicts of experiments") < md.index("Verdicts of demonstrations")
    assert "| kind |" in md and "| LR-1 | a rule | A | 01_x | demonstration | **supported** |" in md
    assert "<th>kind</th>" in html
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [g["kind"] for g in summary["verdict_groups"]] == ["experiment", "demonstration"]


def test_jobs_are_capped_at_the_gpus_with_a_reason():
    assert nightly.cap_jobs(1, 0) == (1, None) and nightly.cap_jobs(2, 4) == (2, None)
    jobs, why = nightly.cap_jobs(4, 2)
    assert jobs == 2 and "only 2 GPU(s)" in why
    jobs, why = nightly.cap_jobs(3, 0)
    assert jobs == 1 and "no GPU" in why


def test_only_that_matches_nothing_says_so_and_lists_the_notebooks(tmp_path, capsys):
    for name in ("00_a", "01_b"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert nightly.main(["--notebooks", str(tmp_path), "--only", "07", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--only 07: no such notebook" in err and "00_a" in err and "01_b" in err
    assert not (tmp_path / "r").exists()  # nothing ran, no empty report
    assert nightly.select_notebooks(sorted(tmp_path.glob("*.ipynb")), ["01"])[0][0].stem == "01_b"


def test_time_limits_follow_the_profile_unless_given():
    """standard's 20-30 minute notebooks train in one cell: quick's 15-minute cell limit killed
    04's standard run mid-training, so the limits come from the profile unless the user sets them."""
    assert nightly.time_limits("quick", None, None) == (900, 1800)
    cell, notebook = nightly.time_limits("standard", None, None)
    assert cell >= 2 * 30 * 60 and notebook >= cell
    assert nightly.time_limits("standard", 60, None) == (60, notebook)
    assert nightly.time_limits("smoke", None, 99) == (900, 99)


def test_help_names_the_program_and_shows_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        nightly.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m course_lib.tools.nightly")
    assert "(default: quick)" in text and "standard 3600" in text and "(default: 1)" in text
    with pytest.raises(SystemExit):
        nightly.main(["--jobs", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_parallel_slots_keep_the_users_own_gpu_choice():
    assert [nightly.gpu_for_slot(i, "4,6") for i in range(2)] == ["4", "6"]
    assert [nightly.gpu_for_slot(i, "") for i in range(2)] == ["0", "1"]
    assert nightly.gpu_for_slot(1, "GPU-aa, GPU-bb") == "GPU-bb"  # UUIDs too
