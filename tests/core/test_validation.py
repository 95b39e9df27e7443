"""Held-out evaluation shared by the lessons: folds are disjoint, cover the pool, keep class
proportions and never hold a test index; fold training on non-square images is reproducible and
stops when asked."""
import numpy as np
import pytest
import torch

from course_lib.core import validation
from course_lib.core.models import small_cnn

# imbalanced on purpose: 60 / 30 / 10 images of classes 0 / 1 / 2
Y = np.repeat([0, 1, 2], [60, 30, 10])


def tiny_model():
    return small_cnn(widths=(8, 16), hidden=16, num_classes=3)


def test_accuracy_and_average_probs():
    assert validation.accuracy(torch.tensor([1, 0, 2, 2]), torch.tensor([1, 1, 2, 0])) == 0.5
    probs = torch.softmax(torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0)), 2)
    assert torch.allclose(validation.average_probs(probs), probs.mean(0))
    with pytest.raises(ValueError, match="differ in shape"):
        validation.accuracy(torch.zeros(3), torch.zeros(4))


def test_folds_are_disjoint_cover_the_pool_and_keep_class_proportions():
    folds = validation.stratified_folds(Y, 5, seed=0)
    facts = validation.check_folds(folds, Y)
    assert facts == {**facts, "n_folds": 5, "val_disjoint": True, "covers": True, "train_val_disjoint": True}
    assert facts["max_share_deviation"] < 0.02  # every validation fold is 12/6/2
    for tr, va in folds:
        assert len(tr) + len(va) == len(Y)
        assert np.bincount(Y[va]).tolist() == [12, 6, 2]


def test_folds_never_contain_a_test_index():
    test = np.random.default_rng(3).choice(len(Y), 10, replace=False)  # a held-out test split
    folds = validation.stratified_folds(Y, 4, seed=0, repeats=2, exclude=test)
    assert len(folds) == 8
    pool = set(range(len(Y))) - set(test)
    for tr, va in folds:
        assert not (set(tr) | set(va)) & set(test)
        assert set(tr) | set(va) == pool


def test_same_seed_same_folds_other_seed_other_folds_and_repeats_repartition():
    a = validation.stratified_folds(Y, 5, seed=1, repeats=2)
    b = validation.stratified_folds(Y, 5, seed=1, repeats=2)
    assert all((x[1] == y[1]).all() for x, y in zip(a, b))
    c = validation.stratified_folds(Y, 5, seed=2)
    assert any(set(x[1]) != set(y[1]) for x, y in zip(a[:5], c))
    for r in range(2):  # each repeat is a partition of its own
        assert validation.check_folds(a[5 * r:5 * r + 5], Y)["covers"]
    assert any(set(x[1]) != set(y[1]) for x, y in zip(a[:5], a[5:]))


def test_bad_k_names_the_allowed_range():
    with pytest.raises(ValueError, match="between 2 and 10"):
        validation.stratified_folds(Y, 11)  # the smallest class has 10 images
    with pytest.raises(ValueError, match="between 2 and 10"):
        validation.stratified_folds(Y, 1)
    with pytest.raises(ValueError, match="repeats"):
        validation.stratified_folds(Y, 2, repeats=0)


def test_split_data_normalises_with_the_training_part_and_keeps_the_shape(tiny):
    tr, va = validation.stratified_folds(tiny["train_y"], 3)[0]
    part = validation.split_data(tiny, tr, va)
    assert part["train_x"].shape[1:] == (3, 24, 32) and len(part["val_y"]) == len(va)
    expected = part["train_x"].float().div(255).mean(dim=(0, 2, 3))
    assert torch.allclose(part["mean"], expected)


def test_cross_validate_on_non_square_images_is_reproducible(tiny):
    folds = validation.stratified_folds(tiny["train_y"], 3, seed=0)
    kw = dict(epochs=2, batch_size=16, lr=0.05, eval_sets={"test": tiny["test_x"]})
    a = validation.cross_validate(tiny_model, tiny, folds, seed=4, **kw)
    assert len(a["val_acc"]) == 3 and all(0 <= v <= 1 for v in a["val_acc"])
    assert a["probs"]["test"][0].shape == (len(tiny["test_y"]), 3)
    assert torch.allclose(a["probs"]["test"][0].sum(1), torch.ones(len(tiny["test_y"])))
    assert a["estimate"] == pytest.approx(np.mean(a["val_acc"]))
    b = validation.cross_validate(tiny_model, tiny, folds, seed=4, **kw)
    assert a["val_acc"] == b["val_acc"]
    assert torch.equal(a["probs"]["test"][2], b["probs"]["test"][2])


def test_cross_validate_stops_when_asked_and_counts_no_partial_fold(tiny):
    folds = validation.stratified_folds(tiny["train_y"], 3)
    seen = []
    res = validation.cross_validate(tiny_model, tiny, folds, epochs=1, batch_size=16,
                            report=lambda r: seen.append(len(r["val_acc"])), should_stop=lambda: len(seen) >= 1)
    assert res["stopped"] == "requested" and len(res["val_acc"]) == 1
