"""Hyperparameter sweeps: many short trainings on one reused model, and what to read from them.

- :func:`reinitialize_` re-draws a model's parameters in place, so a sweep allocates (or
  compiles) its model once; :func:`~course_lib.core.runs.train_and_score` trains and summarises one run, keeping a diverged
  run as a result instead of an exception; :func:`train_bs_lr_grid` trains a batch-size x LR grid.
- Reading a grid: :func:`best_lr` (with a parabola through the top three points, so the best LR
  is not stuck on grid values), :func:`good_lr_window` (the LRs within ``tol`` of the best),
  :func:`fit_slope` (log best LR against log batch size: 1 = linear scaling, 0.5 = square root),
  :func:`time_to_target` (epochs and training seconds until the validation accuracy first
  reaches a target).
  :func:`read_grid` applies the first three to every seed of a grid; :func:`key_runs` collects
  the runs at each batch size's best LR over more seeds.
- Figures: :func:`draw_heatmap`, :func:`draw_batch_summary` draw on given axes; for a widget
  panel, :func:`grid_experiment` (the run function) and :func:`grid_png` (its renderer).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from ..core.runs import train_and_score
from ..core.train import evaluate
from ..ui import plots
from ..ui.plots import render_png


def lr_grid(low: float, high: float, n: int) -> list[float]:
    """``n`` learning rates spaced evenly on a log scale from ``low`` to ``high`` (both included)."""
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high for the LR range, got low={low}, high={high}")
    if n < 2:
        raise ValueError(f"need at least 2 learning rates, got n={n}")
    return [float(v) for v in np.geomspace(low, high, n)]


def train_bs_lr_grid(model: nn.Module, data: dict, batch_sizes, lrs, seeds=(0,), epochs: int = 3,
                     report=None, should_stop=None, progress: bool = False, keep_states: bool = False,
                     **fit_kw) -> list[dict]:
    """Train ``model`` (re-initialised in place for every run) at every batch size x LR x seed.

    Returns one :func:`~course_lib.core.runs.train_and_score` summary per run, with ``batch_size``, ``lr`` and ``seed`` added.
    ``keep_states`` also keeps a CPU copy of each run's final weights (``state``), so the runs
    chosen later on validation can be scored on the test split (:func:`score_test_split`).
    ``report(results_so_far)`` is called after every run; ``should_stop()`` ends the grid early
    (the runs done so far are returned); ``progress`` shows a bar over the runs.
    """
    if not batch_sizes or not lrs or not seeds:
        raise ValueError("batch_sizes, lrs and seeds must each hold at least one value")
    n = len(data["train_y"])
    if max(batch_sizes) > n:
        raise ValueError(f"the largest batch size, {max(batch_sizes)}, exceeds the {n} training images: "
                         "use smaller batch sizes (or more training images)")
    results = []
    bar = tqdm(total=len(seeds) * len(batch_sizes) * len(lrs), desc="grid", disable=not progress)
    try:
        for seed in seeds:
            for bs in batch_sizes:
                for lr in lrs:
                    if should_stop is not None and should_stop():
                        return results
                    r = train_and_score(model, data, seed, epochs=epochs, batch_size=bs, lr=lr,
                                should_stop=should_stop, progress=False, **fit_kw)
                    if keep_states:
                        r["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                    results.append({"batch_size": bs, "lr": lr, "seed": seed, **r})
                    bar.update(1)
                    bar.set_postfix(bs=bs, lr=f"{lr:.2g}", acc=f"{r['val_acc']:.2f}")
                    if report is not None:
                        report(results)
    finally:
        bar.close()
    return results


def grid_matrix(results: list[dict], batch_sizes, lrs, seed: int | None = None, key: str = "val_acc") -> np.ndarray:
    """``key`` as a (batch size x LR) array, for one seed or averaged over seeds (``seed=None``).
    Cells with no run are NaN."""
    out = np.full((len(batch_sizes), len(lrs)), np.nan)
    for i, bs in enumerate(batch_sizes):
        for j, lr in enumerate(lrs):
            vals = [r[key] for r in results if r["batch_size"] == bs and math.isclose(r["lr"], lr)
                    and (seed is None or r["seed"] == seed)]
            if vals:
                out[i, j] = float(np.mean(vals))
    return out


def best_lr(lrs, accs, refine: bool = True) -> dict:
    """The best LR of one row of a grid: ``{"lr", "acc", "index", "at_edge"}``.

    With ``refine``, a parabola in log(LR) through the best point and its two neighbours gives an
    LR between grid points (the grid's spacing would otherwise quantise the slope fit). A best
    point on the edge of the grid is flagged ``at_edge``: the true optimum may lie outside.
    """
    lrs, accs = np.asarray(lrs, float), np.asarray(accs, float)
    if len(lrs) != len(accs) or len(lrs) < 2:
        raise ValueError(f"need matching lrs and accs with at least 2 points, got {len(lrs)} and {len(accs)}")
    if np.all(np.isnan(accs)):
        raise ValueError("every accuracy in this row is NaN")
    i = int(np.nanargmax(accs))
    x, lr, acc = np.log10(lrs), lrs[i], accs[i]
    at_edge = i in (0, len(lrs) - 1)
    if refine and not at_edge and np.all(np.isfinite(accs[i - 1:i + 2])):
        a, b, c = np.polyfit(x[i - 1:i + 2], accs[i - 1:i + 2], 2)
        if a < 0:
            xv = float(np.clip(-b / (2 * a), x[i - 1], x[i + 1]))
            lr, acc = 10 ** xv, float(np.polyval([a, b, c], xv))
    return {"lr": float(lr), "acc": float(acc), "index": i, "at_edge": bool(at_edge)}


def good_lr_window(lrs, accs, tol: float = 0.01) -> dict:
    """The range of LRs whose accuracy is within ``tol`` of the row's best (default 1 point).

    The edges are interpolated linearly in log(LR) where the curve crosses best - ``tol``, so
    the width varies smoothly rather than in whole grid steps. Returns ``low``, ``high``,
    ``width_decades`` (log10(high / low)) and ``at_edge`` (the window reaches the end of the
    grid, so its true width may be larger).
    """
    lrs, accs = np.asarray(lrs, float), np.asarray(accs, float)
    if len(lrs) != len(accs) or len(lrs) < 2:
        raise ValueError(f"need matching lrs and accs with at least 2 points, got {len(lrs)} and {len(accs)}")
    if not tol >= 0:
        raise ValueError(f"tol must be non-negative, got {tol}")
    x = np.log10(lrs)
    a = np.nan_to_num(accs, nan=-np.inf)
    i = int(np.argmax(a))
    level = a[i] - tol
    lo = i
    while lo > 0 and a[lo - 1] >= level:
        lo -= 1
    hi = i
    while hi < len(a) - 1 and a[hi + 1] >= level:
        hi += 1

    def cross(j_in, j_out):
        if not np.isfinite(a[j_out]):
            return x[j_in]
        t = (a[j_in] - level) / (a[j_in] - a[j_out])
        return x[j_in] + t * (x[j_out] - x[j_in])

    x_lo = cross(lo, lo - 1) if lo > 0 else x[0]
    x_hi = cross(hi, hi + 1) if hi < len(a) - 1 else x[-1]
    return {"low": float(10 ** x_lo), "high": float(10 ** x_hi), "width_decades": float(x_hi - x_lo),
            "at_edge": bool(lo == 0 or hi == len(a) - 1), "best_acc": float(a[i]), "tol": tol}


def fit_slope(batch_sizes, best_lrs) -> dict:
    """Least-squares slope of log(best LR) against log(batch size) (``scipy.stats.linregress``).

    1 means the linear scaling rule (double the batch, double the LR), 0.5 the square-root rule,
    0 no coupling. Returns ``slope``, ``intercept`` (log10 LR at batch size 1), ``stderr``, ``r``.
    """
    b, lr = np.asarray(batch_sizes, float), np.asarray(best_lrs, float)
    if len(b) != len(lr) or len(b) < 3:
        raise ValueError(f"need at least 3 (batch size, best LR) pairs, got {len(b)} and {len(lr)}")
    if np.any(b <= 0) or np.any(lr <= 0):
        raise ValueError("batch sizes and learning rates must be positive")
    fit_ = stats.linregress(np.log10(b), np.log10(lr))
    return {"slope": float(fit_.slope), "intercept": float(fit_.intercept), "stderr": float(fit_.stderr),
            "r": float(fit_.rvalue)}


def scaling_slope(batch_sizes, best_lrs) -> dict:
    """The slope of log(best LR) against log(batch size), as :func:`fit_slope` returns it: a
    least-squares fit for 3 or more batch sizes, the line through both points for exactly 2."""
    if len(batch_sizes) >= 3:
        return fit_slope(batch_sizes, best_lrs)
    b, lr = np.log10(np.asarray(batch_sizes, float)), np.log10(np.asarray(best_lrs, float))
    if len(b) != 2 or len(lr) != 2 or b[0] == b[1]:
        raise ValueError(f"need 2 distinct batch sizes with one best LR each, got {batch_sizes} and {best_lrs}")
    slope = float((lr[1] - lr[0]) / (b[1] - b[0]))
    return {"slope": slope, "intercept": float(lr[0] - slope * b[0]), "stderr": math.nan, "r": math.nan}


def read_grid(results: list[dict], batch_sizes, lrs, tol: float = 0.01) -> dict:
    """Per seed of a grid: the best LR and the good-LR window of every batch size, and the slope
    of log(best LR) against log(batch size). ``{seed: {"best": [...], "window": [...], "slope": {...}}}``."""
    out = {}
    for seed in sorted({r["seed"] for r in results}):
        m = grid_matrix(results, batch_sizes, lrs, seed)
        best = [best_lr(lrs, row) for row in m]
        out[seed] = {"best": best, "window": [good_lr_window(lrs, row, tol) for row in m],
                     "slope": scaling_slope(batch_sizes, [b["lr"] for b in best])}
    return out


def key_runs(model: nn.Module, data: dict, grid: list[dict], batch_sizes, lrs, seeds, **fit_kw) -> dict:
    """For every batch size, runs at its best grid LR (by accuracy averaged over the grid's
    seeds) for every seed in ``seeds``: grid runs are reused, missing seeds are trained now
    (``fit_kw`` should match the grid's). Returns ``{batch size: [run summaries, one per seed]}``."""
    mean = grid_matrix(grid, batch_sizes, lrs)
    out = {}
    for i, bs in enumerate(batch_sizes):
        lr = lrs[int(np.nanargmax(mean[i]))]
        runs = []
        for s in seeds:
            done = [r for r in grid if r["batch_size"] == bs and math.isclose(r["lr"], lr) and r["seed"] == s]
            runs.append(done[0] if done else {"batch_size": bs, "lr": lr, "seed": s,
                                              **train_and_score(model, data, s, batch_size=bs, lr=lr, progress=False, **fit_kw)})
        out[bs] = runs
    return out


def tune_batch_sizes(model: nn.Module, data: dict, grids: dict, select_seed: int, seeds,
                     progress: bool = True, **fit_kw) -> dict:
    """For each batch size in ``grids`` (``{batch size: [LRs]}``): choose its LR on validation, one
    run per LR at ``select_seed``, then train it once per seed in ``seeds`` at that LR, keeping
    the weights so that :func:`key_measures` can score the runs on the test split.

    Each batch size gets a grid of its own because its best LR moves with it (LR-1); a seed
    outside ``seeds`` chooses, so no run that is compared also chose. Returns
    ``{batch size: {"selection": {"lr", "val_acc": {lr: accuracy}}, "runs": [one per seed]}}``;
    ``{bs: r["runs"]}`` is :func:`key_runs`' shape.
    """
    if not grids or any(not lrs for lrs in grids.values()):
        raise ValueError(f"grids must give every batch size at least one LR, got {grids}")
    out = {}
    for bs, lrs in grids.items():
        tried = train_bs_lr_grid(model, data, [bs], lrs, seeds=[select_seed], progress=progress, **fit_kw)
        best = max(tried, key=lambda r: r["val_acc"])
        runs = train_bs_lr_grid(model, data, [bs], [best["lr"]], seeds=seeds, progress=progress,
                                keep_states=True, **fit_kw)
        out[bs] = {"selection": {"lr": best["lr"], "val_acc": {r["lr"]: r["val_acc"] for r in tried}},
                   "runs": runs}
    return out


def tuned_table(tuned: dict, measures: dict) -> str:
    """A plain-text table of :func:`tune_batch_sizes`' results: per batch size the validation
    accuracy of every LR tried, the chosen LR and, over the seeds (``measures`` from
    :func:`key_measures`), the mean test accuracy and train-test gap."""
    lines = [f"{'batch':>5s}  {'val acc per LR tried':40s} {'chosen':>7s} {'test acc':>8s} {'gap':>7s}"]
    for bs, r in tuned.items():
        tried = ", ".join(f"{lr:g}: {a:.1%}" for lr, a in r["selection"]["val_acc"].items())
        lines.append(f"{bs:5d}  {tried:40s} {r['selection']['lr']:7.3g} "
                     f"{np.mean(measures['test_acc'][bs]):8.1%} {np.mean(measures['gap'][bs]):+7.1%}")
    return "\n".join(lines)


def per_seed(readings: dict, batch_sizes) -> dict:
    """From :func:`read_grid`: per batch size, one value per seed of ``log10_best_lr`` and
    ``window_decades`` (the good-LR window's width), in seed order (so seeds pair up)."""
    out = {"log10_best_lr": {}, "window_decades": {}}
    for i, bs in enumerate(batch_sizes):
        out["log10_best_lr"][bs] = [math.log10(r["best"][i]["lr"]) for r in readings.values()]
        out["window_decades"][bs] = [r["window"][i]["width_decades"] for r in readings.values()]
    return out


def score_test_split(model: nn.Module, data: dict, run: dict) -> float:
    """Accuracy on the whole test split of a grid run kept with ``keep_states`` (its weights are
    loaded into ``model``, which the sweep reuses anyway)."""
    if "state" not in run:
        raise ValueError("this run kept no weights: train the grid with keep_states=True")
    model.load_state_dict(run["state"])
    return evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]


def key_measures(model: nn.Module, data: dict, key: dict, target: float) -> dict:
    """Per batch size (from :func:`key_runs`), one value per seed of: ``val_acc``, ``test_acc``,
    ``gap`` (training accuracy in eval mode minus test accuracy), ``epochs`` and ``steps`` to
    ``target`` validation accuracy (NaN if never reached; steps = epochs x steps per epoch, the
    work measure of LR-2), ``seconds`` to target (training time, noisy) and ``images_per_s``."""
    n = len(data["train_y"])
    out = {k: {} for k in ("val_acc", "test_acc", "gap", "epochs", "steps", "seconds", "images_per_s")}
    for bs, runs in key.items():
        for k in out:
            out[k][bs] = []
        for r in runs:
            test = score_test_split(model, data, r)
            ttt = time_to_target(r["history"]["epoch"]["val_acc"], r["train_seconds"], target)
            out["val_acc"][bs].append(r["val_acc"])
            out["test_acc"][bs].append(test)
            out["gap"][bs].append(r["train_eval_acc"] - test)
            out["epochs"][bs].append(ttt["epochs"])
            out["steps"][bs].append(ttt["epochs"] * max(n // bs, 1))
            out["seconds"][bs].append(ttt["seconds"])
            out["images_per_s"][bs].append(r["images_per_s"])
    return out


def draw_paired(ax, arms: dict, ylabel: str, title: str, logy: bool = False) -> None:
    """Paired seeds of two or more arms ``{label: [value per seed]}`` (``plots.draw_paired``)."""
    plots.draw_paired(ax, arms, ylabel, title, logy=logy)


def time_to_target(val_acc, seconds, target: float, start_acc: float = 0.1) -> dict:
    """When a run's validation accuracy first reached ``target``: ``{"epochs", "seconds"}``.

    ``val_acc`` and ``seconds`` are per-epoch lists (accuracy at the end of each epoch, seconds
    each epoch took). The crossing is interpolated linearly between epoch ends, starting from
    ``start_acc`` (chance) at epoch 0. NaN for both if the run never reached the target.
    """
    if len(val_acc) != len(seconds):
        raise ValueError(f"need one time per epoch: {len(val_acc)} accuracies but {len(seconds)} times")
    acc = [start_acc] + [float(a) for a in val_acc]
    secs = np.concatenate([[0.0], np.cumsum(seconds)])
    for k in range(1, len(acc)):
        if acc[k] >= target:
            t = 1.0 if acc[k] == acc[k - 1] else (target - acc[k - 1]) / (acc[k] - acc[k - 1])
            t = min(max(t, 0.0), 1.0)
            return {"epochs": k - 1 + t, "seconds": float(secs[k - 1] + t * (secs[k] - secs[k - 1]))}
    return {"epochs": math.nan, "seconds": math.nan}


def draw_heatmap(ax, matrix: np.ndarray, batch_sizes, lrs, best: list[dict] | None = None,
                 windows: list[dict] | None = None, title: str = "validation accuracy") -> None:
    """A (batch size x LR) accuracy grid as a heatmap with values printed, the best LR per row
    marked with a star and the good-LR window as a bar."""
    im = ax.imshow(100 * matrix, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(lrs)), [f"{v:.2g}" for v in lrs], rotation=45, fontsize=8)
    ax.set_yticks(range(len(batch_sizes)), [str(b) for b in batch_sizes], fontsize=8)
    ax.set(xlabel="learning rate", ylabel="batch size", title=title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, f"{100 * matrix[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] < np.nanmax(matrix) * 0.8 else "black")
    x_of = lambda lr: np.interp(np.log10(lr), np.log10(lrs), np.arange(len(lrs)))  # noqa: E731
    for i, w in enumerate(windows or []):
        ax.plot([x_of(w["low"]), x_of(w["high"])], [i - 0.35] * 2, color="red", lw=2)
    for i, b in enumerate(best or []):
        ax.plot(x_of(b["lr"]), i, marker="*", color="red", ms=10)
    ax.figure.colorbar(im, ax=ax, label="accuracy (%)")


def grid_experiment(model: nn.Module, data: dict, seed: int = 0, **fit_kw):
    """The run function of a grid widget panel: ``run(params, report, should_stop)`` with params
    ``bs_min``, ``bs_factor``, ``n_bs`` (batch sizes bs_min * bs_factor**k), ``lr_min``, ``lr_max``,
    ``n_lrs`` and ``epochs``. Returns ``{"runs": [...], "stopped": None | "requested"}`` and
    reports ``{"runs": runs so far}`` after every run (render it with :func:`grid_png`)."""
    def run(p, report, should_stop):
        bss = [int(p["bs_min"] * p["bs_factor"] ** k) for k in range(int(p["n_bs"]))]
        lrs = lr_grid(p["lr_min"], p["lr_max"], int(p["n_lrs"]))
        runs = train_bs_lr_grid(model, data, bss, lrs, seeds=(seed,), epochs=int(p["epochs"]),
                        report=lambda rs: report({"runs": rs}), should_stop=should_stop, **fit_kw)
        return {"runs": runs, "stopped": "requested" if should_stop() else None}
    return run


def draw_grid(ax, result: dict) -> None:
    """The heatmap of a (possibly unfinished) grid ``{"runs": [...]}``, its axes read from the runs."""
    results = result["runs"]
    if not results:
        ax.set(title="grid starting ...")
        return
    bss = sorted({r["batch_size"] for r in results})
    lrs = sorted({r["lr"] for r in results})
    draw_heatmap(ax, grid_matrix(results, bss, lrs), bss, lrs, title=f"validation accuracy, {len(results)} runs")


def grid_png(result: dict, title: str = "") -> bytes:
    """:func:`draw_grid` as PNG bytes, for the widget panel."""
    return render_png(draw_grid, result, title, size=(8, 4))


def draw_batch_summary(axes, batch_sizes, readings: dict, per_bs: dict) -> None:
    """Four panels against batch size: best LR (per seed, with the fitted slope and the linear
    and square-root rules for reference), good-LR window width, and from ``per_bs`` (name ->
    {batch size: per-seed values}) up to two more quantities, e.g. seconds and epochs to target."""
    b = np.asarray(batch_sizes, float)
    for seed, r in readings.items():
        best = [x["lr"] for x in r["best"]]
        pts, = axes[0].plot(b, best, "o", label=f"seed {seed}: slope {r['slope']['slope']:.2f}")
        axes[0].plot(b, 10 ** (r["slope"]["intercept"] + r["slope"]["slope"] * np.log10(b)), "-", lw=1,
                     color=pts.get_color())
        axes[1].plot(b, [w["width_decades"] for w in r["window"]], "o-", label=f"seed {seed}")
    anchor = np.mean([r["best"][0]["lr"] for r in readings.values()])
    for k, ls in ((1.0, ":"), (0.5, "--")):
        axes[0].plot(b, anchor * (b / b[0]) ** k, "k", ls=ls, lw=0.8, label=f"slope {k:g} rule")
    axes[0].set(xscale="log", yscale="log", xlabel="batch size", ylabel="best LR", title="LR-1: best LR")
    axes[1].set(xscale="log", xlabel="batch size", ylabel="window width (decades of LR)", title="LR-3: good-LR window")
    for ax, (name, vals) in zip(axes[2:], per_bs.items()):
        means = [np.nanmean(vals[bs]) if len(vals[bs]) else np.nan for bs in batch_sizes]
        ax.plot(b, means, "o-")
        for bs in batch_sizes:
            ax.plot([bs] * len(vals[bs]), vals[bs], ".", color="grey")
        ax.set(xscale="log", xlabel="batch size", title=name)
    for ax in axes:
        ax.set_xticks(b, [str(int(v)) for v in b])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)


MEANINGS = {
    "LR-1": {
        "supported": "The best LR moved up with the batch by more than the declared margin, "
                     "as Goyal et al. (2017) found for ResNet-50 on ImageNet; the slope printed in "
                     "section 2 says whether the move is nearer the linear or the square-root rule.",
        "not supported": "The best LR did not move up by more than the margin. Read the heatmap "
                         "first: a best LR on the grid's edge means the optimum lies outside the "
                         "grid; and at a few epochs the large batch takes 16x fewer steps, so it "
                         "may be too under-trained for its LR optimum to show (Goyal et al. "
                         "trained 90 epochs).",
        "inconclusive": "The seeds disagree about how far the best LR moved: the grid steps are "
                        "about half a decade, and short runs make each row's peak noisy.",
    },
    "LR-2": {
        "supported": "The large batch reached the target in fewer optimizer steps. Steps are wall "
                     "clock only on hardware that runs a whole batch in parallel (a GPU with "
                     "enough memory); on this CPU a step of 512 images costs several times one "
                     "of 32 (the printed seconds show it).",
        "not supported": "The large batch needed as many steps or more: it is past the 'critical "
                         "batch size' where more images per step stop buying progress (Shallue "
                         "et al. 2019), or its LR was too far from its optimum.",
        "inconclusive": "Runs that never reached the target are left out, and the seeds "
                        "disagree; a lower target or more epochs would give every run a time.",
    },
    "LR-3": {
        "supported": "The window of LRs within the tolerance of the best was narrower for the "
                     "large batch, as Masters & Luschi (2018) report.",
        "not supported": "The window was not narrower for the large batch. At a fixed epoch "
                         "budget the large batch is under-trained at every LR, so its row is "
                         "flat and its window wide; the claim is about runs trained to the end.",
        "inconclusive": "Window widths read from a few grid points per row are noisy; more LRs "
                        "per row or more seeds would settle it.",
    },
    "LR-4": {
        "supported": "The large batch scored lower on the test split and with a larger "
                     "train-test gap: the pattern Keskar et al. (2017) attribute to sharp minima.",
        "not supported": "Either the large batch did not score lower, or it did but with a "
                         "smaller gap: plain under-training (at equal epochs the large batch takes "
                         "8-16x fewer steps), which Hoffer et al. (2017) show closes with more "
                         "updates, not a sharp minimum.",
        "inconclusive": "At least one part could not be told from seed noise.",
    },
    "LR-5": {
        "supported": "The large batch processed more images per second but needed more epochs "
                     "(images) to reach the target: the trade-off of the claim.",
        "not supported": "One half failed: either no throughput gain on this hardware, or the "
                         "large batch needed no more epochs than the small one.",
        "inconclusive": "At least one half could not be told from seed noise.",
    },
}
