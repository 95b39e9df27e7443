"""Held-out evaluation that several lessons share: stratified splits (scikit-learn's
splitters), training one model and scoring it on held-out sets (``fit_predict``), k-fold
cross-validation, and accuracy and probability averaging of predictions."""
from __future__ import annotations

import math
import statistics
import time

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from tqdm.auto import tqdm

from .claims import spread
from .data import channel_stats
from .train import fit, predict_logits, raise_if_interrupted


def labels(y) -> np.ndarray:
    """Class labels as a 1-D NumPy int array (from a tensor on any device, a list or an array)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (one class per image), got shape {y.shape}")
    return y.astype(np.int64)


def stratified_folds(y, k: int, seed: int = 0, repeats: int = 1, exclude=None) -> list:
    """``k``-fold ``(train_idx, val_idx)`` pairs that keep the class proportions of ``y``.

    From scikit-learn's ``StratifiedKFold`` (shuffled, ``random_state=seed + r`` for repeat
    ``r``), so ``repeats`` > 1 gives ``repeats * k`` folds, each repeat a new partition.
    Indices listed in ``exclude`` (e.g. a test split sharing the index space) are in no fold.
    """
    y = labels(y)
    keep = np.setdiff1d(np.arange(len(y)), labels(exclude) if exclude is not None else [])
    _, counts = np.unique(y[keep], return_counts=True)
    smallest = int(counts.min()) if len(counts) else 0
    if int(k) != k or not 2 <= k <= smallest:
        raise ValueError(f"k must be a whole number between 2 and {smallest} (every fold needs an image "
                         f"of each class; the smallest class has {smallest}), got {k}. "
                         "For one image per fold use leave_one_out(n).")
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats}")
    folds = []
    for r in range(int(repeats)):
        splitter = StratifiedKFold(n_splits=int(k), shuffle=True, random_state=seed + r)
        folds += [(keep[tr], keep[va]) for tr, va in splitter.split(np.zeros(len(keep)), y[keep])]
    return folds


def check_folds(folds, y) -> dict:
    """Facts about one partition (one repeat's folds) of ``y``: validation parts disjoint, every
    image validated once, train and validation disjoint in each fold, and the largest deviation
    of a class's share in a validation part from its share overall."""
    y = labels(y)
    vals = np.concatenate([va for _, va in folds])
    overall = np.bincount(y, minlength=y.max() + 1) / len(y)
    dev = max(float(np.abs(np.bincount(y[va], minlength=len(overall)) / len(va) - overall).max())
              for _, va in folds)
    return {"n_folds": len(folds), "val_disjoint": len(vals) == len(np.unique(vals)),
            "covers": set(vals.tolist()) == set(range(len(y))),
            "train_val_disjoint": all(len(np.intersect1d(tr, va)) == 0 for tr, va in folds),
            "max_share_deviation": dev}


def take(t: torch.Tensor, idx) -> torch.Tensor:
    """``t[idx]`` for NumPy (or list) indices, with the index moved to ``t``'s device."""
    return t[torch.as_tensor(np.asarray(idx, dtype=np.int64), device=t.device)]


def split_data(pool: dict, train_idx, val_idx) -> dict:
    """A data dict for ``fit``: the pool's images at ``train_idx`` to train, at ``val_idx`` to
    validate, normalised with the statistics of the training part only (DBG-3)."""
    x, y = pool["train_x"], pool["train_y"]
    out = {**pool, "train_x": take(x, train_idx), "train_y": take(y, train_idx),
           "val_x": take(x, val_idx), "val_y": take(y, val_idx)}
    out["mean"], out["std"] = channel_stats(out["train_x"])
    return out


def fit_predict(make_model, data: dict, seed: int = 0, eval_sets: dict | None = None, **fit_kw) -> dict:
    """Build ``make_model()`` (after seeding torch with ``seed``), train it on ``data`` and
    return its validation accuracy, softmax probabilities on each of ``eval_sets`` (name ->
    uint8 images; float32 on the CPU), training and inference seconds, the number of training
    images processed (epochs x images), the history and the model.

    Per-epoch validation is skipped (``evaluate_val=False``): the score is taken once, at the end.
    """
    torch.manual_seed(seed)
    model = make_model()
    fit_kw = {"progress": False, "evaluate_val": False, **fit_kw}
    t0 = time.perf_counter()
    history = raise_if_interrupted(fit(model, data, seed=seed, **fit_kw), "a training")
    t1 = time.perf_counter()
    mean, std = data["mean"], data["std"]
    val_acc = math.nan
    if len(data["val_y"]):
        pred = predict_logits(model, data["val_x"], mean, std).argmax(1)
        val_acc = float((pred == data["val_y"].to(pred.device)).float().mean())
    t2 = time.perf_counter()
    probs = {name: predict_logits(model, x, mean, std).softmax(1).cpu() for name, x in (eval_sets or {}).items()}
    return {"val_acc": val_acc, "probs": probs, "train_s": t1 - t0, "infer_s": time.perf_counter() - t2,
            "train_images": len(history["epoch"]["epoch"]) * len(data["train_y"]),
            "history": history, "model": model}


def cross_validate(make_model, pool: dict, folds, seed: int = 0, eval_sets: dict | None = None,
                   report=None, should_stop=None, progress: bool = False, **fit_kw) -> dict:
    """Train one model per fold (fold ``i`` seeded ``seed + i``) and collect the fold scores.

    Returns ``{"val_acc": [...], "train_s": [...], "infer_s": [...], "train_images": [...],
    "probs": {name: [per fold]},
    "estimate": mean, "spread": std, "stopped": None | why}``. ``report(result)`` is called after
    each fold; ``should_stop()`` ends the loop (a fold stopped part-way is not counted).
    """
    eval_sets = eval_sets or {}
    out = {"val_acc": [], "train_s": [], "infer_s": [], "train_images": [],
           "probs": {name: [] for name in eval_sets}, "stopped": None}
    for i, (tr, va) in enumerate(tqdm(folds, disable=not progress, desc="folds", leave=False)):
        if should_stop is not None and should_stop():
            out["stopped"] = "requested"
            break
        r = fit_predict(make_model, split_data(pool, tr, va), seed + i, eval_sets,
                        should_stop=should_stop, **fit_kw)
        if r["history"]["stopped"]:
            out["stopped"] = r["history"]["stopped"]
            break
        for key in ("val_acc", "train_s", "infer_s", "train_images"):
            out[key].append(r[key])
        for name, p in r["probs"].items():
            out["probs"][name].append(p)
        if report is not None:
            report(out)
    out["estimate"] = statistics.fmean(out["val_acc"]) if out["val_acc"] else math.nan
    out["spread"] = spread(out["val_acc"])
    return out


def check_probs(probs) -> torch.Tensor:
    """``probs`` as a float tensor of shape (members, samples, classes); a clear error otherwise."""
    p = torch.as_tensor(probs, dtype=torch.float32)
    if p.ndim != 3 or min(p.shape) == 0:
        raise ValueError("probs must have shape (members, samples, classes) with none of them empty, "
                         f"got {tuple(p.shape)}; stack the members' probabilities with torch.stack")
    return p


def average_probs(probs) -> torch.Tensor:
    """Mean of the members' probabilities, (samples, classes)."""
    return check_probs(probs).mean(0)


def accuracy(pred, y) -> float:
    """Share of ``pred`` equal to ``y``."""
    pred, y = torch.as_tensor(pred).cpu(), torch.as_tensor(y).cpu()
    if pred.shape != y.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and labels {tuple(y.shape)} differ in shape")
    return float((pred == y).float().mean())
