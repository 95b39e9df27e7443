"""Training and evaluation: ``fit`` is the course's one training loop, on one screen.

``fit`` returns a plain-dict history (JSON-serialisable): per step lr, loss and gradient norm;
per epoch train/val loss and accuracy and seconds. It stops at the first non-finite loss or
gradient, before that step's update, raising :class:`NonFiniteLossError` whose message names the
step, the LR and the first module whose output was not finite (the error also carries the cause
and the failing batch). The Jupyter stop button (KeyboardInterrupt) or a ``should_stop()``
callback ends it early and returns the history so far. Helpers that run many trainings for one
comparison pass the interrupt on (``raise_if_interrupted``), so the stop button stops the cell.

Everything that trains on the course's data goes through ``fit``: the LR range test is ``fit``
with an exponential schedule and a divergence stop (as fastai builds its LR finder on its fit
loop), the NaN lesson's runs are ``fit`` plus handling of its error, multi-scale training is
``fit`` with a batch transform. Two deliberately minimal loops stay outside, each saying why:
the benchmark's compute-only step and overfitting one batch.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import make_generator, normalize, train_batches
from .nonfinite import describe_nonfinite, describe_nonfinite_grads, nonfinite_grads
from .schedules import make_scheduler

OPTIMIZERS = ("sgd", "adam", "adamw")


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient became NaN or Inf; ``fit`` stopped before that step's update.

    ``.history`` holds everything recorded before the failing step. The failing step itself:
    ``.cause`` ("loss"; "gradient": some gradient element is NaN/Inf; "gradient norm": every
    element finite but their norm overflowed), ``.step``, ``.epoch``, ``.lr``, ``.batch`` (the
    ``(x, y)`` the model saw), ``.loss`` and ``.grad_norm`` (NaN when the loss failed: no backward
    pass ran). The model's weights are those the failing step started from.
    """

    def __init__(self, message: str, history: dict, cause: str = "loss", step: int | None = None,
                 epoch: int | None = None, lr: float = math.nan, batch=None, loss: float = math.nan,
                 grad_norm: float = math.nan):
        super().__init__(message)
        self.history, self.cause, self.step, self.epoch, self.lr = history, cause, step, epoch, lr
        self.batch, self.loss, self.grad_norm = batch, loss, grad_norm


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


def grad_norm(model: nn.Module, clip: float | None = None, sync: bool = True):
    """The total gradient norm; with ``clip``, gradients are also rescaled to at most that norm.

    A non-finite norm is returned with the gradients untouched: ``clip_grad_norm_`` would multiply
    every gradient by NaN as soon as one is NaN (with or without a limit), hiding where it came
    from. The rescaling is ``clip_grad_norm_``'s own rule, min(1, clip / (norm + 1e-6)).
    ``sync=False`` returns the norm as a 0-dim tensor on the device and rescales by a factor
    computed there (the same numbers, without waiting for the device).
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0 if sync else torch.zeros(())
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    if not sync:
        if clip:  # factor 1 where not needed (or not finite: fit then replays these steps with sync)
            scale = torch.where(torch.isfinite(norm) & (norm > clip), clip / (norm.double() + 1e-6), 1.0)
            for g in grads:
                g.mul_(scale)
        return norm
    norm = float(norm)
    if clip and math.isfinite(norm) and norm > clip:
        scale = clip / (norm + 1e-6)
        for g in grads:
            g.mul_(scale)
    return norm


def autocast_for(device: torch.device, amp: bool | None):
    """bf16 autocast on CUDA when ``amp`` is None or True; on the CPU only when ``amp`` is True.

    On the CPU bf16 pays off only where it has bf16 instructions (e.g. AVX512-BF16, AMX): there a
    training step of ``baseline_net(16)`` costs about 2/3 of fp32's; elsewhere it can be slower,
    so the default (None) stays fp32 on the CPU and a caller opts in with ``amp=True``.
    """
    if device.type == "cuda" and amp is not False:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and amp is True:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def save_state(model: nn.Module, opt: torch.optim.Optimizer, sched) -> dict:
    """Copies of all that a training step changes (weights and buffers, gradients, optimizer and
    scheduler state, the RNG that dropout draws from), to go back to with :func:`load_state`."""
    cuda = sorted({p.device for p in model.parameters() if p.device.type == "cuda"}, key=str)
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            "opt": copy.deepcopy(opt.state_dict()), "sched": copy.deepcopy(sched.state_dict()),
            "rng": torch.get_rng_state(), "cuda_rng": {d: torch.cuda.get_rng_state(d) for d in cuda}}


def load_state(model: nn.Module, opt: torch.optim.Optimizer, sched, saved: dict) -> None:
    """Put back a :func:`save_state` copy (it is consumed: the optimizer may keep its tensors)."""
    model.load_state_dict(saved["model"])
    for p, g in zip(model.parameters(), saved["grads"]):
        p.grad = g
    opt.load_state_dict(saved["opt"])
    sched.load_state_dict(saved["sched"])
    torch.set_rng_state(saved["rng"])
    for d, state in saved["cuda_rng"].items():
        torch.cuda.set_rng_state(state, d)


def check_fit_args(epochs, batch_size, max_steps, sync_every) -> None:
    """Refuse what ``fit`` cannot run, saying what to pass instead."""
    if epochs is None and max_steps is None:
        raise ValueError("give epochs or max_steps (or both: training ends at whichever comes first)")
    if (epochs is not None and epochs < 1) or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
    if (max_steps is not None and max_steps < 1) or sync_every < 1:
        raise ValueError(f"max_steps and sync_every must be at least 1, got {max_steps} and {sync_every}")


def fit(model: nn.Module, data: dict, epochs: int | None = 5, batch_size: int = 256, lr: float = 0.1,
        optimizer: str = "sgd", momentum: float = 0.9, nesterov: bool = True,
        weight_decay: float = 5e-4, schedule: str = "onecycle", warmup_epochs: float = 0.0,
        schedule_kw: dict | None = None, label_smoothing: float = 0.0, loss_fn=None,
        grad_clip: float | None = None, aug: bool = True, flip: bool = True, pad: int = 4,
        seed: int = 0, amp: bool | None = None, channels_last: bool = True, callbacks=(),
        progress: bool = True, should_stop=None, evaluate_val: bool = True,
        opt: torch.optim.Optimizer | None = None, batch_transform=None, val_transform=None,
        max_steps: int | None = None, sync_every: int | None = None, shuffle: bool = True) -> dict:
    """Train ``model`` on ``data["train_x"/"train_y"]`` and return the history (see module doc).

    ``loss_fn(logits, y)`` defaults to cross-entropy with ``label_smoothing``. Training ends after
    ``epochs`` or ``max_steps`` steps, whichever comes first (the schedule spans the run).
    ``callbacks`` are called as ``cb(event, history, model)`` with event "step" or "epoch".
    ``opt`` lets a caller pass its own optimizer (e.g. per-layer learning rates); otherwise one
    is made from ``optimizer``, ``lr``, ``momentum``, ``weight_decay``. ``batch_transform(x,
    epoch, generator)`` changes each normalised training batch after augmentation (multi-scale
    training resizes it); ``val_transform(x)`` changes the uint8 validation images once.
    ``shuffle=False`` trains on the stored order every epoch (SHUF-1, notebook 13).

    ``sync_every`` (default 1 on the CPU, 25 on CUDA) is how often the host checks the loss and
    gradient norm for NaN/Inf and updates the progress bar. In between, the newest per-step values
    stay 0-dim device tensors in the history (they become floats at the next check), so a GPU
    never waits for the host; the weights, optimizer, scheduler and RNG are saved at each check,
    and a non-finite value makes ``fit`` go back there and replay those steps checking each, so it
    stops at the same step with the same message as ``sync_every=1``. Step callbacks run every
    step (on the model as it is then), so they may already have seen up to ``sync_every - 1``
    steps after a failing one. Tested on the CPU only; its effect on GPU speed is unmeasured.
    """
    device = next(model.parameters()).device
    sync_every = sync_every if sync_every is not None else (25 if device.type == "cuda" else 1)
    check_fit_args(epochs, batch_size, max_steps, sync_every)
    deferred = sync_every > 1
    torch.manual_seed(seed)
    gen = make_generator(seed, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = opt or make_optimizer(model, optimizer, lr, momentum, weight_decay, nesterov)
    loss_fn = loss_fn or functools.partial(F.cross_entropy, label_smoothing=label_smoothing)
    n = len(data["train_y"])
    per_epoch, per_batch = max(n // batch_size, 1), min(n, batch_size)  # train_batches drops a partial batch
    total = min(epochs * per_epoch if epochs else math.inf, max_steps or math.inf)
    sched = make_scheduler(opt, schedule, total, round(warmup_epochs * per_epoch),
                           steps_per_epoch=per_epoch, **(schedule_kw or {}))
    per_epoch_sched = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    hist, step, hits, pending, saved = new_history(), 0, [], [], None
    val_x = val_transform(data["val_x"]) if val_transform and evaluate_val else data.get("val_x")
    bar = tqdm(total=total, disable=not progress, desc="training", leave=False)

    def fail(cause, message, batch, epoch, lr, loss, gnorm=math.nan):
        hist["stopped"] = "nonfinite"
        raise NonFiniteLossError(message, hist, cause, step, epoch, lr, batch, loss, gnorm)

    def train_step(x, y, epoch, check):
        """One optimisation step; ``check``: stop at a non-finite loss or gradient right now."""
        nonlocal step
        with autocast_for(device, amp):  # bf16 on CUDA (and on the CPU with amp=True)
            out = model(x)
            loss = loss_fn(out.float(), y)
        step += 1
        cur_lr = opt.param_groups[0]["lr"]
        if check and not torch.isfinite(loss):
            fail("loss", describe_nonfinite(model, x, loss, step, epoch, cur_lr), (x, y), epoch, cur_lr, loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = grad_norm(model, grad_clip, sync=check)  # gradient clipping, if grad_clip
        if check and not math.isfinite(gnorm):  # stop before the update, so the weights stay finite
            fail("gradient" if nonfinite_grads(model) else "gradient norm",
                 describe_nonfinite_grads(model, loss, step, epoch, cur_lr), (x, y), epoch, cur_lr, loss.item(), gnorm)
        opt.step()
        if not per_epoch_sched:
            sched.step()
        hist["step"]["lr"].append(cur_lr)
        hist["step"]["loss"].append(loss.item() if check else loss.detach())
        hist["step"]["grad_norm"].append(gnorm)
        hits.append((out.argmax(1) == y).sum())  # correct predictions, counted on the device

    def settle(epoch):
        """Check the steps since the last check in one transfer; at a NaN/Inf, replay them from there."""
        nonlocal step
        k, steps = len(pending), hist["step"]
        if deferred and k:
            vals = torch.stack([v.float().to(device) for v in steps["loss"][-k:] + steps["grad_norm"][-k:]]).tolist()
            if all(map(math.isfinite, vals)):
                steps["loss"][-k:], steps["grad_norm"][-k:] = vals[:k], vals[k:]
            else:
                load_state(model, opt, sched, saved)
                step -= k
                for key in ("lr", "loss", "grad_norm"):
                    del steps[key][-k:]
                del hits[-k:]
                for x, y in pending[:]:  # raises at the first non-finite step
                    train_step(x, y, epoch, check=True)
        if k:
            bar.update(k)
            bar.set_postfix(epoch=epoch, loss=f"{steps['loss'][-1]:.3f}")
        pending.clear()

    try:
        for epoch in range(1, math.ceil(total / per_epoch) + 1):
            model.train()
            t0, first, hits = time.perf_counter(), step, []
            for x, y in train_batches(data, batch_size, gen, aug, pad, flip, channels_last,
                                      shuffle=shuffle):
                if batch_transform is not None:
                    x = batch_transform(x, epoch, gen)
                if deferred and not pending:  # the state to replay from
                    saved = save_state(model, opt, sched)
                pending.append((x, y))
                train_step(x, y, epoch, check=not deferred)
                if len(pending) == sync_every:
                    settle(epoch)
                for cb in callbacks:
                    cb("step", hist, model)
                if step == max_steps:
                    break
                if should_stop is not None and should_stop():
                    hist["stopped"] = "requested"
                    break
            settle(epoch)
            val = (evaluate(model, val_x, data["val_y"], data["mean"], data["std"],
                            channels_last=channels_last) if evaluate_val else {"loss": math.nan, "acc": math.nan})
            if per_epoch_sched:
                sched.step(val["loss"])
            loss_sum, seen = 0.0, (step - first) * per_batch
            for v in hist["step"]["loss"][first:]:
                loss_sum += v * per_batch
            for key, value in (("epoch", epoch), ("train_loss", loss_sum / max(seen, 1)),
                               ("train_acc", int(sum(hits)) / max(seen, 1)), ("val_loss", val["loss"]),
                               ("val_acc", val["acc"]), ("seconds", time.perf_counter() - t0)):
                hist["epoch"][key].append(value)
            for cb in callbacks:
                cb("epoch", hist, model)
            if hist["stopped"] or step == max_steps:
                break
    except KeyboardInterrupt:
        hist["stopped"] = "interrupted"
        for key in ("loss", "grad_norm"):  # values not checked yet (sync_every > 1) become floats as they are
            hist["step"][key] = [float(v) for v in hist["step"][key]]
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
