"""Cross-validation: folds are disjoint, cover the pool, keep class proportions, never hold a
test index; fold training on non-square images; spreads and sampling gaps."""
import numpy as np
import pytest
import torch

from course_lib.core import validation
from course_lib.core.models import small_cnn
from course_lib.lessons import cross_validation as cv

# imbalanced on purpose: 60 / 30 / 10 images of classes 0 / 1 / 2
Y = np.repeat([0, 1, 2], [60, 30, 10])


def test_holdout_leave_one_out_and_three_way_split():
    splits = cv.holdout_splits(Y, 6, val_fraction=0.2, seed=0)
    assert len(splits) == 6 and all(len(va) == 20 for _, va in splits)
    assert all(np.bincount(Y[va]).tolist() == [12, 6, 2] for _, va in splits)
    assert len({tuple(sorted(va)) for _, va in splits}) == 6  # six different splits
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        cv.holdout_splits(Y, 3, val_fraction=1.5)
    loo = cv.leave_one_out(7)
    assert len(loo) == 7 and all(len(va) == 1 and len(tr) == 6 for tr, va in loo)
    with pytest.raises(ValueError, match="at least 2"):
        cv.leave_one_out(1)
    tr, va, te = cv.three_way_split(Y, seed=0)
    assert (len(tr), len(va), len(te)) == (70, 20, 10)
    assert len(set(tr) | set(va) | set(te)) == 100
    assert np.bincount(Y[te]).tolist() == [6, 3, 1]
    with pytest.raises(ValueError, match="summing to 1"):
        cv.three_way_split(Y, (0.7, 0.2, 0.2))


def test_shared_images_finds_exact_copies_in_non_square_images():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (20, 3, 24, 32), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (15, 3, 24, 32), dtype=torch.uint8, generator=g)
    assert cv.shared_images(a, b) == 0
    b[[2, 7]] = a[[5, 11]]
    assert cv.shared_images(a, b) == 2
    assert cv.shared_images(a, a.transpose(2, 3).contiguous().transpose(2, 3)) == 20
    with pytest.raises(ValueError, match="same C,H,W"):
        cv.shared_images(a, a.transpose(2, 3))


def tiny_model():
    return small_cnn(widths=(8, 16), hidden=16, num_classes=3)


def test_pool_subset_is_stratified_and_checks_its_size(tiny):
    pool = cv.pool_subset(tiny, 30, seed=0)
    assert pool["train_x"].shape == (30, 3, 24, 32)
    assert np.bincount(pool["train_y"].numpy()).tolist() == [10, 10, 10]
    assert torch.equal(pool["test_x"], tiny["test_x"])  # only the training split is cut
    with pytest.raises(ValueError, match="between 3 .* and 90"):
        cv.pool_subset(tiny, 91)


def test_grid_search_picks_the_best_mean_and_refuses_unknown_parameters(tiny):
    folds = validation.stratified_folds(tiny["train_y"], 2)
    res = cv.grid_search(tiny_model, tiny, folds, "lr", [1e-4, 0.05], epochs=3, batch_size=16)
    assert len(res["fold_acc"]) == 2 and all(len(f) == 2 for f in res["fold_acc"])
    assert res["best"] == res["values"][int(np.argmax(res["mean"]))]
    assert cv.grid_png(res, "lr")[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="param must be a keyword of fit"):
        cv.grid_search(tiny_model, tiny, folds, "dropout", [0.1])


def test_repeat_means():
    assert cv.repeat_means([1, 2, 3, 4, 5, 6], 3) == [2.0, 5.0]
    with pytest.raises(ValueError, match="repeats of k=4"):
        cv.repeat_means([1, 2, 3, 4, 5, 6], 4)


def test_resplit_gaps_match_binomial_sampling():
    rng = np.random.default_rng(0)
    correct = rng.random(1500) < 0.6
    gaps = cv.resplit_gaps(correct, 1000, draws=4000, seed=0)
    assert abs(gaps.mean()) < 0.005
    expected = cv.gap_std(correct.mean(), 1000, 500)
    assert gaps.std() == pytest.approx(expected, rel=0.1)  # a fixed pool: slightly below binomial
    assert (cv.resplit_gaps(correct, 1000, draws=50, seed=1) == cv.resplit_gaps(correct, 1000, draws=50, seed=1)).all()
    with pytest.raises(ValueError, match="between 1 and 1499"):
        cv.resplit_gaps(correct, 1500)


def _probs(correct, n_classes=2):
    """One-hot probabilities that are right where ``correct`` is 1, for labels all 0."""
    pred = torch.as_tensor([0 if c else 1 for c in correct])
    return torch.nn.functional.one_hot(pred, n_classes).float()


def test_selection_optimism_is_positive_when_choosing_on_the_test_set():
    # six configurations of the same true accuracy 70%: any winner on A is lucky on A
    gen = torch.Generator().manual_seed(1)
    y = torch.zeros(2000, dtype=torch.long)
    probs = [_probs((torch.rand(2000, generator=gen) < 0.7).tolist()) for _ in range(6)]
    r = cv.selection_optimism([0.7] * 6, probs, y, n_reported=200, draws=300, seed=0)
    assert r["test_choice"] > 0.02            # max of six noisy estimates of 200 images
    assert abs(r["val_choice"]) < 0.01        # a choice A never saw: no optimism on average
    assert sum(r["picked_on_test"]) == 300 and len(r["picked_on_test"]) == 6


def test_selection_optimism_refuses_bad_sizes():
    y = torch.zeros(10, dtype=torch.long)
    probs = [_probs([1] * 10), _probs([0] * 10)]
    with pytest.raises(ValueError, match="n_reported must be a whole number between 1 and 9"):
        cv.selection_optimism([0.5, 0.5], probs, y, n_reported=10)
    with pytest.raises(ValueError, match="val_acc has 1 values but test_probs 2"):
        cv.selection_optimism([0.5], probs, y, n_reported=5)
