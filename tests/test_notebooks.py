"""Notebooks: committed clean, follow the contract, and run headless through papermill.

(nbval executes every notebook in the smoke profile as part of the same pytest run: see
``--nbval-lax`` in pyproject.toml.)
"""
import json
import re
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from course_lib.core.claims import VERDICTS, load_claims
from course_lib.core.experiment import pick

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
REQUIRED_PARAMS = ("profile", "seed", "results_dir", "interactive")


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_baseline_and_sanity_checks.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_contract(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assigned = set(re.findall(r"^(\w+)\s*=", tagged[0].source, flags=re.M))
    assert set(REQUIRED_PARAMS) <= assigned
    # papermill's parameter inspection skips a line whose comment holds "="
    assert not [line for line in tagged[0].source.splitlines() if "#" in line and "=" in line.split("#", 1)[1]]
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    ids = set(re.findall(r"\b([A-Z]+-\d+)\b", first.source)) - {"CIFAR-10"}
    assert ids and ids <= set(load_claims()), "the first cell names the claims tested, by known IDs"
    assert re.search(r"(Time|Budget)s? per profile.*`smoke`.*`quick`.*`full`", first.source, flags=re.S), \
        "the first cell states the budget or time per profile"
    assert any(c.cell_type == "code" and "experiment.record(" in c.source for c in nb.cells), "the results are recorded"
    nbformat.validate(nb)


def test_papermill_runs_00_with_injected_parameters(tmp_path):
    out = tmp_path / "00_out.ipynb"
    pm.execute_notebook(str(NB_DIR / "00_baseline_and_sanity_checks.ipynb"), str(out), cwd=str(NB_DIR),
                        parameters={"profile": "smoke", "seed": 1, "results_dir": str(tmp_path / "res"),
                                    "interactive": False, "lr": 0.1},
                        kernel_name="python3", progress_bar=False)
    got = json.loads((tmp_path / "res" / "00_baseline_and_sanity_checks.json").read_text())
    assert got["profile"] == "smoke" and got["seed"] == 1 and got["params"]["lr"] == 0.1
    assert {v["claim"] for v in got["verdicts"]} == {"DBG-1", "DBG-2", "DBG-3", "INIT-1"}
    assert all(v["verdict"] in VERDICTS and v["summary"] for v in got["verdicts"])
    assert 0.0 <= got["metrics"]["test_acc"]["value"] <= 1.0
    # the record carries its duration; how long it took is for reports, never a pass/fail test
    assert isinstance(got["duration_s"], (int, float)) and got["duration_s"] > 0
    executed = nbformat.read(out, as_version=4)
    assert not any(o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", []))


# The notebook sections that only `standard` (and `full`) run by default, switched on in `smoke`, so
# that CI runs them too: notebook, parameters, and the params entry that records the switch. (04,
# 05, 07 and 08 run the same cells with either net; their lessons' baseline paths have unit tests,
# and four more papermill runs would cost CI about 2.5 minutes. 01 too runs the same cells, but
# its lesson's range test and trainings have no unit test with the baseline net's keywords.)
STANDARD_PATHS = [("01_lr_range_test", {"net": "baseline"}, ("net", "baseline")),
                  ("02_batch_size_lr_coupling", {"lr4_net": "baseline"}, ("lr4_net", "baseline")),
                  ("03_dropout_placement", {"large_net": "baseline"}, ("large_net", "baseline")),
                  ("10_optimizers_and_momentum", {"opt1_net": "baseline"}, ("opt1", {"net": "baseline"})),
                  ("11_init_activations_norm_depth", {"bn1_net": "baseline"}, ("bn1_net", "baseline"))]


@pytest.mark.parametrize("name, params, recorded", STANDARD_PATHS, ids=[p[0][:2] for p in STANDARD_PATHS])
def test_standard_only_code_paths_run_headless_in_smoke(tmp_path, name, params, recorded):
    out = tmp_path / f"{name}_out.ipynb"
    pm.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(out), cwd=str(NB_DIR),
                        parameters={"profile": "smoke", "results_dir": str(tmp_path / "res"),
                                    "interactive": False, **params},
                        kernel_name="python3", progress_bar=False)
    got = json.loads((tmp_path / "res" / f"{name}.json").read_text())
    key, value = recorded
    seen = got["params"][key]
    assert (seen.items() >= value.items()) if isinstance(value, dict) else seen == value
    assert got["verdicts"] and all(v["verdict"] in VERDICTS and v["summary"] for v in got["verdicts"])


KNOBS = {"epochs", "lr", "batch_size", "n_seeds", "seeds", "margin", "level", "min_runs", "steps", "train_size",
         "n_images", "widths", "width", "repeats", "ks", "cycle_epochs", "max_steps"}


def knob_literals(source: str) -> list[str]:
    """Keyword arguments named like a knob (``epochs=2``, ``margin=0.005``) given a number literal
    outside a ``pick(...)`` call: a knob that decides a verdict hidden in a later cell."""
    found = []

    def visit(node, in_pick=False):
        import ast
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            in_pick = in_pick or name == "pick"
            for kw in node.keywords:
                if (not in_pick and kw.arg in KNOBS and isinstance(kw.value, ast.Constant)
                        and isinstance(kw.value.value, (int, float)) and not isinstance(kw.value.value, bool)):
                    found.append(f"{kw.arg}={kw.value.value!r}")
        for child in ast.iter_child_nodes(node):
            visit(child, in_pick)
    import ast
    try:
        visit(ast.parse(source))
    except SyntaxError:
        pass
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_knob_is_declared_before_the_run(path):
    """Contract point: knobs that decide a verdict live in the parameters cell or a pick(...) line,
    and every pick(...) sizes the standard profile too. Exercise solutions may change knobs."""
    nb = nbformat.read(path, as_version=4)
    start = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    hidden, no_standard = [], []
    for i, c in enumerate(nb.cells[start + 1:], start + 1):
        if c.cell_type != "code" or "solution" in c.metadata.get("tags", []):
            continue
        hidden += [f"cell {i}: {k}" for k in knob_literals(c.source)]
        no_standard += [f"cell {i}" for call in re.findall(r"pick\((?:[^()]|\([^()]*\))*\)", c.source)
                        if "standard=" not in call]
    assert not hidden, f"knob literals outside the parameters cell and pick(...): {hidden}"
    assert not no_standard, f"pick(...) without standard=: {no_standard}"


class _Anything:
    """Stands for any notebook variable when a pick(...) line is evaluated on its own."""

    def __getattr__(self, name):
        return self

    def __getitem__(self, key):
        return self


class _Names(dict):
    def __missing__(self, name):
        return _Anything()


def standard_pick_errors(source: str) -> list[str]:
    """Evaluate every pick(...) call in ``source`` for the standard profile; return the failures."""
    def standard_pick(profile, *args, **kwargs):
        return pick("standard", *args, **kwargs)
    errors = []
    for call in re.findall(r"pick\((?:[^()]|\([^()]*\))*\)", source):
        try:
            eval(call, {}, _Names(pick=standard_pick))  # noqa: S307 - the course's own notebooks
        except ValueError as e:
            errors.append(f"{call[:60]}: {e}")
    return errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_pick_line_answers_for_the_standard_profile(path):
    """Contract point (#18): every notebook accepts profile="standard"; evaluating each pick(...)
    for it, without running the notebook, catches a line that has no standard size."""
    nb = nbformat.read(path, as_version=4)
    errors = [e for c in nb.cells if c.cell_type == "code" for e in standard_pick_errors(c.source)]
    assert not errors, errors


def test_the_standard_pick_check_can_fail():
    assert standard_pick_errors("n = pick(p, 1, 2, 3)") != []
    assert standard_pick_errors("n = pick(P, x[::3], None, None, standard=None)") == []


def test_the_knob_check_can_fail():
    assert knob_literals("fit(m, d, epochs=2, lr=0.05)") == ["epochs=2", "lr=0.05"]
    assert knob_literals("n = pick(p, smoke=1, quick=2, full=3, standard=4)\nfit(m, d, epochs=n)") == []
    assert knob_literals("claims.compare('X-1', a, b, 'acc', margin=0.005)") == ["margin=0.005"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_teaching_sections(path):
    """Every notebook teaches: predict-first prompts, what the papers found, takeaways computed
    from the run's verdicts, and 3-5 exercises with hidden solutions."""
    nb = nbformat.read(path, as_version=4)
    starts = [(i, c.source.lstrip()) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
    assert any(re.search(r"^\*\*Predict first\.\*\*", s, flags=re.M) for _, s in starts), \
        "a **Predict first.** prompt"
    papers = [s for _, s in starts if s.startswith("## What the papers found")]
    assert papers and re.search(r"\b(19|20)\d\d\b", papers[0]), "## What the papers found, with cited years"
    take = next((i for i, s in starts if s.startswith("## Takeaways")), None)
    assert take is not None, "## Takeaways"
    code_after = next(c for c in nb.cells[take + 1:] if c.cell_type == "code")
    assert "show_takeaways(" in code_after.source, "the takeaways are computed: show_takeaways(verdicts, ...)"
    ex = next((i for i, s in starts if s.startswith("## Exercises")), None)
    assert ex is not None, "## Exercises"
    solutions = [c for c in nb.cells[ex:] if "solution" in c.metadata.get("tags", [])]
    assert 3 <= len(solutions) <= 5, f"3-5 exercises with a solution each, got {len(solutions)}"
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions), "solutions start hidden"


TYPED_TIME = re.compile(r"\b\d+(\.\d+)?\s*(s|sec|seconds|min|minutes)\b(?! (on|of) one GPU)")


def typed_times(first_cell: str) -> list[str]:
    """Durations written in a first cell outside the generated ``<!-- times -->`` block (a budget
    may say "sized for 20-30 minutes"; a measured time must come from the generator)."""
    start, end = first_cell.find("<!-- times -->"), first_cell.find("<!-- /times -->")
    outside = first_cell[:start] + first_cell[end:] if 0 <= start < end else first_cell
    found = [m.group(0) for m in TYPED_TIME.finditer(outside)]
    return [t for t in found
            if not re.search(rf"\b(for|about|within|under|in)\s+(about\s+)?[\d-]*{re.escape(t)}", outside)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_states_work_budgets_and_generated_times(path):
    first = nbformat.read(path, as_version=4).cells[0].source
    assert "<!-- times -->" in first and "<!-- /times -->" in first, \
        "the first cell needs the generated times block: run python -m course_lib.tools.timings"
    assert typed_times(first) == [], "a measured time typed by hand: state the budget in work instead"


def test_the_typed_time_check_can_fail():
    assert typed_times("**Budget.** quick took 3 min 25 s.\n<!-- times -->\nx 80 s\n<!-- /times -->") == ["3 min", "25 s"]
    assert typed_times("sized for 20-30 minutes on 2 cores") == []


CODE_LINE_LIMIT = 88  # the course writes code cells to 80 characters; this leaves a little slack


def long_code_lines(cells, limit=CODE_LINE_LIMIT):
    """'cell i: line' for every code line longer than limit (a line holding a URL is allowed)."""
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        found += [f"cell {i}: {line}" for line in source.splitlines()
                  if len(line) > limit and "://" not in line]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_are_short(path):
    """Code cells are read on a slide and beside a lesson module: short lines, wrapped inside
    brackets, not a horizontal scroll."""
    nb = nbformat.read(path, as_version=4)
    long = long_code_lines(nb.cells)
    assert not long, f"code lines over {CODE_LINE_LIMIT} characters: {long}"


def test_the_line_check_can_fail():
    cells = [{"cell_type": "code", "source": "x = 1\n" + "y = " + "1 + " * 30 + "1\n"},
             {"cell_type": "markdown", "source": "a long markdown line " * 10},
             {"cell_type": "code", "source": "# see https://example.org/" + "a" * 90}]
    assert [line[:8] for line in long_code_lines(cells)] == ["cell 0: "]
    assert long_code_lines(cells, limit=200) == []
    profile = [{"cell_type": "code", "source": "n = pick(p, 1, 2, 3, standard=4)  # " + "x" * 90}]
    assert len(long_code_lines(profile)) == 1
