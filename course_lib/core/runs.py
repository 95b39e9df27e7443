"""One training run of a comparison: re-initialise a model in place from a seed, train it with
``fit`` and score it. Shared by every lesson that sweeps settings (a sweep reuses one model
instead of building a new one per run)."""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from .train import NonFiniteLossError, evaluate, fit, raise_if_interrupted

REINITS = {"kaiming": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
           "xavier": nn.init.xavier_normal_}

def reinitialize_(model: nn.Module, seed: int, init: str = "kaiming", last_std: float | None = 0.01) -> nn.Module:
    """Re-draw every parameter and buffer of ``model`` in place from ``seed``; returns the model.

    Batch-norm layers are reset (weights 1, biases 0, running statistics cleared), conv and
    linear weights drawn with ``init`` ("kaiming": kaiming_normal for ReLU, or "xavier":
    xavier_normal) and biases zeroed, and the last linear layer drawn with std ``last_std`` as
    ``small_cnn`` does (None leaves it as ``init`` drew it). The tensors stay the same objects
    (nothing is reallocated), which is why a sweep can reuse one model instead of building,
    moving and compiling a new one per run. Each weight is drawn in its logical (contiguous)
    order, so a channels_last model gets the same values as a fresh one.
    """
    if init not in REINITS:
        raise ValueError(f"init must be one of {sorted(REINITS)}, got {init!r}")
    torch.manual_seed(seed)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_parameters()
        for m in layers:
            w = torch.empty(m.weight.shape, device=m.weight.device, dtype=m.weight.dtype)
            if last_std is not None and m is layers[-1] and isinstance(m, nn.Linear):
                w.normal_(0.0, last_std)
            else:
                REINITS[init](w)
            m.weight.copy_(w)
            if m.bias is not None:
                m.bias.zero_()
    return model

def epoch_timer():
    """A ``fit`` callback and its list of per-epoch *training* seconds: from the end of the previous
    epoch to the last optimiser step of this one, so the validation pass that ``fit`` runs at the
    end of every epoch is not counted. Returns ``(callback, seconds)``."""
    seconds, marks = [], {"start": time.perf_counter(), "last_step": None}

    def callback(event, history, model):
        now = time.perf_counter()
        if event == "step":
            marks["last_step"] = now
        elif event == "epoch":
            seconds.append((marks["last_step"] or now) - marks["start"])
            marks["start"] = now
    return callback, seconds

def train_and_score(model: nn.Module, data: dict, seed: int = 0, reinit: bool = True, callbacks=(),
            train_eval: int = 0, **fit_kw) -> dict:
    """Re-initialise ``model`` from ``seed`` (unless ``reinit`` is False), train it with ``fit``
    and return a summary: final ``val_acc``, ``train_acc``, ``train_loss``, ``val_loss``,
    ``train_seconds`` (per epoch, validation excluded), ``images_per_s`` (training throughput),
    ``diverged`` and the ``history``.

    ``train_eval`` > 0 also scores the trained model on that many training images in eval mode,
    without augmentation (``train_eval_acc``): the honest training accuracy for a
    generalisation gap (``fit``'s ``train_acc`` is a running average over augmented batches).

    A run whose loss becomes NaN/Inf is not an error here: a sweep is *meant* to reach LRs that
    diverge. It is returned with ``diverged=True`` and the validation accuracy the broken model
    actually scores (about chance).
    """
    if reinit:
        reinitialize_(model, seed)
    timer, train_seconds = epoch_timer()
    try:
        hist, diverged = fit(model, data, seed=seed, callbacks=[timer, *callbacks], **fit_kw), False
        raise_if_interrupted(hist, "a sweep run")
    except NonFiniteLossError as err:
        hist, diverged = err.history, True
    e = hist["epoch"]
    if diverged or not e["val_acc"]:
        val = evaluate(model, data["val_x"], data["val_y"], data["mean"], data["std"])
    else:
        val = {"acc": e["val_acc"][-1], "loss": e["val_loss"][-1]}
    images = len(hist["step"]["loss"]) * min(fit_kw.get("batch_size", 256), len(data["train_y"]))
    total = sum(train_seconds)
    extra = {}
    if train_eval > 0:
        extra["train_eval_acc"] = evaluate(model, data["train_x"][:train_eval], data["train_y"][:train_eval],
                                           data["mean"], data["std"])["acc"]
    return {**extra, "val_acc": float(val["acc"]), "val_loss": float(val["loss"]),
            "train_acc": e["train_acc"][-1] if e["train_acc"] and not diverged else math.nan,
            "train_loss": e["train_loss"][-1] if e["train_loss"] and not diverged else math.nan,
            "train_seconds": train_seconds, "images_per_s": images / total if total > 0 else math.nan,
            "diverged": diverged, "history": hist}


def choose_on_validation(run, grid, seed: int, *, train_single: bool = True) -> dict:
    """Choose a setting as every "each arm at its own best LR" comparison in the course does: one
    run per value in ``grid`` at ``seed`` (a seed that no compared run uses), scored on
    **validation** only, keeping the best (the first of equal scores; a diverged run scores what
    it scores, about chance). ``run(value, seed)`` trains and returns a summary with
    ``"val_acc"`` and must not read the test split. ``train_single=False`` returns a one-value
    grid untrained (its score NaN): there is nothing to choose.

    Returns ``{"lr": best, "val_acc": {value: score}, "runs": {value: summary}}``."""
    grid = list(grid)
    if not grid:
        raise ValueError("the LR grid is empty: give at least one learning rate")
    if len(grid) == 1 and not train_single:
        return {"lr": grid[0], "val_acc": {grid[0]: math.nan}, "runs": {}}
    runs = {value: run(value, seed) for value in grid}
    scores = {value: float(r["val_acc"]) for value, r in runs.items()}
    return {"lr": max(grid, key=scores.get), "val_acc": scores, "runs": runs}
