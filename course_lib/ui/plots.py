"""Figures the notebooks share: training curves, image grids, confusion matrices, LR curves,
and a live-updating curve callback for ``fit``.

Importing this module changes no matplotlib setting. The course's look (``course_look``) is
applied to each figure these functions make: per figure rather than through ``rcParams``,
because the widget panels draw from a background thread and ``rc_context`` swaps the
process-wide settings, which two threads can leave changed.
"""
from __future__ import annotations

import io
import math
import statistics

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

COURSE_DPI = 90


def course_look(fig):
    """The course's look on one figure: 90 dpi, no top and right spines. Returns the figure."""
    fig.set_dpi(COURSE_DPI)
    for ax in fig.axes:
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_history(history: dict, axes=None, label: str | None = None, title: str | None = None):
    """Loss and accuracy per epoch (train and validation) from a ``fit`` history. Returns the figure."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        course_look(fig)
    fig = axes[0].figure
    e = history["epoch"]
    prefix = f"{label} " if label else ""
    axes[0].plot(e["epoch"], e["train_loss"], "o-", label=f"{prefix}train")
    axes[0].plot(e["epoch"], e["val_loss"], "s--", label=f"{prefix}val")
    axes[1].plot(e["epoch"], [100 * a for a in e["train_acc"]], "o-", label=f"{prefix}train")
    axes[1].plot(e["epoch"], [100 * a for a in e["val_acc"]], "s--", label=f"{prefix}val")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy loss")
    axes[1].set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_steps(history: dict, key: str = "loss", ax=None, label: str | None = None, logy: bool = False):
    """A per-step series (loss, lr or grad_norm) from a ``fit`` history."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
        course_look(ax.figure)
    ax.plot(history["step"][key], label=label)
    ax.set(xlabel="step", ylabel=key)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return ax.figure


def image_grid(x: torch.Tensor, labels=None, classes=None, n: int = 32, ncols: int = 8,
               title: str | None = None, scale: float = 1.2):
    """Show up to ``n`` uint8 (N,3,H,W) images with their class names. Returns the figure."""
    x = x[:n].detach().cpu()
    rows = (len(x) + ncols - 1) // ncols
    fig, axes = plt.subplots(rows, ncols, figsize=(ncols * scale, rows * scale * 1.15), squeeze=False)
    course_look(fig)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(x):
            img = x[i].permute(1, 2, 0).numpy()
            ax.imshow(img if img.dtype == np.uint8 else np.clip(img, 0, 1), interpolation="nearest")
            if labels is not None:
                lab = int(labels[i])
                ax.set_title(classes[lab] if classes else str(lab), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    idx = y_true.cpu().long() * num_classes + y_pred.cpu().long()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes).numpy()


def plot_confusion(cm: np.ndarray, classes, ax=None, title: str = "confusion matrix (test)"):
    """A confusion matrix as a heatmap, normalised per true class, counts printed in the cells."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5.5))
        course_look(ax.figure)
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    ax.figure.tight_layout()
    return ax.figure


def plot_lr_curves(curves: dict, ax=None, logy: bool = False):
    """Several LR schedules (name -> list of LRs per step) on one axis."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
        course_look(ax.figure)
    for name, lrs in curves.items():
        ax.plot(lrs, label=name)
    ax.set(xlabel="step", ylabel="learning rate")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


def pixel_histograms(raw: torch.Tensor, normalized: torch.Tensor, channel_names=("R", "G", "B")):
    """Per-channel pixel histograms before (0-255) and after normalisation (DBG-3)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    course_look(fig)
    for c, name in enumerate(channel_names):
        axes[0].hist(raw[:, c].flatten().cpu().float().numpy(), bins=64, alpha=0.5, label=name,
                     color=name.lower() if name in "RGB" else None)
        axes[1].hist(normalized[:, c].flatten().cpu().numpy(), bins=64, alpha=0.5, label=name,
                     color=name.lower() if name in "RGB" else None)
    axes[0].set(title="raw uint8 pixels", xlabel="value")
    axes[1].set(title="after normalisation (training mean/std)", xlabel="value")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    return fig


def draw_paired(ax, arms: dict, ylabel: str = "", title: str = "", scale: float = 1.0,
                logy: bool = False, legend: bool = False) -> None:
    """Paired seeds of two or more arms ``{label: [value per seed]}``: seed *i* of every arm
    joined by a grey line, each value a point, each arm's mean a black bar. The seed spread and
    the paired differences (what the verdict's interval is built from) in one picture.
    ``scale=100`` draws fractions as percentages; ``legend`` lists each arm's mean."""
    labels = list(arms)
    values = scale * np.array([arms[a] for a in labels], dtype=float)
    x = np.arange(len(labels))
    for seed_values in values.T:
        ax.plot(x, seed_values, "-", color="0.7", lw=0.8, zorder=0)
    for i, label in enumerate(labels):
        mean = np.nanmean(values[i])
        ax.plot([i] * values.shape[1], values[i], "o", ms=4, label=f"{label} (mean {mean:.3g})")
        ax.plot([i - 0.15, i + 0.15], [mean, mean], "k-", lw=2)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(xlim=(-0.5, len(labels) - 0.5), ylabel=ylabel, title=title, yscale="log" if logy else "linear")
    if legend:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def seed_points(ax, arms: dict, ylabel: str = "", title: str = "", scale: float = 1.0,
                zoom: bool = False) -> None:
    """Unpaired seeds of each arm ``{label: [value per seed]}``: one column per arm, each seed a
    point and the mean a bar (NaN values, runs that measured nothing, are left out), so the seed
    spread stays visible beside the mean. ``scale=100`` draws fractions as percentages; ``zoom``
    fits the y-axis to the points instead of starting the bars at zero."""
    shown = []
    for k, vals in enumerate(arms.values()):
        pts = [scale * v for v in vals if not math.isnan(v)]
        if pts:
            ax.bar(k, statistics.fmean(pts), color=f"C{k % 10}", alpha=0.3, width=0.6)
            ax.plot([k] * len(pts), pts, "o", color=f"C{k % 10}", ms=5)
        shown += pts
    ax.set_xticks(range(len(arms)), list(arms), rotation=20, ha="right", fontsize=8)
    if zoom and shown:
        ax.set_ylim(max(min(shown) - 5, 0), max(shown) + 3)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")


def figure_png(fig) -> bytes:
    """A figure as PNG bytes (for image widgets and reports); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, results_dir, name: str) -> str:
    """Save a figure as ``<results_dir>/<name>.png`` and return the path (for ``record``)."""
    from pathlib import Path
    path = Path(results_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return str(path)


def live_curves(every: str = "epoch"):
    """A ``fit`` callback that redraws loss/accuracy curves in place in a notebook.

    Uses one IPython display handle, so the plot updates instead of stacking. Outside IPython it
    does nothing.
    """
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return lambda event, history, model: None
    state = {"handle": None}

    def callback(event, history, model):
        if event != every or not history["epoch"]["epoch"]:
            return
        fig = plot_history(history)
        if state["handle"] is None:
            state["handle"] = display(fig, display_id=True)
        else:
            state["handle"].update(fig)
        plt.close(fig)

    return callback



def finish_png(fig, title: str = "", grid: bool = True) -> bytes:
    """A widget panel's figure finished the course's way (light grid on every axes, the course
    look, ``title`` on top, tight layout) and returned as PNG bytes."""
    if grid:
        for ax in fig.axes:
            ax.grid(alpha=0.3)
    course_look(fig)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return figure_png(fig)


def render_png(draw, result, title: str = "", ncols: int = 1, size=(8, 4), **subplot_kw) -> bytes:
    """PNG bytes of ``draw(ax, result)`` on a new figure, for the widget panels' image.

    ``draw`` is one function or a list of them, one per axes, laid out in ``ncols`` columns;
    ``subplot_kw`` goes to ``Figure.subplots`` (e.g. ``gridspec_kw``). ``title`` becomes the
    figure's title. The figure is built without pyplot, so a panel's background thread may call
    this while the notebook draws its own figures.
    """
    draws = list(draw) if isinstance(draw, (list, tuple)) else [draw]
    fig = Figure(figsize=size)
    axes = fig.subplots(-(-len(draws) // ncols), ncols, squeeze=False, **subplot_kw).flat
    for i, ax in enumerate(axes):
        if i < len(draws):
            draws[i](ax, result)
        else:
            ax.set_axis_off()
    return finish_png(fig, title, grid=False)
