"""Planted faults: each breaks where it should, and its fix removes the NaN/Inf."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.core.data import batch_indices, make_generator
from course_lib.core.models import small_cnn
from course_lib.lessons import nan_debugging as faults

H, W = 24, 32


def test_naive_softmax_overflows_above_88_and_the_max_subtracted_one_does_not():
    z = torch.tensor([[100.0, 0.0, -5.0], [1.0, 2.0, 3.0]])
    assert torch.isnan(faults.naive_softmax(z)[0]).any()
    assert torch.allclose(faults.max_subtracted_softmax(z), torch.softmax(z, 1))
    sweep = faults.softmax_overflow_sweep([1, 10, 20, 30, 40, 80])
    limit = math.log(torch.finfo(torch.float32).max)  # 88.72
    for m, ok in zip(sweep["max_logit"], sweep["naive_finite"]):
        assert ok == (m < limit)
    assert not all(sweep["naive_finite"]) and all(sweep["max_subtracted_finite"]) and all(sweep["log_softmax_finite"])
    half = faults.softmax_overflow_sweep([4], dtype=torch.float16)  # max logit ~12 > ln(65504) = 11.1
    assert not half["naive_finite"][0] and half["max_subtracted_finite"][0]


def test_hand_written_log_loss_is_inf_at_log_zero_and_eps_bounds_it():
    y = torch.tensor([1, 0])
    z = torch.tensor([[2.0, 1.0, 0.5], [0.1, 0.3, -1.0]])
    assert torch.allclose(faults.log_softmax_by_hand(z, y), F.cross_entropy(z, y))
    far = torch.tensor([[200.0, 0.0, 0.0]], requires_grad=True)
    loss = faults.log_softmax_by_hand(far, torch.tensor([1]))
    assert loss.item() == math.inf
    loss.backward()
    assert torch.isnan(far.grad).any()
    bounded = faults.log_softmax_by_hand(far.detach(), torch.tensor([1]), eps=faults.EPS)
    assert math.isfinite(bounded.item()) and bounded.item() <= -math.log(faults.EPS) + 1e-3
    assert faults.naive_softmax_loss(far.detach(), torch.tensor([0])).isnan()  # Inf / Inf


def test_per_image_standardize_divides_by_zero_on_a_blank_image_unless_eps():
    x = torch.rand(4, 3, H, W)
    x[1] = 0.3
    out = faults.PerImageStandardize(eps=0.0)(x)
    bad = (~torch.isfinite(out)).flatten(1).any(1)
    assert bad.tolist() == [False, True, False, False]
    fixed = faults.PerImageStandardize(eps=faults.EPS)(x)
    assert torch.isfinite(fixed).all() and fixed[1].abs().max() < 1e-3
    assert torch.allclose(fixed[0].mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(fixed[0].std(dim=(1, 2), unbiased=False), torch.ones(3), atol=1e-4)


def test_std_pool_shape_and_its_nan_gradient_on_a_1x1_map():
    x = torch.rand(2, 5, H, W)
    assert faults.StdPool()(x).shape == (2, 10)
    one = torch.rand(2, 5, 1, 1, requires_grad=True)
    faults.StdPool(eps=0.0)(one).sum().backward()
    assert torch.isnan(one.grad).all()
    one.grad = None
    faults.StdPool(eps=faults.EPS)(one).sum().backward()
    assert torch.isfinite(one.grad).all()


def test_stdpool_cnn_runs_forward_finite_on_32x32():
    out = faults.stdpool_cnn()(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 10) and torch.isfinite(out).all()


def test_deep_mlp_large_gain_grows_the_logits_and_bad_arguments_are_refused():
    x = torch.randn(16, 3, H, W)
    scale = {}
    for gain in (1.0, 1.5):
        torch.manual_seed(0)
        scale[gain] = faults.deep_mlp(gain=gain, in_features=3 * H * W)(x).abs().max().item()
    assert scale[1.5] > 20 * scale[1.0]
    torch.manual_seed(0)
    bn = faults.deep_mlp(batch_norm=True, gain=1.5, in_features=3 * H * W)
    assert bn(x).abs().max().item() < scale[1.5] / 10 and hasattr(bn, "bn3")
    with pytest.raises(ValueError, match="gain must be positive"):
        faults.deep_mlp(gain=0)
    with pytest.raises(ValueError, match="depth and width must be at least 1"):
        faults.deep_mlp(depth=0)


def test_plant_nonfinite_makes_a_copy_with_exactly_n_bad_rows_away_from_the_border():
    x = torch.randint(0, 256, (50, 3, H, W), dtype=torch.uint8)
    dirty, idx = faults.plant_nonfinite(x, 5, seed=0, margin=4)
    assert x.dtype == torch.uint8 and dirty.dtype == torch.float32
    bad = (~torch.isfinite(dirty))
    assert bad.flatten(1).any(1).nonzero().flatten().tolist() == idx
    rows = bad.any(dim=(1, 3)).nonzero()[:, 1]
    assert rows.min() >= 4 and rows.max() < H - 4
    assert torch.isnan(dirty[idx[0]]).any() and torch.isinf(dirty[idx[1]]).any()
    assert idx != sorted(torch.randperm(50, generator=torch.Generator().manual_seed(0))[:5].tolist())
    with pytest.raises(ValueError, match=r"between 1 and the number of images \(50\)"):
        faults.plant_nonfinite(x, 51)
    with pytest.raises(ValueError, match="too small for a margin"):
        faults.plant_nonfinite(x[:, :, :6], 1)


def test_scenarios_refuse_unknown_choices_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="failure must be one of"):
        faults.check_scenario("gremlins")
    with pytest.raises(ValueError, match=r"fix 'clip' does not apply to 'sqrt_at_zero': choose one of \('none', 'eps'\)"):
        faults.check_scenario("sqrt_at_zero", "clip")
    for name, fixes in faults.FIXES.items():
        for fix in ("none",) + fixes:
            faults.check_scenario(name, fix)
            assert callable(faults.scenario_loss(name, fix))


def test_scenario_data_plants_and_drop_scanned_removes_exactly_the_planted():
    x = torch.randint(0, 256, (200, 3, H, W), dtype=torch.uint8)
    data = {"train_x": x, "train_y": torch.arange(200) % 3}
    dirty = faults.scenario_data("dirty_data", data, seed=2)
    assert len(dirty["planted"]) == faults.SETTINGS["dirty_data"]["n_bad"]
    clean = faults.scenario_data("dirty_data", data, fix="drop_scanned", seed=2)
    assert len(clean["train_y"]) == 200 - len(dirty["planted"]) and torch.isfinite(clean["train_x"]).all()
    blank = faults.scenario_data("zero_variance", data, seed=2)
    flat = blank["train_x"].flatten(1)
    assert ((flat.amax(1) == flat.amin(1)).nonzero().flatten().tolist()) == blank["planted"]
    assert faults.scenario_data("exploding", data) is data


def test_the_loss_scenarios_fail_at_step_one_and_log_softmax_fixes_them():
    torch.manual_seed(0)
    data = {"train_x": torch.randint(0, 256, (128, 3, H, W), dtype=torch.uint8), "train_y": torch.arange(128) % 3,
            "mean": torch.full((3,), 0.5), "std": torch.full((3,), 0.25), "classes": ["a", "b", "c"]}
    naive = faults.run_scenario("naive_softmax", data, steps=3)
    assert naive["first_nonfinite"] == 1 and naive["cause"] == "loss" and math.isnan(naive["loss"][0])
    log0 = faults.run_scenario("log_of_zero", data, steps=3)
    assert log0["first_nonfinite"] == 1 and log0["loss"][0] == math.inf
    assert "loss function" in log0["finding"]["summary"]
    fixed = faults.run_scenario("naive_softmax", data, fix="log_softmax", steps=3)
    assert fixed["first_nonfinite"] is None and len(fixed["loss"]) == 3
    png = faults.scenario_png(naive, "test")
    assert png[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="lr_scale must be positive"):
        faults.run_scenario("exploding", data, lr_scale=0)


def _run(first_nonfinite, losses=(2.3, 2.3)):
    return {"first_nonfinite": first_nonfinite, "loss": list(losses)}


def test_lr_sweep_summary_measures_how_far_the_lr_had_to_come_down():
    falls = [2.3] + [1.5] * 10
    runs = {(0.03, 0): _run(None, falls), (0.1, 0): _run(None, falls), (0.3, 0): _run(None), (1.0, 0): _run(5),
            (3.0, 0): _run(3), (10.0, 0): _run(2)}
    s = faults.lr_sweep_summary(runs)
    v = s["per_seed"][0]
    assert v["early"] == [1.0, 3.0, 10.0] and v["above_learning"] and v["learns"] == [0.03, 0.1]
    assert v["needed_factor"] == pytest.approx({1.0: 1 / 0.3, 3.0: 10.0, 10.0: 10 / 0.3})
    assert v["learn_factor"] == pytest.approx({1.0: 10.0, 3.0: 30.0, 10.0: 100.0})
    assert s["median_factor"] == pytest.approx(10.0) and s["median_learn_factor"] == pytest.approx(30.0)
    assert s["holds"] is True
    runs[(10.0, 0)] = _run(None)  # a dead net at 10 is finite: needed factor of 3.0 stays 10
    assert faults.lr_sweep_summary(runs)["per_seed"][0]["early"] == [1.0, 3.0]
    runs[(0.03, 0)] = _run(40)  # a NaN below an LR that learns: the LR is not the cause
    assert not faults.lr_sweep_summary(runs)["per_seed"][0]["above_learning"]
    assert faults.lr_sweep_summary(runs)["holds"] is False
    late = {(0.1, 0): _run(None, falls), (1.0, 0): _run(150)}  # non-finite, but not within 100 steps
    assert faults.lr_sweep_summary(late)["per_seed"][0]["early"] == [] and faults.lr_sweep_summary(late)["holds"] is False
    assert faults.lr_sweep_summary({(0.1, 0): _run(None), (1.0, 0): _run(3)})["holds"] is None  # nothing learned
    assert faults.lr_sweep_summary({(1.0, 0): _run(3)})["median_factor"] == math.inf


def test_finite_fraction_and_mean_last_loss():
    assert faults.finite_fraction({"first_nonfinite": 3, "steps": 3}, 200) == pytest.approx(2 / 200)
    assert faults.finite_fraction({"first_nonfinite": None, "steps": 200}, 200) == 1.0
    assert faults.mean_last_loss({"loss": [5.0] + [2.0] * 10}) == 2.0


def test_training_stops_at_the_first_batch_holding_a_planted_sample(tiny):
    dirty, planted = faults.plant_nonfinite(tiny["train_x"], 2, seed=5)
    data = {**tiny, "train_x": dirty}
    torch.manual_seed(0)
    r = faults.train_until_nonfinite(small_cnn(widths=(4, 8), hidden=8, num_classes=3), data, steps=50,
                                    lr=0.05, batch_size=16, seed=1)
    gen = make_generator(1, "cpu")  # replay the shuffle: which step first sees a planted image?
    order = []
    while len(order) < 50:
        order += [set(i.tolist()) for i in batch_indices(len(dirty), 16, gen, drop_last=True)]
    expected = next(k + 1 for k, b in enumerate(order) if b & set(planted))
    assert r["first_nonfinite"] == expected and r["cause"] == "loss"
    assert len(r["loss"]) == expected and all(v == v for v in r["loss"][:-1])
    assert r["finding"]["input"]["bad_samples"] >= 1


def test_training_stop_catches_a_backward_only_fault_at_step_one_and_seeds_repeat():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    data = {"train_x": x, "train_y": torch.randint(0, 10, (64,)), "mean": torch.full((3,), 0.5),
            "std": torch.full((3,), 0.25), "classes": [str(i) for i in range(10)]}
    broken = faults.run_scenario("sqrt_at_zero", data, steps=3, batch_size=32)
    assert broken["first_nonfinite"] == 1 and broken["cause"] == "gradient"
    assert broken["finding"]["backward"]["name"] == "head.pool"
    runs = [faults.run_scenario("sqrt_at_zero", data, fix="eps", steps=3, batch_size=32, seed=4) for _ in range(2)]
    assert runs[0]["first_nonfinite"] is None and runs[0]["loss"] == runs[1]["loss"]
    with pytest.raises(ValueError, match="at least 1"):
        faults.train_until_nonfinite(small_cnn(), data, steps=0, lr=0.1)


def test_layer_norms_at_step_one_are_taken_before_clipping(tiny):
    runs = []
    for clip in (None, 1e-3):
        torch.manual_seed(0)
        runs.append(faults.train_until_nonfinite(small_cnn(widths=(4, 8), hidden=8, num_classes=3), tiny, steps=2,
                                                lr=0.05, batch_size=16, seed=1, grad_clip=clip))
    plain, clipped = runs
    assert list(plain["layer_grad_norms"]) == ["block1.conv1", "block2.conv1", "head.fc1", "head.fc2"]
    assert clipped["layer_grad_norms"] == plain["layer_grad_norms"]  # as the backward pass made them
    assert clipped["grad_norm"][0] == plain["grad_norm"][0] > 1e-3  # the norm before clipping
    assert clipped["loss"][1] != plain["loss"][1]  # but the update was clipped
    assert plain["steps"] == 2 and plain["stopped"] is None and plain["first_nonfinite"] is None


def test_early_nan_fixes_counts_only_early_nans_and_shares_the_lowered_run():
    calls = []

    def fake_run(name, fix="none", seed=0, lr_scale=1.0):
        calls.append((name, fix, seed, lr_scale))
        first = {"lr_too_high": 3 if lr_scale == 1.0 else None,
                 "sqrt_at_zero": None if fix == "eps" else 1,
                 "dirty_data": 500}[name]  # dirty_data fails late: not an early NaN
        return {"first_nonfinite": first}
    fixes = {"lr_too_high": "lower_lr", "sqrt_at_zero": "eps", "dirty_data": "drop_scanned"}
    rows = faults.early_nan_fixes(fake_run, fixes, [0, 1], lr_factor=10, within=100, progress=False)
    by = {(r["cause"], r["seed"]): r for r in rows}
    assert by[("lr_too_high", 0)]["lr_fixed"] and by[("lr_too_high", 0)]["fix_fixed"]
    assert not by[("sqrt_at_zero", 1)]["lr_fixed"] and by[("sqrt_at_zero", 1)]["fix_fixed"]
    assert not by[("dirty_data", 0)]["early"] and "lr_fixed" not in by[("dirty_data", 0)]
    assert ("lr_too_high", "lower_lr", 0, 1.0) not in calls  # its own fix is the lowered run
    with pytest.raises(ValueError, match="lr_factor must be > 1"):
        faults.early_nan_fixes(fake_run, fixes, [0], lr_factor=1)
    with pytest.raises(ValueError, match="does not apply"):
        faults.early_nan_fixes(fake_run, {"sqrt_at_zero": "clip"}, [0])


def test_memo_runner_trains_each_distinct_run_once(tiny):
    run = faults.memo_runner(tiny, steps=2, mlp_steps=2)
    a = run("lr_too_high", "none", 0)
    assert run("lr_too_high", "none", 0) is a
    assert run("lr_too_high", "none", 0, 0.1) is not a and a["steps"] <= 2
