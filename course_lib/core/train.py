"""Training and evaluation: ``fit`` is the whole training loop, on one screen.

``fit`` returns a plain-dict history (JSON-serialisable): per step lr, loss and gradient norm;
per epoch train/val loss and accuracy and seconds. It stops on a non-finite loss with a message
that names the step, the LR and the first module whose output was not finite; the Jupyter stop
button (KeyboardInterrupt) or a ``should_stop()`` callback ends it early and returns the history
so far. Helpers that run many trainings for one comparison pass the interrupt on
(``raise_if_interrupted``), so the stop button stops the whole cell.
"""
from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import make_generator, normalize, train_batches
from .nonfinite import describe_nonfinite, describe_nonfinite_grads
from .schedules import make_scheduler

OPTIMIZERS = ("sgd", "adam", "adamw")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf. ``.history`` holds everything recorded up to that step."""

    def __init__(self, message: str, history: dict):
        super().__init__(message)
        self.history = history


def make_optimizer(model: nn.Module, name: str = "sgd", lr: float = 0.1, momentum: float = 0.9,
                   weight_decay: float = 5e-4, nesterov: bool = True) -> torch.optim.Optimizer:
    """SGD (with momentum, Nesterov by default), Adam or AdamW over the model's parameters."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=nesterov and momentum > 0)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay)


def new_history() -> dict:
    """An empty history: per-step and per-epoch lists, and why training stopped (None = finished)."""
    return {"step": {"lr": [], "loss": [], "grad_norm": []},
            "epoch": {"epoch": [], "train_loss": [], "train_acc": [], "val_loss": [], "val_acc": [],
                      "seconds": []},
            "stopped": None}


def grad_norm(model: nn.Module, clip: float | None = None) -> float:
    """The total gradient norm; with ``clip``, gradients are also rescaled to at most that norm.

    A non-finite norm is returned with the gradients untouched: ``clip_grad_norm_`` would multiply
    every gradient by NaN as soon as one is NaN (with or without a limit), hiding where it came
    from. The rescaling is ``clip_grad_norm_``'s own rule, min(1, clip / (norm + 1e-6)).
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in params])))
    if clip and math.isfinite(norm) and norm > clip:
        scale = clip / (norm + 1e-6)
        for p in params:
            p.grad.mul_(scale)
    return norm


def autocast_for(device: torch.device, amp: bool | None):
    """bf16 autocast on CUDA when ``amp`` is None or True; nothing on CPU (it is slower there)."""
    if device.type == "cuda" and amp is not False:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit(model: nn.Module, data: dict, epochs: int = 5, batch_size: int = 256, lr: float = 0.1,
        optimizer: str = "sgd", momentum: float = 0.9, nesterov: bool = True,
        weight_decay: float = 5e-4, schedule: str = "onecycle", warmup_epochs: float = 0.0,
        schedule_kw: dict | None = None, label_smoothing: float = 0.0, grad_clip: float | None = None,
        aug: bool = True, flip: bool = True, pad: int = 4, seed: int = 0, amp: bool | None = None,
        channels_last: bool = True, callbacks=(), progress: bool = True, should_stop=None,
        evaluate_val: bool = True, opt: torch.optim.Optimizer | None = None,
        batch_transform=None, val_transform=None) -> dict:
    """Train ``model`` on ``data["train_x"/"train_y"]`` and return the history (see module doc).

    ``callbacks`` are called as ``cb(event, history, model)`` with event "step" or "epoch".
    ``opt`` lets a caller pass its own optimizer (e.g. per-layer learning rates); otherwise one
    is made from ``optimizer``, ``lr``, ``momentum``, ``weight_decay``. ``batch_transform(x,
    epoch, generator)`` changes each normalised training batch after augmentation (multi-scale
    training resizes it); ``val_transform(x)`` changes the uint8 validation images once.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    gen = make_generator(seed, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = opt or make_optimizer(model, optimizer, lr, momentum, weight_decay, nesterov)
    n = len(data["train_y"])
    steps_per_epoch = n // batch_size if n >= batch_size else 1
    sched = make_scheduler(opt, schedule, epochs * steps_per_epoch, round(warmup_epochs * steps_per_epoch),
                           steps_per_epoch=steps_per_epoch, **(schedule_kw or {}))
    per_epoch_sched = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    hist, step = new_history(), 0
    val_x = val_transform(data["val_x"]) if val_transform and evaluate_val else data["val_x"]
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, desc="training", leave=False)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
            for x, y in train_batches(data, batch_size, gen, aug, pad, flip, channels_last):
                if batch_transform is not None:
                    x = batch_transform(x, epoch, gen)
                with autocast_for(device, amp):
                    out = model(x)
                    loss = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)
                step += 1
                cur_lr = opt.param_groups[0]["lr"]
                if not torch.isfinite(loss):
                    hist["stopped"] = "nonfinite"
                    raise NonFiniteLossError(describe_nonfinite(model, x, loss, step, epoch, cur_lr), hist)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gnorm = grad_norm(model, grad_clip)
                if not math.isfinite(gnorm):  # stop before the update, so the weights stay finite
                    hist["stopped"] = "nonfinite"
                    raise NonFiniteLossError(describe_nonfinite_grads(model, loss, step, epoch, cur_lr), hist)
                opt.step()
                if not per_epoch_sched:
                    sched.step()
                loss_v = loss.item()
                hist["step"]["lr"].append(cur_lr)
                hist["step"]["loss"].append(loss_v)
                hist["step"]["grad_norm"].append(gnorm)
                loss_sum += loss_v * len(y)
                correct += int((out.argmax(1) == y).sum())
                seen += len(y)
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss_v:.3f}")
                for cb in callbacks:
                    cb("step", hist, model)
                if should_stop is not None and should_stop():
                    hist["stopped"] = "requested"
                    break
            val = (evaluate(model, val_x, data["val_y"], data["mean"], data["std"],
                            channels_last=channels_last) if evaluate_val else {"loss": math.nan, "acc": math.nan})
            if per_epoch_sched:
                sched.step(val["loss"])
            for key, value in (("epoch", epoch), ("train_loss", loss_sum / max(seen, 1)),
                               ("train_acc", correct / max(seen, 1)), ("val_loss", val["loss"]),
                               ("val_acc", val["acc"]), ("seconds", time.perf_counter() - t0)):
                hist["epoch"][key].append(value)
            for cb in callbacks:
                cb("epoch", hist, model)
            if hist["stopped"]:
                break
    except KeyboardInterrupt:
        hist["stopped"] = "interrupted"
        print(f"Interrupted at step {step} (epoch {len(hist['epoch']['epoch']) + 1}); "
              f"returning the history so far ({len(hist['epoch']['epoch'])} complete epochs).")
    finally:
        bar.close()
    return hist


def raise_if_interrupted(history: dict, what: str = "a run") -> dict:
    """Re-raise the stop button's interrupt that ``fit`` turned into ``stopped="interrupted"``.

    For helpers whose runs feed a comparison: one stopped run of many must stop the cell, not let
    the loop start the next run or a verdict be computed from a half-trained model. The history so
    far rides on the exception (``.history``). Returns ``history`` unchanged otherwise.
    """
    if history.get("stopped") == "interrupted":
        exc = KeyboardInterrupt(f"stopped by the user during {what}: the comparison needs every run, "
                                "so run the cell again")
        exc.history = history
        raise exc
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   batch_size: int = 1000, channels_last: bool = True, amp: bool | None = None) -> torch.Tensor:
    """Logits (float32) for uint8 images ``x``, in eval mode, batched. Restores the model's mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outs = []
    try:
        for start in range(0, len(x), batch_size):
            xb = normalize(x[start:start + batch_size].to(device), mean, std, channels_last)
            with autocast_for(device, amp):
                outs.append(model(xb).float())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
             std: torch.Tensor, batch_size: int = 1000, channels_last: bool = True) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on uint8 images ``x`` with labels ``y``."""
    logits = predict_logits(model, x, mean, std, batch_size, channels_last)
    return {"loss": float(F.cross_entropy(logits, y.to(logits.device))),
            "acc": float((logits.argmax(1) == y.to(logits.device)).float().mean())}
