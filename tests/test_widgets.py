"""Control panels: validation with allowed ranges, background runs, stop keeps history."""
import threading
import time

from course_lib.widgets import control_panel, validate

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


def fake_training(params, report, should_stop):
    """Stands in for fit: one step every 10 ms until asked to stop."""
    hist = {"step": {"loss": []}, "epoch": {"epoch": []}, "stopped": None}
    for i in range(2000):
        hist["step"]["loss"].append(1.0 / (i + 1))
        if i % 10 == 0:
            report(hist)
        if should_stop():
            hist["stopped"] = "requested"
            break
        time.sleep(0.01)
    return hist


def wait_for(cond, timeout=10):
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
    time.sleep(0.1)
    panel.stop_button.click()
    assert wait_for(lambda: not panel.thread.is_alive())
    assert panel.result["stopped"] == "requested"
    assert 5 < len(panel.result["step"]["loss"]) < 2000
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
