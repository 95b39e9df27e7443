"""Sweeps: in-place re-initialisation, runs that survive divergence, the grid, and reading a grid
(best LR, good-LR window, slope, time to target) on synthetic numbers with known answers."""
import math

import numpy as np
import pytest

from course_lib.core.models import small_cnn
from course_lib.lessons.batch_size_lr_coupling import (
    best_lr,
    fit_slope,
    good_lr_window,
    grid_matrix,
    lr_grid,
    time_to_target,
    train_bs_lr_grid,
)


def tiny_model():
    return small_cnn(widths=(8, 16), hidden=16, num_classes=3)


def test_train_bs_lr_grid_covers_the_grid_reports_and_stops(tiny):
    model, reports = tiny_model(), []
    res = train_bs_lr_grid(model, tiny, [16, 32], [0.01, 0.1], seeds=(0,), epochs=1, report=lambda r: reports.append(len(r)))
    assert [(r["batch_size"], r["lr"]) for r in res] == [(16, 0.01), (16, 0.1), (32, 0.01), (32, 0.1)]
    assert reports == [1, 2, 3, 4]
    m = grid_matrix(res, [16, 32], [0.01, 0.1])
    assert m.shape == (2, 2) and np.all((0 <= m) & (m <= 1))
    calls = {"n": 0}

    def stop_after_first_run():
        calls["n"] += 1
        return len(reports) >= 5
    res2 = train_bs_lr_grid(model, tiny, [16, 32], [0.01, 0.1], epochs=1, report=lambda r: reports.append(len(r)),
                    should_stop=stop_after_first_run)
    assert len(res2) == 1
    with pytest.raises(ValueError, match="at least one value"):
        train_bs_lr_grid(model, tiny, [], [0.1])


def test_lr_grid_is_log_spaced_and_checks_its_range():
    g = lr_grid(1e-3, 1.0, 4)
    np.testing.assert_allclose(g, [1e-3, 1e-2, 1e-1, 1.0])
    with pytest.raises(ValueError, match="0 < low < high"):
        lr_grid(1.0, 0.1, 5)
    with pytest.raises(ValueError, match="at least 2"):
        lr_grid(0.1, 1.0, 1)


def synthetic_grid(batch_sizes, lrs, exponent=1.0, width0=1.0, narrowing=0.0):
    """Accuracy rows peaked at best LR = 1e-3 * B**exponent (Gaussian in log10 LR), with a
    peak width that shrinks by ``narrowing`` decades per doubling of the batch."""
    x = np.log10(lrs)
    rows = []
    for k, b in enumerate(batch_sizes):
        centre = np.log10(1e-3 * b ** exponent)
        width = width0 - narrowing * k
        rows.append(0.8 * np.exp(-0.5 * ((x - centre) / width) ** 2))
    return np.array(rows)


@pytest.mark.parametrize("exponent", [1.0, 0.5])
def test_slope_of_best_lr_recovers_the_scaling_rule(exponent):
    bs = [32, 64, 128, 256, 512, 1024]
    lrs = lr_grid(1e-3, 10.0, 13)
    acc = synthetic_grid(bs, lrs, exponent)
    best = [best_lr(lrs, row)["lr"] for row in acc]
    s = fit_slope(bs, best)
    assert s["slope"] == pytest.approx(exponent, abs=0.1)
    raw = fit_slope(bs, [best_lr(lrs, row, refine=False)["lr"] for row in acc])
    assert abs(s["slope"] - exponent) <= abs(raw["slope"] - exponent) + 1e-9, "refining does not hurt"
    with pytest.raises(ValueError, match="at least 3"):
        fit_slope([32, 64], best[:2])


def test_best_lr_flags_an_optimum_on_the_edge():
    lrs = lr_grid(1e-3, 1.0, 4)
    b = best_lr(lrs, [0.1, 0.2, 0.3, 0.4])
    assert b["at_edge"] and b["lr"] == pytest.approx(1.0)
    assert not best_lr(lrs, [0.1, 0.4, 0.3, 0.2])["at_edge"]


def test_window_width_shrinks_on_a_narrowing_grid_and_is_interpolated():
    bs = [32, 64, 128, 256]
    lrs = lr_grid(1e-4, 10.0, 31)  # 1/6 decade apart, fine enough for the narrowest peak
    acc = synthetic_grid(bs, lrs, exponent=0.5, width0=0.8, narrowing=0.15)
    widths = [good_lr_window(lrs, row, tol=0.05)["width_decades"] for row in acc]
    assert all(a > b for a, b in zip(widths, widths[1:]))
    # exact for a Gaussian: best - tol is reached at centre +- w * sqrt(2 ln(0.8 / 0.75))
    exact = 2 * 0.8 * math.sqrt(2 * math.log(0.8 / 0.75))
    assert widths[0] == pytest.approx(exact, rel=0.1)


def test_window_at_the_grid_edge_is_flagged():
    w = good_lr_window([0.01, 0.1, 1.0], [0.80, 0.795, 0.5], tol=0.01)
    assert w["at_edge"] and w["low"] == pytest.approx(0.01)
    assert 0.1 < w["high"] < 1.0
    with pytest.raises(ValueError, match="tol must be non-negative"):
        good_lr_window([0.01, 0.1], [0.5, 0.6], tol=-1)


def test_time_to_target_interpolates_between_epochs():
    got = time_to_target([0.3, 0.5, 0.7], [1.0, 2.0, 2.0], target=0.6)
    assert got["epochs"] == pytest.approx(2.5) and got["seconds"] == pytest.approx(4.0)
    first = time_to_target([0.5], [4.0], target=0.3)  # from chance (0.1) at 0 s to 0.5 at 4 s
    assert first["epochs"] == pytest.approx(0.5) and first["seconds"] == pytest.approx(2.0)
    assert math.isnan(time_to_target([0.3, 0.4], [1.0, 1.0], target=0.9)["epochs"])
    with pytest.raises(ValueError, match="one time per epoch"):
        time_to_target([0.3, 0.4], [1.0], target=0.35)


def test_grid_panel_run_function_and_its_renderer(tiny):
    from course_lib.lessons.batch_size_lr_coupling import grid_experiment, grid_png
    run = grid_experiment(tiny_model(), tiny, seed=0, schedule="cosine")
    seen = []
    p = {"bs_min": 8, "bs_factor": 2, "n_bs": 2, "lr_min": 0.01, "lr_max": 0.1, "n_lrs": 2, "epochs": 1}
    result = run(p, seen.append, lambda: False)
    assert result["stopped"] is None and len(result["runs"]) == 4 and len(seen) == 4
    assert {r["batch_size"] for r in result["runs"]} == {8, 16}
    for partial in (seen[0], result, {"runs": []}):
        assert grid_png(partial, "t").startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="exceeds the 90 training images"):
        run({**p, "bs_min": 64, "bs_factor": 4, "n_bs": 3}, seen.append, lambda: False)


def test_two_batch_sizes_give_the_slope_of_the_line_through_both():
    from course_lib.lessons.batch_size_lr_coupling import scaling_slope
    s = scaling_slope([32, 512], [0.05, 0.8])  # 16x batch, 16x LR: the linear rule
    assert s["slope"] == pytest.approx(1.0)
    assert scaling_slope([32, 512], [0.05, 0.2])["slope"] == pytest.approx(0.5)
    assert scaling_slope([32, 64, 128], [0.1, 0.2, 0.4])["slope"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 distinct batch sizes"):
        scaling_slope([32, 32], [0.1, 0.2])


def test_kept_states_score_each_chosen_run_on_the_test_split_and_pair_by_seed(tiny):
    from course_lib.lessons.batch_size_lr_coupling import (
        key_measures,
        key_runs,
        per_seed,
        read_grid,
        score_test_split,
    )
    model = tiny_model()
    bss, lrs = [8, 16], [0.01, 0.1, 0.3]
    grid = train_bs_lr_grid(model, tiny, bss, lrs, seeds=(0, 1), epochs=2, keep_states=True,
                            train_eval=16, schedule="cosine")
    run = grid[0]
    first = score_test_split(model, tiny, run)
    score_test_split(model, tiny, grid[-1])  # the reused model now holds another run
    assert score_test_split(model, tiny, run) == pytest.approx(first), "the run's own weights"
    seedwise = per_seed(read_grid(grid, bss, lrs), bss)
    assert [len(v) for v in seedwise["log10_best_lr"].values()] == [2, 2]
    key = key_runs(model, tiny, grid, bss, lrs, [0, 1], epochs=2, schedule="cosine", train_eval=16)
    m = key_measures(model, tiny, key, target=0.2)
    assert set(m["steps"]) == {8, 16} and len(m["test_acc"][16]) == 2
    n = len(tiny["train_y"])
    for bs in bss:
        for e, s in zip(m["epochs"][bs], m["steps"][bs]):
            assert (math.isnan(e) and math.isnan(s)) or s == pytest.approx(e * (n // bs))
    with pytest.raises(ValueError, match="keep_states=True"):
        score_test_split(model, tiny, {"val_acc": 0.5})


def test_tune_batch_sizes_picks_each_lr_on_validation_then_repeats_it_per_seed(tiny):
    from course_lib.lessons.batch_size_lr_coupling import key_measures, tune_batch_sizes, tuned_table
    model = tiny_model()
    grids = {8: [0.001, 0.3], 16: [0.01, 0.1, 0.3]}
    kw = dict(epochs=2, schedule="cosine", train_eval=16)
    tuned = tune_batch_sizes(model, tiny, grids, select_seed=100, seeds=[0, 1], progress=False, **kw)
    assert list(tuned) == [8, 16]
    for bs, r in tuned.items():
        sel = r["selection"]
        assert list(sel["val_acc"]) == grids[bs]
        assert sel["val_acc"][sel["lr"]] == max(sel["val_acc"].values()), "the best on validation"
        assert [(x["batch_size"], x["lr"], x["seed"]) for x in r["runs"]] == [(bs, sel["lr"], 0), (bs, sel["lr"], 1)]
    again = tune_batch_sizes(model, tiny, {16: [tuned[16]["selection"]["lr"]]}, 100, [1], progress=False, **kw)
    assert again[16]["runs"][0]["val_acc"] == pytest.approx(tuned[16]["runs"][1]["val_acc"]), "seeds reproduce"
    m = key_measures(model, tiny, {bs: r["runs"] for bs, r in tuned.items()}, target=0.2)
    assert len(m["test_acc"][8]) == 2 and all(0 <= a <= 1 for a in m["test_acc"][16])
    table = tuned_table(tuned, m).splitlines()
    assert len(table) == 3 and table[1].split()[0] == "8" and "0.001:" in table[1]
    with pytest.raises(ValueError, match="at least one LR"):
        tune_batch_sizes(model, tiny, {8: []}, 100, [0])
