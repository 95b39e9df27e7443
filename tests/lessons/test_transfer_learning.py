"""Notebook 12's helpers: the digits loader gives what the models expect, class subsets relabel,
per-class draws are seeded and nested, parameter groups get the LRs asked for, frozen layers do
not change after a step (batch-norm statistics included), the source model is cached by key,
and a run works on non-square inputs."""
import math

import numpy as np
import pytest
import torch

from course_lib.core.data import channel_stats
from course_lib.core.models import small_cnn
from course_lib.lessons import transfer_learning as tl

WIDTHS = (4, 8, 8)


def toy_pool(n_per_class=12, classes=3, h=24, w=32, seed=0):
    """uint8 images, class k brighter in channel k % 3 (learnable), non-square on purpose."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = torch.randint(0, 128, (len(y), 3, h, w), generator=g, dtype=torch.uint8)
    for k in range(classes):
        x[y == k, k % 3] += 100
    mean, std = channel_stats(x)
    return {"train_x": x, "train_y": y, "val_x": x[:10], "val_y": y[:10], "test_x": x, "test_y": y,
            "classes": [f"c{k}" for k in range(classes)], "mean": mean, "std": std}


def toy_source(pool, seed=0):
    torch.manual_seed(seed)
    model = small_cnn(widths=WIDTHS, num_classes=2)
    return {"state": model.state_dict(), "mean": pool["mean"], "std": pool["std"], "val_acc": 0.5}


def test_digits_loader_gives_uint8_three_channel_32x32_in_range():
    d = tl.load_digits_target()
    for split in ("train", "val", "test"):
        x, y = d[f"{split}_x"], d[f"{split}_y"]
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32) and len(x) == len(y)
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # grey copied
        assert set(y.unique().tolist()) == set(range(10))
    assert int(d["train_x"].max()) == 255 and int(d["train_x"].min()) == 0
    assert len(d["train_y"]) + len(d["val_y"]) + len(d["test_y"]) == 1797
    assert len(d["test_y"]) == pytest.approx(0.3 * 1797, abs=2)
    # stratified: each class's share of the test split is close to its share overall
    counts = torch.bincount(d["test_y"], minlength=10).float() / len(d["test_y"])
    assert float(counts.min()) > 0.08 and float(counts.max()) < 0.12


def test_upscaled_digits_keep_the_stroke_where_it_was():
    img = np.zeros((1, 8, 8))
    img[0, 2, 5] = 16
    x = tl.upscale_digits(img)
    assert x.shape == (1, 3, 32, 32)
    r, c = np.unravel_index(int(x[0, 0].float().argmax()), (32, 32))
    assert 8 <= r < 12 and 20 <= c < 24  # pixel (2, 5) covers rows 8-11, columns 20-23


def test_class_subset_keeps_only_those_classes_and_renumbers_in_order():
    pool = toy_pool(classes=4)
    sub = tl.class_subset(pool, (3, 1))
    assert sub["classes"] == ["c3", "c1"]
    assert set(sub["train_y"].tolist()) == {0, 1} and len(sub["train_y"]) == 24
    bright = sub["train_x"][sub["train_y"] == 0][:, 0].float().mean()  # class 3 -> channel 0
    assert bright > sub["train_x"][sub["train_y"] == 1][:, 0].float().mean()


def test_per_class_subset_is_seeded_balanced_and_nested():
    y = torch.arange(3).repeat_interleave(20)
    a, b = tl.per_class_subset(y, 5, seed=1), tl.per_class_subset(y, 5, seed=1)
    assert torch.equal(a, b) and torch.bincount(y[a]).tolist() == [5, 5, 5]
    assert not torch.equal(a, tl.per_class_subset(y, 5, seed=2))
    assert set(a.tolist()) <= set(tl.per_class_subset(y, 10, seed=1).tolist())
    assert len(tl.per_class_subset(y, 50, seed=0)) == 60  # a class with fewer gives all it has
    with pytest.raises(ValueError, match="at least 1"):
        tl.per_class_subset(y, 0, seed=0)


def test_norm_stats():
    x = toy_pool()["train_x"]
    src = (torch.full((3,), 0.5), torch.full((3,), 0.25))
    assert torch.equal(tl.norm_stats("pretraining", x, src)[0], src[0])
    assert torch.allclose(tl.norm_stats("own", x, src)[0], channel_stats(x)[0])
    mean, std = tl.norm_stats("none", x, src)
    assert mean.tolist() == [0, 0, 0] and std.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="norm must be one of"):
        tl.norm_stats("imagenet", x, src)


def test_parameter_groups_get_the_lrs_asked_for():
    model = small_cnn(widths=WIDTHS, num_classes=3)
    opt = tl.make_optimizer(model, body_lr=0.005, head_lr=0.05, momentum=0.9, weight_decay=1e-4)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["body"]["lr"] == 0.005 and groups["head"]["lr"] == 0.05
    body_ids = {id(p) for n in tl.BODY for p in tl.layer(model, n).parameters()}
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups["body"]["params"]} == body_ids
    assert {id(p) for p in groups["head"]["params"]} == head_ids
    assert all(g["weight_decay"] == 1e-4 and g["nesterov"] for g in opt.param_groups)
    with pytest.raises(ValueError, match="body_lr must be a positive"):
        tl.make_optimizer(model, body_lr=0.0, head_lr=0.1)


def test_frozen_layers_get_no_group_and_a_probe_trains_only_the_classifier():
    model = tl.freeze_below(small_cnn(widths=WIDTHS, num_classes=3), "fc2")
    groups = tl.param_groups(model, 0.01, 0.1)
    assert [g["name"] for g in groups] == ["head"]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.head.fc2.parameters()}
    counts = tl.trainable_counts(model)
    assert counts["fc2"] == model.head.fc2.in_features * 3 + 3 and all(counts[n] == 0 for n in tl.LAYERS[:-1])
    with pytest.raises(ValueError, match="train_from must be one of"):
        tl.freeze_below(model, "conv1")


def one_step(model, x, y, train_from):
    opt = tl.make_optimizer(model, 0.1, 0.1)
    model.train()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def test_frozen_layers_do_not_change_after_a_step_but_requires_grad_alone_moves_bn_statistics():
    pool = toy_pool()
    x = (pool["train_x"][:16].float() / 255 - 0.4) / 0.2
    y = pool["train_y"][:16]
    for bn_stats, stats_move in ((True, False), (False, True)):
        torch.manual_seed(0)
        model = tl.freeze_below(small_cnn(widths=WIDTHS, num_classes=3), "block3", bn_stats=bn_stats)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        one_step(model, x, y, "block3")
        after = model.state_dict()
        for k, v in before.items():
            changed = not torch.equal(v, after[k])
            if k.startswith(("block1", "block2")):
                stat = "running_" in k or "num_batches" in k
                assert changed == (stat and stats_move), k
        assert not torch.equal(before["block3.conv1.weight"], after["block3.conv1.weight"])


def test_stats_frozen_bn_normalises_with_running_statistics_in_training_mode():
    bn = torch.nn.BatchNorm2d(2)
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0)
    frozen = tl.freeze_bn_stats(torch.nn.Sequential(bn))[0]
    assert isinstance(frozen, tl.StatsFrozenBN) and frozen.training
    x = torch.full((3, 2, 2, 2), 5.0)
    assert torch.allclose(frozen(x), torch.full_like(x, 2.0), atol=1e-4)  # (5 - 1) / sqrt(4)
    assert frozen.running_mean.tolist() == [1.0, 1.0]
    assert frozen.weight.requires_grad  # the scale and shift still train


def test_target_model_copies_the_body_and_draws_the_classifier_from_the_seed():
    pool = toy_pool()
    src = toy_source(pool)
    a = tl.target_model(WIDTHS, 3, seed=5, source_state=src["state"])
    b = tl.target_model(WIDTHS, 3, seed=5, source_state=src["state"])
    c = tl.target_model(WIDTHS, 3, seed=6, source_state=src["state"])
    assert torch.equal(a.block1.conv1.weight, src["state"]["block1.conv1.weight"])
    assert torch.equal(a.head.fc1.weight, src["state"]["head.fc1.weight"])
    assert a.head.fc2.out_features == 3 and torch.equal(a.head.fc2.weight, b.head.fc2.weight)
    assert not torch.equal(a.head.fc2.weight, c.head.fc2.weight)
    with pytest.raises(ValueError, match="does not fit"):
        tl.target_model((4, 8), 3, seed=0, source_state=src["state"])


def test_arm_refuses_unknown_settings():
    assert tl.arm()["train_from"] == "block1"
    with pytest.raises(ValueError):
        tl.arm(init="imagenet")
    with pytest.raises(ValueError):
        tl.arm(bn="sometimes")


def test_a_run_is_reproducible_on_non_square_images_and_scratch_ignores_the_source():
    pool = toy_pool()
    src = toy_source(pool)
    plan = tl.Plan(src, WIDTHS, steps=4, batch_size=8, val_n=10)
    a = tl.train_arm(tl.arm(body_lr=0.01), pool, 6, seed=3, plan=plan, curve_every=2)
    b = tl.train_arm(tl.arm(body_lr=0.01), pool, 6, seed=3, plan=plan, curve_every=2)
    assert a["test_acc"] == b["test_acc"] and a["curve"] == b["curve"]
    assert [s for s, _ in a["curve"]] == [2, 4]
    assert 0 <= a["test_acc"] <= 1 and a["gap"] == pytest.approx(a["train_acc"] - a["test_acc"])
    probe = tl.train_arm(tl.arm(train_from="fc2"), pool, 6, seed=3, plan=plan)
    assert probe["trainable"] == 128 * 3 + 3  # small_cnn's hidden width 128, 3 classes
    other = tl.Plan(toy_source(pool, seed=9), WIDTHS, steps=4, batch_size=8, val_n=10)
    s1 = tl.train_arm(tl.arm("scratch"), pool, 6, seed=3, plan=plan)
    s2 = tl.train_arm(tl.arm("scratch"), pool, 6, seed=3, plan=other)
    assert s1["test_acc"] == s2["test_acc"]


def test_freeze_check_finds_the_moving_statistics():
    pool = toy_pool()
    out = tl.freeze_check(toy_source(pool), WIDTHS, pool, 8, seed=0, steps=2, batch_size=8, lr=0.1)
    naive, proper = out["requires_grad only"], out["frozen properly"]
    assert not naive["params_changed"] and naive["buffers_changed"]
    assert not proper["params_changed"] and not proper["buffers_changed"]
    assert naive["trainable"]["block1"] == 0 and naive["trainable"]["block3"] > 0


def test_source_model_is_cached_by_its_settings(tmp_path, monkeypatch):
    pool = toy_pool(classes=2)
    calls = []
    real = tl.pretrain

    def counting(*args, **kw):
        calls.append(args)
        return real(*args, **kw)
    monkeypatch.setattr(tl, "pretrain", counting)
    kw = {"widths": WIDTHS, "epochs": 1, "batch_size": 8, "lr": 0.05, "seed": 0, "directory": tmp_path,
          "progress": False}
    first = tl.cached_source(pool, **kw)
    second = tl.cached_source(pool, **kw)
    assert not first["cached"] and second["cached"] and len(calls) == 1
    assert all(torch.equal(first["state"][k], second["state"][k]) for k in first["state"])
    third = tl.cached_source(pool, **{**kw, "epochs": 2})
    assert not third["cached"] and third["key"] != first["key"] and len(calls) == 2
    (tmp_path / f"{first['key']}.pt").write_bytes(b"garbage")
    assert not tl.cached_source(pool, **kw)["cached"]  # a corrupt file is a miss


def test_gains_and_steps_to_reach():
    t = [{"test_acc": 0.6, "curve": [(10, 0.3), (20, 0.5)]}, {"test_acc": 0.7, "curve": [(10, 0.2), (20, 0.3)]}]
    s = [{"test_acc": 0.5, "curve": [(10, 0.2), (20, 0.4)]}, {"test_acc": 0.5, "curve": [(10, 0.4), (20, 0.4)]}]
    assert tl.gains(t, s) == pytest.approx([0.1, 0.2])
    assert tl.steps_to_reach([(10, 0.2), (20, 0.5)], 0.5) == 20
    assert math.isnan(tl.steps_to_reach([(10, 0.2)], 0.5))
    t_steps, s_steps = tl.steps_to_scratch_final(t, s)
    assert t_steps == [20.0, 30.0] and s_steps == [20.0, 10.0]  # 30: never, one check past the budget
    with pytest.raises(ValueError, match="curve_every"):
        tl.steps_to_scratch_final([{"curve": []}], s[:1])


def test_panel_run_reports_and_draws():
    pool = toy_pool()
    plan = tl.Plan(toy_source(pool), WIDTHS, steps=3, batch_size=8, val_n=10)
    seen = []
    params = {"target": "toy", "per_class": 6, "train_from": "block3", "body_lr": 0.01, "head_lr": 0.1, "steps": 3}
    hist = tl.run_for_panel(params, {"toy": pool}, plan, seen.append, lambda: False)
    assert seen and len(hist["step"]["loss"]) == 3 and hist["trainable"]["block2"] == 0
    assert tl.panel_png(hist, "t")[:4] == b"\x89PNG"


def test_plots_draw_one_point_per_seed():
    from matplotlib.figure import Figure
    ax1, ax2 = Figure().subplots(1, 2)
    tl.draw_gain_curve(ax1, [20, 100], {20: [0.1, 0.2], 100: [0.05, 0.0]})
    points = [line for line in ax1.lines if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in points) == 4  # two seeds at two sizes
    runs = [{"curve": [(10, 0.3), (20, 0.5)]}, {"curve": [(10, 0.2), (20, 0.4)]}]
    tl.draw_val_curves(ax2, {"fine-tune": runs})
    assert [list(line.get_ydata()) for line in ax2.lines] == [[30, 50], [20, 40]]
