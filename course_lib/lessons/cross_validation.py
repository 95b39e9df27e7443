"""Cross-validation: folds from scikit-learn, one model per fold, hold-out splits, and how much
an accuracy estimate moves from sampling alone.

Folds are index arrays into a *pool*: the images you may train and validate on (``pool["train_x"]``,
``pool["train_y"]``). The test set is never part of the pool (CV-2): pass it separately as an
evaluation set and score it once, at the end. Splits come from ``sklearn.model_selection``;
this module only checks arguments (with messages that name the allowed range) and trains.
Figures: :func:`draw_spread`, :func:`draw_gaps` and :func:`draw_grid` draw on a given axes;
:func:`grid_png` renders the last for the widget panel.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import torch
from sklearn.model_selection import LeaveOneOut, StratifiedShuffleSplit, train_test_split

from ..core.data import stratified_subset
from ..core.train import fit
from ..core.validation import cross_validate, labels
from ..ui.plots import render_png


def pool_subset(data: dict, size: int, seed: int = 0) -> dict:
    """``data`` with its training split cut to a stratified random ``size`` images: the scarce
    labelled pool that cross-validation splits (scikit-learn's ``train_test_split`` picks them)."""
    y = labels(data["train_y"])
    n_classes = len(np.unique(y))
    if int(size) != size or not n_classes <= size <= len(y):
        raise ValueError(f"pool size must be a whole number between {n_classes} (one image per class) "
                         f"and {len(y)} (the training split), got {size}")
    idx = np.arange(len(y)) if size == len(y) else stratified_subset(y, np.arange(len(y)), int(size), seed)
    keep = torch.as_tensor(idx, device=data["train_y"].device)
    return {**data, "train_x": data["train_x"][keep], "train_y": data["train_y"][keep]}


def holdout_splits(y, n_splits: int, val_fraction: float = 0.2, seed: int = 0) -> list:
    """``n_splits`` independent random stratified ``(train_idx, val_idx)`` hold-out splits
    (scikit-learn's ``StratifiedShuffleSplit``): each is what one "single split" could have been."""
    y = labels(y)
    n_classes = len(np.unique(y))
    if not 0 < val_fraction < 1 or round(val_fraction * len(y)) < n_classes:
        raise ValueError(f"val_fraction must be in (0, 1) and leave at least one validation image per "
                         f"class ({n_classes} classes, {len(y)} images), got {val_fraction}")
    if int(n_splits) != n_splits or n_splits < 1:
        raise ValueError(f"n_splits must be a whole number >= 1, got {n_splits}")
    splitter = StratifiedShuffleSplit(n_splits=int(n_splits), test_size=val_fraction, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def leave_one_out(n: int) -> list:
    """``n`` folds, each holding out one image (scikit-learn's ``LeaveOneOut``): n trainings."""
    if int(n) != n or n < 2:
        raise ValueError(f"leave-one-out needs at least 2 images, got {n}")
    return list(LeaveOneOut().split(np.zeros(int(n))))


def three_way_split(y, fractions=(0.7, 0.2, 0.1), seed: int = 0) -> tuple:
    """Stratified ``(train_idx, val_idx, test_idx)`` in the given proportions (document B's
    70/20/10 by default), from two calls to scikit-learn's ``train_test_split``."""
    y = labels(y)
    f = [float(v) for v in fractions]
    if len(f) != 3 or min(f) <= 0 or not math.isclose(sum(f), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be three positive shares summing to 1, e.g. (0.7, 0.2, 0.1); got {fractions}")
    idx = np.arange(len(y))
    n_test, n_val = round(f[2] * len(y)), round(f[1] * len(y))  # counts, not shares: no rounding drift
    rest, test = train_test_split(idx, test_size=n_test, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=n_val, stratify=y[rest], random_state=seed)
    return train, val, test


def shared_images(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many images of ``a`` also occur, pixel for pixel, in ``b`` (both uint8 N,C,H,W).

    A test image that is also in the pool takes part in cross-validation whatever the indices
    say; this finds exact copies (sorting rows as raw bytes: no hashing, no collisions).
    """
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"images must have the same C,H,W to compare, got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
    if len(a) == 0 or len(b) == 0:
        return 0
    row = np.dtype((np.void, int(np.prod(a.shape[1:])) * a.element_size()))
    ra = np.ascontiguousarray(a.detach().cpu().numpy().reshape(len(a), -1)).view(row).ravel()
    rb = np.ascontiguousarray(b.detach().cpu().numpy().reshape(len(b), -1)).view(row).ravel()
    return int(np.isin(ra, rb).sum())


def repeat_means(val_acc, k: int) -> list[float]:
    """The k-fold estimate of each repeat: fold scores in groups of ``k``, averaged."""
    a = np.asarray(val_acc, dtype=float)
    if len(a) % k:
        raise ValueError(f"{len(a)} fold scores do not split into repeats of k={k}")
    return a.reshape(-1, k).mean(1).tolist()


FIT_KEYWORDS = tuple(p for p in inspect.signature(fit).parameters if p not in ("model", "data"))


def grid_search(make_model, pool: dict, folds, param: str, values, seed: int = 0,
                eval_sets: dict | None = None, report=None, should_stop=None, progress: bool = False,
                **fit_kw) -> dict:
    """Cross-validate every value of one ``fit`` keyword (e.g. ``weight_decay``) on the same folds
    and seeds (a paired comparison), and pick the value with the best mean fold accuracy.

    Returns ``{"param", "values", "fold_acc": [[per fold] per value], "mean", "std", "train_s",
    "probs": [per value {name: [per fold]}], "best", "stopped"}`` (plain lists, JSON-friendly
    without ``eval_sets``). ``report(result)`` is called after every fold.
    """
    if param not in FIT_KEYWORDS:
        raise ValueError(f"param must be a keyword of fit, one of {FIT_KEYWORDS}; got {param!r}")
    values = list(values)
    if not values:
        raise ValueError("values must list at least one setting to try")
    res = {"param": param, "values": values, "fold_acc": [], "mean": [], "std": [], "train_s": [],
           "probs": [], "best": None, "stopped": None}
    for v in values:
        res["fold_acc"].append([])

        def fold_done(partial):
            res["fold_acc"][-1] = list(partial["val_acc"])
            if report is not None:
                report(res)
        r = cross_validate(make_model, pool, folds, seed, eval_sets, fold_done, should_stop, progress,
                           **{**fit_kw, param: v})
        res["mean"].append(r["estimate"])
        res["std"].append(r["spread"])
        res["train_s"].append(sum(r["train_s"]))
        res["probs"].append(r["probs"])
        if r["stopped"]:
            res["stopped"] = r["stopped"]
            break
    if not res["stopped"]:
        res["best"] = values[int(np.argmax(res["mean"]))]
    return res


def resplit_gaps(correct, n_val: int, draws: int = 2000, seed: int = 0) -> np.ndarray:
    """Validation-minus-test accuracy gaps from sampling alone: the held-out images' correctness
    (one model, 0/1 per image) is dealt into ``n_val`` validation and the rest test images
    ``draws`` times at random. Any gap a real split shows can be read against this spread."""
    c = torch.as_tensor(np.asarray(correct, dtype=np.float32))
    n = len(c)
    if int(n_val) != n_val or not 0 < n_val < n:
        raise ValueError(f"n_val must be a whole number between 1 and {n - 1} (there are {n} held-out images), got {n_val}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.rand(draws, n, generator=g).argsort(1)
    dealt = c[perm]
    return (dealt[:, :n_val].mean(1) - dealt[:, n_val:].mean(1)).numpy()


def gap_std(acc: float, n_val: int, n_test: int) -> float:
    """Standard deviation of (validation - test) accuracy for a model of accuracy ``acc`` scored
    on two independent samples of ``n_val`` and ``n_test`` images (binomial sampling)."""
    return math.sqrt(acc * (1 - acc) * (1 / n_val + 1 / n_test))


def selection_optimism(val_acc, test_probs, test_y, n_reported: int, draws: int = 200,
                       seed: int = 0) -> dict:
    """How optimistic a reported test accuracy is, for a choice among configurations made on
    the test set against one made on validation (CV-2), for one set of trained models.

    ``val_acc`` holds one validation accuracy per configuration, ``test_probs`` one (N, C)
    array of test-set probabilities per configuration (the same models). The test set is dealt
    ``draws`` times at random into a reported split A of ``n_reported`` images and a fresh split
    B (the rest). Per draw, the configuration with the best accuracy on A (*chosen on test*) or
    on validation (*chosen on validation*) has its A accuracy reported; its optimism is that
    reported accuracy minus its accuracy on B, which took part in no choice. Returns the means
    over draws, ``{"test_choice", "val_choice"}`` (fractions; the second is 0 on average by
    construction, the first is the selection bias), and ``"picked_on_test"``: how often each
    configuration won on A."""
    correct = torch.stack([torch.as_tensor(p).argmax(1).cpu() == torch.as_tensor(test_y).cpu()
                           for p in test_probs]).float()
    n_configs, n = correct.shape
    if len(val_acc) != n_configs:
        raise ValueError(f"val_acc has {len(val_acc)} values but test_probs {n_configs} configurations")
    if int(n_reported) != n_reported or not 0 < n_reported < n:
        raise ValueError(f"n_reported must be a whole number between 1 and {n - 1} "
                         f"(there are {n} test images), got {n_reported}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.rand(draws, n, generator=g).argsort(1)
    dealt = correct[:, perm]                                   # (configs, draws, n)
    acc_a = dealt[:, :, :n_reported].mean(2)                   # (configs, draws)
    acc_b = dealt[:, :, n_reported:].mean(2)
    optimism = acc_a - acc_b
    on_test = acc_a.argmax(0)                                  # per draw
    on_val = int(np.argmax(val_acc))
    return {"test_choice": float(optimism[on_test, torch.arange(draws)].mean()),
            "val_choice": float(optimism[on_val].mean()),
            "picked_on_test": torch.bincount(on_test, minlength=n_configs).tolist()}


def draw_spread(ax, groups: dict, title: str = "", ylabel: str = "validation accuracy (%)") -> None:
    """One column per group (name -> list of estimates): every estimate as a dot, the mean with
    a +-1 std bar. Shows at a glance how far single estimates stray."""
    for i, (name, vals) in enumerate(groups.items()):
        v = 100 * np.asarray(vals, dtype=float)
        if len(v) == 0:
            continue
        jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
        ax.plot(i + jitter, v, "o", alpha=0.6, ms=5)
        ax.errorbar(i + 0.28, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, fmt="s", color="k", capsize=4)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")


def draw_grid(ax, result: dict) -> None:
    """The fold accuracies per value of a ``grid_search`` result (finished or partial)."""
    groups = {f"{result['param']}={v:g}": acc for v, acc in zip(result["values"], result["fold_acc"])}
    note = f" (best: {result['best']:g})" if result.get("best") is not None else ""
    draw_spread(ax, groups, title="fold accuracies" + note)


def grid_png(result: dict, title: str = "") -> bytes:
    """:func:`draw_grid` as PNG bytes, for the widget panel."""
    return render_png(draw_grid, result, title, size=(7, 3.6))


def draw_gaps(ax, gaps, marks: dict, band: float, title: str = "validation minus test accuracy") -> None:
    """Histogram of sampling-alone gaps (``resplit_gaps``) with the +-``band`` limits and a
    vertical line for each observed gap in ``marks`` (name -> gap)."""
    ax.hist(100 * np.asarray(gaps), bins=40, color="#bbbbbb", label="sampling alone (re-dealt splits)")
    for sign in (-1, 1):
        ax.axvline(100 * sign * band, color="k", ls=":", lw=1)
    for (name, gap), colour in zip(marks.items(), ("#1f77b4", "#d62728", "#2ca02c")):
        ax.axvline(100 * gap, color=colour, lw=2, label=f"{name}: {100 * gap:+.1f} points")
    ax.set(xlabel="validation - test accuracy (points)", ylabel="count", title=title)
    ax.legend(fontsize=8)


MEANINGS = {
    "CV-1": {
        "supported": "5-fold means varied less than single 80/20 splits of the same pool: with scarce "
                     "data, one split's number is partly luck, and k-fold buys a steadier number for k "
                     "trainings.",
        "not supported": "Single splits varied no more than 5-fold means here: the training noise of "
                         "each model (seeds) may dominate the noise from which images are validated, or "
                         "the pool is large enough that one split's validation part is already stable.",
        "inconclusive": "A spread estimated from a handful of repeats is itself uncertain (the F "
                        "interval is wide): more repeats and single splits would settle it.",
    },
    "CV-2": {
        "supported": "Choosing among configurations on the test split made the reported accuracy "
                     "optimistic by more than the margin, while choosing on validation did not: a test "
                     "number used for a choice is no longer an estimate of new-data accuracy, which is "
                     "why the test set stays out of cross-validation and every other choice.",
        "not supported": "The test-set choice was not measurably more optimistic here: the "
                         "configurations may differ by more than the test noise (the same one wins on "
                         "any split), make nearly the same errors (in this notebook they share each fold's "
                         "seed and data order, so their luck on split A is shared), or the reported split "
                         "is large. The rule still stands: the bias "
                         "grows with more configurations and smaller test sets (exercises 1 and 3).",
        "inconclusive": "The optimism could not be told from fold-to-fold noise at this budget: more "
                        "folds or configurations, or a smaller reported split, would settle it.",
    },
    "CV-3": {
        "supported": "The planted bug moved the validation-test gap far outside what sampling alone "
                     "produces, while the clean gap stayed inside: judge a gap against its sampling band, "
                     "not by eye.",
        "not supported": "The demonstration failed: either the clean gap fell outside its sampling band "
                         "(look for a real difference between the splits) or the bug did not move the gap.",
    },
}
