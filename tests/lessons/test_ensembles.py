"""Ensembles: voting (with its tie rule), averaging, confidence weighting, diversity, calibration."""
import math

import numpy as np
import pytest
import torch

from course_lib.core import validation
from course_lib.lessons import ensembles as E


def digits(s):
    return [int(ch) for ch in s]


def one_hot_probs(preds, num_classes, conf=1.0):
    """(members, samples) class indices -> probabilities with ``conf`` on the predicted class."""
    p = torch.as_tensor(preds)
    rest = (1 - conf) / (num_classes - 1)
    out = torch.full((*p.shape, num_classes), rest)
    return out.scatter_(2, p[..., None], conf)


def test_document_c_three_classifiers_majority_vote_is_80_percent():
    truth = torch.tensor(digits("1111111111"))
    preds = torch.tensor([digits("1111111100"), digits("1111111100"), digits("1011111100")])
    assert [validation.accuracy(p, truth) for p in preds] == pytest.approx([0.8, 0.8, 0.7])
    vote = E.majority_vote(preds, num_classes=2)
    assert vote.tolist() == digits("1111111100")
    assert validation.accuracy(vote, truth) == pytest.approx(0.8)
    corr = E.correctness_correlation(E.correctness(preds, truth))
    assert corr[0, 1] == pytest.approx(1.0)  # classifiers 1 and 2 are identical
    assert corr[0, 2] == pytest.approx(math.sqrt(7 / 12))  # closed form for these 0/1 vectors
    result = E.evaluate_ensemble(one_hot_probs(preds, 2, conf=0.9), truth, rule="vote")
    assert result["gain_best"] == pytest.approx(0.0)  # highly correlated members gain nothing


def test_majority_vote_tie_goes_to_the_earliest_member_among_the_tied():
    assert E.majority_vote([[0], [1]], 3).tolist() == [0]
    assert E.majority_vote([[1], [0]], 3).tolist() == [1]
    assert E.majority_vote([[2], [1], [1], [2]], 3).tolist() == [2]  # 2-2 tie, member 0 voted 2
    assert E.majority_vote([[2], [0], [1]], 3).tolist() == [2]  # three-way tie
    assert E.majority_vote([[2], [1], [1]], 3).tolist() == [1]  # a real majority beats the first member
    preds = torch.tensor([[0, 1, 2, 2], [1, 1, 0, 2], [1, 0, 0, 1]])
    assert E.majority_vote(preds, 3).tolist() == [1, 1, 0, 2]


def test_average_and_confidence_vote_can_overrule_the_plain_vote():
    # two members lean weakly to class 0, one is sure of class 1
    probs = torch.tensor([[[0.40, 0.35, 0.25]], [[0.40, 0.35, 0.25]], [[0.02, 0.95, 0.03]]])
    assert E.combine(probs, "vote").tolist() == [0]
    assert E.combine(probs, "confidence").tolist() == [1]  # 0.95 > 0.40 + 0.40
    assert E.combine(probs, "average").tolist() == [1]  # mean p1 = 0.55
    assert torch.allclose(validation.average_probs(probs), probs.mean(0))


def test_bad_inputs_are_refused_with_what_is_expected():
    with pytest.raises(ValueError, match=r"\(members, samples, classes\)"):
        E.combine(torch.rand(5, 10), "average")
    with pytest.raises(ValueError, match="rule must be one of"):
        E.combine(torch.rand(2, 5, 3), "median")
    with pytest.raises(ValueError, match=r"class indices must be in 0\.\.2"):
        E.majority_vote([[0, 3]], num_classes=3)
    with pytest.raises(ValueError, match="size must be between 1 and 3"):
        E.member_subsets(3, 4)
    with pytest.raises(ValueError, match="differ in shape"):
        validation.accuracy(torch.zeros(3), torch.zeros(4))


def test_correlation_of_a_constant_member_is_nan_and_mean_skips_it():
    correct = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    r = E.correctness_correlation(correct)
    assert np.isnan(r[0, 1]) and np.isnan(r[0, 0])
    assert r[1, 2] == pytest.approx(np.corrcoef([1, 0, 1, 0], [1, 0, 1, 1])[0, 1])
    assert E.mean_pairwise(r) == pytest.approx(r[1, 2])


def test_shared_mistake_rate():
    correct = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    # member 0 errs on samples 0 and 1, member 1 only on sample 0: 1/2 and 1/1
    assert E.shared_mistake_rate(correct) == pytest.approx(0.75)


def test_size_curve_starts_at_the_mean_member_and_is_reproducible():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 200, 4, generator=g).softmax(2)
    y = torch.randint(0, 4, (200,), generator=g)
    curve = E.size_curve(probs, y, "average", max_subsets=8, seed=1)
    assert curve["sizes"] == [1, 2, 3, 4, 5, 6]
    members = [validation.accuracy(probs[i].argmax(1), y) for i in range(6)]
    assert curve["mean"][0] == pytest.approx(sum(members) / 6)
    assert len(curve["all"][-1]) == 1 and len(curve["all"][2]) == 8  # C(6,3)=20 > 8 sampled
    assert E.size_curve(probs, y, "average", max_subsets=8, seed=1) == curve


def test_pair_table_gain_over_the_better_member():
    y = torch.tensor([0, 1, 0, 1])
    probs = torch.tensor([[[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]],    # 3/4 right
                          [[0.4, 0.6], [0.1, 0.9], [0.7, 0.3], [0.2, 0.8]]])   # 3/4 right
    (row,) = E.pair_table(probs, y)
    assert row["acc_i"] == row["acc_j"] == 0.75
    assert row["acc_pair"] == 1.0 and row["gain_best"] == pytest.approx(0.25)
    assert row["corr"] == pytest.approx(-1 / 3)


def test_ece_is_zero_when_calibrated_and_the_gap_when_overconfident():
    n = 1000
    y = torch.zeros(n, dtype=torch.long)
    y[: n // 2] = 1  # half the labels are 1
    sure = torch.tensor([[0.0, 1.0]]).repeat(n, 1)  # always 100% sure of class 1: right half the time
    assert E.expected_calibration_error(sure, y) == pytest.approx(0.5)
    honest = torch.tensor([[0.5, 0.5]]).repeat(n, 1)  # 50% confident, 50% right
    assert E.expected_calibration_error(honest, y, n_bins=10) == pytest.approx(0.0, abs=1e-9)
    r = E.reliability(sure, y, n_bins=10)
    assert sum(r["count"]) == n and r["count"][-1] == n  # confidence 1.0 falls in the last bin
    with pytest.raises(ValueError, match="n_bins"):
        E.reliability(sure, y, n_bins=0)


def test_evaluate_ensemble_and_its_picture():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 50, 10, generator=g).softmax(2)
    y = torch.randint(0, 10, (50,), generator=g)
    res = E.evaluate_ensemble(probs, y, "confidence", names=["a", "b", "c"])
    assert res["acc"] == validation.accuracy(E.confidence_vote(probs), y)
    assert res["gain_mean"] == pytest.approx(res["acc"] - sum(res["member_acc"]) / 3)
    assert E.summary_png(res, "test")[:4] == b"\x89PNG"


def test_snapshot_members_reload_each_state_on_non_square_images():
    from course_lib.core.models import small_cnn
    def make():
        return small_cnn(widths=(4, 8), hidden=8, num_classes=3)
    torch.manual_seed(0)
    a, b = make(), make()
    snaps = [{"step": 1, "state_dict": a.state_dict()}, {"step": 2, "state_dict": b.state_dict()}]
    x = torch.randint(0, 256, (6, 3, 24, 32), dtype=torch.uint8)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    probs, seconds = E.snapshot_members(make, snaps, x, mean, std)
    assert len(probs) == 2 and probs[0].shape == (6, 3) and seconds >= 0
    from course_lib.core.train import predict_logits
    assert torch.allclose(probs[1], predict_logits(b, x, mean, std).softmax(1))
    assert not torch.allclose(probs[0], probs[1])


def test_disjoint_pairs_and_pair_results_against_the_better_member():
    assert E.disjoint_pairs(5) == [(0, 1), (2, 3)]  # the odd member is left out
    with pytest.raises(ValueError, match="at least 2"):
        E.disjoint_pairs(1)
    y = torch.tensor([0, 1, 0, 1])
    probs = torch.tensor([[[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]],    # wrong on image 1
                          [[0.4, 0.6], [0.1, 0.9], [0.7, 0.3], [0.2, 0.8]]])   # wrong on image 0
    r = E.pair_results(probs, y, [(0, 1)])
    assert r["ensemble"] == [1.0] and r["better"] == [0.75]
    assert r["shared"] == [0.0]  # they never err on the same image
    same = E.pair_results(torch.stack([probs[0], probs[0]]), y, [(0, 1)])
    assert same["shared"] == [1.0] and same["ensemble"] == same["better"]


@pytest.mark.parametrize("baseline", [False, True])
def test_member_nets_build_four_distinct_nets_that_take_small_non_square_images(tiny, baseline):
    nets = E.member_nets(tiny, width=8, baseline=baseline)
    assert len(nets) == 4
    x = torch.rand(3, 3, 16, 12)  # a progressively resized batch: half of 32 x 24
    sizes = set()
    for make in nets.values():
        torch.manual_seed(0)
        net = make().eval()
        assert net(x).shape == (3, 10)
        sizes.add(sum(p.numel() for p in net.parameters()))
    assert len(sizes) == 4  # four architectures, not one net four times
    first = next(iter(nets))
    assert first.startswith("baseline_net(8)" if baseline else "cnn 8-32")


def test_baseline_members_start_from_a_whitened_stem_and_the_same_seed_gives_the_same_net(tiny):
    make = next(iter(E.member_nets(tiny, width=8, baseline=True).values()))
    torch.manual_seed(3)
    a = make()
    torch.manual_seed(3)
    b = make()
    plain = next(iter(E.member_nets(tiny, width=8, baseline=False).values()))
    assert torch.equal(a.stem.conv.weight, b.stem.conv.weight)
    # whitened filters come in +/- halves (models.whitening_init_); a random init does not
    w = a.stem.conv.weight
    assert w.shape[0] == 8 and torch.equal(w[4:], -w[:4])
    assert not hasattr(plain(), "stem")


def test_member_fit_kw_adds_the_baseline_recipe_only_for_baseline_members():
    cpu = torch.device("cpu")
    assert E.member_fit_kw(cpu, False, epochs=3, lr=0.1) == {"epochs": 3, "lr": 0.1}
    kw = E.member_fit_kw(cpu, True, epochs=3, lr=0.1)
    assert kw["lr"] == 0.1 and kw["label_smoothing"] > 0 and callable(kw["batch_transform"])
    assert kw["batch_transform"](torch.rand(1, 3, 32, 24), 1, None).shape[-2] < 32  # starts small
