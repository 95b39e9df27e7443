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
    assert re.search(r"Time per profile.*`smoke`.*`quick`.*`full`", first.source, flags=re.S), \
        "the first cell states the time per profile"
    assert "record(" in "".join(c.source for c in nb.cells[-2:]), "the last cells record the results"
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
