"""The benchmark: throughput figures on non-square data, and time-to-accuracy reported from a
training run (targets met at an epoch end, never-reached targets as None). No timing is
asserted: only that the figures exist and are ordered as time is."""
import math

import pytest
import torch

from course_lib.tools import bench


def test_throughput_figures_are_positive_and_their_ratio_is_their_quotient():
    r = bench.run("small_cnn", batch_size=16, steps=2, n_images=64, device="cpu")
    assert r["end_to_end_img_s"] > 0 and r["compute_only_img_s"] > 0
    assert math.isclose(r["ratio"], r["end_to_end_img_s"] / r["compute_only_img_s"])


def test_time_to_accuracy_reads_targets_off_the_epoch_curve(tiny):
    data = {**tiny, "test_x": tiny["train_x"][:30], "test_y": tiny["train_y"][:30]}  # 32x24 images
    recipe = {"width": 4, "fit": {"epochs": 3, "batch_size": 16, "lr": 0.05}}
    r = bench.time_to_accuracy(data, recipe, targets=(0.0, 1.01))
    seconds = [s for s, _ in r["curve"]]
    assert len(r["curve"]) == 3 and seconds == sorted(seconds) and seconds[-1] == r["train_seconds"]
    assert r["targets"][0.0] == seconds[0]  # met at the first epoch end
    assert r["targets"][1.01] is None  # an accuracy above 100% is never reached
    again = bench.time_to_accuracy(data, recipe, targets=(0.5,))
    assert [a for _, a in again["curve"]] == [a for _, a in r["curve"]]  # same seed, same accuracies


def test_unknown_recipe_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--model", "small_cnn", "--steps", "1", "--batch-size", "8", "--device", "cpu",
                    "--time-to-accuracy", "--recipes", "fastest"])
    assert exit_.value.code == 2 and "unknown recipe(s) ['fastest']" in capsys.readouterr().err


def test_progressive_resizing_follows_the_epoch_and_keeps_the_aspect_ratio():
    x = torch.rand(4, 3, 24, 32).contiguous(memory_format=torch.channels_last)  # H x W = 24 x 32
    resize = bench.progressive_resizing((12, 18, 24))
    shapes = [tuple(resize(x, epoch, None).shape[-2:]) for epoch in (1, 2, 3)]
    assert shapes == [(12, 16), (18, 24), (24, 32)]
    assert resize(x, 3, None) is x  # the full size is left alone
    assert resize(x, 1, None).is_contiguous(memory_format=torch.channels_last)


def test_a_recipe_with_sizes_trains_in_bf16_and_refuses_a_size_count_that_is_not_the_epochs(tiny):
    data = {**tiny, "test_x": tiny["train_x"][:30], "test_y": tiny["train_y"][:30]}  # 24x32 images
    fit_kw = {"epochs": 2, "batch_size": 16, "lr": 0.05, "amp": True}
    r = bench.time_to_accuracy(data, {"width": 4, "sizes": (12, 24), "fit": fit_kw}, targets=(0.0,))
    assert len(r["curve"]) == 2 and all(0.0 <= a <= 1.0 for _, a in r["curve"])
    with pytest.raises(ValueError, match="one size per epoch: 3 sizes for 2 epochs"):
        bench.time_to_accuracy(data, {"width": 4, "sizes": (12, 18, 24), "fit": fit_kw})


def test_a_recipe_with_a_whitening_stem_starts_from_paired_filters_and_trains_on_non_square_images(tiny):
    data = {**tiny, "test_x": tiny["train_x"][:30], "test_y": tiny["train_y"][:30]}  # 24x32 images
    recipe = {"width": 4, "whiten": True, "fit": {"epochs": 1, "batch_size": 16, "lr": 0.05}}
    stem = bench.recipe_model(data, recipe).stem.conv.weight
    assert torch.equal(stem[2:], -stem[:2])  # whitening filters come as +/- pairs
    plain = bench.recipe_model(data, {**recipe, "whiten": False}).stem.conv.weight
    assert not torch.equal(plain[2:], -plain[:2])
    r = bench.time_to_accuracy(data, recipe, targets=(0.0,))
    assert len(r["curve"]) == 1 and r["targets"][0.0] == r["train_seconds"]


def test_every_recipe_gives_one_size_per_epoch():
    for name, recipe in bench.RECIPES.items():
        assert len(recipe.get("sizes", [0] * recipe["fit"]["epochs"])) == recipe["fit"]["epochs"], name


def test_recipes_compare_as_fractions_of_the_reference_and_unreached_targets_say_so():
    results = {"baseline": {"targets": {0.7: 100.0, 0.8: 200.0}},
               "fast": {"targets": {0.7: 40.0, 0.8: None}}}
    assert bench.compare_recipes(results, "baseline") == [
        "recipe 'fast' to 70%: 0.40x the time of 'baseline'",
        "recipe 'fast' to 80%: n/a (not reached by both) the time of 'baseline'"]


def test_a_target_only_the_other_recipe_reached_is_compared_with_the_reference_whole_training():
    results = {"baseline": {"targets": {0.7: 160.0, 0.8: None}, "train_seconds": 270.0},
               "fast": {"targets": {0.7: 108.0, 0.8: 135.0}, "train_seconds": 135.0}}
    assert bench.compare_recipes(results, "baseline") == [
        "recipe 'fast' to 70%: 0.68x the time of 'baseline'",
        "recipe 'fast' to 80%: under 0.50x the time of 'baseline' (which did not reach it in its "
        "270 s of training)"]
