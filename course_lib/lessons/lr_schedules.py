"""Compare learning-rate schedules at the same epoch budget and peak LR (notebook 04).

A *recipe* is the set of ``fit`` keywords that names a schedule (``schedule``, ``lr``,
``warmup_epochs``, ``schedule_kw``); ``recipes`` builds the course's set, ``recipe_curve`` reads
the LR a recipe gives at every step from the scheduler itself, and ``run_recipe`` trains once
while keeping the best epoch's weights (early stopping, REG-2) and a snapshot at the end of every
warm-restart cycle (SGDR snapshot ensembles, SC-1); ``shared_fit_kw`` adds what every arm shares
when ``standard`` trains them with the course's baseline recipe. :func:`draw_lr_curves` and
:func:`draw_val_curves` draw on a given axes; :func:`render_result` and :func:`preview_png` render
them for the widget panel.
"""
from __future__ import annotations

import copy
import statistics

import numpy as np
import torch

from ..core import recipes as course_recipes, validation
from ..core.claims import spread
from ..core.schedules import lr_curve, restart_ends, snapshot_callback
from ..core.train import fit, predict_logits, raise_if_interrupted
from ..ui import plots
from ..ui.plots import render_png

ARMS = ("constant", "step", "plateau", "cosine", "cosine_restarts", "onecycle", "warmup_cosine",
        "cosine_small_lr")


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimisation steps in one epoch, as ``fit`` counts them (the last partial batch is dropped)."""
    if n_train < 1 or batch_size < 1:
        raise ValueError(f"n_train and batch_size must be at least 1, got {n_train} and {batch_size}")
    return n_train // batch_size if n_train >= batch_size else 1


def recipes(lr: float, epochs: int, spe: int, T_0_epochs: int = 2, T_mult: int = 1,
            warmup_epochs: float = 1.0, step_epochs: int | None = None, gamma: float = 0.1,
            plateau_patience: int = 1, plateau_factor: float = 0.2, small_lr_factor: float = 0.1) -> dict:
    """``fit`` keywords for every arm of the comparison (see ``ARMS``), all with peak LR ``lr``
    over ``epochs`` epochs of ``spe`` steps, except ``cosine_small_lr`` (peak ``lr *
    small_lr_factor``: the control for "a large LR, decayed later", LR-10).

    ``step`` divides the LR by 1/``gamma`` every ``step_epochs`` (default a third of the run);
    ``cosine_restarts`` restarts every ``T_0_epochs`` epochs, cycles growing ``T_mult``-fold;
    ``plateau`` multiplies the LR by ``plateau_factor`` after ``plateau_patience`` epochs without
    a lower validation loss; ``warmup_cosine`` ramps up linearly for ``warmup_epochs`` first.
    """
    if not lr > 0 or epochs < 1 or spe < 1:
        raise ValueError(f"lr, epochs and steps per epoch must be positive, got {lr}, {epochs}, {spe}")
    if not 1 <= T_0_epochs <= epochs:
        raise ValueError(f"the restart period T_0_epochs must be between 1 and epochs ({epochs}), got {T_0_epochs}")
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs must be in [0, epochs) = [0, {epochs}): warmup must end before the run "
                         f"does, got {warmup_epochs}")
    return {
        "constant": dict(schedule="constant", lr=lr),
        "step": dict(schedule="step", lr=lr,
                     schedule_kw=dict(step_epochs=step_epochs or max(epochs // 3, 1), gamma=gamma)),
        "plateau": dict(schedule="plateau", lr=lr,
                        schedule_kw=dict(patience=plateau_patience, factor=plateau_factor)),
        "cosine": dict(schedule="cosine", lr=lr),
        "cosine_restarts": dict(schedule="cosine_restarts", lr=lr,
                                schedule_kw=dict(T_0=T_0_epochs * spe, T_mult=T_mult)),
        "onecycle": dict(schedule="onecycle", lr=lr),
        "warmup_cosine": dict(schedule="cosine", lr=lr, warmup_epochs=warmup_epochs),
        "cosine_small_lr": dict(schedule="cosine", lr=lr * small_lr_factor),
    }


def recipe_curve(recipe: dict, epochs: int, spe: int) -> list[float]:
    """The LR at every step of a recipe, read from the scheduler (no training). ``plateau``
    depends on validation results, so its curve is flat at the peak until a run lowers it."""
    return lr_curve(recipe["schedule"], epochs * spe, recipe["lr"], steps_per_epoch=spe,
                    warmup_steps=round(recipe.get("warmup_epochs", 0) * spe), **recipe.get("schedule_kw", {}))


def best_epoch_callback(key: str = "val_acc"):
    """A ``fit`` callback that keeps a CPU copy of the weights of the epoch with the highest
    ``history["epoch"][key]`` (early stopping without stopping: REG-2 compares it with the last).

    Returns ``(callback, best)``; ``best`` is a dict that gets ``epoch``, ``value`` and
    ``state_dict`` (empty until the first epoch ends).
    """
    best = {}

    def callback(event, history, model):
        if event != "epoch":
            return
        value = history["epoch"][key][-1]
        if not best or value > best["value"]:
            best.update(epoch=history["epoch"]["epoch"][-1], value=value,
                        state_dict={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
    return callback, best


def shared_fit_kw(device: torch.device, baseline: bool = False) -> dict:
    """``fit`` keywords every schedule shares besides its own: none for the small CNN; with
    ``baseline=True`` the course's baseline recipe's (``recipes.BASELINE``: label smoothing, bf16
    where it is fast) without its one-cycle schedule, peak LR and batch size, which the comparison
    sets itself, and without its progressive resizing, which confounds a schedule comparison: a
    warm restart that lands where the images grow to full size anneals a whole cycle at full size
    (a 4-epoch run on 2026-12-04: SGDR +1.2 points over cosine with resizing, -0.3 without) while
    plain cosine reaches full size with its LR already low. Every arm gets the same keywords, so
    they stay paired."""
    return course_recipes.net_fit_kw(course_recipes.BASELINE, device) if baseline else {}


def run_recipe(model: torch.nn.Module, data: dict, recipe: dict, epochs: int, batch_size: int,
               seed: int = 0, callbacks=(), should_stop=None, progress: bool = False, **fit_kw) -> dict:
    """Train ``model`` once with ``recipe``; returns ``{"history", "model", "best", "snapshots"}``.

    ``best`` is from ``best_epoch_callback``; ``snapshots`` (restart schedules only) holds the
    weights at the end of every complete warm-restart cycle (``restart_ends``). ``fit_kw``
    (e.g. :func:`shared_fit_kw`'s) go to ``fit`` as they are.
    """
    spe = steps_per_epoch(len(data["train_y"]), batch_size)
    at = []
    if recipe["schedule"] == "cosine_restarts":
        kw = recipe["schedule_kw"]
        at = restart_ends(epochs * spe, kw["T_0"], kw.get("T_mult", 1),
                          warmup_steps=round(recipe.get("warmup_epochs", 0) * spe))
    snap_cb, snaps = snapshot_callback(at)
    best_cb, best = best_epoch_callback()
    history = fit(model, data, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
                  callbacks=[snap_cb, best_cb, *callbacks], should_stop=should_stop, **recipe, **fit_kw)
    raise_if_interrupted(history, "a schedule run")
    return {"history": history, "model": model, "best": best, "snapshots": snaps}


def top1_acc(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of logits or probabilities ``scores`` (N, C) against labels ``y``
    (``validation.accuracy`` takes class predictions instead)."""
    return validation.accuracy(scores.argmax(1), y)


@torch.no_grad()
def ensemble_probs(model: torch.nn.Module, states: list, x: torch.Tensor, mean, std) -> torch.Tensor:
    """Mean softmax probabilities of ``model`` loaded with each state dict in ``states``, on
    uint8 images ``x``. Works on a copy, so ``model`` keeps its own weights."""
    if not states:
        raise ValueError("ensemble_probs needs at least one state dict")
    m = copy.deepcopy(model)
    total = None
    for state in states:
        m.load_state_dict(state)
        p = predict_logits(m, x, mean, std).softmax(1)
        total = p if total is None else total + p
    return total / len(states)


def best_and_last_accuracy(run: dict, x: torch.Tensor, y: torch.Tensor, mean, std) -> dict:
    """Accuracy on (``x``, ``y``) of the last epoch's model and of the best epoch's weights
    (chosen on validation, so evaluate on held-out data: the test split)."""
    last = top1_acc(predict_logits(run["model"], x, mean, std), y)
    n_epochs = len(run["history"]["epoch"]["epoch"])
    if not run["best"] or run["best"]["epoch"] == n_epochs:
        return {"best_epoch": n_epochs, "best": last, "last": last}
    best = top1_acc(ensemble_probs(run["model"], [run["best"]["state_dict"]], x, mean, std), y)
    return {"best_epoch": run["best"]["epoch"], "best": best, "last": last}


def accuracy_table(finals: dict) -> list[str]:
    """Text table rows from ``{arm: {"final": [...], "best": [...], "best_epoch": [...]}}``:
    mean and seed-to-seed spread of the final and best validation accuracy."""
    rows = [f"{'schedule':16s} {'final val acc':>18s} {'best val acc':>18s}  best epoch per seed"]
    for arm, r in finals.items():
        f, b = [100 * v for v in r["final"]], [100 * v for v in r["best"]]
        rows.append(f"{arm:16s} {statistics.fmean(f):8.2f} ± {spread(f):5.2f} % "
                    f"{statistics.fmean(b):8.2f} ± {spread(b):5.2f} %  {r['best_epoch']}")
    return rows


def draw_lr_curves(ax, curves: dict, title: str = "schedules (from the schedulers)") -> None:
    """LR per step for every arm of ``curves`` ``{arm: [lr, ...]}``."""
    for arm, lrs in curves.items():
        ax.plot(lrs, label=arm)
    ax.set(xlabel="step", ylabel="learning rate", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_val_curves(ax, histories: dict) -> None:
    """Validation accuracy per epoch, mean over runs, for every arm of ``histories``
    ``{arm: [history, ...]}`` (arms without a finished epoch are left out)."""
    for arm, hs in histories.items():
        accs = [h["epoch"]["val_acc"] for h in hs if h["epoch"]["val_acc"]]
        if accs:
            n = min(len(a) for a in accs)
            ax.plot(range(1, n + 1), 100 * np.mean([a[:n] for a in accs], axis=0), "o-", label=arm)
    ax.set(xlabel="epoch", ylabel="val accuracy (%)", title="validation accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def widget_spec(lr: float, epochs: int, T_0_epochs: int, T_mult: int, warmup_epochs: float,
                plateau_patience: int, chosen=("constant", "cosine", "cosine_restarts")) -> dict:
    """The control-panel spec for notebook 04: one tick box per arm, then the schedule knobs,
    each with its allowed range (``widgets.validate`` refuses values outside it)."""
    spec = {arm: {"kind": "bool", "value": arm in chosen, "label": arm} for arm in ARMS}
    spec.update(
        lr={"kind": "float", "value": lr, "min": 1e-3, "max": 2.0, "label": "peak LR"},
        epochs={"kind": "int", "value": epochs, "min": 1, "max": 30, "label": "epochs"},
        T_0_epochs={"kind": "int", "value": T_0_epochs, "min": 1, "max": 30, "label": "restart every (epochs)"},
        T_mult={"kind": "int", "value": T_mult, "min": 1, "max": 4, "label": "cycle growth T_mult"},
        warmup_epochs={"kind": "float", "value": warmup_epochs, "min": 0.0, "max": 29.0, "label": "warmup (epochs)"},
        plateau_patience={"kind": "int", "value": plateau_patience, "min": 0, "max": 10, "label": "plateau patience"})
    return spec


def selected_recipes(params: dict, spe: int) -> dict:
    """The recipes of the arms ticked in ``params`` (a validated widget spec), in ``ARMS`` order.
    Raises ValueError (naming the allowed range) when the knobs do not fit the epoch budget."""
    knobs = {k: params[k] for k in ("T_0_epochs", "T_mult", "warmup_epochs", "plateau_patience")}
    every = recipes(params["lr"], params["epochs"], spe, **knobs)
    chosen = {arm: every[arm] for arm in ARMS if params.get(arm)}
    if not chosen:
        raise ValueError("tick at least one schedule")
    return chosen


def preview_png(params: dict, spe: int) -> bytes:
    """LR curves of the ticked arms (no training: drawn from the schedulers in milliseconds)."""
    chosen = selected_recipes(params, spe)
    curves = {arm: recipe_curve(r, params["epochs"], spe) for arm, r in chosen.items()}
    return render_png(draw_lr_curves, curves, size=(11, 3.6))


def run_selected(params: dict, data: dict, make_model, batch_size: int, seed: int, report, should_stop,
                 baseline: bool = False) -> dict:
    """Train the ticked arms one after the other (one seed) for the widget panel; calls
    ``report(result)`` after every epoch. ``result`` is ``{"curves", "histories", "stopped"}``.
    ``baseline``: train as the notebook's experiment does with the baseline recipe
    (:func:`shared_fit_kw`)."""
    spe = steps_per_epoch(len(data["train_y"]), batch_size)
    chosen = selected_recipes(params, spe)
    result = {"curves": {a: recipe_curve(r, params["epochs"], spe) for a, r in chosen.items()},
              "histories": {}, "stopped": None}
    for arm, recipe in chosen.items():
        def on_epoch(event, history, model, arm=arm):
            if event == "epoch":
                result["histories"][arm] = [history]
                report(result)
        run = run_recipe(make_model(), data, recipe, params["epochs"], batch_size, seed,
                         callbacks=[on_epoch], should_stop=should_stop,
                         **shared_fit_kw(data["train_x"].device, baseline))
        result["histories"][arm] = [run["history"]]
        if run["history"]["stopped"]:
            result["stopped"] = run["history"]["stopped"]
            break
    return result


def render_result(result: dict, title: str = "") -> bytes:
    """PNG of a ``run_selected`` result for the widget panel: LR curves and validation accuracy per arm."""
    return render_png([lambda ax, r: draw_lr_curves(ax, r["curves"]), lambda ax, r: draw_val_curves(ax, r["histories"])],
                      result, title, ncols=2, size=(11, 3.6))


def with_preview(panel, spec: dict, spe: int):
    """Put a live LR preview above a control panel: every change of an input redraws the
    ticked schedules at once (no training); bad values show their allowed range instead."""
    import ipywidgets as W

    from ..ui.widgets import validate
    preview, note = W.Image(format="png"), W.HTML()

    def update(_=None):
        params, errors = validate(spec, {k: w.value for k, w in panel.inputs.items()})
        try:
            if not errors:
                preview.value = preview_png(params, spe)
            note.value = "<span style='color:#cf222e'>" + "<br>".join(errors) + "</span>"
        except ValueError as exc:
            note.value = f"<span style='color:#cf222e'>{exc}</span>"
    for w in panel.inputs.values():
        w.observe(update, "value")
    update()
    box = W.VBox([preview, note, panel])
    box.preview, box.note, box.update = preview, note, update
    return box


def score_on_test(runs: dict, data: dict) -> dict:
    """Per arm, one dict per seed from :func:`best_and_last_accuracy` on the whole test split:
    ``last`` (the final model: the schedules' metric), ``best`` (the best validation epoch's
    weights: REG-2) and ``best_epoch``."""
    out = {}
    for arm, rs in runs.items():
        out[arm] = [best_and_last_accuracy(r, data["test_x"], data["test_y"], data["mean"], data["std"])
                    for r in rs]
    return out


def per_seed_mean(scores: dict, arms, key: str) -> list[float]:
    """For every seed, the mean of ``scores[arm][seed][key]`` over ``arms`` (one number per
    seed, so the seeds stay paired)."""
    n = min(len(scores[a]) for a in arms)
    return [statistics.fmean(scores[a][i][key] for a in arms) for i in range(n)]


def draw_paired(ax, arms: dict, ylabel: str, title: str) -> None:
    """Paired seeds of two or more arms ``{label: [value per seed]}`` (``plots.draw_paired``)."""
    plots.draw_paired(ax, arms, ylabel, title)


MEANINGS = {
    "SC-1": {
        "supported": "Warm restarts ended above both plain cosine and a constant LR on the test "
                     "split, by more than the margin, at the same peak LR and number of steps.",
        "not supported": "Warm restarts did not beat plain cosine (or a constant LR) by more than "
                         "the margin. SGDR's promise is good *anytime* performance and snapshots; "
                         "Loshchilov & Hutter report its final gains for wide ResNets trained for "
                         "hundreds of epochs, far beyond this budget, where a restart mostly "
                         "costs the last cycle's progress.",
        "inconclusive": "The paired differences straddle zero: at this budget the schedules "
                        "differ by less than the seed noise can resolve.",
    },
    "SC-2": {
        "supported": "Decaying the LR to zero (cosine) ended above a constant LR on the test split: "
                     "a decayed LR lets the weights settle instead of bouncing around a minimum.",
        "not supported": "Cosine did not end above a constant LR. With very short runs the model "
                         "is still far from any minimum, so settling buys nothing yet.",
        "inconclusive": "The difference could not be told from seed noise at this budget.",
    },
    "LR-10": {
        "supported": "Warmup helped and the large peak beat the ten times smaller one.",
        "not supported": "At least one part failed. Warmup matters where the peak LR is close to "
                         "unstable at the start (Goyal et al. used it for batch 8,192 at a "
                         "linearly scaled LR); at a moderate LR it only spends steps. A small peak "
                         "that wins means the large one is too large for this model and budget.",
        "inconclusive": "At least one part could not be told from seed noise.",
    },
    "LR-11": {
        "supported": "Reduce-on-plateau ended above a constant LR: lowering the LR when validation "
                     "stalls acted like a decay.",
        "not supported": "Reduce-on-plateau did not beat a constant LR: in a few epochs the "
                         "validation loss may never stall, so it never acts and *is* the constant "
                         "schedule (the printed LR per epoch shows what it did).",
        "inconclusive": "The difference could not be told from seed noise at this budget.",
    },
    "REG-2": {
        "supported": "The best validation epoch's weights scored higher on the test split than "
                     "the last epoch's: keeping the best epoch paid off.",
        "not supported": "The best epoch's weights did not score higher: with decaying schedules "
                         "the last epoch is usually the best, so early stopping has nothing to "
                         "rescue; it pays where training overfits or ends at a high LR.",
        "inconclusive": "The difference could not be told from seed noise.",
    },
}
