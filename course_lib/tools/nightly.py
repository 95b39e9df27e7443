"""The nightly regression run: every notebook through papermill, compared with baselines, one report.

    python -m course_lib.tools.nightly --profile quick            # or: make nightly PROFILE=quick
    python -m course_lib.tools.nightly --profile full --jobs 4    # 4 GPUs: one notebook per GPU
    python -m course_lib.tools.nightly --profile smoke --update-baselines
    python -m course_lib.tools.nightly --profile full --scheduler tcp://HOST:8786 --seeds 0,1,2  # Dask

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
import math
import os
import queue
import signal
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2

from ..core.claims import VERDICTS, count_verdicts, counts_line, load_claims
from .seeds import combine_seeds, parse_seeds
from .site import notebook_page

ROOT = Path(__file__).resolve().parents[2]
TIME_LIKE = ("seconds", "_s")
TEMPLATE_DIR = Path(__file__).parent / "templates"


# ----------------------------------------------------------------------------- running notebooks
# glibc re-maps large activation buffers on every step unless told to keep them; set before a
# kernel starts, this cut CPU training time 15-20% here with identical results (also in the Makefile)
FAST_MALLOC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"


# Seconds one cell / one notebook may run before the run is called hung, per profile: twice
# what the profile is sized for on 2 CPU cores (this machine's speed drifts up to 2x between
# hours); standard's whole training often sits in one cell. full is sized for a GPU, unmeasured.
TIME_LIMITS = {"smoke": (900, 1800), "quick": (900, 1800), "standard": (3600, 5400), "full": (3600, 5400)}


def limits_help(which: int) -> str:
    """``TIME_LIMITS`` for one column, as the help text shows it."""
    return " ".join(f"{name} {limits[which]}" for name, limits in TIME_LIMITS.items())


def time_limits(profile: str, cell_timeout: int | None, notebook_timeout: int | None) -> tuple[int, int]:
    """The (cell, notebook) limits in seconds: those given, else the profile's."""
    cell, notebook = TIME_LIMITS[profile]
    return cell_timeout or cell, notebook_timeout or notebook


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
    env.setdefault("GLIBC_TUNABLES", FAST_MALLOC)
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
        print(f"{type(exc).__name__}: {' | '.join(line for line in msg if line.strip())[-400:]}")
        return 1
    return 0


def gpu_for_slot(slot: int, visible: str | None = None) -> str:
    """The GPU a parallel slot's child may see: the slot-th of the user's own
    ``CUDA_VISIBLE_DEVICES`` (``"2,3"``: slot 0 gets GPU 2) if set, else GPU ``slot``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    devices = [d.strip() for d in (visible or "").split(",") if d.strip()]
    return devices[slot] if slot < len(devices) else str(slot)


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
                           gpu=gpu_for_slot(slot) if jobs > 1 else None, position=slot, kernel=kernel, extra=extra)
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        return list(pool.map(task, notebooks))


def run_cluster(scheduler: str, notebooks: list[Path], out_dir: Path, seeds: list[int], jobs: int = 1,
                **run_kwargs) -> list[dict]:
    """Run notebooks x seeds on Dask (``cluster.run_nightly``). Dask is imported only here: it
    is the optional ``cluster`` extra, and a plain local run needs none of it."""
    try:
        from . import cluster
    except ImportError as exc:
        if exc.name not in ("dask", "distributed"):
            raise
        raise SystemExit("--scheduler runs notebooks on Dask, which is not installed: "
                         "pip install -e .[cluster]") from exc
    return cluster.run_nightly(scheduler, notebooks, out_dir, seeds, run_one, jobs, **run_kwargs)


# ----------------------------------------------------------------------------- baselines
def metric_value(m) -> tuple[float | None, bool]:
    """(value, higher_is_better) from a recorded metric (a number or {"value", "higher_is_better"})."""
    if isinstance(m, dict):
        v = m.get("value")
        return (float(v) if isinstance(v, (int, float)) else None), bool(m.get("higher_is_better", True))
    return (float(m) if isinstance(m, (int, float)) and not isinstance(m, bool) else None), True


def default_tolerance(name: str, value: float, timing: bool = False) -> float:
    """How far a metric may move in the bad direction before it counts as a regression:
    50% for times (marked ``timing``, named ``*seconds``/``*_s``, or with ``seconds`` as a word of
    the name, as ``train_seconds_fixed``: they depend on machine load), else 5% of the value plus
    0.01."""
    if timing or name.endswith(TIME_LIKE) or "seconds" in name.split("_"):
        return 0.5 * abs(value)
    return 0.05 * abs(value) + 0.01


def verdict_keys(verdicts: list[dict]) -> list[tuple[str, dict]]:
    """(claim ID, verdict) pairs: one verdict per claim per notebook (``experiment.record``
    refuses more). A results file written before that rule may judge a claim twice: its last
    verdict is the one kept."""
    return list({v["claim"]: v for v in verdicts}.items())


def baseline_entry(entry) -> dict:
    """A baseline's verdict for one claim as ``{"verdict", "kind"}``; an old baseline holds a
    plain verdict string, whose kind is unknown (None)."""
    if isinstance(entry, dict):
        return {"verdict": entry.get("verdict"), "kind": entry.get("kind")}
    return {"verdict": entry, "kind": None}


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
        env = res.get("environment", {})
        doc["notebooks"][rec["notebook"]] = {
            "metrics": metrics,
            "verdicts": {k: baseline_verdict(v) for k, v in verdict_keys(res.get("verdicts", []))},
            # the last recorded run: what tools/timings writes into the notebooks (never typed)
            "run": {"duration_s": round(float(rec.get("duration_s") or res.get("duration_s") or 0), 1),
                    "finished": res.get("finished"),
                    "device": env.get("device", res.get("device")), "torch": env.get("torch"),
                    "git_commit": env.get("git_commit")}}
    return doc


def baseline_verdict(v: dict) -> dict:
    """A verdict as the baseline keeps it: verdict, kind, and the smallest effect the run could
    have detected (in its unit; accuracy as a fraction), so a later run can say whether it was
    at least as sensitive."""
    ev = v.get("evidence") or {}
    de = ev.get("detectable_effect")
    de = float(de) if isinstance(de, (int, float)) and math.isfinite(de) else None
    return {"verdict": v["verdict"], "kind": v.get("kind", "experiment"), "detectable_effect": de,
            "unit": ev.get("unit", "") if de is not None else None}


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
    """Every verdict recorded by every notebook, with its kind (experiment or demonstration),
    claim text, source document, evidence and the baseline's verdict and kind (``changed`` is
    True when the verdict, or a known kind, differs from the baseline's)."""
    claims, rows = load_claims(), []
    for rec in records:
        base = baseline.get("notebooks", {}).get(rec["notebook"], {}).get("verdicts", {})
        for key, v in verdict_keys((rec.get("results") or {}).get("verdicts", [])):
            info = claims.get(v["claim"], {})
            old = baseline_entry(base.get(key))
            kind = v.get("kind", "experiment")
            rows.append({"claim": v["claim"], "kind": kind, "text": info.get("claim", v.get("text", "")),
                         "source": info.get("source", ""), "notebook": rec["notebook"],
                         "verdict": v["verdict"], "summary": v.get("summary", ""),
                         "evidence": v.get("evidence", {}), "baseline_verdict": old["verdict"],
                         "baseline_kind": old["kind"],
                         "changed": old["verdict"] is not None and (old["verdict"] != v["verdict"]
                                                                    or old["kind"] not in (None, kind))})
    return sorted(rows, key=lambda r: (r["claim"].split("-")[0], int(r["claim"].split("-")[1]), r["notebook"]))


def ledger_summary(ledger: list[dict]) -> dict:
    """Counts of the ledger's verdicts, experiments apart from demonstrations (which never count
    as support): ``{"experiment": {verdict: n}, "demonstration": {verdict: n}, "line": words}``."""
    counts = count_verdicts(ledger)
    return {**counts, "line": counts_line(counts)}


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
    """A report cell: a dash for no value, four significant digits for a float, else the text."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def md_cell(v) -> str:
    """``fmt(v)`` made safe inside a Markdown table cell: ``|`` escaped, line breaks as ``<br>``,
    ``<``/``>``/``&`` as entities (an error text may hold any of them)."""
    return "<br>".join(html.escape(fmt(v), quote=False).replace("|", "\\|").splitlines())


def data_uri(path: Path) -> str:
    """A PNG as a ``data:`` URI, so report.html is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def link(path, out_dir: Path) -> str:
    """A relative, URL-quoted link from the report folder to ``path``."""
    return urllib.parse.quote(Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix())


KIND_ORDER = ("experiment", "demonstration")


def verdict_groups(ledger: list[dict]) -> list[dict]:
    """Verdict counts for the summary: one group for the whole ledger, or, when ledger rows carry a
    ``kind`` ("experiment" / "demonstration"), one group per kind, experiments first, because a
    demonstration's verdict is not evidence about the rule of thumb the way an experiment's is."""
    def counted(rows):
        c = Counter(r["verdict"] for r in rows)
        return sorted(c.items(), key=lambda kv: (VERDICTS.index(kv[0]) if kv[0] in VERDICTS else len(VERDICTS), kv[0]))
    if not any(r.get("kind") for r in ledger):
        return [{"kind": None, "label": "Verdicts", "counts": counted(ledger)}]
    kinds = sorted({r.get("kind") or "" for r in ledger},
                   key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k))
    return [{"kind": k or None, "label": f"Verdicts of {k}s" if k else "Verdicts without a kind",
             "counts": counted([r for r in ledger if (r.get("kind") or "") == k])} for k in kinds]


def report_context(out_dir: Path, records: list[dict], rows: list[dict], ledger: list[dict], env: dict) -> dict:
    """Everything the report templates show, as plain values: summary counts first, then the
    notebooks (each linked to its executed copy), the claims ledger, the metrics and figures."""
    failed = [r["notebook"] for r in records if r["status"] != "ok"]
    status = Counter(r["status"] for r in rows)
    counts = {"ok": len(records) - len(failed), "failed": len(failed), "regression": status["regression"],
              "missing": status["missing"], "improved": status["improved"],
              "changed": sum(bool(r["changed"]) for r in ledger)}
    headline = (f"{counts['ok']}/{len(records)} notebooks ran, {counts['regression']} regression(s), "
                f"{counts['changed']} verdict change(s)")
    notebooks = [{"notebook": r["notebook"] + (f" (seed {r['seed']})" if "seed" in r else ""), "status": r["status"],
                  "duration": f"{r.get('duration_s') or 0:.0f}", "error": r.get("error") or "",
                  "link": link(r["executed"], out_dir) if r.get("executed") else ""}  # a lost run has no copy
                 for r in records]
    figures = [{"notebook": r["notebook"], "name": Path(f).stem, "path": Path(f), "link": link(f, out_dir)}
               for r in records for f in ((r.get("results") or {}).get("figures") or []) if Path(f).exists()]
    return {"env": env, "headline": headline, "counts": counts, "failed": failed,
            "verdict_groups": verdict_groups(ledger), "notebooks": notebooks, "has_kind": any("kind" in r for r in ledger),
            "ledger": [{"kind": None, **r} for r in ledger], "metrics": rows, "figures": figures}


def templates(kind: str) -> jinja2.Environment:
    """The Jinja2 environment for ``kind`` "md" or "html". Both format every value with ``fmt``;
    HTML autoescapes, Markdown passes every value through ``md_cell``."""
    common = {"loader": jinja2.FileSystemLoader(TEMPLATE_DIR), "trim_blocks": True, "lstrip_blocks": True,
              "keep_trailing_newline": True, "undefined": jinja2.StrictUndefined}
    if kind == "md":
        return jinja2.Environment(autoescape=False, finalize=md_cell, **common)
    env = jinja2.Environment(autoescape=True, finalize=fmt, **common)
    env.filters["data_uri"] = data_uri
    env.filters["css"] = lambda name: str(name).replace(" ", "-")
    return env


def site_link(page: str | None, out_dir: Path, site_url: str | None = None) -> str:
    """The link from the report to a notebook's page on the course website: under ``site_url``
    where the site is published, else relative to where ``make site`` builds it
    (site/_build/html in the checkout)."""
    if not page:
        return ""
    if site_url:
        return site_url.rstrip("/") + "/" + page
    return link(ROOT / "site" / "_build" / "html" / page, out_dir)


def write_report(out_dir: Path, records: list[dict], rows: list[dict], ledger: list[dict], env: dict,
                 site_url: str | None = None) -> tuple[Path, Path]:
    """Write report.md and report.html (figures embedded in the HTML) and summary.json. Each
    notebook links to its executed copy and to its page on the course website (``site_url``
    where published; else the local ``make site`` build)."""
    out_dir = Path(out_dir)
    ctx = report_context(out_dir, records, rows, ledger, env)
    for nb, r in zip(ctx["notebooks"], records):
        nb["site"] = site_link(r.get("site_page"), out_dir, site_url)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(templates("md").get_template("nightly_report.md.j2").render(ctx))
    html_path.write_text(templates("html").get_template("nightly_report.html.j2").render(ctx))
    summary = {"environment": env, "notebooks": [{k: v for k, v in r.items() if k != "results"} for r in records],
               "metrics": rows, "claims": ledger, "headline": ctx["headline"], "counts": ctx["counts"],
               "verdict_groups": ctx["verdict_groups"]}
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
        for claim, entry in sorted(doc["verdicts"].items()):
            b, e = baseline_entry(before.get("verdicts", {}).get(claim)), baseline_entry(entry)
            if b["verdict"] != e["verdict"] or b["kind"] not in (None, e["kind"]):
                kinds = f" ({b['kind']} -> {e['kind']})" if b["kind"] not in (None, e["kind"]) else ""
                lines.append(f"~ {nb} {claim}: {b['verdict']} -> {e['verdict']}{kinds}")
    return lines


def parse_value(text: str):
    """A command-line parameter value: JSON if it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with each option's default and the module docstring's examples as written."""


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m course_lib.tools.nightly``."""
    p = argparse.ArgumentParser(prog="python -m course_lib.tools.nightly", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--profile", default="quick", choices=["smoke", "quick", "standard", "full"],
                   help="data and epoch budget (standard: CPU verdicts that matter, 20-30 min a notebook)")
    p.add_argument("--seed", type=int, default=0, help="seed injected into every notebook")
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="folder of notebooks")
    p.add_argument("--only", nargs="*", default=[],
                   help="notebook names or number prefixes to run, e.g. 00 03_dropout_placement; none: all")
    p.add_argument("--out", default=str(ROOT / "reports" / "nightly-{profile}-{time}"),
                   help="report folder; {profile} and {time} are filled in")
    p.add_argument("--baselines", type=Path, default=ROOT / "baselines", help="folder of <profile>.json baselines")
    p.add_argument("--update-baselines", action="store_true", help="accept this run's values as the new baseline")
    p.add_argument("--cell-timeout", type=positive_int, default=argparse.SUPPRESS,
                   help="seconds one cell may run; default: the profile's, " + limits_help(0))
    p.add_argument("--notebook-timeout", type=positive_int, default=argparse.SUPPRESS,
                   help="seconds one notebook may run; default: the profile's, " + limits_help(1))
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="notebooks at a time, one GPU each (capped at the number of GPUs; 1 without a GPU)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel the notebooks run in")
    p.add_argument("--site-url", default=None,
                   help="where the course website is published (the report links each notebook's page there); "
                        "default: the local build of make site")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local",
                   help="run on a Dask cluster: its scheduler (tcp://HOST:8786), or 'local' for one on this "
                        "machine (one worker per GPU, else --jobs CPU workers); needs pip install -e .[cluster]")
    p.add_argument("--seeds", type=parse_seeds, default=None, metavar="0,1,2",
                   help="run every notebook once per seed (with --scheduler); the ledger combines the seeds")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="extra parameter injected into every notebook (VALUE parsed as JSON, else a string)")
    return p


def select_notebooks(notebooks: list[Path], only: list[str]) -> tuple[list[Path], list[str]]:
    """The notebooks named in ``only`` (by stem or two-digit prefix; all when ``only`` is empty),
    and the names in ``only`` that match none of them."""
    if not only:
        return notebooks, []
    def matches(nb: Path, name: str) -> bool:
        return name in (nb.stem, nb.stem[:2])
    unmatched = [name for name in only if not any(matches(nb, name) for nb in notebooks)]
    return [nb for nb in notebooks if any(matches(nb, name) for name in only)], unmatched


def cap_jobs(jobs: int, gpus: int) -> tuple[int, str | None]:
    """How many notebooks may run at once, and why fewer than asked (None if not capped).

    Each parallel notebook gets one GPU; more jobs than GPUs would run the extra notebooks on
    the CPU, and parallel notebooks on a CPU-only machine only fight over its cores."""
    if gpus == 0 and jobs > 1:
        return 1, (f"--jobs {jobs}: no GPU here, so one notebook at a time "
                   "(parallel notebooks would share the CPU cores and each run slower)")
    if gpus and jobs > gpus:
        return gpus, f"--jobs {jobs}: only {gpus} GPU(s), so {gpus} notebook(s) at a time (one per GPU)"
    return jobs, None


def gpu_count() -> int:
    """CUDA devices visible to this process (0 without torch's CUDA)."""
    import torch  # here: --help and argument errors need no torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(*argv[1:])
    p = build_parser()
    a = p.parse_args(argv)

    found = find_notebooks(a.notebooks)
    notebooks, unmatched = select_notebooks(found, a.only)
    if unmatched:
        print(f"--only {' '.join(unmatched)}: no such notebook in {a.notebooks}; the notebooks are:\n  "
              + ("\n  ".join(nb.stem for nb in found) or "(none)"), file=sys.stderr)
        return 2
    if not notebooks:
        print(f"no notebooks found in {a.notebooks}", file=sys.stderr)
        return 2
    a.cell_timeout, a.notebook_timeout = time_limits(a.profile, getattr(a, "cell_timeout", None),
                                                     getattr(a, "notebook_timeout", None))
    seeds = a.seeds or [a.seed]
    if a.seeds and not a.scheduler:
        p.error("--seeds runs notebooks x seeds as Dask tasks: add --scheduler local (or a scheduler's address)")
    if len(seeds) > 1 and a.update_baselines:
        p.error("a baseline holds one run per notebook: update it from a single seed (--seed N)")
    jobs, why = cap_jobs(a.jobs, gpu_count())
    if why:
        print(f"nightly: {why}", file=sys.stderr)
    out = Path(a.out.replace("{profile}", a.profile).replace("{time}", time.strftime("%Y%m%d-%H%M%S")))
    out.mkdir(parents=True, exist_ok=True)
    extra = {name: parse_value(value) for name, value in a.param}
    if a.scheduler:
        print(f"nightly: {len(notebooks)} notebooks x seeds {seeds}, profile {a.profile}, on Dask -> {out}")
        records = run_cluster(a.scheduler, notebooks, out, seeds, jobs, profile=a.profile,
                              cell_timeout=a.cell_timeout, limit=a.notebook_timeout, kernel=a.kernel, extra=extra)
    else:
        print(f"nightly: {len(notebooks)} notebooks, profile {a.profile}, seed {a.seed}, {jobs} at a time -> {out}")
        records = run_all(notebooks, out, a.profile, a.seed, a.cell_timeout, a.notebook_timeout, jobs, a.kernel, extra)

    base_file = a.baselines / f"{a.profile}.json"
    baseline = json.loads(base_file.read_text()) if base_file.exists() else {"notebooks": {}}
    rows, ledger = compare_metrics(records, baseline), claims_ledger(records, baseline)
    if len(seeds) > 1:  # each notebook once per seed: say which seed each row is, pool the seeds' verdicts
        rows = [{**row, "seed": r["seed"]} for r in records for row in compare_metrics([r], baseline)]
        ledger = combine_seeds({s: [r for r in records if r["seed"] == s] for s in seeds}, baseline)
    md, html_path = write_report(out, records, rows, ledger, site_url=a.site_url, env=
                                 environment(a.profile, ",".join(map(str, seeds)) if a.scheduler else a.seed))
    for r in records:
        name = f"{r['notebook']} (seed {r['seed']})" if "seed" in r else r["notebook"]
        print(f"  {name:40s} {r['status']:7s} {r['duration_s']:6.0f} s  {r['error'] or ''}")
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
