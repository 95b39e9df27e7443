"""Schedules come from torch.optim.lr_scheduler; check them against their closed forms."""
import math

import pytest

from course_lib.schedules import lr_curve


def test_cosine_matches_closed_form():
    lrs = lr_curve("cosine", 100, lr=0.1)
    for t in (0, 25, 50, 99):
        assert lrs[t] == pytest.approx(0.05 * (1 + math.cos(math.pi * t / 100)), rel=1e-6)


def test_warmup_then_cosine():
    lrs = lr_curve("cosine", 110, lr=0.1, warmup_steps=10)
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[60] == pytest.approx(0.05, rel=1e-3)


def test_restarts_return_to_the_peak_every_T0():
    lrs = lr_curve("cosine_restarts", 40, lr=0.1, T_0=10)
    assert [lrs[i] for i in (0, 10, 20, 30)] == pytest.approx([0.1] * 4)
    assert lrs[9] < 0.01


def test_step_onecycle_constant_linear():
    assert lr_curve("step", 9, lr=1.0, steps_per_epoch=1, step_epochs=3) == pytest.approx(
        [1, 1, 1, .1, .1, .1, .01, .01, .01])
    one = lr_curve("onecycle", 100, lr=1.0)
    assert max(one) == pytest.approx(1.0, rel=1e-3) and one.index(max(one)) in (24, 25)
    assert lr_curve("constant", 5, lr=0.3) == pytest.approx([0.3] * 5)
    assert lr_curve("linear", 4, lr=1.0) == pytest.approx([1, .75, .5, .25])


def test_unknown_schedule_lists_the_choices():
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_curve("triangle", 10)
