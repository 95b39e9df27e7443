"""Learning-rate schedules by name, all built from ``torch.optim.lr_scheduler``.

Every schedule here is stepped once per optimisation step, except ``plateau``
(ReduceLROnPlateau), which ``fit`` steps once per epoch with the validation loss.
"""
from __future__ import annotations

import torch
from torch.optim import lr_scheduler as S

SCHEDULES = ("constant", "step", "cosine", "cosine_restarts", "onecycle", "linear", "plateau", "exponential")


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, total_steps: int,
                   warmup_steps: int = 0, steps_per_epoch: int = 1, **kw):
    """Build the named schedule for ``total_steps`` optimisation steps.

    ``warmup_steps`` > 0 prepends a linear warmup (``LinearLR`` from 1% of the peak LR) through
    ``SequentialLR``. Extra keywords: ``step`` takes ``step_epochs`` (default a third of the run)
    and ``gamma`` (0.1); ``cosine_restarts`` takes ``T_0`` (steps, default a quarter of the run)
    and ``T_mult`` (1); ``plateau`` takes ``factor`` (0.1) and ``patience`` (epochs, 2);
    ``onecycle`` takes ``pct_start`` (0.25); ``exponential`` multiplies the LR by ``gamma`` every
    step (required; above 1 it grows, as in the LR range test). ``warmup_steps`` is ignored by
    ``onecycle``, which has its own.
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
    total_steps = max(int(total_steps), 1)
    if name == "onecycle":
        if total_steps < 3:  # OneCycleLR needs a step up and a step down
            return S.ConstantLR(optimizer, factor=1.0, total_iters=0)
        peak = [g["lr"] for g in optimizer.param_groups]
        # OneCycleLR divides by zero when its warm-up phase ends on step 0 (e.g. 25% of 4 steps)
        pct = min(max(kw.get("pct_start", 0.25), 1.5 / total_steps), 0.5)
        return S.OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps, pct_start=pct,
                            anneal_strategy="linear", cycle_momentum=False)
    if name == "exponential" and "gamma" not in kw:
        raise ValueError("schedule 'exponential' needs gamma, the factor applied to the LR every step "
                         "(e.g. schedule_kw={'gamma': 1.05})")
    if name == "plateau":
        return S.ReduceLROnPlateau(optimizer, factor=kw.get("factor", 0.1), patience=kw.get("patience", 2))
    main_steps = max(total_steps - warmup_steps, 1)
    if name == "constant":
        main = S.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif name == "step":
        step_size = kw.get("step_epochs", max(main_steps // steps_per_epoch // 3, 1)) * steps_per_epoch
        main = S.StepLR(optimizer, step_size=step_size, gamma=kw.get("gamma", 0.1))
    elif name == "exponential":
        main = S.ExponentialLR(optimizer, gamma=kw["gamma"])
    elif name == "cosine":
        main = S.CosineAnnealingLR(optimizer, T_max=main_steps)
    elif name == "cosine_restarts":
        main = S.CosineAnnealingWarmRestarts(optimizer, T_0=kw.get("T_0", max(main_steps // 4, 1)),
                                             T_mult=kw.get("T_mult", 1))
    else:  # linear decay to zero
        main = S.LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=main_steps)
    if warmup_steps <= 0:
        return main
    warm = S.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup_steps)
    return S.SequentialLR(optimizer, [warm, main], milestones=[warmup_steps])


def lr_curve(name: str, total_steps: int, lr: float = 0.1, **kw) -> list[float]:
    """The LR a schedule would give at every step, read from the scheduler itself (no training).

    ``plateau`` depends on validation results, so its curve is the constant peak LR.
    """
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(opt, name, total_steps, **kw)
    lrs = []
    for _ in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if not isinstance(sched, S.ReduceLROnPlateau):
            sched.step()
    return lrs


def restart_ends(total_steps: int, T_0: int, T_mult: int = 1, warmup_steps: int = 0) -> list[int]:
    """Step counts (1-based: optimisation steps done) at which each ``CosineAnnealingWarmRestarts``
    cycle ends, within ``total_steps``; cycles are ``T_0``, ``T_0*T_mult``, ... steps long.

    Only complete cycles are listed, so the last entry equals ``total_steps`` only when the run
    ends exactly at a cycle end. ``warmup_steps`` shifts every end (``make_scheduler`` runs the
    warmup first). These are the moments the LR is lowest: the points to take snapshots (SGDR).
    """
    if int(T_0) != T_0 or T_0 < 1:
        raise ValueError(f"T_0 must be a whole number of steps >= 1, got {T_0}")
    if int(T_mult) != T_mult or T_mult < 1:
        raise ValueError(f"T_mult must be a whole number >= 1 (torch requires it), got {T_mult}")
    ends, end, length = [], int(warmup_steps), int(T_0)
    while end + length <= total_steps:
        end += length
        ends.append(end)
        length *= int(T_mult)
    return ends


def snapshot_callback(at_steps):
    """A ``fit`` callback that keeps copies of the model's weights at chosen steps.

    Returns ``(callback, snapshots)``: on the "step" event, when the number of steps done
    (``len(history["step"]["loss"])``) is in ``at_steps``, it appends
    ``{"step": n, "state_dict": ...}`` with every tensor copied to the CPU (later training and
    device memory do not touch it). Pair with ``restart_ends`` for a snapshot ensemble.
    """
    wanted, snapshots = {int(s) for s in at_steps}, []

    def callback(event, history, model):
        n = len(history["step"]["loss"])
        if event == "step" and n in wanted:
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            snapshots.append({"step": n, "state_dict": state})
    return callback, snapshots
