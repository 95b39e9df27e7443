"""The times the course states, generated from its last recorded runs (never typed).

    python -m course_lib.tools.timings            # rewrite the generated parts
    python -m course_lib.tools.timings --check    # exit 1, naming the files, if any is stale

``python -m course_lib.tools.nightly --profile P --update-baselines`` keeps, per notebook, the
run it accepted (``baselines/P.json``: ``run.duration_s``, when, on what device, at which
commit). From those this tool writes:

- in each notebook's first cell, the block between ``<!-- times -->`` and ``<!-- /times -->``
  (the rest of the cell states the budget in work: images and epochs, which does not go stale);
- in ``notebooks/README.md``, the table between ``<!-- times-table -->`` and
  ``<!-- /times-table -->``.

A test runs ``--check``, so a time typed by hand, or one left stale after a re-recording, fails.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("quick", "standard", "full")  # smoke's times are CI's business, not a student's
WHERE = {"quick": "2 CPU cores", "standard": "2 CPU cores", "full": "one GPU"}
BLOCK = ("<!-- times -->", "<!-- /times -->")
TABLE = ("<!-- times-table -->", "<!-- /times-table -->")
CLAIM_ID = re.compile(r"\*\*([A-Z]+-\d+)\*\*")


def recorded_runs(baselines: Path) -> dict:
    """``{notebook: {profile: run}}`` from every ``baselines/<profile>.json`` that records runs."""
    runs: dict = {}
    for profile in PROFILES:
        path = Path(baselines) / f"{profile}.json"
        if not path.exists():
            continue
        for nb, doc in json.loads(path.read_text()).get("notebooks", {}).items():
            if isinstance(doc.get("run"), dict) and doc["run"].get("duration_s") is not None:
                runs.setdefault(nb, {})[profile] = doc["run"]
    return runs


def duration(seconds: float) -> str:
    """``45 s`` or ``3 min 05 s``: how a student reads a wait."""
    s = int(round(float(seconds)))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def run_words(profile: str, run: dict | None) -> str:
    """One profile's last recorded time, with where and when it was measured."""
    if not run:
        return f"`{profile}` not recorded yet"
    when = (run.get("finished") or "")[:10]
    facts = ", ".join(x for x in (when, run.get("device"), run.get("torch") and f"torch {run['torch']}",
                                  run.get("git_commit") and f"commit {run['git_commit']}") if x)
    return f"`{profile}` {duration(run['duration_s'])} on {WHERE[profile]} ({facts})"


def times_block(notebook: str, runs: dict) -> str:
    """The generated lines of a notebook's first cell."""
    mine = runs.get(notebook, {})
    body = "; ".join(run_words(p, mine.get(p)) for p in PROFILES)
    return (f"{BLOCK[0]}\n**Last recorded runs** (headless, generated from `baselines/` by "
            f"`python -m course_lib.tools.timings`): {body}.\n{BLOCK[1]}")


def replace_between(text: str, markers: tuple[str, str], new: str, where: str) -> str:
    """``text`` with the span from the first marker to the second (both included) replaced."""
    start, end = text.find(markers[0]), text.find(markers[1])
    if start < 0 or end < start:
        raise ValueError(f"{where}: no {markers[0]} ... {markers[1]} block; add the two marker lines "
                         "where the generated text belongs, then run python -m course_lib.tools.timings")
    return text[:start] + new + text[end + len(markers[1]):]


def claims_of(nb) -> list[str]:
    """The claim IDs a notebook's first cell names in bold, in order."""
    return list(dict.fromkeys(CLAIM_ID.findall(nb.cells[0].source)))


def times_table(notebooks: list[Path], runs: dict) -> str:
    """The README table: one row per notebook, its claims and last recorded time per profile."""
    head = "| notebook | claims | " + " | ".join(f"`{p}`, {WHERE[p]}" for p in PROFILES) + " |"
    rows = [head, "|" + " --- |" * (2 + len(PROFILES))]
    for path in notebooks:
        mine = runs.get(path.stem, {})
        cells = [duration(mine[p]["duration_s"]) if p in mine else "not recorded" for p in PROFILES]
        claims = ", ".join(claims_of(nbformat.read(path, as_version=4)))
        rows.append(f"| `{path.stem}` | {claims} | " + " | ".join(cells) + " |")
    return f"{TABLE[0]}\n" + "\n".join(rows) + f"\n{TABLE[1]}"


def update(nb_dir: Path, baselines: Path, write: bool) -> list[str]:
    """Regenerate every block; returns the files whose text was (or, without ``write``, would
    be) changed."""
    runs = recorded_runs(baselines)
    notebooks = sorted(Path(nb_dir).glob("[0-9][0-9]_*.ipynb"))
    stale = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        new = replace_between(nb.cells[0].source, BLOCK, times_block(path.stem, runs), path.name)
        if new != nb.cells[0].source:
            stale.append(str(path))
            if write:
                nb.cells[0].source = new
                nbformat.write(nb, path)
    readme = Path(nb_dir) / "README.md"
    text = readme.read_text()
    new = replace_between(text, TABLE, times_table(notebooks, runs), str(readme))
    if new != text:
        stale.append(str(readme))
        if write:
            readme.write_text(new)
    return stale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.tools.timings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    p.add_argument("--baselines", type=Path, default=ROOT / "baselines")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a generated part is stale")
    a = p.parse_args(argv)
    try:
        stale = update(a.notebooks, a.baselines, write=not a.check)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if a.check and stale:
        print("stale generated times (run python -m course_lib.tools.timings):\n  " + "\n  ".join(stale),
              file=sys.stderr)
        return 1
    print(("rewrote " if stale else "up to date: ") + (", ".join(stale) or "every notebook and the README table"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
