"""The course's baseline recipe: its resizing schedule for any number of epochs, a whitened stem,
bf16 only where it is fast, overrides from notebook 00's panel, and a seeded run on non-square
(24x32) images."""
import pytest
import torch

from course_lib.core import recipes


@pytest.mark.parametrize("epochs, scales", [
    (1, [1.0]), (2, [0.5, 1.0]), (3, [0.5, 0.75, 1.0]), (5, [0.5, 0.5, 0.75, 1.0, 1.0]),
    (15, [0.5] * 6 + [0.75] * 3 + [1.0] * 6)])
def test_the_baseline_resizing_schedule_spends_its_shares_and_ends_at_full_size(epochs, scales):
    assert recipes.resize_schedule(epochs, recipes.BASELINE["resize"]) == scales


def test_every_epoch_count_gets_one_scale_per_epoch_the_last_at_full_size():
    for epochs in range(1, 41):
        scales = recipes.resize_schedule(epochs, recipes.BASELINE["resize"])
        assert len(scales) == epochs and scales[-1] == 1.0 and scales == sorted(scales), epochs


@pytest.mark.parametrize("epochs, resize, match", [
    (0, ((1.0, 1.0),), "epochs must be at least 1, got 0"),
    (5, ((0.0, 0.5), (1.0, 0.5)), "resize needs"), (5, ((1.5, 1.0),), "resize needs"), (5, (), "resize needs")])
def test_a_bad_schedule_is_refused_with_what_it_needs(epochs, resize, match):
    with pytest.raises(ValueError, match=match):
        recipes.resize_schedule(epochs, resize)


def test_progressive_resizing_scales_the_height_keeps_the_aspect_ratio_and_the_memory_format():
    x = torch.rand(4, 3, 24, 32).contiguous(memory_format=torch.channels_last)  # H x W = 24 x 32
    resize = recipes.progressive_resizing([0.5, 0.75, 1.0])
    assert [tuple(resize(x, e, None).shape[-2:]) for e in (1, 2, 3)] == [(12, 16), (18, 24), (24, 32)]
    assert resize(x, 3, None) is x  # full size is left alone
    assert resize(x, 1, None).is_contiguous(memory_format=torch.channels_last)


def test_the_baseline_stem_starts_whitened_in_pairs_and_plain_does_not(tiny):
    w = recipes.recipe_model(tiny, recipes.BASELINE, width=4).stem.conv.weight
    assert torch.equal(w[2:], -w[:2])
    plain = recipes.recipe_model(tiny, recipes.PLAIN, width=4).stem.conv.weight
    assert not torch.equal(plain[2:], -plain[:2])


def test_bf16_is_used_on_cuda_and_where_the_cpu_has_bf16_units_only():
    assert recipes.bf16_is_fast(torch.device("cuda"))
    cpu_has = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert recipes.bf16_is_fast(torch.device("cpu")) == cpu_has
    assert not recipes.bf16_is_fast(torch.device("meta"))


def test_train_resolves_amp_and_the_schedule_and_lets_the_caller_override(tiny, monkeypatch):
    seen = {}
    monkeypatch.setattr(recipes, "fit", lambda model, data, **kw: seen.update(kw) or {"ok": True})
    monkeypatch.setattr(recipes, "bf16_is_fast", lambda device: False)
    model, history = recipes.train(tiny, recipes.BASELINE, width=4, epochs=3, lr=0.05)
    assert history == {"ok": True} and model.stem.conv.out_channels == 4
    assert seen["amp"] is False and seen["epochs"] == 3 and seen["lr"] == 0.05
    assert seen["batch_size"] == recipes.BASELINE["fit"]["batch_size"]
    x = torch.rand(2, 3, 24, 32)
    assert [seen["batch_transform"](x, e, None).shape[-2] for e in (1, 2, 3)] == [12, 18, 24]
    seen.clear()
    recipes.train(tiny, recipes.PLAIN, width=4, epochs=2)
    assert seen["amp"] is False and "batch_transform" not in seen  # full size throughout
    seen.clear()
    monkeypatch.setattr(recipes, "bf16_is_fast", lambda device: True)
    recipes.train(tiny, recipes.BASELINE, width=4, epochs=1, amp=False)  # the caller's word wins
    assert seen["amp"] is False


def test_the_baseline_trains_on_non_square_images_and_the_same_seed_gives_the_same_run(tiny):
    kw = dict(width=4, epochs=3, batch_size=16, progress=False)
    _, a = recipes.train(tiny, recipes.BASELINE, seed=1, **kw)
    _, b = recipes.train(tiny, recipes.BASELINE, seed=1, **kw)
    _, c = recipes.train(tiny, recipes.BASELINE, seed=2, **kw)
    assert len(a["epoch"]["val_acc"]) == 3 and all(0.0 <= v <= 1.0 for v in a["epoch"]["val_acc"])
    assert a["step"]["loss"] == b["step"]["loss"] and a["step"]["loss"] != c["step"]["loss"]


def test_fit_kw_gives_a_recipe_to_any_fit_call_and_its_resizing_follows_the_epochs(monkeypatch):
    monkeypatch.setattr(recipes, "bf16_is_fast", lambda device: True)
    kw = recipes.fit_kw(recipes.BASELINE, torch.device("cpu"), epochs=4, lr=0.05)
    assert kw["amp"] is True and kw["lr"] == 0.05 and kw["epochs"] == 4
    assert kw["label_smoothing"] == recipes.BASELINE["fit"]["label_smoothing"]
    x = torch.rand(2, 3, 32, 24)  # non-square: the width follows the height
    assert [tuple(kw["batch_transform"](x, e, None).shape[-2:]) for e in (1, 2, 3, 4)] == \
        [(16, 12), (16, 12), (32, 24), (32, 24)]
    # a run whose length the recipe's resizing does not fit (a snapshot run) can switch it off
    assert recipes.fit_kw(recipes.BASELINE, torch.device("cpu"), batch_transform=None)["batch_transform"] is None
    assert "batch_transform" not in recipes.fit_kw(recipes.PLAIN, torch.device("cpu"))


def test_a_notebooks_net_parameter_is_checked_before_anything_trains():
    assert recipes.is_baseline("baseline") and not recipes.is_baseline("small_cnn")
    for bad in ("Baseline", "resnet", None):
        with pytest.raises(ValueError, match="small_cnn"):
            recipes.is_baseline(bad)
    with pytest.raises(ValueError, match="opt1_net must be one of"):
        recipes.is_baseline("resnet", "opt1_net")


def test_a_comparison_net_is_the_recipes_net_with_a_random_stem_and_its_fit_keywords(tiny):
    model, kw = recipes.comparison_net(tiny, recipes.BASELINE, epochs=2, label_smoothing=0.0)
    w = model.stem.conv.weight
    assert w.shape[0] == recipes.BASELINE["width"] and not torch.equal(w[2:4], -w[:2]), "not whitened"
    assert kw["epochs"] == 2 and kw["label_smoothing"] == 0.0, "the caller's keywords win"
    assert kw["amp"] == recipes.amp_for(recipes.BASELINE, tiny["train_x"].device)
    _, default = recipes.comparison_net(tiny)
    assert default == recipes.net_fit_kw(recipes.BASELINE, tiny["train_x"].device)
    assert model(torch.zeros(2, 3, 24, 32)).shape == (2, 10), "any image size (global pooling)"
