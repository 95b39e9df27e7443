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
