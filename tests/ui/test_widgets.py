"""Control panels: validation with allowed ranges, background runs, stop keeps history."""
import time

from course_lib.ui.widgets import control_panel, validate

SPEC = {"lr": {"kind": "float", "value": 0.1, "min": 1e-4, "max": 2.0, "label": "learning rate"},
        "batch_size": {"kind": "int", "value": 64, "min": 16, "max": 2048, "label": "batch size"},
        "opt": {"kind": "choice", "value": "sgd", "options": ["sgd", "adam"]}}


def test_validate_refuses_bad_values_with_the_allowed_range():
    clean, errors = validate(SPEC, {"lr": -1, "batch_size": 0, "opt": "lion"})
    assert clean == {}
    assert "learning rate: -1.0 is out of range; allowed 0.0001 to 2.0" in errors
    assert "batch size: 0 is out of range; allowed 16 to 2048" in errors
    assert any("'lion' is not one of ['sgd', 'adam']" in e for e in errors)
    assert validate(SPEC, {"batch_size": 64.5})[1] == ["batch size: 64.5 is not a whole number; allowed 16 to 2048"]
    assert validate(SPEC, {"lr": "abc"})[1][0].startswith("learning rate: 'abc' is not a number")
    assert validate(SPEC, {}) == ({"lr": 0.1, "batch_size": 64, "opt": "sgd"}, [])


MAX_STEPS = 100_000


def fake_training(params, report, should_stop):
    """Stands in for fit: one step every 10 ms until asked to stop (or ~17 minutes)."""
    hist = {"step": {"loss": []}, "epoch": {"epoch": []}, "stopped": None}
    for i in range(MAX_STEPS):
        hist["step"]["loss"].append(1.0 / (i + 1))
        if i % 10 == 0:
            report(hist)
        if should_stop():
            hist["stopped"] = "requested"
            break
        time.sleep(0.01)
    return hist


def wait_for(cond, timeout=60):
    """Wait until ``cond()`` holds; returns at once when it does. The ceiling is generous so a busy
    machine cannot fail a test: nothing here asserts how fast anything is."""
    t0 = time.time()
    while not cond() and time.time() - t0 < timeout:
        time.sleep(0.02)
    return cond()


def test_run_in_background_stop_keeps_history_and_second_run_is_refused():
    panel = control_panel(SPEC, fake_training, render=lambda h, t: b"png%d" % len(h["step"]["loss"]))
    panel.run_button.click()
    assert panel.thread.is_alive()  # the click returned while training goes on
    assert wait_for(lambda: panel.image.value != b"")
    panel.run_button.click()
    assert "already going" in panel.status.value
    # the progress line is redrawn every refresh; the refusal must stay readable, not flash
    first = panel.status.value
    assert wait_for(lambda: panel.status.value != first)
    assert "already going" in panel.status.value and "running with" in panel.status.value
    panel.stop_button.click()
    assert wait_for(lambda: not panel.thread.is_alive())
    assert panel.result["stopped"] == "requested"
    assert 5 < len(panel.result["step"]["loss"]) < MAX_STEPS
    assert "requested" in panel.status.value and not panel.run_button.disabled


def test_bad_widget_value_is_refused_and_panel_stays_usable():
    panel = control_panel(SPEC, lambda p, r, s: {"stopped": None, "step": {"loss": []}, "epoch": {"epoch": []}},
                          render=lambda h, t: b"x")
    panel.inputs["batch_size"].value = 0
    panel.run_button.click()
    assert panel.thread is None and "allowed 16 to 2048" in panel.status.value
    panel.inputs["batch_size"].value = 32
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and "finished" in panel.status.value


def test_an_exception_in_the_run_is_shown_in_the_panel():
    def broken(p, r, s):
        raise RuntimeError("CUDA out of memory (pretend)")
    panel = control_panel(SPEC, broken, render=lambda h, t: b"x")
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive())
    assert "RuntimeError" in panel.status.value and "pretend" in panel.status.value
    assert not panel.run_button.disabled


def test_panel_shows_a_cached_result_at_once_unless_a_fresh_run_is_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []

    def counting(params, report, should_stop):
        calls.append(params)
        return {"stopped": None, "step": {"loss": [params["lr"], 0.5]}, "epoch": {"epoch": []}}

    def render(h, t):
        return b"png" + repr(h["step"]["loss"]).encode()
    scope = {"notebook": "test", "profile": "smoke", "version": "v1", "seed": 0}
    panel = control_panel(SPEC, counting, render=render, cache=scope)
    assert panel.fresh.layout.display != "none"
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and "Saved to the results cache" in panel.status.value
    first_image, first_thread = panel.image.value, panel.thread
    panel.image.value = b""
    panel.run_button.click()  # same parameters: no training, the stored curves at once
    assert panel.thread is first_thread and len(calls) == 1
    assert "cached" in panel.status.value and panel.image.value == first_image
    panel.inputs["lr"].value = 0.2  # a changed parameter misses
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and len(calls) == 2
    panel.fresh.value = True  # asked for a fresh run: trains again although it is cached
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and len(calls) == 3
    other = control_panel(SPEC, counting, render=render, cache={**scope, "version": "v2"})
    other.inputs["lr"].value = 0.2  # same parameters, new code version: a miss
    other.run_button.click()
    assert wait_for(lambda: not other.thread.is_alive()) and len(calls) == 4


def test_a_stopped_run_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    panel = control_panel(SPEC, fake_training, render=lambda h, t: b"x", cache={"notebook": "t"})
    panel.run_button.click()
    time.sleep(0.1)
    panel.stop_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and "stopped (requested)" in panel.status.value
    assert list(tmp_path.glob("*.json")) == []
    panel.run_button.click()
    assert panel.thread.is_alive() and "cached" not in panel.status.value
    panel.stop_button.click()
    assert wait_for(lambda: not panel.thread.is_alive())


def test_without_a_cache_the_fresh_box_is_hidden_and_nothing_is_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    panel = control_panel(SPEC, lambda p, r, s: {"stopped": None, "step": {"loss": [1.0]}, "epoch": {"epoch": []}},
                          render=lambda h, t: b"x")
    assert panel.fresh.layout.display == "none"
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and "finished" in panel.status.value
    assert list(tmp_path.iterdir()) == []


def test_default_plot_shows_something_from_the_first_steps_on():
    from course_lib.ui.widgets import history_png
    running = {"step": {"loss": [2.3, 2.2, 2.0]}, "epoch": {"epoch": []}, "stopped": None}
    one_epoch = {"step": {"loss": [2.3, 2.2, 2.0]}, "stopped": None,
                 "epoch": {"epoch": [1], "train_loss": [2.1], "val_loss": [2.0], "train_acc": [0.2],
                           "val_acc": [0.25], "seconds": [1.0]}}
    a, b = history_png(running, "t"), history_png(one_epoch, "t")
    assert a.startswith(b"\x89PNG") and b.startswith(b"\x89PNG") and a != b
    assert history_png({**running, "step": {"loss": [2.3, 1.0]}}, "t") != a  # the curve is drawn


def test_a_diverged_run_shows_its_message_and_the_curves_up_to_the_bad_step():
    class Diverged(FloatingPointError):
        history = {"stopped": "nonfinite", "step": {"loss": [2.3, float("nan")]}, "epoch": {"epoch": []}}
    def diverging(p, r, s):
        raise Diverged("loss became nan at step 2")
    panel = control_panel(SPEC, diverging, render=lambda h, t: b"png%d" % len(h["step"]["loss"]))
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive())
    assert "loss became nan at step 2" in panel.status.value and panel.image.value == b"png2"
    assert panel.result["stopped"] == "nonfinite"


PANEL_LR = 0.1  # a notebook variable read by the run function below


def run_reading_a_global(params, report, should_stop):
    run_reading_a_global.calls.append(PANEL_LR)
    return {"stopped": None, "step": {"loss": [PANEL_LR]}, "epoch": {"epoch": []}}


def test_changing_a_notebook_variable_the_run_reads_misses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    run_reading_a_global.calls = calls = []
    panel = control_panel(SPEC, run_reading_a_global, render=lambda h, t: b"x", cache={"notebook": "t"})
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and calls == [0.1]
    panel.run_button.click()
    assert "cached" in panel.status.value and calls == [0.1]
    monkeypatch.setitem(globals(), "PANEL_LR", 0.2)  # e.g. the parameters cell edited and re-run
    panel.run_button.click()
    assert wait_for(lambda: not panel.thread.is_alive()) and calls == [0.1, 0.2]


def test_history_reporter_reports_only_settled_histories():
    """On CUDA fit leaves the newest losses as device tensors until its next check: the live
    panel must not be handed those (nor force a sync to read them)."""
    import torch

    from course_lib.ui.widgets import history_reporter
    seen = []
    cb = history_reporter(lambda h: seen.append(len(h["step"]["loss"])), every_steps=3)
    hist = {"step": {"loss": []}}
    for i in range(1, 9):
        settled = i % 4 == 0  # fit settles every 4 steps here
        hist["step"]["loss"] = [float(j) for j in range(i)] if settled else \
            [float(j) for j in range(i - i % 4)] + [torch.tensor(1.0)] * (i % 4)
        cb("step", hist, None)
    cb("epoch", hist, None)
    assert seen == [4, 8, 8]  # steps 3, 5, 6, 7 were not settled; the epoch always reports
