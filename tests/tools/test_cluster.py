"""The nightly run on Dask: notebooks x seeds on a two-worker cluster, one ledger pooling the
seeds through the course's decision rule, and a worker killed mid-run reported for its notebook
while the other notebooks' results are kept. Planted notebooks only (no training, no torch)."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # a dependency of distributed (the dev extra includes the cluster one)
import pytest

from course_lib.core import claims
from course_lib.tools import cluster
from course_lib.tools.seeds import combine_seeds

from .planted import planted as write_planted

ROOT = Path(__file__).resolve().parents[2]
PARAMS = 'profile = "auto"\nseed = 0\nresults_dir = "results"\ninteractive = True\nmarker = ""\n'
# Seed 0 alone supports DO-1, seed 1 alone is inconclusive; pooled, the rule decides again.
T = [[0.80, 0.81], [0.78, 0.90]]
C = [[0.70, 0.70], [0.70, 0.70]]
WRITE = ('import json, pathlib\n'
         'out = pathlib.Path(results_dir)\nout.mkdir(parents=True, exist_ok=True)\n'
         '(out / "fig.png").write_bytes(b"png" + bytes([seed]))\n'
         '(out / f"{NAME}.json").write_text(json.dumps({"notebook": NAME, "metrics": {"acc": 0.5},\n'
         '    "verdicts": verdicts, "figures": [str(out / "fig.png")]}))\n')
POOLED = (f'from course_lib.core import claims\nNAME = "01_pooled"\nT, C = {T}, {C}\n'
          'verdicts = [claims.compare("DO-1", T[seed], C[seed], "val acc", label_t="dropout", label_c="none"),\n'
          '            claims.check_range("DBG-1", 2.3 + 0.01 * seed, 2.0, 2.5, "initial loss")]\n' + WRITE)
SLEEPER = ('import json, pathlib, time, psutil\nNAME = "02_sleeper"\nif seed == 0:\n'
           '    pathlib.Path(marker).write_text(json.dumps([p.pid for p in psutil.Process().parents()]))\n'
           '    time.sleep(120)\nverdicts = []\n' + WRITE)


def planted(nb_dir: Path, name: str, body: str):
    return write_planted(nb_dir, name, body, PARAMS)


def nightly(*args, tmp: Path, **popen) -> subprocess.Popen:
    """The nightly CLI in a child process; its workers' kernels import this checkout's course_lib."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "course_lib.tools.nightly", "--profile", "smoke",
                             "--baselines", str(tmp / "none"), "--cell-timeout", "120", "--notebook-timeout", "300",
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The nightly CLI against a two-worker local cluster (processes, one thread each): two
    notebooks x seeds 0,1; the worker running 02_sleeper's seed 0 is killed mid-run."""
    tmp = tmp_path_factory.mktemp("cluster")
    nb_dir = tmp / "nbs"
    nb_dir.mkdir()
    planted(nb_dir, "01_pooled", POOLED)
    planted(nb_dir, "02_sleeper", SLEEPER)
    marker, out = tmp / "sleeping.json", tmp / "report"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(ROOT))  # the workers' kernels import this checkout
        local = cluster.local_cluster(cpu_workers=2)
    with local:
        from distributed import Client
        with Client(local) as client:
            assert cluster.slots(client) == (2, None)  # two CPU workers, one run each at a time
            pids = client.run(os.getpid)
        proc = nightly("--notebooks", str(nb_dir), "--out", str(out), "--scheduler", local.scheduler_address,
                       "--seeds", "0,1", "-p", "marker", str(marker), tmp=tmp)
        try:
            while not (marker.exists() and marker.read_text()) and proc.poll() is None:
                time.sleep(0.2)
            assert marker.exists(), proc.communicate()[0]
            holder = set(pids.values()) & set(json.loads(marker.read_text()))
            assert len(holder) == 1, "the sleeping notebook should run under one of the two workers"
            worker = psutil.Process(holder.pop())
            for p in [worker, *worker.children(recursive=True)]:  # the machine is gone: all of it
                p.send_signal(signal.SIGKILL)
            log, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert (out / "summary.json").exists(), log
    return proc.returncode, log, out, json.loads((out / "summary.json").read_text())


def test_two_seeds_give_one_ledger_pooled_through_the_decision_rule(run):
    _, log, out, summary = run
    ledger = {(c["notebook"], c["claim"]): c for c in summary["claims"]}
    assert set(ledger) == {("01_pooled", "DO-1"), ("01_pooled", "DBG-1")}, log

    expected = claims.compare("DO-1", T[0] + T[1], C[0] + C[1], "val acc", label_t="dropout", label_c="none")
    do1 = ledger[("01_pooled", "DO-1")]
    assert do1["per_seed"] == {"0": "supported", "1": "inconclusive"}
    assert do1["verdict"] == expected["verdict"] == "supported"
    assert do1["evidence"]["effect"] == pytest.approx(expected["evidence"]["effect"])
    assert do1["evidence"]["arms"] == expected["evidence"]["arms"]
    assert do1["stability"] == "1/2" and "1/2 agree" in do1["summary"]

    dbg1 = ledger[("01_pooled", "DBG-1")]  # a range check has no measured arms: each seed's verdict
    assert dbg1["verdict"] == "not poolable" and dbg1["per_seed"] == {"0": "supported", "1": "supported"}
    assert dbg1["stability"] == "2/2"
    assert "not poolable" in (out / "report.md").read_text()


def test_runs_come_back_from_the_workers_with_their_notebooks_results_and_figures(run):
    _, log, out, summary = run
    runs = {(n["notebook"], n["seed"]): n for n in summary["notebooks"]}
    assert set(runs) == {(nb, s) for nb in ("01_pooled", "02_sleeper") for s in (0, 1)}
    for seed in (0, 1):
        assert runs[("01_pooled", seed)]["worker"].startswith("tcp://")
        assert (out / f"seed-{seed}" / "executed" / "01_pooled.ipynb").exists()
        assert json.loads((out / f"seed-{seed}" / "results" / "01_pooled.json").read_text())["verdicts"], log
        assert (out / f"seed-{seed}" / "results" / "fig.png").read_bytes() == b"png" + bytes([seed])


def test_a_worker_killed_mid_run_is_reported_and_the_other_results_are_kept(run):
    returncode, log, _, summary = run
    status = {(n["notebook"], n["seed"]): n for n in summary["notebooks"]}
    assert status[("02_sleeper", 0)]["status"] == "lost", log
    assert "was lost while running it" in status[("02_sleeper", 0)]["error"]
    assert [status[k]["status"] for k in (("01_pooled", 0), ("01_pooled", 1), ("02_sleeper", 1))] == ["ok"] * 3
    assert "02_sleeper (seed 0)" in log and returncode == 1
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if "02_sleeper.ipynb" in " ".join(p.info["cmdline"] or [])]
    assert not left, f"processes left behind: {left}"
    tmp = Path(tempfile.gettempdir())
    left = [*tmp.glob("nightly-*/notebooks/02_sleeper.ipynb"),
            *tmp.glob("dask-scratch-space/*/nightly-*/notebooks/02_sleeper.ipynb")]
    assert not left, f"the lost run's scratch folder was left: {left}"


def test_a_local_cluster_gives_each_gpu_its_own_worker_seeing_only_that_gpu(monkeypatch):
    """(No GPU needed: the workers only declare them.)"""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    client, local = cluster.connect("local", gpus=2, cpu_workers=7)
    with local, client:
        assert cluster.slots(client) == (2, {"GPU": 1})
        assert sorted(client.nthreads().values()) == [1, 1]
        env = client.run(lambda: dict(__import__("os").environ))  # each worker's own environment
        assert sorted(e["CUDA_VISIBLE_DEVICES"] for e in env.values()) == ["3", "5"]
        assert {e["OMP_NUM_THREADS"] for e in env.values()} == {str(max(os.cpu_count() // 2, 1))}


def verdict(claim_id, t, c, **kw):
    return claims.compare(claim_id, t, c, "acc", **kw)


def test_all_of_is_pooled_part_by_part_and_a_missing_seed_is_left_out():
    def parts(s):
        return {"high": verdict("SC-1", T[s], C[s]), "low": verdict("SC-1", C[s], T[s], expect="lower")}
    records = {s: [{"notebook": "04", "status": "ok", "results": {"verdicts": [claims.all_of("SC-1", parts(s))]}}]
               for s in (0, 1)}
    records[2] = [{"notebook": "04", "status": "lost", "results": None}]
    (row,) = combine_seeds(records)
    expected = claims.all_of("SC-1", {"high": verdict("SC-1", T[0] + T[1], C[0] + C[1]),
                                      "low": verdict("SC-1", C[0] + C[1], T[0] + T[1], expect="lower")})
    assert row["per_seed"] == {0: "supported", 1: "inconclusive"}
    assert row["verdict"] == expected["verdict"] == "supported"
    assert row["evidence"]["parts"]["high"]["evidence"]["effect"] == pytest.approx(
        expected["evidence"]["parts"]["high"]["evidence"]["effect"])
    assert row["stability"] == "1/2"


def test_pooled_verdict_keeps_pairs_and_compares_with_the_baseline():
    records = {s: [{"notebook": "03", "status": "ok", "results": {"verdicts": [
        verdict("DO-1", [1.0, 2.0], [0.0, 1.0 + s]), verdict("DO-2", [0.5], [0.4])]}}] for s in (0, 1)}
    baseline = {"notebooks": {"03": {"verdicts": {"DO-1": {"verdict": "supported", "kind": "experiment"},
                                                  "DO-2": "supported"}}}}  # new and old baseline forms
    rows = combine_seeds(records, baseline)
    assert [r["key"] for r in rows] == ["DO-1", "DO-2"]
    assert rows[0]["evidence"]["arms"] == {"treatment": [1.0, 2.0, 1.0, 2.0], "control": [0.0, 1.0, 0.0, 2.0]}
    assert rows[0]["verdict"] == verdict("DO-1", [1.0, 2.0] * 2, [0.0, 1.0, 0.0, 2.0])["verdict"] == "inconclusive"
    assert rows[0]["changed"] is True and rows[0]["baseline_verdict"] == "supported"
    # one run per arm is too few for either seed; pooled, two runs per arm are enough
    assert rows[1]["per_seed"] == {0: "inconclusive", 1: "inconclusive"}
    assert rows[1]["verdict"] == "supported" and rows[1]["stability"] == "0/2" and not rows[1]["changed"]
    assert rows[1]["kind"] == "experiment"


def test_seeds_need_a_scheduler_and_bad_seeds_are_refused(tmp_path, capsys):
    from course_lib.tools import nightly as cli
    for args, message in ((["--seeds", "0,1"], "add --scheduler local"), (["--seeds", "0,x"], "comma-separated"),
                          (["--seeds", "1,1", "--scheduler", "local"], "distinct"),
                          (["--seeds", "0,1", "--scheduler", "local", "--update-baselines"], "single seed")):
        with pytest.raises(SystemExit):
            cli.main(["--notebooks", str(ROOT / "notebooks"), "--out", str(tmp_path / "out"), *args])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_nightly_imports_no_dask_unless_asked_for_a_scheduler():
    code = "import sys, course_lib.tools.nightly; print(sorted({'dask', 'distributed'} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.stdout.strip() == "[]", r.stderr
