"""The benchmark: throughput figures on non-square data, and time-to-accuracy reported from a
training run (targets met at an epoch end, never-reached targets as None). No timing is
asserted: only that the figures exist and are ordered as time is."""
import math

import pytest

from course_lib.tools import bench


def test_throughput_figures_are_positive_and_their_ratio_is_their_quotient():
    r = bench.run("small_cnn", batch_size=16, steps=2, n_images=64, device="cpu")
    assert r["end_to_end_img_s"] > 0 and r["compute_only_img_s"] > 0
    assert math.isclose(r["ratio"], r["end_to_end_img_s"] / r["compute_only_img_s"])


def test_time_to_accuracy_reads_targets_off_the_epoch_curve(tiny):
    data = {**tiny, "test_x": tiny["train_x"][:30], "test_y": tiny["train_y"][:30]}  # 32x24 images
    recipe = {**bench.RECIPES["baseline"], "width": 4, "fit": {"epochs": 3, "batch_size": 16, "lr": 0.05}}
    r = bench.time_to_accuracy(data, recipe, targets=(0.0, 1.01))  # whitened, resized, bf16 where fast
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
