"""Notebook 11's helpers: the depth/init/activation/norm nets (plain, residual, 5x5, group norm)
on non-square input, gradient profiles, dead-unit counting, seeded paired runs, the planted
height/width swap and the widget's picture."""
import math

import pytest
import torch
from torch import nn

from course_lib.lessons import init_activations_norm_depth as L

FIT = {"epochs": 1, "batch_size": 30, "schedule": "constant", "aug": False, "progress": False,
       "weight_decay": 0.0}


def batch(n=6, h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g), torch.arange(n) % 10


@pytest.mark.parametrize("kw", [
    {}, {"residual": True}, {"norm": "batch"}, {"norm": "group"}, {"norm": "group", "residual": True},
    {"kernel": 5, "width": 14}, {"activation": "prelu"}, {"activation": "sigmoid", "init": "normal001"},
    {"depth": 14, "init": "default"}])
def test_nets_run_on_non_square_input(kw):
    x, _ = batch()
    net = L.conv_net(**kw)
    assert net(x).shape == (6, 10)


def test_depth_counts_weight_layers_and_the_5x5_net_has_half_the_body_convs():
    for depth in (8, 20, 32):
        assert len(L.conv_layers(L.conv_net(depth))) == depth - 1  # + the linear head = depth
        assert len(L.conv_layers(L.conv_net(depth, kernel=5))) == (depth - 2) // 2 + 1
    res = L.conv_net(20, residual=True)
    assert sum(isinstance(m, L.ResidualBlock) for m in res.modules()) == 9


def test_residual_block_adds_its_input():
    block = L.ResidualBlock(4, "relu", "none", 1)
    nn.init.zeros_(block.conv2.weight)
    nn.init.zeros_(block.conv2.bias)
    x = torch.rand(2, 4, 5, 7)  # positive, so the last ReLU keeps it
    assert torch.equal(block(x), x)


def test_group_norm_does_not_depend_on_the_other_images_in_the_batch():
    torch.manual_seed(0)
    x, _ = batch(4)
    for norm, independent in (("group", True), ("batch", False)):
        net = L.conv_net(8, norm=norm, seed=1).train()
        alone = net(x[:1])
        together = net(x)[:1]
        assert torch.allclose(alone, together, atol=1e-5) == independent


@pytest.mark.parametrize("kw, words", [
    ({"depth": 10}, "6n \\+ 2"), ({"depth": 2}, "6n \\+ 2"), ({"init": "orthogonal"}, "init must be one of"),
    ({"norm": "layer"}, "norm must be one of"), ({"activation": "swish"}, "activation must be one of"),
    ({"kernel": 7}, "kernel must be 3 or 5"), ({"kernel": 5, "residual": True}, "plain nets only"),
    ({"norm": "group", "width": 10, "groups": 4}, "multiple of groups")])
def test_bad_net_settings_are_refused_with_the_allowed_values(kw, words):
    with pytest.raises(ValueError, match=words):
        L.conv_net(**kw)


def test_a_seed_gives_the_same_weights_and_inits_differ_in_scale():
    a, b = L.conv_net(8, seed=3), L.conv_net(8, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    std = {i: L.conv_net(8, init=i, seed=0).stage2.conv1.conv.weight.std().item() for i in L.INITS}
    fan_in = 16 * 9
    assert std["kaiming"] == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
    assert std["xavier"] == pytest.approx(math.sqrt(1 / fan_in), rel=0.1)
    assert std["default"] == pytest.approx(math.sqrt(1 / (3 * fan_in)), rel=0.1)
    assert std["normal001"] == pytest.approx(0.01, rel=0.1)
    assert float(L.conv_net(8, init="default").head.fc.weight.detach().std()) == pytest.approx(L.HEAD_STD, rel=0.3)


def test_equal_params_width_and_costs():
    assert L.equal_params_width(16) == 14
    three = L.describe_cost(L.conv_net(8, 16))
    five = L.describe_cost(L.conv_net(8, 14, kernel=5))
    assert abs(five["params"] / three["params"] - 1) < 0.1 and abs(five["macs"] / three["macs"] - 1) < 0.1
    # a 1x1 conv on a 4x6 image: 4 * 6 outputs x 3 inputs x 2 outputs
    conv = nn.Sequential(nn.Conv2d(3, 2, 1))
    assert L.conv_macs(conv, 4, 6) == 4 * 6 * 3 * 2


def test_gradient_profile_vanishes_for_deep_sigmoid_not_for_relu_kaiming():
    x, y = batch(16, 32, 32)
    relu = L.gradient_profile(L.conv_net(32, seed=0), x, y)
    sig = L.gradient_profile(L.conv_net(32, activation="sigmoid", init="xavier", seed=0), x, y)
    assert len(relu) == len(sig) == 31
    assert L.first_to_last(sig) < 1e-3 < L.first_to_last(relu)
    assert math.isnan(L.first_to_last([])) and L.first_to_last([2.0, 4.0]) == 0.5


def test_skips_carry_the_gradient_where_the_plain_net_loses_it():
    x, y = batch(8, 32, 32)
    plain = L.gradient_profile(L.conv_net(32, init="default", seed=0), x, y)
    res = L.gradient_profile(L.conv_net(32, init="default", residual=True, seed=0), x, y)
    assert L.first_to_last(plain) < 1e-3 <= L.first_to_last(res)


def test_gradient_profile_leaves_no_gradients_and_keeps_the_mode():
    x, y = batch()
    net = L.conv_net(8, norm="batch").eval()
    L.gradient_profile(net, x, y)
    assert not net.training and all(p.grad is None for p in net.parameters())


def test_dead_fraction_counts_channels_never_positive():
    x, _ = batch(8)
    net = L.conv_net(8, seed=0)
    with torch.no_grad():  # kill every channel of the stem: a huge negative bias
        net.stem.conv.bias.fill_(-1e6)
    dead = L.dead_fraction(net, x, batch_size=3)  # several chunks: alive anywhere = alive
    # the stem's 16 channels are dead, and then every later layer sees zeros (bias 0: not > 0)
    assert dead == 1.0
    fresh = L.dead_fraction(L.conv_net(8, seed=0), x)
    assert 0.0 <= fresh < 0.5
    one = nn.Sequential(nn.ReLU())
    z = torch.tensor([[[[1.0]], [[-1.0]], [[0.0]], [[2.0]]]]).reshape(1, 4, 1, 1)
    assert L.dead_fraction(one, z) == 0.5


def test_paired_runs_are_reproducible_and_seeds_differ(tiny):
    kw = dict(depth=8, width=8, groups=4, norm="group")
    a = L.repeat(tiny, [0, 1], 0.05, kw, test=True, dead_images=20, target=5.0, **FIT)
    b = L.repeat(tiny, [0, 1], 0.05, kw, test=True, dead_images=20, target=5.0, **FIT)
    assert [r["step_loss"] for r in a] == [r["step_loss"] for r in b]
    assert a[0]["step_loss"] != a[1]["step_loss"]
    assert all(0 <= r["test_acc"] <= 1 and 0 <= r["dead"] <= 1 for r in a)
    assert a[0]["steps_to"] == L.steps_to_target(a[0]["step_loss"], 5.0)


def test_mean_and_gaps_over_seeds():
    runs = [{"x": 1.0}, {"x": math.nan}, {"x": 3.0}]
    assert L.mean(runs, "x") == 2.0 and math.isnan(L.mean([{"x": math.nan}], "x"))
    assert L.gaps([{"x": 2.0}, {"x": 5.0}], [{"x": 1.0}, {"x": 1.0}], "x") == [1.0, 4.0]


def test_steps_to_target_is_censored_at_the_budget():
    assert L.steps_to_target([3.0] * 5 + [1.0] * 20, 2.0, window=4) == 7.0  # steps 4-7 average 1.5
    assert L.steps_to_target([3.0] * 12, 2.0, window=4) == 13.0


class GuardedSplits(dict):
    """A data dict whose test split may not be read."""

    def __getitem__(self, key):
        if key.startswith("test"):
            raise AssertionError(f"the test split was read during selection ({key})")
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def test_lr_selection_reads_only_validation(tiny):
    sel = L.select_lr(GuardedSplits(tiny), [1e-4, 0.05], 0, dict(depth=8, width=8), **FIT)
    assert sel["lr"] == max(sel["val_acc"], key=sel["val_acc"].get)
    quiet = L.select_lr(GuardedSplits(tiny), [1e-4, 0.05], 0, dict(depth=8, width=8), evaluate_val=False, **FIT)
    assert quiet["val_acc"] == sel["val_acc"]  # scored even when fit skips validation
    with pytest.raises(ValueError, match="grid is empty"):
        L.select_lr(tiny, [], 0, dict(depth=8), **FIT)


def test_bn1_on_the_baseline_net_chooses_on_validation_and_pairs_seeds(tiny):
    grids = {"none": [1e-3, 0.05], "batch": [0.2]}
    fit = dict(FIT, evaluate_val=False)
    chosen = L.tune_on_baseline_net(GuardedSplits(tiny), grids, 7, [], 5.0, bar=False, **fit)
    got = L.tune_on_baseline_net(tiny, grids, 7, [0, 1], 5.0, bar=False, **fit)
    assert list(got) == ["no norm", "batch norm"]
    sel = got["no norm"]["selection"]
    assert sel == chosen["no norm"]["selection"], "the selection reads validation only, and repeats"
    assert set(sel["val_acc"]) == {1e-3, 0.05} and sel["lr"] == max(sel["val_acc"], key=sel["val_acc"].get)
    for r in got.values():
        assert [run["seed"] for run in r["runs"]] == [0, 1]
        assert all(run["lr"] == r["selection"]["lr"] for run in r["runs"])
        assert all(run["steps_to"] == L.steps_to_target(run["step_loss"], 5.0) for run in r["runs"])
        assert all(0 <= run["test_acc"] <= 1 for run in r["runs"])
    assert got["no norm"]["runs"][0]["step_loss"] != got["no norm"]["runs"][1]["step_loss"]
    again = L.tune_on_baseline_net(tiny, grids, 7, [0, 1], 5.0, bar=False, **fit)
    assert [r["step_loss"] for r in again["batch norm"]["runs"]] == \
        [r["step_loss"] for r in got["batch norm"]["runs"]], "seeds reproduce"
    for bad in ({"layer": [0.1]}, {"none": []}):
        with pytest.raises(ValueError, match="grids must map"):
            L.tune_on_baseline_net(tiny, bad, 7, [0], 5.0, **fit)


def test_the_planted_swap_hides_on_square_and_shows_on_non_square():
    square, wide = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 24, 32)
    assert L.crop_check(square, 16, 16)["same"]
    assert not L.crop_check(wide, 16, 16)["same"]  # same shape, wrong pixels
    assert not L.crop_check(wide, 16, 20)["same"]


def test_runs_non_square_reports_each_net():
    got = L.runs_non_square({"plain": {"depth": 8}, "residual gn": {"depth": 8, "norm": "group", "residual": True}})
    assert got == {"plain": True, "residual gn": True}


def test_widget_picture_and_plots_draw(tiny):
    from matplotlib.figure import Figure
    x, y = L.profile_batch(tiny, 8)
    assert tuple(x.shape[-2:]) == (24, 32)
    png = L.profile_png({"depth": 8, "init": "xavier", "activation": "tanh", "norm": "group",
                         "residual": True}, x, y, width=8)
    assert png[:4] == b"\x89PNG"
    prof = L.profile_grid(x, y, [8], ["kaiming"], ["relu", "tanh"], 0, width=8, progress=False)
    runs = L.repeat(tiny, [0], 0.05, dict(depth=8, width=8), **FIT)
    fig = Figure()
    a, b, c = fig.subplots(1, 3)
    L.draw_profiles(a, prof)
    L.draw_seed_points(b, {"x": runs}, "val_acc", "acc")
    L.draw_step_losses(c, {"x": runs})
    assert "relu" in L.summary_table({"relu": runs})


def test_panel_run_trains_the_chosen_net(tiny):
    params = {"depth": 8, "init": "kaiming", "activation": "relu", "norm": "batch", "residual": False,
              "lr": 0.05, "epochs": 1}
    seen = []
    hist = L.run_for_panel(params, tiny, seen.append, lambda: False, batch_size=30, aug=False)
    assert len(hist["epoch"]["val_acc"]) == 1 and seen
