"""Sanity checks to run before trusting any training run (document B, part 5).

- :func:`initial_loss`: an untrained 10-class model should start near ln(10) = 2.303 (DBG-1).
- :func:`overfit_batch`: a healthy model and loop can memorise one small batch (DBG-2).
- :func:`scaling`: the input scalings DBG-3 compares (training statistics, plain [0, 1], raw
  0-255), and :func:`acc_with_own_stats`: accuracy when each chunk of an evaluation split is
  scaled with its *own* statistics instead of the training split's.
- :func:`most_confident_mistakes`: where the model is most sure and wrong.
- :data:`MEANINGS`: what each possible outcome of this notebook's verdicts would mean.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.data import channel_stats, normalize
from ..core.train import evaluate, make_optimizer, predict_logits

SCALINGS = ("train_stats", "unit", "raw")


def initial_loss(model: nn.Module, data: dict, n: int = 1000) -> float:
    """Mean cross-entropy of ``model`` (as it is) on the first ``n`` training images."""
    logits = predict_logits(model, data["train_x"][:n], data["mean"], data["std"])
    return float(F.cross_entropy(logits, data["train_y"][:n].to(logits.device)))


def expected_initial_loss(num_classes: int = 10) -> float:
    """-ln(1/C): the loss of a model that spreads its probability evenly."""
    return math.log(num_classes)


def overfit_batch(model: nn.Module, data: dict, n_images: int = 64, steps: int = 100,
                  lr: float = 1e-3, optimizer: str = "adam") -> dict:
    """Train on one fixed batch of ``n_images`` (no augmentation) for ``steps`` steps.

    Returns ``{"loss": [...], "acc": [...]}`` per step: training accuracy on that batch should
    approach 100% if model, loss and loop are wired correctly.
    """
    x = normalize(data["train_x"][:n_images], data["mean"], data["std"])
    y = data["train_y"][:n_images]
    opt = make_optimizer(model, optimizer, lr=lr, weight_decay=0.0)
    model.train()
    out = {"loss": [], "acc": []}
    # Deliberately not train.fit: one fixed batch, no shuffling or augmentation, so the loop is bare.
    for _ in range(steps):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out["loss"].append(loss.item())
        out["acc"].append(float((logits.argmax(1) == y).float().mean()))
    return out


def most_confident_mistakes(logits: torch.Tensor, y: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Indices of the ``k`` wrong predictions with the highest predicted probability."""
    prob, pred = logits.softmax(1).max(1)
    wrong = (pred != y.to(pred.device)).nonzero().flatten()
    order = prob[wrong].argsort(descending=True)
    return wrong[order[:k]]


def scaling(data: dict, how: str) -> dict:
    """``data`` with the (mean, std) that ``normalize`` applies replaced, for every split alike.

    ``train_stats``: the training split's per-channel statistics (zero mean, unit variance);
    ``unit``: plain [0, 1] pixels (mean 0, std 1); ``raw``: 0-255 pixels (mean 0, std 1/255).
    """
    if how not in SCALINGS:
        raise ValueError(f"how must be one of {SCALINGS}, got {how!r}")
    mean, std = data["mean"], data["std"]
    if how == "unit":
        mean, std = mean * 0, std * 0 + 1
    elif how == "raw":
        mean, std = mean * 0, std * 0 + 1 / 255
    return {**data, "mean": mean, "std": std}


def acc_with_own_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int | None = None) -> float:
    """Accuracy when every ``chunk`` images of ``x`` (the whole split if None) are scaled with
    their own per-channel mean and std, as a pipeline that normalises each split, or each test
    batch, by itself would do. Compare with the training statistics to see what that costs."""
    n = len(x)
    chunk = chunk or n
    if chunk < 2:
        raise ValueError(f"chunk must hold at least 2 images to have a std, got {chunk}")
    correct = 0.0
    for i in range(0, n, chunk):
        xs, ys = x[i:i + chunk], y[i:i + chunk]
        mean, std = channel_stats(xs)
        mean, std = mean.to(xs.device), std.to(xs.device).clamp_min(1e-6)
        correct += evaluate(model, xs, ys, mean, std)["acc"] * len(xs)
    return correct / n


MEANINGS = {
    "DBG-1": {
        "supported": "The course's classifier starts near ln 10, as a model that knows nothing should; "
                     "the classifier initialised with kaiming's ReLU gain starts over-confident, "
                     "which is what the check is there to catch.",
        "not supported": "A model started away from ln 10: look for a large-gain classifier init or "
                         "a missing input normalisation before trusting its training.",
    },
    "DBG-2": {
        "supported": "Model, loss and loop can memorise one batch: the wiring is sound.",
        "not supported": "The model could not memorise 64 images: a bug (labels, loss, a frozen "
                         "layer) or too few steps; fix it before tuning anything.",
    },
    "DBG-3": {
        "supported": "Standardising with training statistics trained better than plain [0, 1] "
                     "pixels, and scaling evaluation batches with their own statistics cost accuracy.",
        "not supported": "At least one part went the other way or was too small to matter: with a "
                         "random split the splits share statistics, and [0, 1] pixels are already "
                         "small; the rule protects against larger shifts than this short run shows.",
        "inconclusive": "The differences were within seed noise at this budget.",
    },
    "INIT-1": {
        "supported": "The all-zero network stayed at chance: its hidden units get zero gradients, "
                     "as the algebra says.",
        "not supported": "The all-zero network learned: check that every layer was really zeroed.",
    },
}


def kaiming_head_cnn(**kw) -> nn.Module:
    """The small CNN with kaiming's ReLU gain on every layer, the classifier too (no ReLU follows
    it): the "default" start that DBG-1's check should catch, next to the course's small head."""
    from ..core.models import init_weights, small_cnn
    return init_weights(small_cnn(**kw), "kaiming")


def short_training(make, data: dict, seed: int, epochs: int, lr: float, batch_size: int = 128,
                   own_chunk: int | None = None) -> dict:
    """Seed, build ``make()``, train it with ``fit`` and return its final ``val_acc``.

    Seeding before ``make()`` pairs the arms: seed *i* gives every arm with the same architecture
    the same initial weights and data order. A run whose loss turns non-finite is stopped and
    scored as it is (``diverged``). With ``own_chunk``, also ``val_acc_own_split`` and
    ``val_acc_own_chunk``: validation scaled with its own statistics (:func:`acc_with_own_stats`).
    """
    from ..core.experiment import seed_everything
    from ..core.train import NonFiniteLossError, fit
    seed_everything(seed)
    model = make().to(data["train_x"].device)
    out = {"diverged": False}
    try:
        fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    except NonFiniteLossError:
        out["diverged"] = True
    out["val_acc"] = evaluate(model, data["val_x"], data["val_y"], data["mean"], data["std"])["acc"]
    if own_chunk:
        out["val_acc_own_split"] = acc_with_own_stats(model, data["val_x"], data["val_y"])
        out["val_acc_own_chunk"] = acc_with_own_stats(model, data["val_x"], data["val_y"], own_chunk)
    return out


def draw_arms(ax, values: dict, ylabel: str, title: str) -> None:
    """One column per arm: every seed as a point and the mean as a bar, so the spread shows."""
    for i, (label, vals) in enumerate(values.items()):
        ax.bar(i, sum(vals) / len(vals), color="C0", alpha=0.3)
        ax.plot([i] * len(vals), vals, "o", color="C0")
    ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
