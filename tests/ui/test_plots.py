"""Shared figures: importing the module changes no matplotlib setting; each figure gets the look."""
import subprocess
import sys

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from course_lib.ui import plots

IMPORT_CHECK = """
import matplotlib, matplotlib.pyplot
before = dict(matplotlib.rcParams)
import course_lib.ui.plots, course_lib.ui.widgets
after = dict(matplotlib.rcParams)
print(sorted(k for k in before if before[k] != after[k]))
"""


def test_importing_plots_leaves_rcparams_unchanged():
    # a fresh interpreter: in this one the module may have been imported long ago
    r = subprocess.run([sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_figures_get_the_course_look_and_leave_rcparams_alone():
    before = dict(matplotlib.rcParams)
    hist = {"epoch": {"epoch": [1, 2], "train_loss": [2.0, 1.5], "val_loss": [2.1, 1.7],
                      "train_acc": [0.2, 0.4], "val_acc": [0.2, 0.35]}, "step": {"loss": [2.3, 2.0]}}
    x = torch.randint(0, 255, (4, 3, 32, 24), dtype=torch.uint8)  # non-square images
    figs = [plots.plot_history(hist), plots.plot_steps(hist), plots.image_grid(x, n=4, ncols=2),
            plots.plot_lr_curves({"const": [0.1, 0.1]})]
    for fig in figs:
        assert fig.dpi == plots.COURSE_DPI
        assert not any(ax.spines["top"].get_visible() or ax.spines["right"].get_visible() for ax in fig.axes)
        plt.close(fig)
    assert dict(matplotlib.rcParams) == before
    fig, ax = plt.subplots()  # a caller's own axes keep the caller's style
    plots.plot_steps(hist, ax=ax)
    assert ax.spines["top"].get_visible()
    plt.close(fig)


def test_draw_paired_joins_each_seed_across_arms_and_marks_the_means():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    plots.draw_paired(ax, {"a": [0.5, 0.6, 0.7], "b": [0.55, 0.62, 0.69]}, "acc (%)", "t", scale=100, legend=True)
    seed_lines = [ln for ln in ax.lines if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2
                  and list(ln.get_xdata()) == [0, 1]]
    assert [y for ln in seed_lines for y in ln.get_ydata()] == pytest.approx([50, 55, 60, 62, 70, 69])
    means = [ln for ln in ax.lines if ln.get_color() == "k"]
    assert [float(ln.get_ydata()[0]) for ln in means] == pytest.approx([60.0, 62.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (mean 60)", "b (mean 62)"]
    plt.close(fig)


def test_seed_points_draws_each_seed_and_a_mean_bar_leaving_out_nan():
    import math
    fig, ax = plt.subplots()
    plots.seed_points(ax, {"a": [0.5, 0.7], "b": [0.6, math.nan, 0.8], "c": [math.nan]}, "acc (%)",
                      scale=100)
    points = [list(ln.get_ydata()) for ln in ax.lines]
    assert points == [pytest.approx([50, 70]), pytest.approx([60, 80])]  # "c" measured nothing
    assert [p.get_height() for p in ax.patches] == pytest.approx([60, 70])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_ylim()[0] == 0  # bars start at zero unless zoomed
    plt.close(fig)


def test_seed_points_zoom_fits_the_axis_to_the_points():
    fig, ax = plt.subplots()
    plots.seed_points(ax, {"a": [0.60, 0.62], "b": [0.64, 0.66]}, scale=100, zoom=True)
    assert ax.get_ylim() == pytest.approx((55, 69))
    plt.close(fig)
