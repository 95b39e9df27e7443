"""Set-up files agree with each other."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # Python 3.10, which pyproject.toml accepts: pip's vendored copy
    from pip._vendor import tomli as tomllib

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
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["nbval"].startswith("0.11") and int(pins["pytest"].split(".")[0]) < 9


def test_ci_runs_the_lint_and_the_readme_test_command_and_nothing_else():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert lines == ["make lint", "make test"]
    assert "make test" in (ROOT / "README.md").read_text() and "make lab" in (ROOT / "README.md").read_text()


def test_make_lab_starts_jupyterlab_on_the_notebooks(tmp_path):
    """The README's launch command, as written (also as root, where Jupyter needs --allow-root)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / "lab.log"
    args = "--no-browser --IdentityProvider.token=t0k --ServerApp.port_retries=0"
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "lab", f"PORT={port}", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, contents = time.monotonic() + 120, None
        while contents is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents",
                                             headers={"Authorization": "token t0k"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    contents = json.loads(r.read())
            except OSError:
                time.sleep(0.5)
        assert contents is not None, f"make lab did not serve (exit {proc.poll()}):\n{log.read_text()[-2000:]}"
        names = {item["name"] for item in contents["content"]}
        assert "00_baseline_and_sanity_checks.ipynb" in names  # the server is rooted at notebooks/
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
