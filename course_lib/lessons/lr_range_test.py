"""Choosing a learning rate: the LR range test, reading loss curves, and update-to-weight ratios.

- :func:`lr_range_test` (document A 八.7, Leslie Smith's test): start near 1e-7, multiply the LR
  by a constant factor every step (``torch.optim.lr_scheduler.ExponentialLR``), record the
  smoothed loss, stop when it diverges, then restore the model **and** the optimizer exactly.
  It is ``train.fit`` with that schedule and a divergence stop, as fastai builds its LR finder
  on its one fit loop (``torch-lr-finder`` is built around a DataLoader, while the course's
  batches come from a device-resident generator, ``data.train_batches``).
- :func:`suggest_lrs`: the two common readings of the curve (steepest descent; minimum / 10),
  :func:`hook_shape`: is the curve hook-shaped (falls, bottoms out, rises)?
- :func:`loss_symptom`: what a training-loss curve says about the LR (falling, rising,
  exploding) — the diagnosis behind "raise 10x / lower 10x" (LR-8).
- :func:`update_ratio_logger`: a ``fit`` callback that logs ||ΔW|| / ||W|| per layer per step
  (document B part 6: about 1e-3 is healthy; far above, lower the LR) (LR-9);
  :func:`run_with_ratios` is one short training with that logger on.
- Verdicts from short trainings at LRs 10x apart: :func:`ten_x_advice` (LR-8),
  :func:`ratio_verdict` (LR-9), :func:`converged` (LR-7), :func:`hook_verdict` (LR-6).
- Figures: :func:`draw_range_test`, :func:`draw_update_ratios` draw on a given axes;
  :func:`range_test_png` renders a running test for the widget panel.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..core.claims import all_of, compare
from ..core.runs import train_and_score
from ..core.train import NonFiniteLossError, fit, raise_if_interrupted
from ..ui.plots import render_png


def exponential_factor(start_lr: float, end_lr: float, num_steps: int) -> float:
    """The constant factor that takes the LR from ``start_lr`` to ``end_lr`` in ``num_steps`` steps
    (first and last step included)."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2, got {num_steps}")
    return (end_lr / start_lr) ** (1.0 / (num_steps - 1))


def _steps_and_factor(start_lr, end_lr, factor, num_steps):
    """Resolve (num_steps, factor): give either, or neither (then factor = 1.05 as in document A)."""
    if factor is not None and num_steps is not None:
        raise ValueError("give factor or num_steps, not both (one determines the other)")
    if num_steps is not None:
        return int(num_steps), exponential_factor(start_lr, end_lr, int(num_steps))
    factor = 1.05 if factor is None else float(factor)
    if not factor > 1.0:
        raise ValueError(f"factor must be above 1 (the LR grows every step), got {factor}")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    return math.ceil(math.log(end_lr / start_lr) / math.log(factor)) + 1, factor


def lr_range_test(model: nn.Module, data: dict, start_lr: float = 1e-7, end_lr: float = 10.0,
                  factor: float | None = None, num_steps: int | None = None, batch_size: int = 128,
                  opt: torch.optim.Optimizer | None = None, smoothing: float = 0.98, diverge: float = 4.0,
                  should_stop=None, report=None, report_every: int = 10, **fit_kw) -> dict:
    """Train with an exponentially growing LR and record the loss; leave model and optimizer as found.

    This is ``train.fit`` with the ``exponential`` schedule and a divergence stop. The LR starts at
    ``start_lr`` and is multiplied by ``factor`` every step (default 1.05, or the factor that
    reaches ``end_lr`` in ``num_steps`` steps). The loss is smoothed with a bias-corrected
    exponential moving average (``smoothing``); the test stops when the smoothed loss exceeds
    ``diverge`` times its minimum, when the loss or a gradient is not finite, at ``end_lr``, or
    when ``should_stop()`` returns True. ``opt`` is the caller's optimizer (its groups keep their
    LR ratios); otherwise ``fit`` makes one (``fit_kw``: ``optimizer``, ``momentum``,
    ``weight_decay``, ``seed``, ``aug``, ...). Model parameters and buffers, the optimizer's state
    and hyperparameters, the train/eval mode and the global RNG are restored afterwards, so the
    test never leaves the model trained. The stop button stops it (KeyboardInterrupt) after the
    restore.

    Returns ``{"lr", "loss", "smoothed"}`` lists (one entry per step), ``"ended"`` (how the test
    ended: "diverged", "nonfinite", "end_lr" or "requested"), ``"stopped"`` ("requested" when the
    user stopped it, else None, as in ``fit``'s history, so the widget panel and the results cache
    treat a finished test as finished), and the ``factor``, ``start_lr``, ``end_lr`` used.
    ``report(result)`` is called every ``report_every`` steps (for live plots).
    """
    num_steps, factor = _steps_and_factor(start_lr, end_lr, factor, num_steps)
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if not diverge > 1.0:
        raise ValueError(f"diverge must be above 1 (a multiple of the best smoothed loss), got {diverge}")
    device = next(model.parameters()).device
    saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(opt.state_dict()) if opt is not None else None
    was_training = model.training
    result = {"lr": [], "loss": [], "smoothed": [], "ended": "running", "stopped": None, "factor": factor,
              "start_lr": start_lr, "end_lr": end_lr, "batch_size": batch_size}
    avg = {"ema": 0.0, "best": math.inf}

    def record(lr, loss):  # smoothed loss and the divergence test; report() every report_every steps
        n = len(result["loss"]) + 1
        avg["ema"] = smoothing * avg["ema"] + (1 - smoothing) * loss
        smoothed = avg["ema"] / (1 - smoothing ** n)
        result["lr"].append(lr)
        result["loss"].append(loss)
        result["smoothed"].append(smoothed)
        avg["best"] = min(avg["best"], smoothed)
        if n > 1 and smoothed > diverge * avg["best"]:
            result["ended"] = "diverged"
        elif report is not None and n % report_every == 0:
            report(result)

    def stop():  # fit's should_stop: the divergence stop, then the user's
        if result["ended"] == "diverged":
            return True
        if should_stop is not None and should_stop():
            result["ended"] = result["stopped"] = "requested"
            return True
        return False

    def on_step(event, hist, _model):
        if event == "step":
            record(hist["step"]["lr"][-1], hist["step"]["loss"][-1])

    if opt is not None:
        base = opt.param_groups[0]["lr"]
        for g in opt.param_groups:  # keep per-group LR ratios
            g["lr"] = start_lr * g["lr"] / base
    callbacks = [on_step, *fit_kw.pop("callbacks", ())]
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            # sync_every=1: the divergence stop reads every step's loss anyway
            hist = fit(model, data, epochs=None, max_steps=num_steps, batch_size=batch_size, lr=start_lr,
                       opt=opt, schedule="exponential", schedule_kw={"gamma": factor}, callbacks=callbacks,
                       should_stop=stop, evaluate_val=False, progress=False, sync_every=1, **fit_kw)
            raise_if_interrupted(hist, "the LR range test")
    except NonFiniteLossError as err:
        if err.cause != "loss":  # the loss was finite; its gradient was not: the step still counts
            record(err.lr, err.loss)
        if result["ended"] == "running":
            result["ended"] = "end_lr" if len(result["lr"]) >= num_steps else "nonfinite"
    finally:
        model.load_state_dict(saved_model)
        if opt is not None:
            opt.load_state_dict(saved_opt)
        model.train(was_training)
    if result["ended"] == "running":
        result["ended"] = "end_lr"
    return result


def suggest_lrs(result: dict, skip_start: int = 10) -> dict:
    """The two usual readings of a range test, from its smoothed loss curve.

    ``steepest``: the LR where the smoothed loss falls fastest against log(LR), searched between
    step ``skip_start`` (the moving average needs a few steps) and the minimum. ``min_div_10``:
    the LR at the minimum smoothed loss, divided by 10. ``reached_minimum`` is False when the test
    ended before the loss turned up (then the minimum is only the last point seen).
    """
    lrs, sm = np.asarray(result["lr"], float), np.asarray(result["smoothed"], float)
    if len(lrs) < skip_start + 3:
        raise ValueError(f"the range test recorded only {len(lrs)} steps; need at least {skip_start + 3}: "
                         "use more steps, a larger end_lr, or a smaller skip_start")
    i_min = int(np.argmin(sm))
    lo, hi = skip_start, max(i_min, skip_start + 2)
    slope = np.gradient(sm, np.log10(lrs))
    i_steep = lo + int(np.argmin(slope[lo:hi + 1]))
    return {"steepest": float(lrs[i_steep]), "min_div_10": float(lrs[i_min] / 10),
            "min_loss_lr": float(lrs[i_min]), "min_loss": float(sm[i_min]),
            "steepest_slope": float(slope[i_steep]),
            "reached_minimum": result["ended"] in ("diverged", "nonfinite") or i_min < len(sm) - 1}


def hook_shape(result: dict, min_drop: float = 0.1, min_rise: float = 0.5, skip_start: int = 10) -> dict:
    """Is the range-test curve hook-shaped? It must fall by ``min_drop`` (a fraction of its start)
    to its minimum, and then rise by ``min_rise`` (a fraction of the minimum) or blow up.

    Returns the numbers and ``hooked`` (bool). The start is the smoothed loss at ``skip_start``.
    """
    sm = np.asarray(result["smoothed"], float)
    if len(sm) <= skip_start:
        raise ValueError(f"the range test recorded only {len(sm)} steps; need more than {skip_start}")
    start, i_min = sm[skip_start], int(np.argmin(sm))
    drop = (start - sm[i_min]) / start
    rise = math.inf if result["ended"] == "nonfinite" else (sm[-1] - sm[i_min]) / sm[i_min]
    return {"start": float(start), "minimum": float(sm[i_min]), "end": float(sm[-1]),
            "drop": float(drop), "rise": float(rise), "min_drop": min_drop, "min_rise": min_rise,
            "hooked": bool(drop >= min_drop and rise >= min_rise and i_min > skip_start)}


def loss_symptom(history: dict, rise: float = 0.1, window: int | None = None) -> dict:
    """Read a training run's per-step loss the way LR-8 does: ``exploding`` (it became NaN/Inf),
    ``rising`` (the moving average ends more than ``rise`` above its minimum) or ``falling``.

    Also returns ``fall``: the fraction by which the moving average fell from its first to its
    last value (how fast the loss is falling), and the two values.
    """
    losses = np.asarray(history["step"]["loss"], float)
    if history.get("stopped") == "nonfinite":
        return {"symptom": "exploding", "fall": math.nan, "first": math.nan, "last": math.nan}
    if len(losses) < 2:
        raise ValueError(f"need at least 2 steps of loss to read a trend, got {len(losses)}")
    w = window or max(len(losses) // 10, 1)
    ma = np.convolve(losses, np.ones(w) / w, mode="valid")
    symptom = "rising" if ma[-1] > (1 + rise) * ma.min() else "falling"
    return {"symptom": symptom, "fall": float((ma[0] - ma[-1]) / ma[0]), "first": float(ma[0]),
            "last": float(ma[-1])}


def update_ratio_logger(model: nn.Module, every: int = 1):
    """A ``fit`` callback and its log: ||ΔW|| / ||W|| for every conv and linear weight, per step.

    ``fit`` calls callbacks after each optimiser step, so the update of step k is the weight after
    step k minus the weight the callback saw after step k-1. Ratios stay on the device until
    :func:`update_ratios` reads them (no synchronisation per step). Returns ``(callback, log)``.
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    named = [(n, p) for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad]
    log = {"names": [n for n, _ in named], "steps": [], "values": [], "prev": None}

    def callback(event, history, _model):
        if event != "step":
            return
        step = len(history["step"]["loss"])
        with torch.no_grad():
            if log["prev"] is not None and step % every == 0:
                log["values"].append(torch.stack([(p - q).norm() / p.norm().clamp_min(1e-12)
                                                  for (_, p), q in zip(named, log["prev"])]))
                log["steps"].append(step)
            if (step + 1) % every == 0:
                log["prev"] = [p.detach().clone() for _, p in named]
            else:
                log["prev"] = None
    return callback, log


def update_ratios(log: dict) -> dict:
    """The ratios logged by :func:`update_ratio_logger`: ``{"steps": [...], layer name: [...]}``."""
    values = torch.stack(log["values"]).float().cpu().numpy() if log["values"] else np.zeros((0, len(log["names"])))
    out = {"steps": list(log["steps"])}
    out.update({name: values[:, i].tolist() for i, name in enumerate(log["names"])})
    return out


def typical_ratio(ratios: dict, skip_fraction: float = 0.1) -> float:
    """One number per run: the median over layers of each layer's median ratio, skipping the first
    ``skip_fraction`` of the logged steps (the start of training is not typical). NaN if none."""
    per_layer = []
    for name, vals in ratios.items():
        if name == "steps":
            continue
        v = np.asarray(vals, float)[int(len(vals) * skip_fraction):]
        v = v[np.isfinite(v)]
        if len(v):
            per_layer.append(float(np.median(v)))
    return float(np.median(per_layer)) if per_layer else math.nan


def run_with_ratios(model: nn.Module, data: dict, seed: int = 0, every: int = 1, **fit_kw) -> dict:
    """``runs.train_and_score`` (model re-initialised in place from ``seed``) with the update-to-weight
    ratio logged; the summary gets ``ratios`` (:func:`update_ratios`) and ``ratio`` (:func:`typical_ratio`)."""
    cb, log = update_ratio_logger(model, every)
    r = train_and_score(model, data, seed, callbacks=[cb], **fit_kw)
    ratios = update_ratios(log)
    return {**r, "ratios": ratios, "ratio": typical_ratio(ratios)}


def _accs(runs):
    return [r["val_acc"] for r in runs]


def ten_x_advice(claim_id: str, runs: dict, what: str, margin: float = 0.0) -> dict:
    """Verdict on "loss falling too slowly: raise the LR 10x; rising or exploding: lower it 10x".

    ``runs`` maps an LR factor (0.1, 1.0, 10.0: LRs 10x apart) to per-seed ``train_and_score`` summaries,
    seed *i* of every factor sharing initial weights and data order (paired). The symptom of the
    0.1 and 10 runs is read from their loss curves (:func:`loss_symptom`); the advice is tested
    only where its symptom showed: if the low run was falling (slowly, at a tenth of the LR), does
    10x higher give a better validation accuracy? If the high run rose or exploded in any seed,
    does 10x lower? Each test is a ``claims.compare`` over seeds with the declared ``margin``
    (accuracy as a fraction); no symptom at all gives an inconclusive verdict ("no part applied").
    """
    low = [loss_symptom(r["history"]) for r in runs[0.1]]
    high = [loss_symptom(r["history"]) for r in runs[10.0]]
    parts = []
    if all(s["symptom"] == "falling" for s in low):
        parts.append(compare(claim_id, _accs(runs[1.0]), _accs(runs[0.1]), "raise 10x from the slow run: val acc",
                             label_t="raised", label_c="slow", margin=margin, unit="fraction"))
    if any(s["symptom"] != "falling" for s in high):
        parts.append(compare(claim_id, _accs(runs[1.0]), _accs(runs[10.0]),
                             "lower 10x from the rising/exploding run: val acc", label_t="lowered", label_c="high",
                             margin=margin, unit="fraction", nan="omit"))
    symptoms = (f"10x lower: {[s['symptom'] for s in low]} (loss fell {[round(s['fall'], 2) for s in low]}); "
                f"10x higher: {[s['symptom'] for s in high]}")
    v = all_of(claim_id, parts, f"{what} [{symptoms}]", allow_empty=True)
    v["evidence"]["symptoms"] = {"low": low, "high": high}
    return v


def ratio_verdict(claim_id: str, runs: dict, what: str, target: float = 1e-3, far: float = 10.0,
                  margin: float = 0.0) -> dict:
    """Verdict on "an update-to-weight ratio near ``target`` marks a good LR; far above, lower the LR".

    ``runs`` maps an LR factor (LRs 10x apart) to per-seed :func:`run_with_ratios` summaries (paired
    seeds). Part one: the LR whose ratio (median over seeds) is nearest ``target`` on a log scale
    must beat *every* other LR on validation accuracy (one comparison each, none picked after
    seeing the accuracies). Part two, for every LR whose ratio is more than ``far`` times
    ``target`` and which has a 10x lower neighbour: is that neighbour better? Parts are
    ``claims.compare`` over seeds with the declared ``margin``, combined by ``claims.all_of``.
    """
    factors = sorted(runs)
    ratio = {f: float(np.nanmedian([r["ratio"] for r in runs[f]])) for f in factors}
    near = min(factors, key=lambda f: abs(math.log10(ratio[f] / target)) if ratio[f] > 0 else math.inf)
    parts = [compare(claim_id, _accs(runs[near]), _accs(runs[f]),
                     f"ratio nearest {target:g} ({ratio[near]:.1e}, {near:g}x LR) vs {f:g}x LR ({ratio[f]:.1e})",
                     label_t="nearest", label_c=f"{f:g}x", margin=margin, unit="fraction", nan="omit")
             for f in factors if f != near]
    for f in factors:
        lower = [g for g in factors if math.isclose(g, f / 10)]
        if ratio[f] > far * target and lower and lower[0] != near:
            parts.append(compare(claim_id, _accs(runs[lower[0]]), _accs(runs[f]),
                                 f"ratio {ratio[f]:.1e} at {f:g}x LR: 10x lower LR", label_t="lowered", label_c="high",
                                 margin=margin, unit="fraction", nan="omit"))
    v = all_of(claim_id, parts, what, allow_empty=True)
    v["evidence"]["ratios"] = {str(f): ratio[f] for f in factors}
    return v


def converged(run: dict, min_acc: float) -> bool:
    """LR-7's declared meaning of "converges": after the budget, validation accuracy is at least
    ``min_acc`` and the training loss ends finite and not rising (:func:`loss_symptom`)."""
    return run["val_acc"] >= min_acc and loss_symptom(run["history"])["symptom"] == "falling"


def hook_verdict(claim_id: str, result: dict, name: str, min_drop: float, min_rise: float) -> dict:
    """A demonstration part for LR-6: is a range test run *without* its divergence stop
    (``diverge=math.inf``: it ends at ``end_lr`` or at a non-finite loss) hook-shaped by
    :func:`hook_shape`? Without the stop, a rise is measured, not manufactured by the stop rule."""
    from ..core.claims import demonstrate
    h = hook_shape(result, min_drop=min_drop, min_rise=min_rise)
    rise = "blows up" if math.isinf(h["rise"]) else f"rises {h['rise']:.0%}"
    return demonstrate(claim_id, h["hooked"], {**h, "ended": result["ended"]},
                       f"{name} range test, no divergence stop (ended: {result['ended']}): falls {h['drop']:.0%} "
                       f"(needed {min_drop:.0%}), then {rise} (needed {min_rise:.0%})")


MEANINGS = {
    "LR-6": {
        "supported": "The LR at the steepest descent of the range test beat LRs 10x lower and 10x higher "
                     "for both optimisers: a cheap test found a good constant LR.",
        "not supported": "A neighbour 10x away did as well or better: the steepest point marks a region, "
                         "not an optimum; with a short budget a larger LR often wins, and with a long one "
                         "a schedule matters more than the exact value.",
        "inconclusive": "The accuracies at the three LRs were within seed noise at this budget.",
    },
    "LR-7": {
        "supported": "SGD at 0.01 reached the declared accuracy: for this model and budget the "
                     "ladder's middle rung trains.",
        "not supported": "SGD at 0.01 stayed below the declared accuracy: with batch norm and momentum "
                         "0.9, 0.01 can be too slow for a short budget; the rule was written for other "
                         "models and longer runs.",
        "inconclusive": "The accuracy at 0.01 was too close to the declared level to tell at this budget.",
    },
    "LR-8": {
        "supported": "Where the symptom showed, moving the LR 10x in the advised direction helped.",
        "not supported": "Where the symptom showed, the advised 10x move did not help by the margin.",
        "inconclusive": "The symptom did not show, or the effect was within seed noise: the advice "
                        "could not be tested at this budget.",
    },
    "LR-9": {
        "supported": "The LR whose update-to-weight ratio was nearest 1e-3 beat its neighbours.",
        "not supported": "The ratio nearest 1e-3 did not mark the best LR: with batch norm the weights' "
                         "scale is free, so the ratio depends on weight decay and the schedule as much "
                         "as on the LR; the 1e-3 figure is a course-notes rule of thumb.",
        "inconclusive": "The comparison was within seed noise at this budget.",
    },
}


def draw_range_test_run(ax, result: dict) -> None:
    """One range test, possibly still running (``lr_range_test``'s result so far), with the
    suggestions once there are enough steps."""
    if len(result["lr"]) < 2:
        ax.set(title="range test starting ...")
        return
    sugg = {"run": suggest_lrs(result)} if len(result["lr"]) >= 13 else None
    draw_range_test(ax, {"run": result}, suggestions=sugg)
    ax.set_title(f"{len(result['lr'])} steps ({result['ended']})")


def range_test_png(result: dict, title: str = "") -> bytes:
    """:func:`draw_range_test_run` as PNG bytes, for the widget panel."""
    return render_png(draw_range_test_run, result, title, size=(7, 4))


def draw_range_test(ax, results: dict, suggestions: dict | None = None, ylim_factor: float = 1.6) -> None:
    """Smoothed loss against LR (log axis) for one or more range tests (``{label: result}``), with
    the suggested LRs marked (``{label: suggest_lrs(...)}``)."""
    tops, lows = [], []
    for i, (label, res) in enumerate(results.items()):
        line, = ax.plot(res["lr"], res["smoothed"], label=f"{label} (smoothed)")
        ax.plot(res["lr"], res["loss"], color=line.get_color(), alpha=0.2, lw=0.8)
        tops.append(res["smoothed"][min(10, len(res["smoothed"]) - 1)])
        lows.append(min(res["smoothed"]))
        s = (suggestions or {}).get(label)
        if s:
            ax.axvline(s["steepest"], color=line.get_color(), ls="--", lw=1,
                       label=f"{label} steepest {s['steepest']:.2g}")
            ax.axvline(s["min_div_10"], color=line.get_color(), ls=":", lw=1,
                       label=f"{label} min/10 {s['min_div_10']:.2g}")
    ax.set_xscale("log")
    ax.set_ylim(0.8 * min(lows), ylim_factor * max(tops))
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss", title="LR range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_update_ratios(ax, ratios_by_label: dict, target: float = 1e-3) -> None:
    """The median-over-layers update-to-weight ratio per step for several runs, on a log axis,
    with the 1e-3 rule of thumb drawn. ``ratios_by_label`` maps a label to :func:`update_ratios`."""
    for label, r in ratios_by_label.items():
        layers = np.array([v for k, v in r.items() if k != "steps"], float)
        if layers.size:
            ax.plot(r["steps"], np.nanmedian(layers, axis=0), label=label)
    ax.axhline(target, color="k", ls="--", lw=1, label=f"rule of thumb {target:g}")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="||ΔW|| / ||W|| (median over layers)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
