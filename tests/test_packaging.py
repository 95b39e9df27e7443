"""Set-up files agree with each other."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}


def parse_req(s):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", s)
    name = m.group(1).lower().replace("_", "-")
    return CONDA_NAMES.get(name, name), m.group(2).replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(parse_req(r) for r in py["dependencies"] + py["optional-dependencies"]["dev"])
    listed = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("dependencies:"):].splitlines():
        m = re.match(r"^\s*-\s+([A-Za-z][^#]*?)\s*(#.*)?$", line)
        if m and m.group(1) not in ("pip", "pip:") and not m.group(1).startswith(("python", "-e")):
            name, spec = parse_req(m.group(1))
            listed[name] = spec
    assert listed == wanted


def test_constraints_pin_a_matching_torch_pair_and_an_nbval_compatible_pytest():
    pins = dict(l.split("==") for l in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in l and not l.startswith("#"))
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["nbval"].startswith("0.11") and int(pins["pytest"].split(".")[0]) < 9


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines()
             if l.strip() and not l.startswith(("#", "set ", "cd "))]
    assert lines == ["make test"]
    assert "make test" in (ROOT / "README.md").read_text() and "make lab" in (ROOT / "README.md").read_text()
