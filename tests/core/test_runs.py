"""One run of a sweep: re-initialising a reused model in place gives the same run as a fresh
model; a diverging run is a result, not an exception."""
import math

import pytest
import torch

from course_lib.core.models import small_cnn
from course_lib.core.runs import choose_on_validation, reinitialize_, train_and_score
from course_lib.core.train import fit


def tiny_model():
    return small_cnn(widths=(8, 16), hidden=16, num_classes=3)


def test_reinitialize_is_in_place_seeded_and_resets_batch_norm(tiny):
    model = tiny_model()
    fit(model, tiny, epochs=1, batch_size=16, progress=False)
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert model.block1.bn1.running_mean.abs().sum() > 0
    a = {k: v.clone() for k, v in reinitialize_(model, seed=1).state_dict().items()}
    assert [p.data_ptr() for p in model.parameters()] == ptrs, "same tensors, nothing reallocated"
    assert torch.all(model.block1.bn1.running_mean == 0) and torch.all(model.block1.bn1.weight == 1)
    assert int(model.block1.bn1.num_batches_tracked) == 0
    assert model.head.fc2.weight.std() < 0.03, "the classifier starts small, as in small_cnn"
    b = reinitialize_(model, seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = reinitialize_(model, seed=2).state_dict()
    assert not torch.equal(a["block1.conv1.weight"], c["block1.conv1.weight"])


def test_a_reused_model_gives_the_same_run_as_a_fresh_one(tiny):
    reused = tiny_model()
    train_and_score(reused, tiny, seed=0, epochs=1, batch_size=16, lr=0.5, progress=False)  # leaves it trained
    r1 = train_and_score(reused, tiny, seed=1, epochs=1, batch_size=16, lr=0.05, progress=False)
    r2 = train_and_score(tiny_model(), tiny, seed=1, epochs=1, batch_size=16, lr=0.05, progress=False)
    assert r1["history"]["step"]["loss"] == r2["history"]["step"]["loss"]
    assert r1["val_acc"] == r2["val_acc"]
    assert len(r1["train_seconds"]) == 1 and r1["images_per_s"] > 0 and not r1["diverged"]


def test_a_diverging_run_is_a_result_not_an_exception(tiny):
    r = train_and_score(tiny_model(), tiny, seed=0, epochs=2, batch_size=16, lr=1e8, progress=False,
                schedule="constant", weight_decay=0.0)
    assert r["diverged"] and r["history"]["stopped"] == "nonfinite"
    assert 0.0 <= r["val_acc"] <= 1.0 and math.isnan(r["train_loss"])


def test_reinitialize_refuses_an_unknown_init():
    with pytest.raises(ValueError, match="init must be one of"):
        reinitialize_(tiny_model(), 0, init="zeros")


def test_choose_on_validation_keeps_the_best_first_of_ties_at_the_selection_seed():
    calls = []

    def run(lr, seed):
        calls.append((lr, seed))
        return {"val_acc": {0.01: 0.5, 0.1: 0.7, 1.0: 0.7}[lr], "test_acc": math.nan}
    sel = choose_on_validation(run, [0.01, 0.1, 1.0], seed=100)
    assert sel["lr"] == 0.1, "the first of equal scores"
    assert sel["val_acc"] == {0.01: 0.5, 0.1: 0.7, 1.0: 0.7} and set(sel["runs"]) == {0.01, 0.1, 1.0}
    assert calls == [(0.01, 100), (0.1, 100), (1.0, 100)], "every value once, at the selection seed"
    diverged = choose_on_validation(lambda lr, s: {"val_acc": 0.1 if lr > 1 else 0.4}, [3.0, 0.3], 0)
    assert diverged["lr"] == 0.3
    calls.clear()
    single = choose_on_validation(run, [0.1], 0, train_single=False)
    assert single["lr"] == 0.1 and math.isnan(single["val_acc"][0.1]) and calls == []
    assert choose_on_validation(run, (v for v in [0.1]), 0)["val_acc"] == {0.1: 0.7}, "any iterable"
    with pytest.raises(ValueError, match="grid is empty"):
        choose_on_validation(run, [], 0)
