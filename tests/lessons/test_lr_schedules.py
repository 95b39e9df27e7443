"""Notebook 04's helpers: every arm's LR against its closed form, snapshots and best-epoch
weights taken at the right moments, ensembles, combined verdicts and the widget pieces."""
import math

import pytest
import torch

from course_lib.core import recipes
from course_lib.core.models import small_cnn
from course_lib.core.train import fit, predict_logits
from course_lib.lessons import lr_schedules as lr_study


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return small_cnn(widths=(8, 16), hidden=16, num_classes=3)


def test_every_arm_follows_its_closed_form():
    epochs, spe, lr = 6, 10, 0.4
    arms = lr_study.recipes(lr, epochs, spe, T_0_epochs=2, T_mult=1, warmup_epochs=1, small_lr_factor=0.1)
    assert tuple(arms) == lr_study.ARMS
    c = {arm: lr_study.recipe_curve(r, epochs, spe) for arm, r in arms.items()}
    assert all(len(v) == epochs * spe for v in c.values())
    def cos(t, T, peak=lr):
        return peak / 2 * (1 + math.cos(math.pi * t / T))
    assert c["constant"] == pytest.approx([lr] * 60) and c["plateau"] == pytest.approx([lr] * 60)
    assert [c["step"][t] for t in (0, 19, 20, 39, 40, 59)] == pytest.approx([.4, .4, .04, .04, .004, .004])
    for t in (0, 15, 30, 59):
        assert c["cosine"][t] == pytest.approx(cos(t, 60))
        assert c["cosine_small_lr"][t] == pytest.approx(cos(t, 60, 0.04))
        assert c["cosine_restarts"][t] == pytest.approx(cos(t % 20, 20))
    for t in (0, 5):   # linear warmup from 1% over 10 steps, then cosine over the remaining 50
        assert c["warmup_cosine"][t] == pytest.approx(lr * (0.01 + 0.99 * t / 10))
    for t in (10, 35, 59):
        assert c["warmup_cosine"][t] == pytest.approx(cos(t - 10, 50))
    peak = max(range(60), key=c["onecycle"].__getitem__)
    assert c["onecycle"][peak] == pytest.approx(lr, rel=1e-3) and 13 <= peak <= 15
    assert c["onecycle"][0] < lr / 10 and c["onecycle"][-1] < lr / 100


@pytest.mark.parametrize("kw, match", [(dict(T_0_epochs=7), r"T_0_epochs must be between 1 and epochs \(6\)"),
                                       (dict(warmup_epochs=6), r"warmup_epochs must be in \[0, epochs\)"),
                                       (dict(lr=0), "must be positive")])
def test_recipes_refuse_knobs_that_do_not_fit_the_budget(kw, match):
    args = dict(lr=0.1, epochs=6, spe=10) | kw
    with pytest.raises(ValueError, match=match):
        lr_study.recipes(**args)


def test_steps_per_epoch_counts_like_fit(tiny):
    h = fit(tiny_model(), tiny, epochs=1, batch_size=40, progress=False, schedule="constant")
    assert len(h["step"]["loss"]) == lr_study.steps_per_epoch(90, 40) == 2
    assert lr_study.steps_per_epoch(10, 64) == 1
    with pytest.raises(ValueError, match="at least 1"):
        lr_study.steps_per_epoch(0, 64)


def test_run_recipe_keeps_snapshots_at_cycle_ends_and_the_best_epoch(tiny):
    spe = lr_study.steps_per_epoch(90, 30)                                 # 3
    recipe = lr_study.recipes(0.1, 4, spe, T_0_epochs=1, T_mult=2)["cosine_restarts"]
    model = tiny_model()
    w = next(k for k, v in model.state_dict().items() if v.dim() == 4)
    trace = []                                                             # weights after every epoch
    run = lr_study.run_recipe(model, tiny, recipe, epochs=4, batch_size=30, seed=1,
                              callbacks=[lambda e, h, m: trace.append(m.state_dict()[w].clone()) if e == "epoch" else None])
    assert [s["step"] for s in run["snapshots"]] == [3, 9]                # cycles of 1 and 2 epochs; the 4-epoch one is unfinished
    accs = run["history"]["epoch"]["val_acc"]
    assert run["best"]["epoch"] == accs.index(max(accs)) + 1 and run["best"]["value"] == max(accs)
    assert torch.equal(run["best"]["state_dict"][w], trace[run["best"]["epoch"] - 1].cpu())
    assert torch.equal(run["snapshots"][0]["state_dict"][w], trace[0].cpu())   # step 3 = end of epoch 1


def test_ensemble_of_one_state_is_plain_prediction_and_leaves_the_model_alone(tiny):
    model = tiny_model().eval()
    other = tiny_model(seed=5).state_dict()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = tiny["val_x"]
    p = lr_study.ensemble_probs(model, [model.state_dict()], x, tiny["mean"], tiny["std"])
    assert torch.allclose(p, predict_logits(model, x, tiny["mean"], tiny["std"]).softmax(1), atol=1e-6)
    both = lr_study.ensemble_probs(model, [model.state_dict(), other], x, tiny["mean"], tiny["std"])
    assert torch.allclose(both.sum(1), torch.ones(len(x)), atol=1e-5) and not torch.allclose(both, p)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="at least one state"):
        lr_study.ensemble_probs(model, [], x, tiny["mean"], tiny["std"])


def test_best_and_last_accuracy(tiny):
    recipe = lr_study.recipes(0.05, 3, 3)["constant"]
    run = lr_study.run_recipe(tiny_model(), tiny, recipe, epochs=3, batch_size=30)
    got = lr_study.best_and_last_accuracy(run, tiny["val_x"], tiny["val_y"], tiny["mean"], tiny["std"])
    assert got["best_epoch"] == run["best"]["epoch"]
    assert got["best"] == pytest.approx(run["best"]["value"])             # same split: same number
    assert got["last"] == pytest.approx(run["history"]["epoch"]["val_acc"][-1])


def test_preview_and_widget_pieces():
    spec = lr_study.widget_spec(0.4, 6, 2, 1, 1.0, 1)
    params = {k: s["value"] for k, s in spec.items()}
    png = lr_study.preview_png(params, spe=10)
    assert png[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="tick at least one"):
        lr_study.selected_recipes({**params, **{a: False for a in lr_study.ARMS}}, 10)
    with pytest.raises(ValueError, match="T_0_epochs must be between 1 and epochs"):
        lr_study.preview_png({**params, "T_0_epochs": 9}, 10)


def test_live_preview_redraws_and_shows_errors():
    import ipywidgets as W
    spec = lr_study.widget_spec(0.4, 6, 2, 1, 1.0, 1)
    panel = W.VBox()
    panel.inputs = {k: (W.Checkbox(value=s["value"]) if s["kind"] == "bool" else W.FloatText(value=s["value"]))
                    for k, s in spec.items()}
    box = lr_study.with_preview(panel, spec, spe=10)
    first = box.preview.value
    panel.inputs["onecycle"].value = True
    assert box.preview.value != first and box.note.value.count("<br>") == 0
    panel.inputs["lr"].value = 5.0
    assert "peak LR: 5.0 is out of range; allowed 0.001 to 2.0" in box.note.value
    panel.inputs["lr"].value = 0.4
    panel.inputs["T_0_epochs"].value = 9
    assert "T_0_epochs must be between 1 and epochs (6)" in box.note.value


def test_run_selected_trains_the_ticked_arms_and_stops_on_request(tiny):
    params = {a: a in ("constant", "cosine") for a in lr_study.ARMS}
    params.update(lr=0.05, epochs=2, T_0_epochs=1, T_mult=1, warmup_epochs=0.0, plateau_patience=1)
    reports = []
    res = lr_study.run_selected(params, tiny, tiny_model, 30, 0, reports.append, lambda: False)
    assert list(res["histories"]) == ["constant", "cosine"] and res["stopped"] is None
    assert len(reports) == 4 and lr_study.render_result(res)[:4] == b"\x89PNG"
    stopped = lr_study.run_selected(params, tiny, tiny_model, 30, 0, lambda r: None, lambda: True)
    assert stopped["stopped"] == "requested" and list(stopped["histories"]) == ["constant"]


def test_run_selected_with_the_baseline_recipe_trains_as_standard_does(tiny):
    """In standard the panel trains like the experiment, with the recipe's keywords (label
    smoothing, bf16 where fast): from the same weights and the same first batch, the first loss
    differs from the plain run's."""
    params = {a: a == "cosine" for a in lr_study.ARMS}
    params.update(lr=0.05, epochs=1, T_0_epochs=1, T_mult=1, warmup_epochs=0.0, plateau_patience=1)

    def first_loss(baseline):
        res = lr_study.run_selected(params, tiny, tiny_model, 30, 0, lambda r: None, lambda: False,
                                    baseline=baseline)
        return res["histories"]["cosine"][0]["step"]["loss"][0]
    assert first_loss(True) == first_loss(True) != first_loss(False)


def test_accuracy_table_gives_mean_and_seed_spread():
    rows = lr_study.accuracy_table({"cosine": {"final": [0.5, 0.6], "best": [0.6, 0.6], "best_epoch": [3, 4]}})
    assert rows[1].split() == ["cosine", "55.00", "±", "7.07", "%", "60.00", "±", "0.00", "%", "[3,", "4]"]


def test_test_split_scores_and_per_seed_means_keep_seeds_paired(tiny):
    recipes = lr_study.recipes(0.05, 2, 3)
    runs = {arm: [lr_study.run_recipe(tiny_model(s), tiny, recipes[arm], epochs=2, batch_size=30, seed=s)
                  for s in (0, 1)] for arm in ("constant", "cosine")}
    scores = lr_study.score_on_test(runs, tiny)
    assert [len(v) for v in scores.values()] == [2, 2]
    one = lr_study.best_and_last_accuracy(runs["cosine"][1], tiny["test_x"], tiny["test_y"], tiny["mean"],
                                          tiny["std"])
    assert scores["cosine"][1] == one, "scored on the test split"
    means = lr_study.per_seed_mean(scores, ["constant", "cosine"], "last")
    assert means[0] == pytest.approx((scores["constant"][0]["last"] + scores["cosine"][0]["last"]) / 2)
    assert len(means) == 2


@pytest.mark.parametrize("module", ["lr_schedules", "batch_size_lr_coupling"])
def test_meanings_cover_every_outcome_of_their_notebook_claims(module):
    import importlib

    from course_lib.core import takeaways
    from course_lib.core.claims import load_claims
    meanings = importlib.import_module(f"course_lib.lessons.{module}").MEANINGS
    assert set(meanings) <= set(load_claims())
    for claim, m in meanings.items():
        assert set(m) == set(takeaways.OUTCOMES), claim
    takeaways.takeaways([], meanings)  # accepted by the takeaways helper


def test_shared_fit_kw_gives_every_arm_the_baseline_recipe_but_not_its_schedule():
    """standard trains the schedules with the course's recipe: its label smoothing and bf16
    choice, while each arm keeps its own schedule, peak LR and batch size, and no arm is resized
    (resizing confounds schedules); the small CNN gets nothing extra."""
    assert lr_study.shared_fit_kw(torch.device("cpu")) == {}
    kw = lr_study.shared_fit_kw(torch.device("cpu"), baseline=True)
    assert kw["label_smoothing"] == recipes.BASELINE["fit"]["label_smoothing"]
    assert kw["amp"] == recipes.amp_for(recipes.BASELINE, torch.device("cpu"))
    assert not {"epochs", "batch_size", "lr", "schedule", "batch_transform"} & set(kw)


def test_run_recipe_on_the_baseline_recipe_pairs_arms_by_seed(tiny):
    """Within a seed every schedule must start from the same weights and see the same batches;
    with the recipe's keywords and whitened stem one seed must still give one run."""
    spe = lr_study.steps_per_epoch(90, 30)
    every = lr_study.recipes(0.05, 2, spe, T_0_epochs=1)
    kw = lr_study.shared_fit_kw(torch.device("cpu"), baseline=True)

    def run(arm, seed):
        torch.manual_seed(seed)
        model = recipes.recipe_model(tiny, recipes.BASELINE)
        return lr_study.run_recipe(model, tiny, every[arm], 2, 30, seed=seed, **kw)
    a, b, c = run("cosine", 0), run("cosine", 0), run("constant", 0)
    assert a["history"]["step"]["loss"] == b["history"]["step"]["loss"]
    assert a["history"]["step"]["loss"][0] == c["history"]["step"]["loss"][0]   # same start, same batch
    assert a["history"]["step"]["loss"][-1] != c["history"]["step"]["loss"][-1]
    assert len(a["history"]["epoch"]["val_acc"]) == 2
