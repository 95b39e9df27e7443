"""Ensembles: combining members' predictions, how diverse the members are, and calibration.

Members are given as softmax probabilities stacked into a ``(members, samples, classes)`` tensor
(``torch.stack`` of each member's ``probs``). Three rules combine them:

- ``vote``: plain majority vote of the members' top classes. **Tie rule**: among the tied
  classes, the one voted by the earliest member in the list wins (list members best-first to
  let the best one decide);
- ``average``: the class with the highest mean probability;
- ``confidence``: a vote where each member's vote weighs its top probability (document B's
  "weighted by prediction confidence"); an exact tie of weights goes to the lowest class index.

Expected calibration error and reliability-diagram data are written here because
scikit-learn's ``calibration_curve`` is for binary problems only and torchmetrics is not a
course dependency.

Figures: the ``draw_*`` functions draw on a given axes; :func:`summary_png` renders an
``evaluate_ensemble`` result for the widget panel.
"""
from __future__ import annotations

import itertools
import math
import random
import statistics
import time

import numpy as np
import torch

from ..core import recipes
from ..core.models import baseline_net, small_cnn
from ..core.train import predict_logits
from ..core.validation import accuracy, check_probs
from ..ui.plots import render_png

RULES = ("vote", "average", "confidence")


def majority_vote(preds, num_classes: int | None = None) -> torch.Tensor:
    """Plain majority vote of ``preds`` (members, samples) class indices -> (samples,).

    Ties go to the tied class voted by the earliest member in the list.
    """
    p = torch.as_tensor(preds, dtype=torch.long)
    if p.ndim != 2 or min(p.shape) == 0:
        raise ValueError(f"preds must have shape (members, samples), got {tuple(p.shape)}")
    c = int(num_classes) if num_classes is not None else int(p.max()) + 1
    if int(p.min()) < 0 or int(p.max()) >= c:
        raise ValueError(f"class indices must be in 0..{c - 1}, got {int(p.min())}..{int(p.max())}")
    m, n = p.shape
    counts = torch.zeros(n, c, dtype=torch.long).scatter_add_(1, p.T, torch.ones(n, m, dtype=torch.long))
    first = torch.full((n, c), m, dtype=torch.long)  # earliest member voting each class (m = nobody)
    for i in reversed(range(m)):
        first.scatter_(1, p[i][:, None], i)
    return (counts * (m + 1) + (m - first)).argmax(1)


def confidence_vote(probs) -> torch.Tensor:
    """Each member votes for its top class with weight = its top probability -> (samples,)."""
    p = check_probs(probs)
    conf, top = p.max(2)
    weights = torch.zeros(p.shape[1], p.shape[2]).scatter_add_(1, top.T, conf.T)
    return weights.argmax(1)


def combine(probs, rule: str = "average") -> torch.Tensor:
    """The ensemble's predicted class per sample under ``rule`` (one of ``RULES``)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    p = check_probs(probs)
    if rule == "vote":
        return majority_vote(p.argmax(2), p.shape[2])
    if rule == "average":
        return p.mean(0).argmax(1)
    return confidence_vote(p)


def correctness(preds, y) -> torch.Tensor:
    """(members, samples) booleans: did each member get each sample right?"""
    p = torch.as_tensor(preds).cpu()
    return p == torch.as_tensor(y).cpu()[None, :]


def correctness_correlation(correct) -> np.ndarray:
    """Pearson correlation of every pair of members' correctness vectors, (members, members).

    1 means the two members are right and wrong on exactly the same samples. A member that is
    right (or wrong) everywhere has no variance: its correlations are NaN.
    """
    c = torch.as_tensor(correct).double()
    c = c - c.mean(1, keepdim=True)
    norm = c.norm(dim=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ((c @ c.T) / (norm[:, None] * norm[None, :])).numpy()
    r[~np.isfinite(r)] = np.nan
    return r


def mean_pairwise(matrix) -> float:
    """Mean of the off-diagonal entries (NaN entries skipped; NaN if none is left)."""
    m = np.asarray(matrix, dtype=float)
    off = m[~np.eye(len(m), dtype=bool)]
    off = off[np.isfinite(off)]
    return float(off.mean()) if len(off) else math.nan


def shared_mistake_rate(correct) -> float:
    """Of one member's mistakes, the share another member also gets wrong (mean over ordered
    pairs). 0: the members never err together; 1: each copies the other's mistakes."""
    wrong = ~torch.as_tensor(correct, dtype=torch.bool)
    w = wrong.double()
    both = w @ w.T
    own = w.sum(1, keepdim=True)
    rates = [float(both[i, j] / own[i, 0]) for i in range(len(w)) for j in range(len(w))
             if i != j and own[i, 0] > 0]
    return statistics.fmean(rates) if rates else math.nan


def member_subsets(n_members: int, size: int, max_subsets: int = 10, seed: int = 0) -> list[tuple]:
    """Up to ``max_subsets`` different member subsets of ``size``: all of them when there are
    few, else a seeded random sample of them."""
    if not 1 <= size <= n_members:
        raise ValueError(f"size must be between 1 and {n_members} (the number of members), got {size}")
    if math.comb(n_members, size) <= max_subsets:
        return list(itertools.combinations(range(n_members), size))
    rng, seen = random.Random(seed), set()
    while len(seen) < max_subsets:
        seen.add(tuple(sorted(rng.sample(range(n_members), size))))
    return sorted(seen)


def size_curve(probs, y, rule: str = "average", sizes=None, max_subsets: int = 10, seed: int = 0) -> dict:
    """Ensemble accuracy against the number of members: for each size, the mean accuracy over
    member subsets of that size (see ``member_subsets``). Returns ``{"sizes", "mean", "all"}``."""
    p = check_probs(probs)
    sizes = list(sizes or range(1, len(p) + 1))
    out = {"sizes": sizes, "mean": [], "all": []}
    for s in sizes:
        accs = [accuracy(combine(p[list(sub)], rule), y) for sub in member_subsets(len(p), s, max_subsets, seed)]
        out["all"].append(accs)
        out["mean"].append(statistics.fmean(accs))
    return out


def pair_table(probs, y) -> list[dict]:
    """For every pair of members: their correctness correlation, accuracies, the accuracy of the
    pair's averaged probabilities and its gain over the better member (document C's measure)."""
    p = check_probs(probs)
    preds = p.argmax(2)
    corr = correctness_correlation(correctness(preds, y))
    acc = [accuracy(preds[i], y) for i in range(len(p))]
    rows = []
    for i, j in itertools.combinations(range(len(p)), 2):
        pair = accuracy(p[[i, j]].mean(0).argmax(1), y)
        rows.append({"i": i, "j": j, "corr": float(corr[i, j]), "acc_i": acc[i], "acc_j": acc[j],
                     "acc_pair": pair, "gain_best": pair - max(acc[i], acc[j]),
                     "gain_mean": pair - (acc[i] + acc[j]) / 2})
    return rows


def reliability(probs, y, n_bins: int = 15) -> dict:
    """Reliability-diagram data for (samples, classes) probabilities: equal-width bins of the
    top probability (confidence); per bin the mean confidence, the accuracy and the count."""
    p = torch.as_tensor(probs, dtype=torch.float32).cpu()
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (samples, classes), got {tuple(p.shape)}")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins}")
    conf, pred = p.max(1)
    right = (pred == torch.as_tensor(y).cpu()).double()
    edges = torch.linspace(0, 1, int(n_bins) + 1)
    b = torch.bucketize(conf, edges[1:-1])  # bin i holds (edges[i], edges[i+1]]; bin 0 includes 0
    count = torch.bincount(b, minlength=n_bins).double()
    csum = torch.bincount(b, weights=conf.double(), minlength=n_bins)
    asum = torch.bincount(b, weights=right, minlength=n_bins)
    safe = count.clamp(min=1)
    return {"edges": edges.tolist(), "count": count.long().tolist(),
            "confidence": (csum / safe).tolist(), "accuracy": (asum / safe).tolist()}


def expected_calibration_error(probs, y, n_bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over confidence bins weighted by
    their share of samples. 0 = perfectly calibrated."""
    r = reliability(probs, y, n_bins)
    n = sum(r["count"])
    return sum(c / n * abs(a - f) for c, a, f in zip(r["count"], r["accuracy"], r["confidence"]))


def evaluate_ensemble(probs, y, rule: str = "average", names=None) -> dict:
    """An ensemble's accuracy under ``rule``, its members' accuracies, its gain over the best
    and the mean member, the members' mean correctness correlation, and the calibration (ECE
    and reliability data) of the best member and of the averaged probabilities. JSON-friendly."""
    p = check_probs(probs)
    preds = p.argmax(2)
    member_acc = [accuracy(preds[i], y) for i in range(len(p))]
    acc = accuracy(combine(p, rule), y)
    best = int(np.argmax(member_acc))
    avg = p.mean(0)
    return {"rule": rule, "names": list(names) if names is not None else [f"m{i}" for i in range(len(p))],
            "acc": acc, "member_acc": member_acc, "gain_best": acc - max(member_acc),
            "gain_mean": acc - statistics.fmean(member_acc),
            "mean_corr": mean_pairwise(correctness_correlation(correctness(preds, y))) if len(p) > 1 else math.nan,
            "ece_best_member": expected_calibration_error(p[best], y), "ece_average": expected_calibration_error(avg, y),
            "reliability": {"best member": reliability(p[best], y), "averaged": reliability(avg, y)}}


def draw_reliability(ax, curves: dict, title: str = "reliability diagram") -> None:
    """Accuracy against confidence per bin for each ``name -> reliability(...)`` entry, with the
    diagonal of perfect calibration. Bins with no samples are left out."""
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfectly calibrated")
    for name, r in curves.items():
        keep = [i for i, c in enumerate(r["count"]) if c > 0]
        ax.plot([r["confidence"][i] for i in keep], [r["accuracy"][i] for i in keep], "o-", ms=4, label=name)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_size_curves(ax, curves: dict, title: str = "accuracy against ensemble size") -> None:
    """Ensemble accuracy (%) against size for each ``rule -> size_curve(...)``."""
    for name, c in curves.items():
        ax.plot(c["sizes"], [100 * a for a in c["mean"]], "o-", label=name)
    ax.set(xlabel="members", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_members(ax, result: dict) -> None:
    """Bars of the members' and the ensemble's test accuracy from an ``evaluate_ensemble`` result."""
    names = result["names"] + [f"ensemble\n({result['rule']})"]
    accs = [100 * a for a in result["member_acc"] + [result["acc"]]]
    ax.bar(range(len(accs)), accs, color=["#8c8c8c"] * len(result["member_acc"]) + ["#1f77b4"])
    ax.set_xticks(range(len(accs)), names, fontsize=7, rotation=45, ha="right")
    ax.set(ylabel="test accuracy (%)", ylim=(max(0, min(accs) - 5), max(accs) + 2),
           title=f"gain over best member {100 * result['gain_best']:+.2f} points")


def summary_png(result: dict, title: str = "") -> bytes:
    """An ``evaluate_ensemble`` result as PNG for the widget panel: :func:`draw_members` beside
    its reliability diagram."""
    def reliability(ax, r):
        draw_reliability(ax, r["reliability"],
                         title=f"ECE best member {r['ece_best_member']:.3f}, averaged {r['ece_average']:.3f}")
    return render_png([draw_members, reliability], result, title, ncols=2, size=(10, 3.8))


def member_nets(data: dict, width: int = 16, baseline: bool = False) -> dict:
    """Zero-argument factories of the notebook's member nets, on the data's device, by name: the
    first is the main net (the seed members', the snapshot run's and the folds'), the other three
    are the other architectures EN-2 draws diversity from.

    By default small CNNs (widths w-2w-4w, half and one and a half times that) and
    ``baseline_net(w // 2)``. With ``baseline=True`` (``standard`` and ``full``) the course's
    baseline net (``recipes.BASELINE``: its stem whitened from the first training images) at
    widths w, w / 2 and 3w / 2, with ``small_cnn`` at w as a second family, so the members are
    networks trained to the level the claims are about. Every net pools globally, so any height
    from 8 px up works (the recipe's progressive resizing). The whitening reads ``data``'s
    training images when a factory is called; cross-validation folds share it (unlabelled patch
    statistics only).
    """
    device = data["train_x"].device

    def cnn(w):
        return lambda: small_cnn(widths=(w, 2 * w, 4 * w), hidden=64).to(device)

    def base(w):
        if baseline:
            return lambda: recipes.recipe_model(data, recipes.BASELINE, w)
        return lambda: baseline_net(w).to(device)

    half, wide = width // 2, 3 * width // 2
    if baseline:
        return {f"baseline_net({width})": base(width), f"baseline_net({half})": base(half),
                f"baseline_net({wide})": base(wide), f"cnn {width}-{4 * width}": cnn(width)}
    return {f"cnn {width}-{4 * width}": cnn(width), f"cnn {half}-{2 * width}": cnn(half),
            f"cnn {wide}-{6 * width}": cnn(wide), f"baseline_net({half})": base(half)}


def member_fit_kw(device: torch.device, baseline: bool = False, **fit_kw) -> dict:
    """``fit``'s keyword arguments for :func:`member_nets`' nets: ``fit_kw`` as given for the
    small CNNs; with ``baseline=True`` the baseline recipe's too (``recipes.fit_kw``: its label
    smoothing, bf16 autocast where it is fast, progressive resizing over ``epochs``), with
    ``fit_kw`` winning."""
    return recipes.fit_kw(recipes.BASELINE, device, **fit_kw) if baseline else dict(fit_kw)


def snapshot_members(make_model, snapshots, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> tuple:
    """Softmax probabilities on ``x`` of every saved snapshot (``schedules.snapshot_callback``'s
    ``{"step", "state_dict"}`` entries), each loaded into a fresh ``make_model()``.

    Returns ``(list of (samples, classes) CPU tensors, inference seconds in total)``.
    """
    probs, seconds = [], 0.0
    for snap in snapshots:
        model = make_model()
        model.load_state_dict(snap["state_dict"])
        t0 = time.perf_counter()
        probs.append(predict_logits(model, x, mean, std).softmax(1).cpu())
        seconds += time.perf_counter() - t0
    return probs, seconds


def draw_gain_vs_corr(ax, pairs: list, points: dict | None = None,
                      title: str = "gain of a pair over its better member") -> None:
    """Each pair of members (``pair_table`` rows) as a grey dot: correctness correlation against
    the gain of their averaged probabilities over the better member; ``points`` (name -> (mean
    correlation, gain)) adds whole ensembles as labelled markers."""
    ax.scatter([r["corr"] for r in pairs], [100 * r["gain_best"] for r in pairs], s=12, c="#999999",
               label="pairs of members")
    for name, (corr, gain) in (points or {}).items():
        ax.scatter([corr], [100 * gain], s=60, marker="D", label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="Pearson correlation of correctness", ylabel="gain over best member (points)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def disjoint_pairs(n_members: int) -> list[tuple[int, int]]:
    """Members 0-1, 2-3, ...: pairs that share no member, so their results are independent
    units for a paired comparison (an odd last member is left out)."""
    if n_members < 2:
        raise ValueError(f"need at least 2 members to pair, got {n_members}")
    return [(i, i + 1) for i in range(0, n_members - 1, 2)]


def pair_results(probs, y, pairs) -> dict:
    """For each pair ``(i, j)`` of members: the test accuracy of their averaged probabilities,
    the better member's accuracy and the share of one member's mistakes the other also makes.
    Returns ``{"ensemble": [...], "better": [...], "shared": [...]}``, one entry per pair."""
    p = check_probs(probs)
    out = {"ensemble": [], "better": [], "shared": []}
    for i, j in pairs:
        two = p[[i, j]]
        preds = two.argmax(2)
        out["ensemble"].append(accuracy(two.mean(0).argmax(1), y))
        out["better"].append(max(accuracy(preds[0], y), accuracy(preds[1], y)))
        out["shared"].append(shared_mistake_rate(correctness(preds, y)))
    return out


def draw_paired(ax, arms: dict, units, ylabel: str, title: str = "") -> None:
    """A paired dot plot: one column per arm (``label -> one value per unit``, fractions shown
    in percent), each unit's values joined by a grey line, so every unit's difference is seen."""
    labels = list(arms)
    for k, unit in enumerate(units):
        ax.plot(range(len(labels)), [100 * arms[a][k] for a in labels], "o-", color="#999999", ms=4)
        ax.annotate(str(unit), (len(labels) - 1, 100 * arms[labels[-1]][k]), fontsize=7,
                    xytext=(4, 0), textcoords="offset points", va="center")
    for i, a in enumerate(labels):
        ax.plot([i - 0.15, i + 0.15], [100 * statistics.fmean(arms[a])] * 2, "k-", lw=2)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlim(-0.5, len(labels) - 0.2)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")


# What each possible outcome would mean, written before the run (takeaways.show_takeaways).
MEANINGS = {
    "EN-1": {
        "supported": "Averaging two seeds beat the better of the two, and the two shared under half of "
                     "their mistakes: different random starts did give different errors that averaging cancels.",
        "not supported": "Either the pair did not beat its better member by more than the margin, or the "
                         "members shared more than half of their mistakes. Small, briefly trained nets err "
                         "mostly on the same hard images; ensembles can still help while 'rarely the same "
                         "mistake' is false, so read the two parts apart.",
        "inconclusive": "With this many pairs the seed noise hides the effect; more seed members (more "
                        "pairs) would settle it.",
    },
    "EN-2": {
        "supported": "Less correlated pairs gained more over their better member than more correlated ones.",
        "not supported": "Less correlated pairs did not gain more: here low correlation often means one weak "
                         "member (an early snapshot, a narrow net), and averaging with a weak member costs "
                         "accuracy. Diversity helps only between members of similar accuracy.",
        "inconclusive": "The gains of the two halves could not be told apart at this budget (and the pairs "
                        "share members, so they are not independent: the interval is optimistic).",
    },
    "EN-3": {
        "supported": "Weighting votes by confidence beat plain votes on the same members.",
        "not supported": "Confidence weighting did not beat plain votes by more than the margin: with "
                         "members of similar accuracy most votes agree, and the weights only break the "
                         "rare ties.",
        "inconclusive": "The difference between the two rules could not be told from the variation across "
                        "ensembles; more ensembles would settle it.",
    },
}
