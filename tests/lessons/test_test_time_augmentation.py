"""Test-time augmentation: views on non-square batches, identity and flip-invariant sanity
checks, batched against per-image TTA, scoring, and clear errors."""
import pytest
import torch
from torch import nn

from course_lib.core.models import small_cnn
from course_lib.lessons import test_time_augmentation as tta

H, W = 24, 32   # non-square on purpose
MEAN, STD = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.25, 0.2, 0.3])


@pytest.fixture
def x():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (12, 3, H, W), dtype=torch.uint8, generator=g)


def model(seed=0):
    torch.manual_seed(seed)
    m = small_cnn(widths=(8, 16), hidden=16, num_classes=5)
    for mod in m.modules():            # non-trivial batch-norm statistics, so eval mode matters
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_views_keep_batch_and_channels_and_move_pixels_as_named(x):
    assert torch.equal(tta.identity(x), x)
    assert torch.equal(tta.mirror(x), x.flip(-1))
    s = tta.translate(-3, 2)(x)                              # content 3 px left, 2 px down
    assert s.shape == x.shape and s.dtype == torch.uint8
    assert torch.equal(s[..., 2:, :W - 3], x[..., :H - 2, 3:])
    assert tta.crop(0.75, "br")(x).shape == (12, 3, 18, 24)
    assert torch.equal(tta.crop(0.75, "tl")(x), x[..., :18, :24])
    assert torch.equal(tta.crop(0.5, "c")(x), x[..., 6:18, 8:24])
    assert tta.scale(1.5)(x).shape == (12, 3, 36, 48)
    assert tta.rotate(15)(x).shape == x.shape
    both = tta.compose(tta.mirror, tta.translate(1, 1))
    assert torch.equal(both(x), tta.translate(1, 1)(tta.mirror(x)))


def test_views_have_readable_names_and_equal_views_share_logits():
    assert [v.name for v in tta.POLICIES["flip+translate"]] == [
        "identity", "mirror", "translate(1,1)", "translate(-1,-1)", "mirror+translate(1,1)", "mirror+translate(-1,-1)"]
    assert tta.translate(1, 1) == tta.translate(1, 1) and len({tta.scale(0.5), tta.scale(0.5)}) == 1
    assert tta.policy_names({"p": [tta.identity, tta.crop(0.875, "tl")]}) == {"p": ["identity", "crop(0.875,tl)"]}


@pytest.mark.parametrize("make", [lambda: tta.crop(1.5, "c"), lambda: tta.crop(0.5, "middle"), lambda: tta.scale(9),
                                  lambda: tta.rotate("abc"), lambda: tta.translate(0.5, 0), lambda: tta.compose()])
def test_bad_views_are_refused_with_the_views_there_are(make):
    with pytest.raises(tta.ViewError, match=r"bad TTA view .*; the views are identity, mirror, translate"):
        make()


def test_a_shift_as_large_as_the_image_is_refused_when_applied(x):
    with pytest.raises(ValueError, match=r"translate\(30, 0\): a shift must be smaller than the image \(24x32\)"):
        tta.translate(30, 0)(x)


def test_identity_policy_is_plain_prediction(x):
    m = model()
    probs = tta.tta_predict(m, x, MEAN, STD, [tta.identity])
    from course_lib.core.train import predict_logits
    assert torch.allclose(probs, predict_logits(m, x, MEAN, STD).softmax(1), atol=1e-6)
    assert torch.allclose(tta.tta_predict(m, x, MEAN, STD, [tta.identity], mode="mean_logits"), probs, atol=1e-6)


def test_flip_tta_of_a_flip_invariant_model_changes_nothing(x):
    torch.manual_seed(0)
    invariant = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))   # mean colour: no left/right
    plain = tta.tta_predict(invariant, x, MEAN, STD, [tta.identity])
    flipped = tta.tta_predict(invariant, x, MEAN, STD, [tta.identity, tta.mirror])
    assert torch.allclose(plain, flipped, atol=1e-6) and torch.equal(plain.argmax(1), flipped.argmax(1))
    # and a model that is not invariant does change
    assert not torch.allclose(tta.tta_predict(model(), x, MEAN, STD, [tta.identity, tta.mirror]),
                              tta.tta_predict(model(), x, MEAN, STD, [tta.identity]), atol=1e-4)


def test_batched_tta_matches_per_image_tta(x):
    m, views = model(), tta.policy_views(tta.POLICIES)
    for mode in tta.MERGES:
        batched = tta.tta_predict(m, x, MEAN, STD, views, mode=mode, batch_size=5)   # uneven batches too
        single = torch.cat([tta.tta_predict(m, x[i:i + 1], MEAN, STD, views, mode=mode) for i in range(len(x))])
        assert torch.allclose(batched, single, atol=1e-5)


def test_merge_modes_differ_and_are_checked():
    a, b = torch.tensor([[4.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(tta.merge([a, b], "mean_logits"), torch.tensor([[2.0, 0.5]]).softmax(1))
    assert torch.allclose(tta.merge([a, b], "mean_probs"), (a.softmax(1) + b.softmax(1)) / 2)
    with pytest.raises(ValueError, match=r"merge mode must be one of \('mean_probs', 'mean_logits'\)"):
        tta.merge([a], "vote")


def test_score_counts_flips_and_cost():
    y = torch.tensor([0, 1, 1, 0])
    def one_hot(labels):
        return torch.nn.functional.one_hot(torch.tensor(labels), 2).float() * 5
    ident, flip = tta.identity, tta.mirror
    logits = {ident: one_hot([0, 0, 1, 1]), flip: one_hot([0, 1, 0, 0]) * 3}   # flip dominates the merge
    seconds = {ident: 1.0, flip: 1.5}
    s = tta.score_policies(logits, seconds, y, {"none": [ident], "flip": [ident, flip]}, "mean_logits")
    assert s["none"]["acc"] == 0.5 and s["flip"]["acc"] == 0.75 and s["flip"]["gain"] == 0.25
    assert s["flip"]["wrong_to_right"] == 2 and s["flip"]["right_to_wrong"] == 1
    assert s["flip"]["cost"] == pytest.approx(2.5) and s["none"]["cost"] == 1.0
    summ = tta.mean_over_models([s, s])
    assert summ["flip"]["gain"] == 0.25 and summ["flip"]["gain_sd"] == 0.0 and summ["flip"]["gains"] == [0.25, 0.25]
    assert tta.table_rows(summ)[2].startswith("flip")


def test_view_logits_times_every_view_and_refuses_bad_ones_first(x):
    logits, seconds = tta.view_logits(model(), x, MEAN, STD, [tta.identity, tta.scale(0.5)])
    assert logits[tta.identity].shape == logits[tta.scale(0.5)].shape == (12, 5)
    assert all(t > 0 for t in seconds.values())
    with pytest.raises(tta.ViewError, match="'flip' is not a view"):
        tta.view_logits(model(), x, MEAN, STD, [tta.identity, "flip"])
    with pytest.raises(tta.ViewError, match="a shift must be smaller"):
        tta.view_logits(model(), x, MEAN, STD, [tta.identity, tta.translate(0, 24)])


def test_per_class_accuracy_and_pair_ensembles():
    y, pred = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 1, 1, 0])
    got = tta.per_class_accuracy(pred, y, 4)
    assert got[:3].tolist() == [0.5, 1.0, 0.0] and torch.isnan(got[3])
    a, b = torch.eye(3)[[0, 1, 2]] * 4, torch.eye(3)[[0, 0, 0]] * 4
    gains = tta.pair_ensemble_gains([a, b, a], torch.tensor([0, 1, 2]))
    assert len(gains) == 3 and gains[1] == 0.0                        # a with itself: no gain


def test_panel_result_scores_the_ticked_policies_only(x):
    m = model()
    pol = {k: tta.POLICIES[k] for k in ("none", "flip", "rotate")}
    out = {"flip": [tta.view_logits(m, x, MEAN, STD, tta.policy_views(pol))]}
    spec = tta.widget_spec(pol, ["flip"])
    params = {k: s["value"] for k, s in spec.items()} | {"rotate": False}
    res = tta.panel_result(params, pol, out, torch.zeros(12, dtype=torch.long))
    assert list(res["summary"]) == ["none", "flip"] and tta.render_panel(res)[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="tick at least one policy"):
        tta.panel_result(params | {"flip": False}, pol, out, torch.zeros(12, dtype=torch.long))


def _summary(none, policies):
    """A mean_over_models-like summary from per-model accuracies."""
    out = {"none": {"accs": none, "gain": 0.0, "views": 1}}
    for p, accs in policies.items():
        gain = sum(a - b for a, b in zip(accs, none)) / len(none)
        out[p] = {"accs": accs, "gain": gain, "views": 2}
    return out


def test_any_policy_lowers_is_decided_over_every_declared_policy():
    none = [0.70, 0.72, 0.71, 0.69]
    helps = [0.72, 0.74, 0.73, 0.71]
    hurts = [0.60, 0.61, 0.62, 0.58]
    noisy = [0.71, 0.70, 0.73, 0.68]
    s = _summary(none, {"helps": helps, "hurts": hurts, "noisy": noisy})
    v = tta.any_policy_lowers("TTA-2", s, ["helps", "hurts", "noisy"], margin=0.005)
    assert v["verdict"] == "supported" and v["kind"] == "experiment"
    assert v["evidence"]["shown_by"] == ["hurts"] and set(v["evidence"]["parts"]) == {"helps", "hurts", "noisy"}
    assert v["evidence"]["level"] == pytest.approx(1 - 0.05 / 3)
    assert v["evidence"]["share_with_lower_mean"] == pytest.approx(1 / 3)
    # without the harmful policy nothing lowers accuracy; "helps" is not supported, "noisy" undecided
    v2 = tta.any_policy_lowers("TTA-2", s, ["helps", "noisy"], margin=0.005)
    assert v2["verdict"] == "inconclusive" and v2["evidence"]["shown_by"] == []
    v3 = tta.any_policy_lowers("TTA-2", s, ["helps"], margin=0.005)
    assert v3["verdict"] == "not supported"


def test_any_policy_lowers_refuses_unscored_policies():
    s = _summary([0.7, 0.7], {"flip": [0.71, 0.72]})
    with pytest.raises(ValueError, match="policies must be a non-empty list"):
        tta.any_policy_lowers("TTA-2", s, ["rotate"], margin=0.005)
    with pytest.raises(ValueError, match="other than 'none'"):
        tta.any_policy_lowers("TTA-2", s, [], margin=0.005)


def test_policy_verdict_pairs_accuracies_by_model():
    s = _summary([0.70, 0.75, 0.80], {"flip": [0.71, 0.76, 0.81]})
    v = tta.policy_verdict("TTA-1", s, "flip", "higher", margin=0.003)
    assert v["verdict"] == "supported" and v["evidence"]["test"] == "paired t"
    assert v["evidence"]["effect"] == pytest.approx(0.01)


@pytest.mark.parametrize("baseline", [False, True])
def test_train_model_is_reproducible_by_seed_on_non_square_images(tiny, baseline):
    """Models pair by seed across the two groups, so one seed must give one model; the baseline
    recipe builds the course's net (whitened stem), the default a small_cnn."""
    kw = dict(epochs=1, baseline=baseline, batch_size=32, progress=False)
    a, hist = tta.train_model(tiny, 0, flip=True, **kw)
    b, _ = tta.train_model(tiny, 0, flip=True, **kw)
    c, _ = tta.train_model(tiny, 1, flip=True, **kw)
    def weights(m):
        return list(m.state_dict().values())
    assert all(torch.equal(p, q) for p, q in zip(weights(a), weights(b)))
    assert not all(torch.equal(p, q) for p, q in zip(weights(a), weights(c)))
    assert hasattr(a, "stem") == baseline and len(hist["epoch"]["epoch"]) == 1
    logits = tta.view_logits(a, tiny["val_x"], tiny["mean"], tiny["std"], [tta.identity])[0]
    assert logits[tta.identity].shape == (len(tiny["val_y"]), 10)


def test_train_model_refuses_zero_epochs(tiny):
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        tta.train_model(tiny, 0, flip=False, epochs=0)
