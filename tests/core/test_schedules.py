"""Schedules come from torch.optim.lr_scheduler; check them against their closed forms."""
import math

import pytest

from course_lib.core.schedules import lr_curve


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


def test_restart_ends_for_constant_and_growing_cycles():
    from course_lib.core.schedules import restart_ends
    assert restart_ends(40, T_0=10) == [10, 20, 30, 40]
    assert restart_ends(45, T_0=10) == [10, 20, 30, 40]          # the unfinished cycle is not listed
    assert restart_ends(70, T_0=10, T_mult=2) == [10, 30, 70]
    assert restart_ends(69, T_0=10, T_mult=2) == [10, 30]
    assert restart_ends(25, T_0=10, warmup_steps=5) == [15, 25]
    assert restart_ends(5, T_0=10) == []


def test_restart_ends_match_the_scheduler_itself():
    from course_lib.core.schedules import restart_ends
    for T_0, T_mult, warm in ((7, 1, 0), (5, 2, 0), (6, 3, 4)):
        lrs = lr_curve("cosine_restarts", 120, lr=1.0, T_0=T_0, T_mult=T_mult, warmup_steps=warm)
        ends = restart_ends(120, T_0, T_mult, warmup_steps=warm)
        # the step after each end starts a new cycle at the peak; the end itself is the cycle's lowest LR
        assert all(lrs[n] == pytest.approx(1.0) for n in ends if n < 120)
        assert all(lrs[n - 1] < lrs[n - 2] for n in ends)
        peaks = [i for i in range(warm + 1, 120) if lrs[i] == pytest.approx(1.0)]
        assert peaks == [n for n in ends if n < 120]


@pytest.mark.parametrize("bad, match", [(dict(T_0=0), "T_0 must be"), (dict(T_0=2.5), "T_0 must be"),
                                        (dict(T_0=4, T_mult=0), "T_mult must be")])
def test_restart_ends_refuses_bad_cycles(bad, match):
    from course_lib.core.schedules import restart_ends
    with pytest.raises(ValueError, match=match):
        restart_ends(100, **bad)


def test_snapshots_are_taken_exactly_at_cycle_ends_and_are_copies(tiny_cache):
    import torch

    from course_lib.core.data import load_cifar10
    from course_lib.core.models import small_cnn
    from course_lib.core.schedules import restart_ends, snapshot_callback
    from course_lib.core.train import fit
    data = load_cifar10(cache_path=tiny_cache, val_size=30)        # 90 training images of 24x32
    steps = 5 * (len(data["train_y"]) // 30)                       # 5 epochs of 3 steps = 15
    ends = restart_ends(steps, T_0=4, T_mult=2)                    # [4, 12]
    cb, snaps = snapshot_callback(ends + [steps])
    torch.manual_seed(0)
    model = small_cnn(widths=(8, 16), hidden=16, num_classes=3)
    w = next(k for k, v in model.state_dict().items() if v.dim() == 4)   # the first conv weight
    trace = []                                                      # that weight after every step
    h = fit(model, data, epochs=5, batch_size=30, lr=0.1, schedule="cosine_restarts",
            schedule_kw=dict(T_0=4, T_mult=2), progress=False,
            callbacks=[cb, lambda e, hist, m: trace.append(m.state_dict()[w].clone()) if e == "step" else None])
    assert ends == [4, 12] and [s["step"] for s in snaps] == [4, 12, 15]
    assert h["step"]["lr"][4] == pytest.approx(0.1) and h["step"]["lr"][3] < 0.1 * 0.2
    final = model.state_dict()
    assert all(v.device.type == "cpu" for v in snaps[0]["state_dict"].values())
    assert all(torch.equal(snaps[-1]["state_dict"][k].cpu(), final[k].cpu()) for k in final)
    for s in snaps:   # each snapshot holds the weights of exactly its step, untouched by later training
        assert torch.equal(s["state_dict"][w], trace[s["step"] - 1].cpu())
        assert not torch.equal(s["state_dict"][w], trace[s["step"] - 2].cpu())


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 7])
def test_onecycle_works_for_very_short_runs(steps):
    lrs = lr_curve("onecycle", steps, lr=0.5)
    assert len(lrs) == steps and all(0 < v <= 0.5 + 1e-9 for v in lrs)


def test_exponential_multiplies_the_lr_every_step_and_needs_its_factor():
    assert lr_curve("exponential", 5, lr=0.5, gamma=2.0) == [0.5, 1.0, 2.0, 4.0, 8.0]
    with pytest.raises(ValueError, match="needs gamma"):
        lr_curve("exponential", 5)
