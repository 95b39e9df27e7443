"""Notebook 14's helpers: the planted-fault archive and the course's reader, imbalanced subsets
with the ratios asked, remedies that balance in expectation, label flips of exactly the asked
share reproducible from the seed, the mining sets, and small end-to-end runs on non-square
images."""
import math

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from course_lib.core.data import channel_stats
from course_lib.core.models import small_cnn
from course_lib.lessons import data_quality as D

FIT = {"batch_size": 20, "lr": 0.05, "aug": False, "progress": False}


def fake_data(n=200, h=24, w=32, seed=0):
    """Random uint8 images (non-square, 24x32) with balanced labels 0..9, as ``load_cifar10`` returns."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    mean, std = channel_stats(x)
    return {"train_x": x, "train_y": y, "val_x": x[:50], "val_y": y[:50], "test_x": x[:60], "test_y": y[:60],
            "mean": mean, "std": std, "classes": [f"c{i}" for i in range(10)]}


def tiny_model():
    return small_cnn(widths=(4, 8), hidden=8)


# ----------------------------------------------------------------------------- DATA-1
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = fake_data(60)
    # smooth images compress like photos; pure noise would make every PNG the same size
    ramp = torch.linspace(0, 255, 32).to(torch.uint8).view(1, 1, 1, 32).expand(60, 3, 24, 32)
    x = ((d["train_x"] // 16).to(torch.int16) + ramp).clamp(0, 255).to(torch.uint8)
    return D.build_faulty_archive(x, d["train_y"], d["classes"], tmp_path_factory.mktemp("arch"), seed=3)


def test_the_reader_finds_every_broken_file_by_path_and_keeps_every_good_one(planted):
    check = D.check_archive(planted, 0.25)
    assert sorted(planted["broken"].values()) == sorted(D.FAULTS)
    assert check["missed"] == [] and check["good_dropped"] == [] and check["good_kept_exact"]
    assert set(check["skipped"]) == set(planted["broken"])  # reported by path, nothing else skipped
    assert check["n_good"] == 60 - len(D.FAULTS) - 1
    assert planted["size"] == (24, 32)


def test_the_size_rule_misses_normal_sized_faults_and_decoding_misses_the_blank_image(planted):
    table = D.check_archive(planted, 0.25)["table"]
    assert table["empty"] == (True, True) and table["tiny"] == (True, True)
    assert table["wrong size"] == (True, False)  # a bigger file: the size rule cannot see it
    assert table["blank (valid image)"] == (False, True)  # decodes fine, but is tiny


def test_the_size_rule_and_faults_refuse_bad_input():
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        D.size_heuristic({"a": 1}, 1.5)
    with pytest.raises(ValueError, match="fault must be one of"):
        D.fault_bytes("scratched", np.zeros((4, 4, 3), np.uint8))
    assert D.size_heuristic({"a": 100, "b": 100, "c": 10}, 0.5) == {"c"}


# ----------------------------------------------------------------------------- DATA-5
@pytest.mark.parametrize("ratio", [10, 100])
def test_the_imbalanced_subset_has_the_ratio_asked(ratio):
    y = torch.arange(5000) % 10
    idx = D.imbalanced_indices(y, [1, 3, 5], ratio, 300, seed=0)
    counts = D.class_counts(y[idx]).tolist()
    rare = max(1, round(300 / ratio))
    assert counts == [300 if c not in (1, 3, 5) else rare for c in range(10)]
    assert len(set(idx.tolist())) == len(idx)  # no image twice
    assert torch.equal(idx, D.imbalanced_indices(y, [1, 3, 5], ratio, 300, seed=0))
    assert not torch.equal(idx, D.imbalanced_indices(y, [1, 3, 5], ratio, 300, seed=1))


def test_the_imbalanced_subset_refuses_what_it_cannot_build():
    y = torch.arange(100) % 10
    with pytest.raises(ValueError, match="fewer than the 50 asked"):
        D.imbalanced_indices(y, [1], 10, 50, seed=0)
    with pytest.raises(ValueError, match="ratio must be >= 1"):
        D.imbalanced_indices(y, [1], 0.5, 5, seed=0)


def test_sampler_weights_give_balanced_batches_in_expectation():
    y = torch.cat([torch.zeros(900), torch.ones(90), torch.full((10,), 2)]).long()
    w = D.balanced_weights(y, 3)
    per_class = torch.zeros(3).index_add_(0, y, w)
    assert torch.allclose(per_class / per_class.sum(), torch.full((3,), 1 / 3))  # exact expectation
    draws = D.oversample(y, 30000, torch.Generator().manual_seed(0), 3)
    share = D.class_counts(y[draws], 3).float() / 30000
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.02)


def test_undersampling_and_loss_weights_balance_the_classes():
    y = torch.cat([torch.zeros(50), torch.ones(20), torch.full((5,), 3)]).long()
    sub = D.undersample(y, torch.Generator().manual_seed(0), 4)
    assert D.class_counts(y[sub], 4).tolist() == [5, 5, 0, 5]
    w = D.loss_weights(y, 4)
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 3]), y=y.numpy())
    assert torch.allclose(w[[0, 1, 3]], torch.tensor(expected, dtype=torch.float32))
    assert w[2] == 0  # absent class
    assert torch.allclose(w[[0, 1, 3]] * torch.tensor([50.0, 20.0, 5.0]), torch.full((3,), 75 / 3))


def test_every_remedy_sees_the_same_number_of_images():
    y = torch.cat([torch.zeros(40), torch.ones(4)]).long()
    lengths = {}
    for remedy in D.REMEDIES:
        stream, w = D.remedy_stream(y, remedy, 3, torch.Generator().manual_seed(0), 2)
        lengths[remedy] = len(stream)
        assert (w is not None) == (remedy == "class weights")
    assert set(lengths.values()) == {3 * 44}
    plain, _ = D.remedy_stream(y, "plain", 3, torch.Generator().manual_seed(0), 2)
    assert torch.bincount(plain).tolist() == [3] * 44
    with pytest.raises(ValueError, match="remedy must be one of"):
        D.remedy_stream(y, "smote", 1, torch.Generator(), 2)


class Always(torch.nn.Module):
    """A 'model' that predicts class ``k`` for every image."""

    def __init__(self, k):
        super().__init__()
        self.k, self.p = k, torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[:, self.k] = 1.0
        return out + 0 * self.p


def test_balanced_accuracy_sees_a_model_that_ignores_the_rare_classes():
    d = fake_data(100)
    prior = [90] + [1] * 9
    s = D.score_classes(Always(0), d, prior)
    assert s["recall"][0] == 1.0 and sum(s["recall"][1:]) == 0
    assert s["balanced_acc"] == pytest.approx(0.1) and s["prior_acc"] == pytest.approx(90 / 99)


# ----------------------------------------------------------------------------- DATA-7
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 1.0])
def test_label_flips_are_exactly_the_share_asked_and_reproducible(rate):
    y = torch.arange(1000) % 10
    noisy, mask = D.flip_labels(y, rate, seed=7)
    assert int(mask.sum()) == round(rate * 1000)
    assert torch.equal(noisy != y, mask)  # every flip changes the class, nothing else changes
    again, mask2 = D.flip_labels(y, rate, seed=7)
    assert torch.equal(noisy, again) and torch.equal(mask, mask2)
    if 0 < rate < 1:
        assert not torch.equal(mask, D.flip_labels(y, rate, seed=8)[1])


def test_label_flips_are_nested_across_rates_and_refuse_bad_rates():
    y = torch.arange(500) % 10
    n20, m20 = D.flip_labels(y, 0.2, seed=0)
    n40, m40 = D.flip_labels(y, 0.4, seed=0)
    assert bool(m40[m20].all()) and torch.equal(n20[m20], n40[m20])
    with pytest.raises(ValueError, match="rate must be a fraction"):
        D.flip_labels(y, 1.5, seed=0)


def test_the_loss_filter_scores_against_the_true_flips():
    flipped = torch.tensor([True, True, False, False, False, False, False, False, False, False])
    perfect = D.loss_filter(flipped.float() * 5, flipped, 0.2)
    assert perfect == {"precision": 1.0, "recall": 1.0, "chance": 0.2}
    wrong = D.loss_filter((~flipped).float(), flipped, 0.2)
    assert wrong["precision"] == 0.0


def test_noise_run_on_non_square_images_keeps_what_the_later_sections_need():
    d = fake_data(120)
    m = tiny_model()
    r = D.noise_run(m, d, d["train_x"], d["train_y"], 0.25, seed=0, epochs=2, **FIT)
    assert 1 <= r["best_epoch"] <= 2 and len(r["val_curve"]) == 2
    assert int(r["flipped"].sum()) == 30 and r["losses"].shape == (120,)
    assert 0 <= r["test_best"] <= 1 and 0 <= r["test_last"] <= 1
    assert r["work"] == 2 * 6 * 20
    again = D.noise_run(m, d, d["train_x"], d["train_y"], 0.25, seed=0, epochs=2, **FIT)
    assert again["test_last"] == r["test_last"]  # reproducible from the seed


# ----------------------------------------------------------------------------- DATA-3 against DATA-6
def test_mining_sets_match_compute_and_drop_the_right_images():
    losses = torch.arange(100, dtype=torch.float32)
    wrong = losses >= 80  # 20 misclassified
    sets = D.mining_sets(losses, wrong, seed=0, repeats=3, drop=0.1)
    assert len(sets["hard x3"]) == len(sets["random x3"]) == 100 + 60
    assert torch.bincount(sets["hard x3"], minlength=100)[80:].tolist() == [4] * 20
    assert sets["drop hardest"].tolist() == list(range(90))
    assert len(sets["drop random"]) == 90 and len(set(sets["drop random"].tolist())) == 90
    assert torch.equal(sets["random x3"], D.mining_sets(losses, wrong, seed=0)["random x3"])


def test_mining_runs_pair_the_four_arms_on_one_start():
    d = fake_data(100)
    m = tiny_model()
    probe = D.noise_run(m, d, d["train_x"], d["train_y"], 0.2, seed=1, epochs=1, **FIT)
    out = D.mining_runs(m, d, d["train_x"], [probe], 3, 0.1, epochs=1, **FIT)
    assert set(out["test"]) == set(D.MINING_ARMS) and all(len(v) == 1 for v in out["test"].values())
    assert out["hard_n"] == [int(probe["wrong"].sum())] and out["work"] > 0
    assert 0 <= out["flipped_share"]["hard"][0] <= 1


def test_imbalance_runs_are_paired_and_reproducible():
    d = fake_data(200)
    m = tiny_model()
    kw = dict(ratios=[10], remedies=["plain", "oversample"], seeds=[0], rare_classes=[1, 2],
              n_major=10, epochs=1, **FIT)
    a, b = D.imbalance_runs(m, d, **kw), D.imbalance_runs(m, d, **kw)
    assert a["counts"][10] == [10, 1, 1] + [10] * 7
    assert a["runs"] == b["runs"]
    assert 0 <= a["runs"][10]["oversample"][0]["balanced_acc"] <= 1
    text = D.imbalance_table(a, [1, 2])
    assert "balanced acc" in text and "oversample" in text


def test_the_panel_run_draws_class_bars():
    d = fake_data(200)
    reports = []
    hist = D.run_for_panel({"ratio": 5.0, "noise": 0.0, "remedy": "class weights", "epochs": 1}, d,
                           reports.append, lambda: False, tiny_model(), [1, 2], 10, batch_size=10, aug=False)
    assert hist["counts"][1] == 2 and len(hist["recall"]) == 10 and reports
    png = D.panel_png(hist, "t")
    assert png[:4] == b"\x89PNG"
    assert not math.isnan(hist["step"]["loss"][-1])


def test_the_effects_line_shows_every_arm_in_points():
    from course_lib.core import claims
    parts = {"a": claims.compare("DATA-5", [0.5, 0.52], [0.4, 0.41], "acc", unit="fraction"),
             "b": claims.compare("DATA-5", [0.4, 0.41], [0.4, 0.41], "acc", unit="fraction")}
    line = D.effects_line(parts)
    assert line.startswith("a +10.5 (") and "b +0.0 (+0.0 to +0.0)" in line and line.endswith("points")


def test_the_archive_needs_room_for_its_faults(tmp_path):
    d = fake_data(10)
    with pytest.raises(ValueError, match="need at least 7 images"):
        D.build_faulty_archive(d["train_x"][:5], d["train_y"][:5], d["classes"], tmp_path)
