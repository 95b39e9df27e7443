"""Notebook 15's helpers: the penalties are computed as stated, the three search strategies draw
the trials and ranges asked for reproducibly, the reading rule of DIAG-1, one-at-a-time tuning,
the edge re-test, the rank-correlation verdict, and runs on non-square images."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.lessons import regularisation_and_search as R

RANGES = {"lr": (0.001, 0.1), "weight_decay": (1e-5, 1e-3)}
FIT = {"epochs": 2, "batch_size": 30, "schedule": "constant", "aug": False, "progress": False}


def within(trials, ranges=RANGES):
    return all(ranges[k][0] * (1 - 1e-9) <= t[k] <= ranges[k][1] * (1 + 1e-9) for t in trials for k in ranges)


def test_l1_and_l2_penalties_are_computed_as_stated_on_conv_and_linear_weights_only():
    model = R.net(2).requires_grad_(False)
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    l1 = 0.01 * sum(float(w.detach().abs().sum()) for w in weights)
    l2 = 0.01 * sum(float(w.detach().pow(2).sum()) for w in weights)
    assert float(R.penalty(model, "l1", 0.01)) == pytest.approx(l1, rel=1e-5)
    assert float(R.penalty(model, "l2", 0.01)) == pytest.approx(l2, rel=1e-5)
    with torch.no_grad():  # biases and batch norm are not penalised
        model.head.fc2.bias.fill_(50.0)
        model.block1.bn1.weight.fill_(50.0)
    assert float(R.penalty(model, "l1", 0.01)) == pytest.approx(l1, rel=1e-5)
    assert float(R.penalty(model, "none", 0.01)) == 0.0 and float(R.penalty(model, "l1", 0.0)) == 0.0


def test_l1_gradient_is_strength_times_sign_and_l2_equals_sgd_weight_decay_of_twice_it():
    layer = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -2.0, 0.01]]))
    R.penalty(layer, "l1", 0.1).backward()
    assert torch.allclose(layer.weight.grad, 0.1 * torch.tensor([[1.0, -1.0, 1.0]]))
    a, b = nn.Linear(3, 1, bias=False), nn.Linear(3, 1, bias=False)
    b.load_state_dict(a.state_dict())
    R.penalty(a, "l2", 0.05).backward()
    torch.optim.SGD(a.parameters(), lr=0.1).step()
    b.weight.grad = torch.zeros_like(b.weight)
    torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=0.1).step()
    assert torch.allclose(a.weight, b.weight)


@pytest.mark.parametrize("kind, strength", [("l3", 0.1), ("l1", -0.1), ("l2", math.inf)])
def test_bad_penalties_are_refused(kind, strength):
    with pytest.raises(ValueError, match="penalty"):
        R.penalty(R.net(1), kind, strength)


def test_the_losses_are_cross_entropy_mse_on_one_hot_and_multi_margin():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    assert R.data_loss("cross-entropy")(logits, y) == F.cross_entropy(logits, y)
    assert torch.isclose(R.data_loss("mse")(logits, y), ((logits - F.one_hot(y, 4)) ** 2).mean())
    assert torch.isclose(R.data_loss("hinge")(logits, y), nn.MultiMarginLoss()(logits, y))
    with pytest.raises(ValueError, match="loss must be one of"):
        R.data_loss("focal")


def test_sparsity_counts_weights_under_the_threshold():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 0.0005, -0.0005, 0.5]]))
    assert R.sparsity(layer, 0.001) == 0.75 and R.sparsity(layer, 0.0001) == 0.25


def test_grid_has_points_squared_log_spaced_trials_over_the_ranges():
    trials = R.grid_trials(RANGES, 3)
    assert len(trials) == 9 and within(trials)
    assert sorted({t["lr"] for t in trials}) == pytest.approx([0.001, 0.01, 0.1])
    assert sorted({t["weight_decay"] for t in trials}) == pytest.approx([1e-5, 1e-4, 1e-3])
    assert R.grid_trials(RANGES, 3) == trials


def test_jittered_grid_is_reproducible_stays_in_range_and_near_its_grid_point():
    grid, jit = R.grid_trials(RANGES, 3), R.jittered_trials(RANGES, 3, seed=4, jitter=0.5)
    assert len(jit) == 9 and within(jit)
    assert jit == R.jittered_trials(RANGES, 3, seed=4, jitter=0.5)
    assert jit != R.jittered_trials(RANGES, 3, seed=5, jitter=0.5)
    for g, j in zip(grid, jit):  # at most half a grid step (a decade here) away in log space
        assert all(abs(math.log10(j[k]) - math.log10(g[k])) <= 0.5 + 1e-9 for k in RANGES)
    assert len({t["lr"] for t in jit}) == 9  # every trial tries its own LR
    for g, j in zip(grid, R.jittered_trials(RANGES, 3, seed=4, jitter=0.0)):
        assert j == pytest.approx(g)
    with pytest.raises(ValueError, match="jitter"):
        R.jittered_trials(RANGES, 3, seed=0, jitter=0.8)


def test_random_search_draws_n_log_uniform_trials_reproducibly():
    trials = R.random_trials(RANGES, 200, seed=1)
    assert len(trials) == 200 and within(trials)
    assert trials == R.random_trials(RANGES, 200, seed=1) and trials != R.random_trials(RANGES, 200, seed=2)
    below = sum(t["lr"] < 0.01 for t in trials) / 200  # log-uniform: half the draws under the middle decade
    assert 0.35 < below < 0.65


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="0 < low <= high"):
        R.grid_trials({"lr": (0.0, 0.1)}, 3)
    with pytest.raises(ValueError, match="points"):
        R.grid_trials(RANGES, 0)


def grid_with(scores):
    """The 3 x 3 grid of RANGES with validation accuracies from a dict (lr index, decay index)."""
    lrs, wds = [0.001, 0.01, 0.1], [1e-5, 1e-4, 1e-3]
    return [{"lr": lrs[i], "weight_decay": wds[j], "val_acc": scores.get((i, j), 0.1)}
            for i in range(3) for j in range(3)]


def test_one_at_a_time_tunes_lr_first_then_decay_and_can_miss_a_diagonal_optimum():
    trials = grid_with({(2, 0): 0.5, (1, 2): 0.7, (2, 1): 0.4})  # a ridge: the best is off the start column
    pick = R.one_at_a_time(trials, 1e-5)
    assert (pick["lr"], pick["weight_decay"], pick["val_acc"]) == (0.1, 1e-5, 0.5)
    assert R.best(trials)["val_acc"] == 0.7 and pick["val_acc"] < 0.7
    assert R.ridge_shift(trials)[0.01] == 1e-3 and R.ridge_shift(trials)[0.1] == 1e-5
    with pytest.raises(ValueError, match="not a decay of the grid"):
        R.one_at_a_time(trials, 0.5)


def test_edge_retest_steps_one_grid_step_out_only_on_an_edge():
    corner = R.edge_retest(grid_with({(2, 2): 0.9}), RANGES, 3)
    assert sorted((t["lr"], t["weight_decay"]) for t in corner) == pytest.approx(
        sorted([(1.0, 1e-3), (0.1, 1e-2)]))
    assert R.edge_retest(grid_with({(1, 1): 0.9}), RANGES, 3) == []


def test_reading_rule_matches_document_c_examples():
    assert R.read_fit(0.8, 2.0, ratio=2.0) == "overfitting"
    assert R.read_fit(0.8, 0.9, ratio=2.0) == "fine"
    assert R.read_fit(1.2, 0.9, ratio=2.0) == "underfitting"
    with pytest.raises(ValueError, match="ratio"):
        R.read_fit(0.8, 2.0, ratio=1.0)
    assert R.val_loss_turned_up([2.0, 1.5, 1.7], rise=0.1) and not R.val_loss_turned_up([2.0, 1.5, 1.52], 0.1)


def test_diagnose_counts_agreement_between_the_rule_and_the_curve():
    runs = [{"train_loss": 0.5, "val_loss": 2.0, "curves": {"val_loss": [2.0, 1.4, 2.0]}},   # both: overfit
            {"train_loss": 0.8, "val_loss": 0.9, "curves": {"val_loss": [2.0, 1.0, 0.9]}},   # both: not
            {"train_loss": 0.5, "val_loss": 1.5, "curves": {"val_loss": [2.0, 1.6, 1.5]}}]   # disagree
    out = R.diagnose(runs, ratio=2.0, rise=0.05)
    assert out["agreement"] == pytest.approx(2 / 3) and [r["agree"] for r in out["rows"]] == [True, True, False]



def test_runs_on_non_square_images_are_reproducible_and_keep_test_apart(tiny):
    model = R.net(2, num_classes=3)
    a = R.train_run(model, tiny, 3, 0.05, reg="l1", strength=0.001, **FIT)
    b = R.train_run(model, tiny, 3, 0.05, reg="l1", strength=0.001, **FIT)
    assert tiny["train_x"].shape[-2:] == (24, 32)
    assert a["val_acc"] == b["val_acc"] and a["sparsity"] == b["sparsity"] and a["penalty"] > 0
    assert len(a["curves"]["val_loss"]) == 2 and 0 <= a["penalty_share"] < 1 and not a["diverged"]
    assert a["gap"] == pytest.approx(a["train_acc"] - a["val_acc"])
    assert math.isnan(R.train_run(model, tiny, 3, 0.05, test=False, **FIT)["test_acc"])
    for loss in ("mse", "hinge"):
        assert 0 <= R.train_run(model, tiny, 0, 0.01, loss=loss, **FIT)["val_acc"] <= 1


def test_search_scores_each_trial_short_and_long(tiny):
    trials = R.grid_trials(RANGES, 2)
    out = R.search(R.net(1, num_classes=3), tiny, trials, seed=0, short_epoch=1, bar=False, **FIT)
    assert len(out) == 4 and all(0 <= t["short_acc"] <= 1 and 0 <= t["val_acc"] <= 1 for t in out)
    assert [(t["lr"], t["weight_decay"]) for t in out] == [(t["lr"], t["weight_decay"]) for t in trials]


def test_bad_sizes_are_refused(tiny):
    with pytest.raises(ValueError, match="width"):
        R.net(0)


def test_panel_run_returns_a_history(tiny):
    params = {"width": 1, "train_n": 60, "reg": "l2", "strength": 0.001, "lr": 0.05, "epochs": 1}
    hist = R.run_for_panel(params, tiny, lambda h: None, lambda: False, torch.device("cpu"),
                           batch_size=30, aug=False)
    assert len(hist["epoch"]["val_loss"]) == 1
    assert R.panel_png(hist)[:4] == b"\x89PNG"


def test_meanings_cover_every_claim_and_outcome():
    claims = {"CAP-1", "DATA-8", "DIAG-1", "WD-1", "REG-1", "REG-3", "LOSS-1", "HP-1", "HP-2", "HP-3"}
    assert set(R.MEANINGS) == claims
    assert all(set(m) == {"supported", "not supported", "inconclusive"} for m in R.MEANINGS.values())
