"""Profiles, setup and the results JSON."""
import json
import shutil
import subprocess

import pytest
import torch

from course_lib.core import claims, experiment as E


def test_profile_resolution(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert E.resolve_profile("auto", torch.device("cpu")) == "quick"
    assert E.resolve_profile("auto", torch.device("cuda")) == "full"
    assert E.resolve_profile("smoke") == "smoke"
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert E.resolve_profile("auto", torch.device("cuda")) == "smoke"
    assert E.resolve_profile("full") == "full"  # an explicit profile wins over the variable
    with pytest.raises(ValueError, match="profile must be one of"):
        E.resolve_profile("fast")


def test_pick_needs_a_standard_size_only_for_the_standard_profile():
    assert E.pick("standard", 1, 2, 3, standard=4) == 4 and E.pick("full", 1, 2, 3, standard=4) == 3
    with pytest.raises(ValueError, match="add standard="):
        E.pick("standard", 1, 2, 3)
    # None is a size ("all images"): standard=None must not read as "not given" (08 once failed so)
    assert E.pick("standard", 500, None, None, standard=None) is None
    with pytest.raises(ValueError, match="profile must be one of"):
        E.pick("fast", 1, 2, 3)


def test_pick():
    assert E.pick("quick", 1, 2, 3) == 2


def test_setup_loads_profile_sizes(tiny_cache, monkeypatch, capsys):
    monkeypatch.setattr(E, "load_cifar10", lambda dev, **kw: {"kw": kw, **_fake()})
    ctx = E.setup("smoke", seed=3, notebook="nb")
    assert ctx.profile == "smoke" and ctx.seed == 3 and ctx.data["kw"]["train_size"] == 2000
    assert "[nb] profile=smoke" in capsys.readouterr().out


def test_setup_accepts_a_seed_given_as_text_and_refuses_other_text(tiny_cache, monkeypatch, capsys):
    monkeypatch.setattr(E, "load_cifar10", lambda dev, **kw: {"kw": kw, **_fake()})
    ctx = E.setup("smoke", seed="1", notebook="nb")  # papermill -r seed 1 passes text
    assert ctx.seed == 1 and type(ctx.seed) is int and "seed=1 " in capsys.readouterr().out
    a = torch.rand(3)
    E.setup("smoke", seed=" 1 ", notebook="nb")
    assert torch.equal(torch.rand(3), a)  # the same seed as the int 1
    for bad, why in [("one", "whole number"), (1.5, "whole number"), ("1.0", "whole number"),
                     (True, "whole number"), (None, "whole number"), (-1, "between 0 and"),
                     (2**32, "between 0 and")]:
        with pytest.raises(ValueError, match=why):
            E.setup("smoke", seed=bad, notebook="nb")


def _fake():
    z = torch.zeros(1)
    return {"train_y": z, "val_y": z, "test_y": z}


def test_record_writes_json_with_verdicts_metrics_and_environment(tmp_path):
    ctx = E.Context(profile="smoke", seed=0, device=torch.device("cpu"), data=None, notebook="99_test")
    v = [claims.check_range("DBG-1", 2.3, 2.0, 2.6, "initial loss")]
    path = E.record(ctx, tmp_path, {"acc": E.metric(0.5), "nan": float("nan"), "t": torch.tensor(2.0)},
                    v, params={"lr": 0.1})
    got = json.loads(path.read_text())
    assert path.name == "99_test.json"
    assert got["verdicts"][0]["claim"] == "DBG-1" and got["verdicts"][0]["verdict"] == "supported"
    assert got["verdicts"][0]["kind"] == "demonstration"
    assert got["verdict_counts"]["demonstration"]["supported"] == 1
    assert sum(got["verdict_counts"]["experiment"].values()) == 0
    assert got["metrics"]["acc"] == {"value": 0.5, "higher_is_better": True}
    assert got["metrics"]["nan"] == "nan" and got["metrics"]["t"] == 2.0
    assert got["params"] == {"lr": 0.1} and got["profile"] == "smoke"
    assert {"torch", "torchvision", "device", "git_commit"} <= set(got["environment"])


def test_git_commit_marks_uncommitted_changes(tmp_path):
    """A result run from edited code must not pass for the commit it started from."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    def run(*args):
        subprocess.run([git, "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)
    assert E.git_commit(tmp_path) is None  # not a checkout yet
    run("init", "-q")
    (tmp_path / "f.py").write_text("x = 1\n")
    run("add", "f.py")
    run("commit", "-qm", "first")
    clean = E.git_commit(tmp_path)
    assert clean and len(clean) >= 7 and not clean.endswith("-dirty")
    (tmp_path / "f.py").write_text("x = 2\n")
    assert E.git_commit(tmp_path) == clean + "-dirty"
    (tmp_path / "untracked.txt").write_text("results\n")  # untracked files alone are not edits
    run("checkout", "-q", "f.py")
    assert E.git_commit(tmp_path) == clean


def test_record_refuses_unknown_claims(tmp_path):
    ctx = E.Context(profile="smoke", seed=0, device=torch.device("cpu"), data=None, notebook="x")
    bad = {"claim": "NOPE-1", "verdict": "supported", "text": "", "evidence": {}, "summary": ""}
    with pytest.raises(KeyError):
        E.record(ctx, tmp_path, {}, [bad], {}, show=False)


def test_record_refuses_two_verdicts_for_one_claim_and_unknown_kinds(tmp_path):
    ctx = E.Context(profile="smoke", seed=0, device=torch.device("cpu"), data=None, notebook="x")
    twice = [claims.check_range("DBG-1", 2.3, 2.0, 2.6, "loss"), claims.check_range("DBG-1", 2.4, 2.0, 2.6, "loss")]
    with pytest.raises(ValueError, match=r"DBG-1 is judged twice.*claims.all_of"):
        E.record(ctx, tmp_path, {}, twice, {}, show=False)
    odd = {**twice[0], "kind": "anecdote"}
    with pytest.raises(ValueError, match="kind 'anecdote': must be one of"):
        E.record(ctx, tmp_path, {}, [odd], {}, show=False)
    assert not (tmp_path / "x.json").exists()


def _verdicts():
    return [claims.compare("DO-1", [0.61, 0.72], [0.55, 0.56], what="accuracy <after conv>"),
            claims.demonstrate("DO-4", True, {"gap": 0.1}, "dropout lowers train accuracy"),
            claims.compare("DO-2", [0.61, 0.62, 0.63], [0.55, 0.56, 0.57], what="accuracy")]


def test_show_verdicts_prints_plain_text_outside_jupyter(capsys):
    E.show_verdicts(_verdicts())
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("experiments: 1 supported / 0 not supported / 1 inconclusive; "
                      "demonstrations (not counted as support): 1 (1 shown, 0 not)")
    assert out[1].startswith("Experiments") and out[2].strip().startswith("DO-1") and "DO-2" in out[3]
    assert out[4].startswith("Demonstrations") and out[5].strip().startswith("DO-4")


def test_show_verdicts_gives_jupyter_one_output_with_html_and_text(monkeypatch):
    import IPython
    import IPython.display as D
    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(D, "display", lambda obj, raw=False: shown.append((obj, raw)))
    E.show_verdicts(_verdicts())
    assert len(shown) == 1 and shown[0][1] is True
    html, text = shown[0][0]["text/html"], shown[0][0]["text/plain"]
    assert html.count("<table>") == 2 and html.count("<tr>") == 5  # two tables, each with a header
    assert "&lt;after conv&gt;" in html  # escaped, not markup
    assert text.splitlines()[0].startswith("experiments: 1 supported")
