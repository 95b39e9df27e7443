"""The LR range test (exponential steps, exact restore, divergence stop), its readings, loss
symptoms and the update-to-weight ratio logger. Data: the tiny non-square (24x32) cache."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.core.models import small_cnn
from course_lib.core.train import fit, make_optimizer
from course_lib.lessons.lr_range_test import (
    converged,
    exponential_factor,
    hook_shape,
    hook_verdict,
    loss_symptom,
    lr_range_test,
    ratio_verdict,
    suggest_lrs,
    ten_x_advice,
    typical_ratio,
    update_ratio_logger,
    update_ratios,
)
from course_lib.ui import cache as results_cache


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return small_cnn(widths=(8, 16), hidden=16, num_classes=3)


def test_lr_grows_by_a_constant_factor_from_start_to_end(tiny):
    res = lr_range_test(tiny_model(), tiny, start_lr=1e-6, end_lr=1e-2, num_steps=25, batch_size=16,
                        diverge=1e9)
    lrs = np.array(res["lr"])
    assert res["ended"] == "end_lr" and len(lrs) == 25
    # a test that ran to its end is finished, not stopped: the panel shows it so and caches it
    assert res["stopped"] is None and results_cache.is_complete(res)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1e-2, rel=1e-6)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], exponential_factor(1e-6, 1e-2, 25), rtol=1e-9)
    assert len(res["loss"]) == len(res["smoothed"]) == 25


def test_default_factor_is_document_a_1_05(tiny):
    res = lr_range_test(tiny_model(), tiny, start_lr=1e-3, end_lr=1e-2, batch_size=16, diverge=1e9)
    lrs = np.array(res["lr"])
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 1.05, rtol=1e-9)
    assert len(lrs) == math.ceil(math.log(10) / math.log(1.05)) + 1 and res["factor"] == 1.05


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_model_and_optimizer_are_restored_exactly(tiny, name):
    model = tiny_model()
    opt = make_optimizer(model, name, lr=0.05)
    fit(model, tiny, epochs=1, batch_size=16, progress=False, opt=opt, schedule="constant")  # state exists
    model.eval()
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_opt = opt.state_dict()
    before_opt = {"param_groups": [dict(g) for g in before_opt["param_groups"]],
                  "state": {k: {n: (t.clone() if torch.is_tensor(t) else t) for n, t in s.items()}
                            for k, s in before_opt["state"].items()}}
    rng_before = torch.get_rng_state()
    seen = []
    res = lr_range_test(model, tiny, start_lr=1e-4, end_lr=1.0, num_steps=12, batch_size=16, opt=opt,
                        diverge=1e9, report=lambda r: seen.append(model.block1.conv1.weight.clone()),
                        report_every=5)
    assert len(res["lr"]) == 12
    assert seen and not torch.equal(seen[-1], before_model["block1.conv1.weight"]), "the test did train"
    after = model.state_dict()
    for k, v in before_model.items():
        assert torch.equal(after[k], v), f"{k} not restored"
    got = opt.state_dict()
    assert got["param_groups"] == before_opt["param_groups"]
    for k, s in before_opt["state"].items():
        for n, t in s.items():
            assert torch.equal(torch.as_tensor(got["state"][k][n]), torch.as_tensor(t)), f"opt state {k}.{n}"
    assert not model.training, "eval mode restored"
    assert torch.equal(torch.get_rng_state(), rng_before), "global RNG untouched"


def test_training_after_a_range_test_equals_training_without_one(tiny):
    a, b = tiny_model(), tiny_model()
    lr_range_test(a, tiny, start_lr=1e-3, end_lr=1.0, num_steps=10, batch_size=16)
    ha = fit(a, tiny, epochs=1, batch_size=16, progress=False, seed=3)
    hb = fit(b, tiny, epochs=1, batch_size=16, progress=False, seed=3)
    assert ha["step"]["loss"] == hb["step"]["loss"]


def test_a_requested_stop_is_marked_stopped_and_not_cached(tiny):
    calls = []
    res = lr_range_test(tiny_model(), tiny, start_lr=1e-6, end_lr=1e-2, num_steps=25, batch_size=16,
                        diverge=1e9, should_stop=lambda: calls.append(1) or len(calls) >= 5)
    assert res["ended"] == res["stopped"] == "requested" and len(res["lr"]) == 5
    assert not results_cache.is_complete(res)


def test_stops_when_the_smoothed_loss_diverges(tiny):
    res = lr_range_test(tiny_model(), tiny, start_lr=1e-3, end_lr=1e6, num_steps=200, batch_size=16,
                        smoothing=0.5, weight_decay=0.0)
    assert res["ended"] in ("diverged", "nonfinite") and res["stopped"] is None
    assert len(res["lr"]) < 200 and res["lr"][-1] < 1e6
    if res["ended"] == "diverged":
        assert res["smoothed"][-1] > 4.0 * min(res["smoothed"])


def test_bad_arguments_name_the_allowed_values(tiny):
    m = tiny_model()
    with pytest.raises(ValueError, match="factor must be above 1"):
        lr_range_test(m, tiny, factor=0.9)
    with pytest.raises(ValueError, match="0 < start_lr < end_lr"):
        lr_range_test(m, tiny, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="not both"):
        lr_range_test(m, tiny, factor=1.1, num_steps=50)
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\)"):
        lr_range_test(m, tiny, smoothing=1.0)


def synthetic_hook(n=200, lr_best=0.1, steep_at=1e-3):
    """A smoothed curve that falls fastest at ``steep_at`` (a logistic in log LR), bottoms near
    ``lr_best`` and then rises sharply: what a range test looks like."""
    lrs = np.geomspace(1e-6, 10, n)
    x = np.log10(lrs)
    loss = 2.3 - 1.5 / (1 + np.exp(-(x - np.log10(steep_at)) * 3)) + np.exp(4 * (x - np.log10(lr_best)))
    return {"lr": lrs.tolist(), "loss": loss.tolist(), "smoothed": loss.tolist(), "ended": "diverged"}


def test_suggestions_on_a_synthetic_hook():
    res = synthetic_hook()
    s = suggest_lrs(res)
    assert s["steepest"] == pytest.approx(1e-3, rel=0.15)
    i_min = int(np.argmin(res["smoothed"]))
    assert s["min_div_10"] == pytest.approx(res["lr"][i_min] / 10) and s["reached_minimum"]
    with pytest.raises(ValueError, match="recorded only 5 steps"):
        suggest_lrs({k: v[:5] if isinstance(v, list) else v for k, v in res.items()})


def test_hook_shape_detects_a_hook_and_rejects_a_plain_decline():
    assert hook_shape(synthetic_hook())["hooked"]
    lrs = np.geomspace(1e-6, 1, 100)
    falling = {"lr": lrs.tolist(), "smoothed": np.linspace(2.3, 1.0, 100).tolist(), "ended": "end_lr"}
    h = hook_shape(falling)
    assert not h["hooked"] and h["drop"] > 0.5 and h["rise"] == 0


def hist_of(losses, stopped=None):
    return {"step": {"loss": list(losses)}, "stopped": stopped}


def test_loss_symptom_reads_falling_rising_and_exploding():
    t = np.arange(200)
    assert loss_symptom(hist_of(2.3 * np.exp(-t / 100)))["symptom"] == "falling"
    rising = loss_symptom(hist_of(np.concatenate([np.linspace(2.3, 1.0, 100), np.linspace(1.0, 3.0, 100)])))
    assert rising["symptom"] == "rising"
    assert loss_symptom(hist_of([2.3, 5.0], stopped="nonfinite"))["symptom"] == "exploding"
    slow = loss_symptom(hist_of(2.3 - 0.001 * t))
    fast = loss_symptom(hist_of(2.3 * np.exp(-t / 50)))
    assert 0 < slow["fall"] < fast["fall"]


def test_update_ratio_is_norm_of_update_over_norm_of_weight():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    cb, log = update_ratio_logger(model)
    hist = hist_of([1.0])
    cb("step", hist, model)  # first step: only a snapshot
    delta = torch.full_like(model[0].weight, 0.01)
    with torch.no_grad():
        model[0].weight.add_(delta)
    hist["step"]["loss"].append(1.0)
    cb("step", hist, model)
    cb("epoch", hist, model)  # ignored
    r = update_ratios(log)
    assert r["steps"] == [2] and set(r) == {"steps", "0.weight", "2.weight"}, "biases are not logged"
    assert r["0.weight"][0] == pytest.approx(float(delta.norm() / model[0].weight.detach().norm()), rel=1e-5)
    assert r["2.weight"][0] == 0.0
    assert typical_ratio(r, skip_fraction=0) == pytest.approx(np.median([r["0.weight"][0], 0.0]))


def test_update_ratio_logger_during_fit_scales_with_lr(tiny):
    ratios = {}
    for lr in (0.001, 0.1):
        model = tiny_model()
        cb, log = update_ratio_logger(model, every=2)
        fit(model, tiny, epochs=2, batch_size=16, lr=lr, progress=False, callbacks=[cb], schedule="constant",
            optimizer="sgd", momentum=0.0, weight_decay=0.0)
        r = update_ratios(log)
        assert r["steps"] and all(s % 2 == 0 for s in r["steps"])
        ratios[lr] = typical_ratio(r)
    assert 10 < ratios[0.1] / ratios[0.001] < 1000


def test_update_ratio_logger_refuses_bad_every():
    with pytest.raises(ValueError, match="every must be at least 1"):
        update_ratio_logger(nn.Linear(2, 2), every=0)


def fake_run(acc, losses, stopped=None, ratio=1e-3):
    return {"val_acc": acc, "history": hist_of(losses, stopped), "ratio": ratio}


SLOW = np.linspace(2.3, 2.0, 100)
GOOD = 2.3 * np.exp(-np.arange(100) / 40)
RISING = np.concatenate([np.linspace(2.3, 1.5, 50), np.linspace(1.5, 2.5, 50)])


def test_converged_needs_the_declared_accuracy_and_a_loss_that_is_not_rising():
    assert converged(fake_run(0.40, GOOD), 0.3) and not converged(fake_run(0.25, GOOD), 0.3)
    assert not converged(fake_run(0.40, RISING), 0.3)
    assert not converged(fake_run(0.40, [2.3, 9.0], "nonfinite"), 0.3)


def test_hook_verdict_is_a_demonstration_that_can_fail():
    hooked = hook_verdict("LR-6", synthetic_hook(), "sgd", min_drop=0.1, min_rise=0.5)
    assert hooked["kind"] == "demonstration" and hooked["verdict"] == "supported"
    flat = {"lr": list(np.logspace(-7, 1, 60)), "smoothed": list(np.linspace(2.3, 1.5, 60)), "ended": "end_lr"}
    assert hook_verdict("LR-6", flat, "sgd", min_drop=0.1, min_rise=0.5)["verdict"] == "not supported"


def test_ten_x_advice_margin_turns_a_tiny_gain_into_not_supported():
    runs = {0.1: [fake_run(0.600, SLOW), fake_run(0.610, SLOW), fake_run(0.605, SLOW)],
            1.0: [fake_run(0.601, GOOD), fake_run(0.612, GOOD), fake_run(0.606, GOOD)],
            10.0: [fake_run(0.70, GOOD), fake_run(0.71, GOOD), fake_run(0.72, GOOD)]}
    assert ten_x_advice("LR-8", runs, "SGD", margin=0.005)["verdict"] == "not supported"


def test_ten_x_advice_tests_only_the_symptoms_that_showed():
    runs = {0.1: [fake_run(0.40, SLOW), fake_run(0.41, SLOW)], 1.0: [fake_run(0.60, GOOD), fake_run(0.61, GOOD)],
            10.0: [fake_run(0.30, RISING), fake_run(0.31, [2.3, 50.0], "nonfinite")]}
    v = ten_x_advice("LR-8", runs, "SGD")
    assert v["verdict"] == "supported" and len(v["evidence"]["parts"]) == 2
    runs[10.0] = [fake_run(0.70, GOOD), fake_run(0.71, GOOD)]  # the high run is healthy: no "lower" advice
    v = ten_x_advice("LR-8", runs, "SGD")
    assert len(v["evidence"]["parts"]) == 1 and v["verdict"] == "supported"
    runs[1.0] = [fake_run(0.30, GOOD), fake_run(0.31, GOOD)]  # raising the slow run made it worse
    assert ten_x_advice("LR-8", runs, "SGD")["verdict"] == "not supported"


def test_ratio_verdict_compares_the_lr_nearest_1e_3_with_the_rest():
    def arm(acc, ratio):
        return [fake_run(acc, GOOD, ratio=ratio), fake_run(acc + 0.01, GOOD, ratio=ratio)]
    runs = {0.1: arm(0.50, 1e-4), 1.0: arm(0.65, 1.2e-3), 10.0: arm(0.40, 2e-2)}
    v = ratio_verdict("LR-9", runs, "SGD")
    assert v["verdict"] == "supported" and len(v["evidence"]["parts"]) == 2  # nearest wins; 2e-2 is far above
    assert v["evidence"]["ratios"]["1.0"] == pytest.approx(1.2e-3)
    runs[10.0] = arm(0.80, 2e-2)  # the far-too-high ratio trains best: the rule fails
    assert ratio_verdict("LR-9", runs, "SGD")["verdict"] == "not supported"


def test_range_test_png_draws_partial_and_finished_tests(tiny):
    from course_lib.lessons.lr_range_test import range_test_png
    steps = []
    res = lr_range_test(tiny_model(), tiny, start_lr=1e-4, end_lr=1.0, num_steps=30, batch_size=16,
                        report=lambda r: steps.append(range_test_png(r, "live")), report_every=10)
    assert len(steps) == 3 and all(png.startswith(b"\x89PNG") for png in steps)
    assert range_test_png(res, "done").startswith(b"\x89PNG")
    assert range_test_png({**res, "lr": res["lr"][:1], "loss": res["loss"][:1], "smoothed": res["smoothed"][:1]})


class _LogOfInput(nn.Module):
    def forward(self, x):
        return torch.log(x)  # NaN for the negative normalised pixels: a non-finite loss at step 1


class _SqrtOfZero(nn.Module):
    def forward(self, x):
        return torch.sqrt(x.mean(dim=(2, 3)) * 0.0)  # finite forward, NaN gradient


@pytest.mark.parametrize("bad, recorded", [(_LogOfInput, 0), (_SqrtOfZero, 1)])
def test_a_nonfinite_loss_or_gradient_ends_the_test_and_the_model_is_restored(tiny, bad, recorded):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), bad(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 3, 24, 32))  # materialise the lazy layer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = lr_range_test(model, tiny, start_lr=1e-3, end_lr=1.0, num_steps=10, batch_size=16)
    # a finite loss whose gradient is not still counts as a step, as before the loop was fit
    assert res["ended"] == "nonfinite" and res["stopped"] is None and len(res["loss"]) == recorded
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_the_stop_button_stops_the_test_after_restoring_the_model(tiny):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def press_stop(result):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt, match="LR range test"):
        lr_range_test(model, tiny, start_lr=1e-4, end_lr=1.0, num_steps=20, batch_size=16, report=press_stop,
                      report_every=5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
