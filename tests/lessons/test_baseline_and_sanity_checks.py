"""Notebook 00's sanity checks: the initial-loss reference, memorising one batch of non-square
images, and picking the most confident mistakes."""
import math

import pytest
import torch

from course_lib.core.models import small_cnn
from course_lib.lessons import baseline_and_sanity_checks as sanity


def test_expected_initial_loss_is_log_of_the_class_count():
    assert sanity.expected_initial_loss(10) == pytest.approx(2.302585, abs=1e-6)
    assert sanity.expected_initial_loss(3) == pytest.approx(math.log(3))


def test_a_fresh_small_cnn_starts_near_log_c_on_non_square_images(tiny):
    torch.manual_seed(0)
    loss = sanity.initial_loss(small_cnn(widths=(8, 16), hidden=16, num_classes=3), tiny)
    assert abs(loss - math.log(3)) < 0.1 * math.log(3)


def test_one_batch_of_32x24_images_is_memorised_and_seeds_repeat(tiny):
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(sanity.overfit_batch(small_cnn(widths=(8, 16), hidden=16, num_classes=3), tiny,
                                         n_images=16, steps=60, lr=3e-3))
    assert runs[0]["loss"] == runs[1]["loss"]
    assert runs[0]["acc"][-1] == 1.0 and runs[0]["loss"][-1] < runs[0]["loss"][0] / 4


def test_most_confident_mistakes_are_wrong_and_ordered_by_confidence():
    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 4.0], [0.2, 0.0]])
    y = torch.tensor([1, 1, 1, 0, 0])
    assert sanity.most_confident_mistakes(logits, y, k=2).tolist() == [0, 3]
    assert sanity.most_confident_mistakes(logits, y, k=10).tolist() == [0, 3, 2]
    assert sanity.most_confident_mistakes(logits, torch.tensor([0, 1, 0, 1, 0])).numel() == 0


def test_scalings_differ_only_in_mean_and_std_and_bad_names_are_refused(tiny):
    unit, raw = sanity.scaling(tiny, "unit"), sanity.scaling(tiny, "raw")
    assert torch.equal(unit["std"], torch.ones_like(tiny["std"])) and float(unit["mean"].abs().max()) == 0
    assert torch.allclose(raw["std"], torch.full_like(tiny["std"], 1 / 255))
    assert sanity.scaling(tiny, "train_stats")["mean"] is tiny["mean"] and unit["train_x"] is tiny["train_x"]
    with pytest.raises(ValueError, match="train_stats"):
        sanity.scaling(tiny, "zscore")


def test_own_statistics_of_the_whole_split_match_evaluate_with_them(tiny):
    from course_lib.core.data import channel_stats
    from course_lib.core.train import evaluate
    torch.manual_seed(0)
    model = small_cnn(widths=(8, 16), hidden=16, num_classes=3)
    mean, std = channel_stats(tiny["val_x"])
    whole = sanity.acc_with_own_stats(model, tiny["val_x"], tiny["val_y"])
    assert whole == pytest.approx(evaluate(model, tiny["val_x"], tiny["val_y"], mean, std)["acc"])
    assert 0.0 <= sanity.acc_with_own_stats(model, tiny["val_x"], tiny["val_y"], chunk=4) <= 1.0
    with pytest.raises(ValueError, match="at least 2"):
        sanity.acc_with_own_stats(model, tiny["val_x"], tiny["val_y"], chunk=1)


def test_short_training_pairs_seeds_and_scores_own_statistics(tiny):
    from functools import partial
    make = partial(small_cnn, widths=(8, 16), hidden=16, num_classes=3)
    runs = [sanity.short_training(make, tiny, 3, epochs=1, lr=0.05, batch_size=16, own_chunk=4) for _ in range(2)]
    assert runs[0] == runs[1] and not runs[0]["diverged"]
    assert {"val_acc", "val_acc_own_split", "val_acc_own_chunk"} <= set(runs[0])
