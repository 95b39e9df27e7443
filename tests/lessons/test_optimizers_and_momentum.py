"""Notebook 10's helpers: optimisers with explicit coupled/decoupled decay, LR selection on the
validation split only, reproducible seeds, non-square inputs, matched momentum steps, the
stuck-SGD experiment and the widget's run."""
import math

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from course_lib.core.models import small_cnn
from course_lib.lessons import optimizers_and_momentum as O

FIT = {"epochs": 1, "batch_size": 30, "schedule": "constant", "aug": False, "progress": False}


def tiny_model():
    return small_cnn(widths=(4, 8), hidden=8, num_classes=3)


def one_weight(value=1.0):
    layer = nn.Linear(1, 1, bias=False)
    nn.init.constant_(layer.weight, value)
    return layer


def step_with_zero_grad(kind, lr, wd):
    layer = one_weight()
    opt = O.build_optimizer(layer, kind, lr, weight_decay=wd)
    layer.weight.grad = torch.zeros_like(layer.weight)
    opt.step()
    return layer.weight.item()


def test_each_kind_is_the_torch_optimiser_with_the_decay_given():
    m = tiny_model()
    expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                "rmsprop": torch.optim.RMSprop}
    for kind, cls in expected.items():
        opt = O.build_optimizer(m, kind, 0.01, weight_decay=0.003)
        assert type(opt) is cls
        assert opt.param_groups[0]["weight_decay"] == 0.003 and opt.param_groups[0]["lr"] == 0.01
    sgd = O.build_optimizer(m, "sgd", 0.1, weight_decay=0.0, momentum=0.9)
    assert sgd.param_groups[0]["momentum"] == 0.9 and not sgd.param_groups[0]["nesterov"]
    assert O.build_optimizer(m, "adam", 0.1, weight_decay=0.0).param_groups[0]["betas"] == (0.9, 0.999)


def test_decay_has_no_hidden_default():
    with pytest.raises(TypeError):
        O.build_optimizer(tiny_model(), "adam", 0.001)  # weight_decay must be given


def test_adam_decay_is_coupled_and_adamw_decay_is_decoupled():
    # a zero gradient: Adam's L2 term becomes the whole gradient and is normalised to a step of
    # about lr; AdamW shrinks the weight by exactly lr * decay
    assert step_with_zero_grad("adam", 0.1, 0.01) == pytest.approx(0.9, abs=1e-3)
    assert step_with_zero_grad("adamw", 0.1, 0.01) == pytest.approx(1 - 0.1 * 0.01, abs=1e-7)
    assert step_with_zero_grad("adam", 0.1, 0.0) == 1.0 and step_with_zero_grad("adamw", 0.1, 0.0) == 1.0


@pytest.mark.parametrize("kw, words", [
    ({"kind": "lion", "lr": 0.1}, "kind must be one of"),
    ({"kind": "sgd", "lr": 0.0}, "lr must be a positive"),
    ({"kind": "sgd", "lr": 0.1, "weight_decay": -1.0}, "weight_decay must be >= 0"),
    ({"kind": "sgd", "lr": 0.1, "momentum": 1.0}, "momentum must be in"),
    ({"kind": "adam", "lr": 0.1, "momentum": 0.9}, "beta1"),
])
def test_bad_optimiser_settings_are_refused_with_what_to_do(kw, words):
    kw = {"weight_decay": 0.0, **kw}
    with pytest.raises(ValueError, match=words):
        O.build_optimizer(tiny_model(), **kw)


class GuardedSplits(dict):
    """A data dict whose test split may not be read."""

    def __getitem__(self, key):
        if key.startswith("test"):
            raise AssertionError(f"the test split was read during selection ({key})")
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def test_lr_selection_reads_only_the_validation_split_and_picks_its_best(tiny):
    data = GuardedSplits(tiny)
    sel = O.select_lr(tiny_model(), data, "sgd", [1e-4, 0.05], seed=0, weight_decay=0.0,
                      momentum=0.9, **FIT)
    assert set(sel["val_acc"]) == {1e-4, 0.05}
    assert sel["lr"] == max(sel["val_acc"], key=sel["val_acc"].get)
    assert all(math.isnan(r["test_acc"]) for r in sel["runs"].values())
    grid = O.decay_grid(tiny_model(), data, "adamw", [0.001, 0.01], [0.0, 0.1], seed=0, **FIT)
    flat = [a for row in grid["val_acc"] for a in row]
    i, j = grid["lrs"].index(grid["best"][0]), grid["decays"].index(grid["best"][1])
    assert grid["val_acc"][i][j] == max(flat) and set(grid["best_decay_per_lr"]) == {0.001, 0.01}
    with pytest.raises(ValueError, match="grid is empty"):
        O.select_lr(tiny_model(), data, "sgd", [], seed=0, weight_decay=0.0)


def test_runs_on_non_square_images_are_reproducible_per_seed(tiny):
    assert tuple(tiny["train_x"].shape[-2:]) == (24, 32)
    model = tiny_model()
    a = O.repeat(model, tiny, "adam", 0.003, [0, 1], weight_decay=0.0, **FIT)
    b = O.repeat(model, tiny, "adam", 0.003, [0, 1], weight_decay=0.0, **FIT)
    assert [r["step_loss"] for r in a] == [r["step_loss"] for r in b]
    assert a[0]["step_loss"] != a[1]["step_loss"]  # another seed, another run
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in a) and len(a[0]["train_loss"]) == 1


def test_tune_and_repeat_needs_a_grid_per_arm_and_uses_the_chosen_lr(tiny):
    table = {"Adam": ("adam", 0.0, 0.0), "SGD": ("sgd", 0.9, 0.0)}
    with pytest.raises(ValueError, match="no LR grid for"):
        O.tune_and_repeat(tiny_model(), tiny, table, {"Adam": [0.001]}, 5, [0], bar=False, **FIT)
    res = O.tune_and_repeat(tiny_model(), tiny, table, {"Adam": [0.001, 0.01], "SGD": [0.01]}, 5, [0, 1],
                            bar=False, **FIT)
    for r in res.values():
        assert {x["lr"] for x in r["runs"]} == {r["selection"]["lr"]} and len(r["runs"]) == 2
    fig = Figure()
    axes = fig.subplots(1, 4)
    runs = {name: r["runs"] for name, r in res.items()}
    O.draw_loss_curves(axes[0], runs)
    O.draw_seed_points(axes[1], runs)
    O.draw_speed_vs_accuracy(axes[2], res)
    O.draw_lr_grid(axes[3], res)
    assert len(axes[1].lines) == 2 and len(axes[1].lines[0].get_xdata()) == 2  # one point per seed
    assert axes[3].get_xscale() == "log" and axes[0].get_yscale() == "log"


def test_opt1_on_the_baseline_net_tunes_only_the_named_arms_reproducibly(tiny):
    table = O.arms()
    grids = {"SGD+momentum": [0.05], "Adam": [0.001, 0.003]}
    a = O.tune_on_baseline_net(tiny, table, grids, 7, [0, 1], bar=False, **FIT)
    b = O.tune_on_baseline_net(tiny, table, grids, 7, [0, 1], bar=False, **FIT)
    assert set(a) == set(grids) and set(a["Adam"]["selection"]["val_acc"]) == {0.001, 0.003}
    assert [r["step_loss"] for r in a["Adam"]["runs"]] == [r["step_loss"] for r in b["Adam"]["runs"]]
    sgd, adam = a["SGD+momentum"]["runs"][0], a["Adam"]["runs"][0]
    assert sgd["momentum"] == 0.9 and sgd["step_loss"] != adam["step_loss"]  # same start, own optimiser
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in a["Adam"]["runs"])
    m = O.summary_metrics(a, prefix="opt1_")
    assert set(m) == {"opt1_test_acc_SGD_momentum", "opt1_chosen_lr_SGD_momentum", "opt1_test_acc_Adam",
                      "opt1_chosen_lr_Adam"}
    mean = sum(r["test_acc"] for r in a["Adam"]["runs"]) / 2
    assert m["opt1_test_acc_Adam"]["value"] == pytest.approx(mean)
    assert m["opt1_chosen_lr_Adam"] == a["Adam"]["selection"]["lr"]
    with pytest.raises(ValueError, match="no optimiser named"):
        O.tune_on_baseline_net(tiny, table, {"Adamax": [0.001]}, 7, [0], bar=False, **FIT)


def test_opt1_on_the_baseline_net_uses_the_recipes_label_smoothing(tiny, monkeypatch):
    seen = []
    real_fit = O.train_and_score

    def spy(model, data, **kw):  # the baseline net (it has a stem), with the recipe's smoothing
        seen.append((hasattr(model, "stem"), kw.get("label_smoothing"), kw.get("batch_size")))
        return real_fit(model, data, **kw)
    monkeypatch.setattr(O, "train_and_score", spy)
    O.tune_on_baseline_net(tiny, O.arms(), {"Adam": [0.001]}, 7, [0], bar=False, **FIT)
    assert seen and all(s[0] and s[1] == O.recipes.BASELINE["fit"]["label_smoothing"] and s[2] == 30
                        for s in seen)


def test_matched_momentum_steps_and_curve_helpers():
    lrs = O.matched_lrs(1.0, [0.0, 0.5, 0.9, 0.99])
    assert all(lr / (1 - m) == pytest.approx(1.0) for m, lr in lrs.items())
    with pytest.raises(ValueError, match="momenta must be in"):
        O.matched_lrs(1.0, [1.0])
    assert O.epochs_to([2.3, 2.0, 1.5], 2.0) == 2 and O.epochs_to([2.3], 1.0) == math.inf
    runs = [{"train_loss": [2.0, 1.0], "diverged": False}, {"train_loss": [2.2], "diverged": True}]
    assert O.loss_at(runs, 2)[0] == 1.0 and all(math.isnan(v) for v in O.loss_at(runs, 1)[1:])


def test_stuck_then_switch_starts_every_arm_from_the_same_weights(tiny):
    out = O.stuck_then_switch(tiny, [0], (4, 8), 1, 1, 0.01, 0.1, 0.001, batch_size=30, aug=False,
                              progress=False)
    assert set(out) == {"stuck", "keep SGD", "SGD, higher lr", "switch to Adam"}
    assert all(len(curves) == 1 and len(curves[0]) == 1 for curves in out.values())
    # the deep plain net has 3 convs per block and no batch norm
    net = O.deep_plain_net((4, 8))
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 6
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_panel_run_returns_a_history_with_the_reference_curves(tiny):
    params = {"optimizer": "adamw", "lr": 0.001, "momentum": 0.9, "weight_decay": 0.05, "epochs": 1}
    seen = []
    hist = O.run_for_panel(params, tiny, seen.append, lambda: False, tiny_model(), {"Adam": [2.3, 2.2]},
                           batch_size=30, aug=False)
    assert hist["reference"] == {"Adam": [2.3, 2.2]} and hist["stopped"] is None and seen
    assert O.panel_png(hist, "t").startswith(b"\x89PNG")


def test_meanings_cover_every_claim_and_outcome():
    assert set(O.MEANINGS) == {"OPT-1", "OPT-2", "OPT-3", "OPT-4", "OPT-5", "MOM-1"}
    assert all(set(m) == {"supported", "not supported", "inconclusive"} for m in O.MEANINGS.values())


def test_runs_repeated_on_the_baseline_net_pair_with_the_tuned_ones(tiny):
    table = O.arms()
    tuned = O.tune_on_baseline_net(tiny, table, {"Adam": [0.003]}, 7, [0, 1], bar=False, **FIT)["Adam"]
    kind, momentum, wd = table["Adam"]
    same = O.repeat_on_baseline_net(tiny, kind, 0.003, [0, 1], weight_decay=wd, momentum=momentum, **FIT)
    assert [r["step_loss"] for r in same] == [r["step_loss"] for r in tuned["runs"]], "same net, seeds, settings"
    default = O.repeat_on_baseline_net(tiny, kind, 0.001, [1], weight_decay=wd, **FIT)
    assert default[0]["step_loss"] != same[1]["step_loss"] and 0.0 <= default[0]["test_acc"] <= 1.0
