"""Notebook 03's helpers: the configuration table, where dropout sits, train-mode-at-test
evaluation (DO-5), the training/measurement wrapper and the two extra verdict rules."""
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from course_lib.core.models import small_cnn
from course_lib.core.train import evaluate
from course_lib.lessons import dropout_placement as D

TINY = {"hidden": 16, "num_classes": 3}


def test_every_configuration_places_dropout_exactly_where_its_name_says():
    configs = D.configurations(conv_p=0.1, head_low=0.2, head_high=0.5, head_too_high=0.8)
    assert len(configs) == 14
    for name, kw in configs.items():
        model = small_cnn(**kw)
        sites = D.dropout_sites(model)
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert has_bn == (not name.endswith("no BN")), name
        head = [s for s in sites if s["name"].startswith("head")]
        conv = [s for s in sites if s["name"].startswith("block")]
        assert bool(head) == (name.startswith("head") or name.startswith("both")), name
        assert len(conv) == (3 if name.startswith("conv") or name.startswith("both") else 0), name
        if head:
            assert head == [{"name": "head.drop", "kind": "element", "p": kw["head_dropout"], "after": "head.act"}]
        for s in conv:
            assert s["p"] == 0.1 and s["kind"] == ("channel" if "channel" in name else "element")
            assert s["after"].split(".")[1] == ("conv1" if "before BN" in name else "act1"), (name, s)
    assert D.dropout_sites(small_cnn(head_dropout=0.8))[0]["p"] == 0.8


def test_layer_sequence_is_in_forward_order_and_shows_the_pitfall():
    seq = D.layer_sequence(small_cnn(widths=(8, 16), conv_dropout=0.2, dropout_before_bn=True))
    assert seq[0] == ("block1.conv1", "conv") and seq[-1] == ("head.fc2", "linear")
    kinds = [k for _, k in seq]
    assert kinds[:4] == ["conv", "dropout (element)", "batch norm", "activation"]
    chan = D.layer_sequence(small_cnn(widths=(8,), conv_dropout=0.2, dropout_kind="channel"))
    assert [k for _, k in chan][:4] == ["conv", "batch norm", "activation", "dropout (channel)"]


def test_bad_rates_are_refused_with_the_allowed_range():
    with pytest.raises(ValueError, match=r"head_high must be in \(0, 1\), got 1.5"):
        D.configurations(head_high=1.5)
    with pytest.raises(ValueError, match=r"conv_p must be in \(0, 1\)"):
        D.configurations(conv_p=0.0)
    with pytest.raises(ValueError, match="must differ"):
        D.configurations(head_low=0.5, head_high=0.5)


def test_dropout_is_inactive_in_eval_mode_for_every_configuration():
    x = torch.randn(6, 3, 24, 32)
    for name, kw in D.configurations(conv_p=0.3, head_high=0.5).items():
        m = small_cnn(widths=(8, 16), **kw).eval()
        assert torch.equal(m(x), m(x)), name


def test_accuracy_by_mode_isolates_dropout_and_leaves_the_model_untouched(tiny):
    x, y = tiny["train_x"], tiny["train_y"]  # 24 x 32 images
    torch.manual_seed(0)
    model = small_cnn(widths=(8, 16), conv_dropout=0.5, head_dropout=0.5, **TINY).train()
    bn_before = model.block1.bn1.running_mean.clone()
    accs = D.accuracy_by_mode(model, x, y, tiny["mean"], tiny["std"], batch_size=25)
    assert accs["eval"] == pytest.approx(evaluate(model, x, y, tiny["mean"], tiny["std"])["acc"])
    assert model.training and torch.equal(model.block1.bn1.running_mean, bn_before)
    assert set(accs) == {"eval", "dropout_on", "train_mode"} and all(0 <= a <= 1 for a in accs.values())
    # Without dropout and without batch norm the three modes compute the same function.
    plain = small_cnn(widths=(8, 16), batch_norm=False, **TINY)
    same = D.accuracy_by_mode(plain, x, y, tiny["mean"], tiny["std"])
    assert same["eval"] == same["dropout_on"] == same["train_mode"]
    # With dropout but no batch norm, only the dropout modes are random: dropout_on must differ
    # from eval in its predictions (checked through the accuracy over repeated draws).
    noisy = small_cnn(widths=(8, 16), batch_norm=False, head_dropout=0.9, **TINY)
    torch.manual_seed(0)
    draws = {D.accuracy_by_mode(noisy, x, y, tiny["mean"], tiny["std"])["dropout_on"] for _ in range(5)}
    assert len(draws) > 1


def test_subset_is_stratified_reproducible_and_checks_its_size(tiny):
    a, b = D.subset(tiny, 30, seed=1), D.subset(tiny, 30, seed=1)
    assert torch.equal(a["train_x"], b["train_x"]) and a["train_x"].shape[1:] == (3, 24, 32)
    assert torch.bincount(a["train_y"]).tolist() == [10, 10, 10]
    assert not torch.equal(D.subset(tiny, 30, seed=2)["train_x"], a["train_x"])
    assert D.subset(tiny, None) is tiny and D.subset(tiny, 10 ** 6) is tiny
    assert torch.equal(a["val_x"], tiny["val_x"])
    with pytest.raises(ValueError, match="at least 10"):
        D.subset(tiny, 5)


def test_train_config_measures_train_in_eval_mode_and_the_gap(tiny):
    r = D.train_config({**TINY, "head_dropout": 0.5}, tiny, epochs=3, seed=0, widths=(8, 16),
                       batch_size=16, keep_model=True)
    assert r["gap"] == pytest.approx(r["train_acc"] - r["val_acc"])
    assert r["test_gap"] == pytest.approx(r["train_acc"] - r["test_acc"])
    on_test = evaluate(r["model"], tiny["test_x"], tiny["test_y"], tiny["mean"], tiny["std"])["acc"]
    assert r["test_acc"] == pytest.approx(on_test)
    again = evaluate(r["model"], tiny["train_x"], tiny["train_y"], tiny["mean"], tiny["std"])["acc"]
    assert r["train_acc"] == pytest.approx(again)
    assert len(r["history"]["epoch"]["val_loss"]) == 3
    same = D.train_config({**TINY, "head_dropout": 0.5}, tiny, epochs=3, seed=0, widths=(8, 16), batch_size=16)
    assert same["val_loss"] == r["val_loss"] and "model" not in same


def test_make_model_gives_the_baseline_net_the_configurations_dropout_and_refuses_what_it_lacks(tiny):
    strong = {"batch_norm": True, "conv_dropout": 0.3, "head_dropout": 0.5}
    torch.manual_seed(0)
    model = D.make_model(strong, tiny, net="baseline")
    assert [(s["name"], s["p"]) for s in D.dropout_sites(model)] == [
        ("block1.drop", 0.3), ("block2.drop", 0.3), ("block3.drop", 0.3), ("head.drop", 0.5)]
    torch.manual_seed(0)
    plain = D.make_model({"batch_norm": True}, tiny, net="baseline")
    assert D.dropout_sites(plain) == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), plain.state_dict().values()))
    assert model(torch.zeros(2, 3, 24, 32)).shape == (2, 10)
    for bad in ({"batch_norm": False}, {"conv_dropout": 0.1, "dropout_before_bn": True}):
        with pytest.raises(ValueError, match="net='small_cnn'"):
            D.make_model(bad, tiny, net="baseline")
    with pytest.raises(ValueError, match="net must be one of"):
        D.make_model({}, tiny, net="resnet")


def test_train_config_trains_the_baseline_net_with_the_recipes_label_smoothing(tiny):
    kw = dict(epochs=1, seed=0, batch_size=16, net="baseline")
    r = D.train_config({"head_dropout": 0.2}, tiny, keep_model=True, **kw)
    assert hasattr(r["model"], "stem") and r["test_gap"] == pytest.approx(r["train_acc"] - r["test_acc"])
    modes = D.accuracy_by_mode(r["model"], tiny["test_x"], tiny["test_y"], tiny["mean"], tiny["std"])
    assert modes["eval"] == pytest.approx(r["test_acc"])
    again = D.train_config({"head_dropout": 0.2}, tiny, **kw)
    hard = D.train_config({"head_dropout": 0.2}, tiny, label_smoothing=0.0, **kw)
    first = [x["history"]["step"]["loss"][0] for x in (r, again, hard)]
    assert first[0] == first[1] != first[2]  # same seed, same run; the recipe's smoothing is on


def test_train_configs_runs_every_configuration_per_seed_and_keeps_only_asked_models(tiny):
    configs = {"none": TINY, "head": {**TINY, "head_dropout": 0.5}}
    res = D.train_configs(configs, tiny, seeds=[0, 1], keep=("head",), progress=False, epochs=1,
                          widths=(8,), batch_size=32)
    assert [len(res[n]) for n in configs] == [2, 2]
    assert all("model" in r for r in res["head"]) and not any("model" in r for r in res["none"])
    rows = D.config_stats(res)
    assert rows[0]["config"] == "none" and rows[0]["runs"] == 2
    assert "head" in D.format_table(rows)
    fig = Figure()
    D.draw_results(fig.subplots(1, 2), res, "(tiny)")
    assert [len(ax.get_lines()) > 0 for ax in fig.axes] == [True, True]


def test_run_for_panel_stops_when_asked_and_reports_final_accuracies(tiny):
    params = {"conv_p": 0.1, "head_p": 0.5, "kind": "channel", "batch_norm": False, "before_bn": False,
              "subset": 30, "epochs": 3}
    reports = []
    hist = D.run_for_panel(params, tiny, reports.append, lambda: True, widths=(8,), batch_size=10)
    assert hist["stopped"] == "requested" and len(hist["epoch"]["epoch"]) == 1
    assert set(hist["final"]) == {"train_acc", "val_acc", "gap"} and reports
    assert D.result_png(hist, "run")[:4] == b"\x89PNG"


def test_placement_drawing_has_one_row_per_configuration():
    models = {name: small_cnn(**kw) for name, kw in D.configurations().items()}
    ax = Figure().subplots()
    D.draw_placement(ax, models)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(models)


def test_best_of_picks_the_highest_mean():
    res = {"a": [{"val_acc": 0.5}, {"val_acc": 0.7}], "b": [{"val_acc": 0.55}, {"val_acc": 0.6}]}
    assert D.best_of(res, ["a", "b"]) == "a" and D.best_of(res, ["b"]) == "b"
    with pytest.raises(ValueError, match="at least one"):
        D.best_of(res, [])


def test_tuned_selects_on_validation_and_reports_the_test_numbers():
    res = {"a": [{"val_acc": 0.5, "test_acc": 0.9}, {"val_acc": 0.5, "test_acc": 0.9}],
           "b": [{"val_acc": 0.6, "test_acc": 0.1}, {"val_acc": 0.6, "test_acc": 0.2}]}
    assert D.tuned(res, ["a", "b"]) == ("b", [0.1, 0.2])


def test_do4_arms_give_both_arms_the_same_number_of_candidates():
    configs, overrides, arms = D.do4_arms([0.05, 0.1], [0.2, 0.5], lr=0.05)
    assert [len(a) for a in arms.values()] == [2, 2]
    assert [overrides[n]["lr"] for n in arms["BN only"]] == [0.05, 0.1]
    assert all("head_dropout" not in configs[n] for n in arms["BN only"])
    assert [configs[n]["head_dropout"] for n in arms["BN + dropout"]] == [0.2, 0.5]
    with pytest.raises(ValueError, match="same number of candidates"):
        D.do4_arms([0.05], [0.2, 0.5], lr=0.05)


def test_train_configs_applies_per_configuration_overrides(tiny):
    configs = {"a": TINY, "b": TINY}
    res = D.train_configs(configs, tiny, seeds=[0], progress=False, overrides={"b": {"lr": 0.5}},
                          epochs=1, widths=(8,), batch_size=32)
    assert res["a"][0]["history"]["step"]["lr"] != res["b"][0]["history"]["step"]["lr"]
    fig = Figure()
    D.draw_paired(fig.subplots(), {"a": [0.5, 0.6], "b": [0.55, 0.62]})
    assert len(fig.axes[0].get_lines()) == 2 + 2 + 2  # a line per seed, the points and the mean of each arm
