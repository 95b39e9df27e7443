"""The results cache: equal inputs hit, any changed parameter, profile or code version misses."""
import json
import math

import pytest
import torch

from course_lib.ui import cache

SCOPE = {"notebook": "00_x", "profile": "smoke", "version": "v1", "seed": 0, "device": "cpu"}
PARAMS = {"lr": 0.1, "batch_size": 64, "opt": "sgd"}
HISTORY = {"step": {"loss": [2.3, 1.9, float("nan")]}, "epoch": {"epoch": [1], "val_acc": [0.31]},
           "stopped": None}


def test_store_then_load_returns_the_stored_result(tmp_path):
    key = cache.make_key(SCOPE, PARAMS)
    cache.store(key, {**HISTORY, "acc": torch.tensor([0.5, 0.25])}, tmp_path, params=PARAMS)
    entry = cache.load(cache.make_key(dict(SCOPE), dict(reversed(PARAMS.items()))), tmp_path)
    assert entry is not None and entry["meta"]["params"] == PARAMS and entry["saved"]
    got = entry["result"]
    assert got["step"]["loss"][:2] == [2.3, 1.9] and math.isnan(got["step"]["loss"][2])
    assert got["acc"] == [0.5, 0.25] and got["epoch"] == HISTORY["epoch"]


@pytest.mark.parametrize("change", [{"lr": 0.2}, {"batch_size": 128}, {"opt": "adam"}, {"extra": 1}])
def test_any_changed_parameter_misses(tmp_path, change):
    cache.store(cache.make_key(SCOPE, PARAMS), HISTORY, tmp_path)
    assert cache.load(cache.make_key(SCOPE, {**PARAMS, **change}), tmp_path) is None


@pytest.mark.parametrize("change", [{"version": "v2"}, {"profile": "quick"}, {"notebook": "01_y"},
                                    {"seed": 1}, {"device": "cuda"}])
def test_a_changed_scope_misses(tmp_path, change):
    cache.store(cache.make_key(SCOPE, PARAMS), HISTORY, tmp_path)
    assert cache.load(cache.make_key({**SCOPE, **change}, PARAMS), tmp_path) is None
    assert cache.load(cache.make_key(SCOPE, PARAMS), tmp_path) is not None


def test_code_version_follows_the_source_files(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("not code")
    v1 = cache.code_version(tmp_path)
    (tmp_path / "notes.txt").write_text("edited, still not code")
    assert cache.code_version(tmp_path) == v1
    (tmp_path / "a.py").write_text("x = 2\n")
    assert cache.code_version(tmp_path) != v1
    assert cache.scope("00_x", "smoke", seed=3)["version"] == cache.code_version()  # course_lib itself


LR = 0.05  # a notebook variable the run below reads, like ``lr`` in a parameters cell
WIDTHS = (16, 32)


def make_model_for_test():
    return WIDTHS


def run_reading_globals(p, r, s):
    return make_model_for_test(), LR


def test_code_version_covers_modules_in_every_subpackage(tmp_path):
    """An edit to a lesson (a subpackage two levels down) must not serve stale cached runs."""
    lesson = tmp_path / "lessons" / "some_lesson.py"
    lesson.parent.mkdir()
    (tmp_path / "top.py").write_text("x = 1\n")
    lesson.write_text("def f():\n    return 1\n")
    v1 = cache.code_version(tmp_path)
    lesson.write_text("def f():\n    return 2\n")
    assert cache.code_version(tmp_path) != v1
    lesson.rename(tmp_path / "lessons" / "renamed.py")  # a moved file is a change too
    assert len({v1, cache.code_version(tmp_path)}) == 2


def test_the_key_follows_the_notebook_values_a_run_reads(monkeypatch):
    before = cache.function_source(run_reading_globals)
    assert "LR = 0.05" in before and "def make_model_for_test" in before and "WIDTHS = [16, 32]" in before
    monkeypatch.setitem(run_reading_globals.__globals__, "LR", 0.1)
    assert cache.function_source(run_reading_globals) != before
    monkeypatch.setitem(run_reading_globals.__globals__, "LR", 0.05)
    monkeypatch.setitem(run_reading_globals.__globals__, "WIDTHS", (8, 16))  # read by a called function
    assert cache.function_source(run_reading_globals) != before


def test_scope_includes_the_run_function_source():
    def run_a(p, r, s):
        return 1

    def run_b(p, r, s):
        return 2
    assert "return 1" in cache.function_source(run_a)
    assert cache.function_source(run_a) != cache.function_source(run_b)
    assert cache.function_source(len) == "builtins.len"  # no source: its name


def test_environment_variable_moves_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "elsewhere"))
    assert cache.cache_dir() == tmp_path / "elsewhere"
    path = cache.store("k" * 64, [1, 2])
    assert path.parent == tmp_path / "elsewhere" and cache.load("k" * 64)["result"] == [1, 2]
    assert cache.clear() == 1 and cache.load("k" * 64) is None
    monkeypatch.delenv(cache.ENV_VAR)
    assert cache.cache_dir().name == "results" and "training-tricks-lab" in str(cache.cache_dir())


def test_writes_are_atomic_and_bad_files_are_misses(tmp_path):
    key = cache.make_key(SCOPE, PARAMS)
    with pytest.raises(TypeError, match="cannot be stored in the results cache"):
        cache.store(key, {"model": object()}, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temporary file left
    cache.store(key, HISTORY, tmp_path)
    cache.store(key, {**HISTORY, "stopped": None, "epoch": {"epoch": [1, 2]}}, tmp_path)  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.json"]
    assert cache.load(key, tmp_path)["result"]["epoch"]["epoch"] == [1, 2]
    (tmp_path / f"{key}.json").write_text('{"key": "' + key + '", "resu')  # truncated by a crash
    assert cache.load(key, tmp_path) is None
    (tmp_path / f"{key}.json").write_text(json.dumps({"key": "another", "result": 1}))
    assert cache.load(key, tmp_path) is None


def test_only_finished_runs_count_as_complete():
    assert cache.is_complete({"stopped": None, "step": {"loss": [2.0, 1.0]}})
    assert not cache.is_complete({"stopped": "requested", "step": {"loss": [2.0]}})
    assert not cache.is_complete({"stopped": None, "step": {"loss": [2.0, float("nan")]}})
    assert cache.is_complete({"acc": [0.1, 0.2]}) and not cache.is_complete(None)
