"""Sanity checks to run before trusting any training run (document B, part 5).

- :func:`initial_loss`: an untrained 10-class model should start near ln(10) = 2.303 (DBG-1).
- :func:`overfit_batch`: a healthy model and loop can memorise one small batch (DBG-2).
- :func:`most_confident_mistakes`: where the model is most sure and wrong.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.data import normalize
from ..core.train import make_optimizer, predict_logits


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
