"""The nightly regression run: every notebook through papermill, compared with baselines, one report.

    python -m course_lib.tools.nightly --profile quick            # or: make nightly PROFILE=quick
    python -m course_lib.tools.nightly --profile full --jobs 4    # 4 GPUs: one notebook per GPU
    python -m course_lib.tools.nightly --profile smoke --update-baselines

Each notebook runs in its own process (papermill, injected ``profile``, ``seed``,
``results_dir``, ``interactive=False``) with a per-cell timeout and a per-notebook time limit; a
failing notebook is reported and the others still run. The executed notebooks, their results
JSON and figures are kept beside ``report.md`` and ``report.html``. Each metric is compared with
``baselines/<profile>.json`` (direction and tolerance per metric); the claims ledger lists every
verdict with its evidence and whether it changed since the baseline. The exit status is non-zero
if any notebook failed or any metric regressed, so a scheduler can alert.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import queue
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core.claims import load_claims
from .site import notebook_page

ROOT = Path(__file__).resolve().parents[2]
TIME_LIKE = ("seconds", "_s")


# ----------------------------------------------------------------------------- running notebooks
def find_notebooks(nb_dir: Path, pattern: str = "[0-9][0-9]_*.ipynb") -> list[Path]:
    """The course notebooks, in order."""
    return sorted(Path(nb_dir).glob(pattern))


def run_one(nb: Path, out_dir: Path, profile: str, seed: int, cell_timeout: int, limit: int,
            gpu: str | None = None, position: int = 0, kernel: str = "python3", extra: dict | None = None) -> dict:
    """Execute one notebook in a child process; returns its status record.

    The child is killed (with its kernel) when it exceeds ``limit`` seconds.
    """
    nb, out_dir = Path(nb).resolve(), Path(out_dir).resolve()  # the child runs in the notebook's folder
    executed = out_dir / "executed" / nb.name
    results_dir = out_dir / "results"
    executed.parent.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    args = [sys.executable, "-m", "course_lib.tools.nightly", "--child", str(nb), str(executed),
            json.dumps({"profile": profile, "seed": seed, "results_dir": str(results_dir.resolve()),
                        "interactive": False, **(extra or {})}), str(cell_timeout), str(position), kernel]
    t0 = time.time()
    proc = subprocess.Popen(args, env=env, cwd=str(nb.parent), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=None, text=True)
    try:
        out, _ = proc.communicate(timeout=limit)
        status = "ok" if proc.returncode == 0 else "failed"
        error = out.strip().splitlines()[-1] if proc.returncode and out.strip() else None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        status, error = "failed", f"time limit of {limit} s exceeded"
    rec = {"notebook": nb.stem, "status": status, "duration_s": time.time() - t0,
           "executed": str(executed), "error": error, "results": None,
           "site_page": notebook_page(nb.stem)}  # the notebook's page on the course website
    result_file = results_dir / f"{nb.stem}.json"
    if status == "ok":
        if result_file.exists():
            rec["results"] = json.loads(result_file.read_text())
        else:
            rec["status"], rec["error"] = "failed", "finished but wrote no results JSON (missing record() call?)"
    return rec


def child_main(nb: str, executed: str, params: str, cell_timeout: str, position: str, kernel: str) -> int:
    """Runs inside the child process: papermill with a tqdm line named after the notebook.

    Prints the error's last line on stdout for the parent.
    """
    import papermill as pm
    try:
        pm.execute_notebook(nb, executed, parameters=json.loads(params), kernel_name=kernel,
                            cwd=str(Path(nb).parent), execution_timeout=int(cell_timeout),
                            progress_bar={"desc": Path(nb).stem[:32], "position": int(position),
                                          "leave": True, "file": sys.stderr})
    except Exception as exc:  # report and fail: the parent records it, others still run
        msg = str(exc).strip().splitlines()
        print(f"{type(exc).__name__}: {' | '.join(l for l in msg if l.strip())[-400:]}")
        return 1
    return 0


def run_all(notebooks: list[Path], out_dir: Path, profile: str, seed: int, cell_timeout: int,
            limit: int, jobs: int = 1, kernel: str = "python3", extra: dict | None = None) -> list[dict]:
    """Run notebooks, ``jobs`` at a time; with jobs > 1 each child sees one GPU
    (``CUDA_VISIBLE_DEVICES`` = its slot). Returns the records in notebook order."""
    slots: queue.Queue = queue.Queue()
    for i in range(max(jobs, 1)):
        slots.put(i)

    def task(nb):
        slot = slots.get()
        try:
            return run_one(nb, out_dir, profile, seed, cell_timeout, limit,
                           gpu=str(slot) if jobs > 1 else None, position=slot, kernel=kernel, extra=extra)
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        return list(pool.map(task, notebooks))


# ----------------------------------------------------------------------------- baselines
def metric_value(m) -> tuple[float | None, bool]:
    """(value, higher_is_better) from a recorded metric (a number or {"value", "higher_is_better"})."""
    if isinstance(m, dict):
        v = m.get("value")
        return (float(v) if isinstance(v, (int, float)) else None), bool(m.get("higher_is_better", True))
    return (float(m) if isinstance(m, (int, float)) and not isinstance(m, bool) else None), True


def default_tolerance(name: str, value: float, timing: bool = False) -> float:
    """How far a metric may move in the bad direction before it counts as a regression:
    50% for times (marked ``timing``, or named ``*seconds``/``*_s``: they depend on machine load),
    else 5% of the value plus 0.01."""
    if timing or name.endswith(TIME_LIKE):
        return 0.5 * abs(value)
    return 0.05 * abs(value) + 0.01


def verdict_keys(verdicts: list[dict]) -> list[tuple[str, dict]]:
    """(key, verdict) pairs: the claim ID, with ``#2``, ``#3``... for a claim a notebook judges
    more than once (e.g. LR-6 for SGD and for Adam), so each is compared with its own baseline."""
    seen: dict = {}
    keyed = []
    for v in verdicts:
        seen[v["claim"]] = seen.get(v["claim"], 0) + 1
        keyed.append((v["claim"] if seen[v["claim"]] == 1 else f"{v['claim']}#{seen[v['claim']]}", v))
    return keyed


def baseline_from_records(records: list[dict], old: dict | None = None) -> dict:
    """A baseline document from successful runs; tolerances already in ``old`` are kept."""
    old = old or {"notebooks": {}}
    doc = {"notebooks": dict(old.get("notebooks", {}))}
    for rec in records:
        res = rec.get("results")
        if rec["status"] != "ok" or not res:
            continue
        prev = old.get("notebooks", {}).get(rec["notebook"], {}).get("metrics", {})
        metrics = {}
        for name, m in res.get("metrics", {}).items():
            v, hib = metric_value(m)
            if v is None:
                continue
            timing = isinstance(m, dict) and bool(m.get("timing"))
            tol = prev.get(name, {}).get("tolerance", default_tolerance(name, v, timing))
            metrics[name] = {"value": v, "higher_is_better": hib, "tolerance": tol}
        doc["notebooks"][rec["notebook"]] = {
            "metrics": metrics, "verdicts": {k: v["verdict"] for k, v in verdict_keys(res.get("verdicts", []))}}
    return doc


def compare_metrics(records: list[dict], baseline: dict) -> list[dict]:
    """One row per recorded metric: value, baseline, tolerance, and status
    ("ok", "regression", "improved", "new", "missing")."""
    rows = []
    for rec in records:
        res = rec.get("results") or {}
        base = baseline.get("notebooks", {}).get(rec["notebook"], {}).get("metrics", {})
        seen = set()
        for name, m in res.get("metrics", {}).items():
            v, hib = metric_value(m)
            if v is None:
                continue
            seen.add(name)
            b = base.get(name)
            row = {"notebook": rec["notebook"], "metric": name, "value": v, "higher_is_better": hib,
                   "baseline": None, "tolerance": None, "status": "new"}
            if b:
                row.update(baseline=b["value"], tolerance=b["tolerance"])
                worse = (b["value"] - v) if b.get("higher_is_better", True) else (v - b["value"])
                row["status"] = ("regression" if worse > b["tolerance"] else
                                 "improved" if worse < -b["tolerance"] else "ok")
            rows.append(row)
        if rec["status"] == "ok":
            for name in sorted(set(base) - seen):
                rows.append({"notebook": rec["notebook"], "metric": name, "value": None,
                             "higher_is_better": base[name].get("higher_is_better", True),
                             "baseline": base[name]["value"], "tolerance": base[name]["tolerance"],
                             "status": "missing"})
    return rows


def claims_ledger(records: list[dict], baseline: dict) -> list[dict]:
    """Every verdict recorded by every notebook, with claim text, source document, evidence and
    the baseline's verdict (``changed`` is True when it differs)."""
    claims, rows = load_claims(), []
    for rec in records:
        base = baseline.get("notebooks", {}).get(rec["notebook"], {}).get("verdicts", {})
        for key, v in verdict_keys((rec.get("results") or {}).get("verdicts", [])):
            info = claims.get(v["claim"], {})
            old = base.get(key)
            rows.append({"claim": v["claim"], "text": info.get("claim", v.get("text", "")),
                         "source": info.get("source", ""), "notebook": rec["notebook"],
                         "verdict": v["verdict"], "summary": v.get("summary", ""),
                         "evidence": v.get("evidence", {}), "baseline_verdict": old,
                         "changed": old is not None and old != v["verdict"]})
    return sorted(rows, key=lambda r: (r["claim"].split("-")[0], int(r["claim"].split("-")[1]), r["notebook"]))


# ----------------------------------------------------------------------------- report
def environment(profile: str, seed: int) -> dict:
    """Git commit, torch/CUDA versions, device, profile, seed."""
    import torch

    from ..core.experiment import git_commit  # here: the job itself needs no torch until this report
    commit = git_commit()
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"git_commit": commit, "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": dev, "gpus": torch.cuda.device_count(), "profile": profile, "seed": seed,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(out_dir: Path, records: list[dict], rows: list[dict], ledger: list[dict], env: dict) -> tuple[Path, Path]:
    """Write report.md and report.html (figures embedded in the HTML) and summary.json."""
    failed = [r for r in records if r["status"] != "ok"]
    regressions = [r for r in rows if r["status"] == "regression"]
    changed = [r for r in ledger if r["changed"]]
    headline = (f"{len(records) - len(failed)}/{len(records)} notebooks ran, {len(regressions)} regression(s), "
                f"{len(changed)} verdict change(s)")
    env_line = ", ".join(f"{k}: {v}" for k, v in env.items())

    md = [f"# Nightly report ({env['profile']})", "", f"**{headline}**", "", f"Environment: {env_line}", "",
          "## Notebooks", "", "| notebook | status | duration (s) | error |", "| --- | --- | --- | --- |"]
    md += [f"| {r['notebook']} | {r['status']} | {r['duration_s']:.0f} | {r['error'] or ''} |" for r in records]
    md += ["", "## Metrics against baseline", "",
           "| notebook | metric | value | baseline | tolerance | status |", "| --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['notebook']} | {r['metric']} | {fmt(r['value'])} | {fmt(r['baseline'])} | "
           f"{fmt(r['tolerance'])} | {r['status']} |" for r in rows]
    md += ["", "## Claims ledger", "",
           "| claim | rule of thumb | source | notebook | verdict | evidence | baseline verdict |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['claim']} | {r['text']} | {r['source']} | {r['notebook']} | **{r['verdict']}** | "
           f"{r['summary']} | {fmt(r['baseline_verdict'])}{' (changed)' if r['changed'] else ''} |" for r in ledger]
    figs = [(r["notebook"], Path(f)) for r in records for f in ((r.get("results") or {}).get("figures") or [])]
    if figs:
        md += ["", "## Key figures", ""] + [f"![{nb}: {p.name}]({os.path.relpath(p, out_dir)})" for nb, p in figs if p.exists()]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    e = html.escape
    colour = {"ok": "#1a7f37", "failed": "#cf222e", "regression": "#cf222e", "improved": "#0969da",
              "supported": "#1a7f37", "not supported": "#cf222e", "inconclusive": "#9a6700"}

    def cell(v, key=None):
        c = colour.get(v) if key else None
        return f"<td style='color:{c}'><b>{e(fmt(v))}</b></td>" if c else f"<td>{e(fmt(v))}</td>"

    h = [f"<!doctype html><meta charset='utf-8'><title>Nightly report ({e(env['profile'])})</title>",
         "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}img{max-width:700px}</style>",
         f"<h1>Nightly report ({e(env['profile'])})</h1><p><b>{e(headline)}</b></p><p>{e(env_line)}</p>",
         "<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>duration (s)</th><th>error</th></tr>"]
    h += [f"<tr><td>{e(r['notebook'])}</td>{cell(r['status'], 1)}<td>{r['duration_s']:.0f}</td>"
          f"<td>{e(r['error'] or '')}</td></tr>" for r in records]
    h += ["</table><h2>Metrics against baseline</h2><table><tr><th>notebook</th><th>metric</th><th>value</th>"
          "<th>baseline</th><th>tolerance</th><th>status</th></tr>"]
    h += [f"<tr><td>{e(r['notebook'])}</td><td>{e(r['metric'])}</td>{cell(r['value'])}{cell(r['baseline'])}"
          f"{cell(r['tolerance'])}{cell(r['status'], 1)}</tr>" for r in rows]
    h += ["</table><h2>Claims ledger</h2><table><tr><th>claim</th><th>rule of thumb</th><th>source</th>"
          "<th>notebook</th><th>verdict</th><th>evidence</th><th>baseline verdict</th></tr>"]
    h += [f"<tr><td>{e(r['claim'])}</td><td>{e(r['text'])}</td><td>{e(r['source'])}</td><td>{e(r['notebook'])}</td>"
          f"{cell(r['verdict'], 1)}<td>{e(r['summary'])}</td>"
          f"<td>{e(fmt(r['baseline_verdict']))}{' <b>(changed)</b>' if r['changed'] else ''}</td></tr>" for r in ledger]
    h.append("</table>")
    if figs:
        h.append("<h2>Key figures</h2>")
        for nb, p in figs:
            if p.exists():
                b64 = base64.b64encode(p.read_bytes()).decode()
                h.append(f"<h3>{e(nb)}: {e(p.stem)}</h3><img src='data:image/png;base64,{b64}'>")
    html_path = out_dir / "report.html"
    html_path.write_text("\n".join(h))
    summary = {"environment": env, "notebooks": [{k: v for k, v in r.items() if k != "results"} for r in records],
               "metrics": rows, "claims": ledger, "headline": headline}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return md_path, html_path


def baseline_diff(old: dict, new: dict) -> list[str]:
    """Human-readable lines for what ``--update-baselines`` changes."""
    lines = []
    for nb, doc in sorted(new.get("notebooks", {}).items()):
        before = old.get("notebooks", {}).get(nb, {})
        for name, m in sorted(doc["metrics"].items()):
            b = before.get("metrics", {}).get(name)
            if b is None:
                lines.append(f"+ {nb}.{name} = {m['value']:.4g}")
            elif b["value"] != m["value"]:
                lines.append(f"~ {nb}.{name}: {b['value']:.4g} -> {m['value']:.4g}")
        for claim, verdict in sorted(doc["verdicts"].items()):
            b = before.get("verdicts", {}).get(claim)
            if b != verdict:
                lines.append(f"~ {nb} {claim}: {b} -> {verdict}")
    return lines


def parse_value(text: str):
    """A command-line parameter value: JSON if it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(*argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick", choices=["smoke", "quick", "full"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="folder of notebooks")
    p.add_argument("--only", nargs="*", default=None, help="notebook names (stems) to run; default all")
    p.add_argument("--out", type=Path, default=None, help="report folder (default reports/nightly-<profile>-<time>)")
    p.add_argument("--baselines", type=Path, default=ROOT / "baselines")
    p.add_argument("--update-baselines", action="store_true", help="accept this run's values as the new baseline")
    p.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may run")
    p.add_argument("--notebook-timeout", type=int, default=1800, help="seconds one notebook may run")
    p.add_argument("--jobs", type=int, default=1, help="notebooks at a time, one GPU each")
    p.add_argument("--kernel", default="python3")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="extra parameter injected into every notebook (VALUE parsed as JSON, else a string)")
    a = p.parse_args(argv)

    notebooks = find_notebooks(a.notebooks)
    if a.only:
        notebooks = [nb for nb in notebooks if nb.stem in a.only or nb.stem[:2] in a.only]
    if not notebooks:
        print(f"no notebooks found in {a.notebooks}", file=sys.stderr)
        return 2
    out = a.out or ROOT / "reports" / f"nightly-{a.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    print(f"nightly: {len(notebooks)} notebooks, profile {a.profile}, seed {a.seed}, {a.jobs} at a time -> {out}")
    extra = {name: parse_value(value) for name, value in a.param}
    records = run_all(notebooks, out, a.profile, a.seed, a.cell_timeout, a.notebook_timeout, a.jobs, a.kernel, extra)

    base_file = a.baselines / f"{a.profile}.json"
    baseline = json.loads(base_file.read_text()) if base_file.exists() else {"notebooks": {}}
    rows, ledger = compare_metrics(records, baseline), claims_ledger(records, baseline)
    md, html_path = write_report(out, records, rows, ledger, environment(a.profile, a.seed))
    for r in records:
        print(f"  {r['notebook']:40s} {r['status']:7s} {r['duration_s']:6.0f} s  {r['error'] or ''}")
    for r in rows:
        if r["status"] in ("regression", "missing"):
            print(f"  {r['status'].upper()}: {r['notebook']}.{r['metric']} = {fmt(r['value'])} "
                  f"(baseline {fmt(r['baseline'])}, tolerance {fmt(r['tolerance'])})")
    print(f"report: {md} and {html_path}")
    if a.update_baselines:
        new = baseline_from_records(records, baseline)
        diff = baseline_diff(baseline, new)
        a.baselines.mkdir(parents=True, exist_ok=True)
        base_file.write_text(json.dumps(new, indent=2, sort_keys=True) + "\n")
        print(f"baselines updated in {base_file} ({len(diff)} change(s)):")
        print("\n".join(f"  {line}" for line in diff) or "  (no change)")
        return 1 if any(r["status"] != "ok" for r in records) else 0
    bad = any(r["status"] != "ok" for r in records) or any(r["status"] in ("regression", "missing") for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
