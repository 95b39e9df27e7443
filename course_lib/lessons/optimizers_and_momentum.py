"""Notebook 10's helpers: optimisers built with their decay made explicit, learning rates chosen
on the validation split only, paired-seed runs at the chosen rate (on the small CNN, or for
OPT-1 in ``standard`` on the course's baseline net, which trains to 75%), a net on which SGD gets
stuck (OPT-3), momentum at a matched effective step (MOM-1), the plots and the widget's run.

Every optimiser comes straight from ``torch.optim``; the point of :func:`build_optimizer` is that
no decay is ever implicit (``core.train.make_optimizer`` gives every optimiser a default L2 of
5e-4, which would confound an Adam comparison): Adam's ``weight_decay`` is *coupled* L2 (added
to the gradient, then divided by Adam's running RMS like the rest of it), AdamW's is *decoupled*
(the weights shrink by ``lr * weight_decay`` each step, outside the adaptive update).
"""
from __future__ import annotations

import math
import statistics

import torch
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from ..core import recipes
from ..core.experiment import metric
from ..core.models import small_cnn
from ..core.runs import choose_on_validation, reinitialize_, train_and_score
from ..core.train import evaluate, fit, raise_if_interrupted
from ..ui import plots

KINDS = ("sgd", "adam", "adamw", "rmsprop")


def build_optimizer(model: nn.Module, kind: str, lr: float, *, weight_decay: float,
                    momentum: float = 0.0) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimiser over ``model``'s trainable parameters, decay always explicit.

    ``kind``: "sgd" (heavy-ball momentum ``momentum``, no Nesterov), "adam" (``weight_decay`` is
    coupled L2, as ``torch.optim.Adam`` applies it), "adamw" (decoupled decay), "rmsprop"
    (``momentum`` passed on, 0 by default). Adam and AdamW keep PyTorch's defaults
    betas=(0.9, 0.999), eps=1e-8; momentum is refused for them (their beta1 is the momentum).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0 (0 for none), got {weight_decay!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if kind in ("adam", "adamw") and momentum:
        raise ValueError(f"{kind} has no momentum argument (beta1 plays its part): pass momentum=0")
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay)


def arms(momentum: float = 0.9, weight_decay: float = 0.0) -> dict:
    """The five compared optimisers: name -> ``(kind, momentum, weight_decay)``. The same decay
    value for every arm (0 by default: a comparison of optimisers, not of regularisers)."""
    return {"SGD": ("sgd", 0.0, weight_decay), "SGD+momentum": ("sgd", momentum, weight_decay),
            "Adam": ("adam", 0.0, weight_decay), "AdamW": ("adamw", 0.0, weight_decay),
            "RMSprop": ("rmsprop", 0.0, weight_decay)}


def train_run(model: nn.Module, data: dict, seed: int, kind: str, lr: float, *, weight_decay: float,
              momentum: float = 0.0, test: bool = False, **fit_kw) -> dict:
    """Re-initialise ``model`` from ``seed``, train it with ``fit`` and this optimiser, and
    summarise: ``val_acc``, ``test_acc`` (only with ``test=True``; NaN otherwise, and the test
    split is then never read), per-epoch ``train_loss`` and ``val_acc`` curves, the per-step
    ``step_loss``, training ``seconds`` and ``diverged``. ``fit_kw`` go to ``fit`` (epochs,
    batch_size, schedule, aug, progress, callbacks, should_stop)."""
    opt = build_optimizer(model, kind, lr, weight_decay=weight_decay, momentum=momentum)
    res = train_and_score(model, data, seed=seed, opt=opt, **fit_kw)
    test_acc = math.nan
    if test:
        test_acc = evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]
    e = res["history"]["epoch"]
    return {"seed": seed, "kind": kind, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
            "val_acc": res["val_acc"], "test_acc": test_acc, "train_loss": list(e["train_loss"]),
            "val_curve": list(e["val_acc"]), "step_loss": [float(v) for v in res["history"]["step"]["loss"]],
            "seconds": sum(res["train_seconds"]), "diverged": res["diverged"]}


def select_lr(model: nn.Module, data: dict, kind: str, grid, seed: int, *, weight_decay: float,
              momentum: float = 0.0, **fit_kw) -> dict:
    """Train once per LR in ``grid`` (seed ``seed``) and keep the LR with the highest
    **validation** accuracy (the first on a tie; a diverged run scores what it scores, about
    chance). The test split is never read here. Returns ``{"lr", "val_acc": {lr: acc},
    "runs": {lr: summary}}``."""
    return choose_on_validation(
        lambda lr, s: train_run(model, data, s, kind, lr, weight_decay=weight_decay, momentum=momentum,
                                test=False, **fit_kw), grid, seed)


def repeat(model: nn.Module, data: dict, kind: str, lr: float, seeds, *, weight_decay: float,
           momentum: float = 0.0, **fit_kw) -> list[dict]:
    """One :func:`train_run` per seed at a fixed setting, scored on the test split."""
    return [train_run(model, data, s, kind, lr, weight_decay=weight_decay, momentum=momentum,
                      test=True, **fit_kw) for s in seeds]


def tune_and_repeat(model: nn.Module, data: dict, arm_table: dict, grids: dict, select_seed: int,
                    seeds, bar: bool = True, **fit_kw) -> dict:
    """For every arm: choose its LR from ``grids[name]`` on validation (seed ``select_seed``),
    then train it once per seed in ``seeds`` at that LR (``bar``: a progress bar over the arms;
    ``fit``'s own bar is ``progress`` in ``fit_kw``). Returns name -> ``{"selection", "runs"}``."""
    missing = set(arm_table) - set(grids)
    if missing:
        raise ValueError(f"no LR grid for {sorted(missing)}: give lr_grids an entry for each optimiser")
    out = {}
    for name in tqdm(arm_table, desc="optimisers", disable=not bar):
        kind, mom, wd = arm_table[name]
        sel = select_lr(model, data, kind, grids[name], select_seed, weight_decay=wd, momentum=mom, **fit_kw)
        runs = repeat(model, data, kind, sel["lr"], seeds, weight_decay=wd, momentum=mom, **fit_kw)
        out[name] = {"selection": sel, "runs": runs}
    return out


def tune_on_baseline_net(data: dict, arm_table: dict, grids: dict, select_seed: int, seeds,
                         recipe: dict = recipes.BASELINE, bar: bool = True, **fit_kw) -> dict:
    """:func:`tune_and_repeat` on the course's baseline net, a network that trains to 75% in a
    few epochs on a CPU, for a claim about trained networks (OPT-1): only the arms named in
    ``grids``, each tuned on validation and repeated per seed as in section 1.

    The net is ``baseline_net`` at the recipe's width with the recipe's label smoothing and amp
    (``recipes.net_fit_kw``; the same for every arm). Its stem keeps a random start (no
    whitening) so that each seed re-initialises it like every other run here; the optimiser,
    LR, schedule and batch size stay the caller's (``fit_kw``).
    """
    unknown = sorted(set(grids) - set(arm_table))
    if unknown:
        raise ValueError(f"no optimiser named {unknown}: grids' names must be among {sorted(arm_table)}")
    model, kw = recipes.comparison_net(data, recipe, **fit_kw)
    arms_here = {name: arm_table[name] for name in grids}
    return tune_and_repeat(model, data, arms_here, grids, select_seed, seeds, bar=bar, **kw)


def repeat_on_baseline_net(data: dict, kind: str, lr: float, seeds, recipe: dict = recipes.BASELINE, *,
                           weight_decay: float, momentum: float = 0.0, **fit_kw) -> list[dict]:
    """:func:`repeat` on the net and with the ``fit`` keywords :func:`tune_on_baseline_net`
    uses, so that its runs pair seed by seed with that function's (OPT-2: Adam at its default
    LR beside Adam tuned on the baseline net)."""
    model, kw = recipes.comparison_net(data, recipe, **fit_kw)
    return repeat(model, data, kind, lr, seeds, weight_decay=weight_decay, momentum=momentum, **kw)


def values(runs: list[dict], key: str) -> list[float]:
    """One number per seed from a list of run summaries (e.g. ``"test_acc"``)."""
    return [float(r[key]) for r in runs]


def summary_metrics(results: dict, prefix: str = "") -> dict:
    """The numbers the nightly run compares, from :func:`tune_and_repeat`'s results: per
    optimiser its mean test accuracy over the seeds (``{prefix}test_acc_{name}``) and its chosen
    LR (``{prefix}chosen_lr_{name}``), names with "+" and spaces as "_" (``SGD_momentum``)."""
    out = {}
    for name, r in results.items():
        key = name.replace("+", "_").replace(" ", "_")
        out[f"{prefix}test_acc_{key}"] = metric(statistics.fmean(values(r["runs"], "test_acc")))
        out[f"{prefix}chosen_lr_{key}"] = r["selection"]["lr"]
    return out


def loss_at(runs: list[dict], epoch: int) -> list[float]:
    """Each run's training loss at the end of ``epoch`` (1-based; NaN when it diverged before)."""
    return [r["train_loss"][epoch - 1] if len(r["train_loss"]) >= epoch and not r["diverged"] else math.nan
            for r in runs]


def epochs_to(curve, target: float) -> float:
    """The first epoch (1-based) whose training loss is at most ``target``; inf if none was."""
    for i, v in enumerate(curve, start=1):
        if v <= target:
            return float(i)
    return math.inf


def seconds_to(run: dict, target: float) -> float:
    """Training seconds until the loss first reached ``target`` (epochs x seconds per epoch)."""
    k = epochs_to(run["train_loss"], target)
    n = max(len(run["train_loss"]), 1)
    return k * run["seconds"] / n if math.isfinite(k) else math.inf


def summary_table(results: dict, target: float) -> str:
    """A plain-text table: chosen LR, validation accuracy per LR, and over the seeds the mean
    test accuracy, final training loss and epochs / seconds to reach ``target``."""
    lines = [f"{'optimiser':14s} {'chosen lr':>9s}  {'val acc per lr in the grid':34s} "
             f"{'test acc':>8s} {'final loss':>10s} {'epochs to ' + format(target, 'g'):>13s} {'s to it':>8s}"]
    for name, r in results.items():
        sel, runs = r["selection"], r["runs"]
        grid = ", ".join(f"{lr:g}: {a:.1%}" for lr, a in sel["val_acc"].items())
        ep = [epochs_to(x["train_loss"], target) for x in runs]
        sec = [seconds_to(x, target) for x in runs]
        lines.append(f"{name:14s} {sel['lr']:9.3g}  {grid:34s} {statistics.fmean(values(runs, 'test_acc')):8.1%} "
                     f"{statistics.fmean(x['train_loss'][-1] for x in runs):10.3f} "
                     f"{statistics.fmean(ep):13.2f} {statistics.fmean(sec):8.1f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- OPT-4: decay x LR
def decay_grid(model: nn.Module, data: dict, kind: str, lrs, decays, seed: int, **fit_kw) -> dict:
    """Validation accuracy for every (LR, decay) pair, one run each (seed ``seed``; the test split
    is not read). Returns ``{"lrs", "decays", "val_acc": [[acc per decay] per lr], "best",
    "best_decay_per_lr"}``; ``best`` is the (lr, decay) with the highest validation accuracy."""
    lrs, decays = list(lrs), list(decays)
    acc = [[train_run(model, data, seed, kind, lr, weight_decay=wd, test=False, **fit_kw)["val_acc"]
            for wd in decays] for lr in lrs]
    cells = [(i, j) for i in range(len(lrs)) for j in range(len(decays))]
    i, j = max(cells, key=lambda c: acc[c[0]][c[1]])  # max keeps the first of equal cells
    per_lr = {}
    for lr, row in zip(lrs, acc):
        per_lr[lr] = decays[row.index(max(row))]
    return {"lrs": lrs, "decays": decays, "val_acc": acc, "best": (lrs[i], decays[j]),
            "best_decay_per_lr": per_lr}


def draw_heatmap(ax, grid: dict, title: str) -> None:
    """Validation accuracy over decay (columns) x LR (rows), the best cell framed."""
    acc = [[100 * a for a in row] for row in grid["val_acc"]]
    im = ax.imshow(acc, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(grid["decays"])), [f"{d:g}" for d in grid["decays"]])
    ax.set_yticks(range(len(grid["lrs"])), [f"{lr:g}" for lr in grid["lrs"]])
    for i, row in enumerate(acc):
        for j, a in enumerate(row):
            ax.text(j, i, f"{a:.1f}", ha="center", va="center", color="w", fontsize=9)
    bi, bj = grid["lrs"].index(grid["best"][0]), grid["decays"].index(grid["best"][1])
    ax.add_patch(_frame(bj, bi))
    ax.set(xlabel="weight decay", ylabel="learning rate", title=title)
    ax.figure.colorbar(im, ax=ax, label="validation accuracy (%)")


def _frame(x: float, y: float):
    from matplotlib.patches import Rectangle
    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)


# ----------------------------------------------------------------------------- OPT-3: stuck SGD
def deep_plain_net(widths=(16, 32, 64), convs_per_block: int = 3) -> nn.Sequential:
    """A deeper plain net where SGD tends to stall: no batch norm, ``convs_per_block`` convs per
    block, Xavier init (too small for ReLU: the signal shrinks layer by layer) and a small last
    layer, so the gradients reaching the early layers are tiny."""
    return small_cnn(widths=widths, convs_per_block=convs_per_block, batch_norm=False, init="xavier")


def stuck_then_switch(data: dict, seeds, widths, stuck_epochs: int, after_epochs: int, stuck_lr: float,
                      better_lr: float, adam_lr: float, momentum: float = 0.9, progress: bool = True,
                      **fit_kw) -> dict:
    """OPT-3: per seed, train :func:`deep_plain_net` with SGD at ``stuck_lr`` for
    ``stuck_epochs``, then from those same weights three ways for ``after_epochs``: keep SGD
    as it was, SGD at ``better_lr``, or switch to Adam at ``adam_lr`` (no decay in any arm).
    Returns ``{"stuck": [curve per seed], arm: [curve per seed]}`` of per-epoch training losses
    (validation is not evaluated: the question is whether training moves)."""
    fit_kw = {"schedule": "constant", "evaluate_val": False, "progress": False, **fit_kw}
    plan = {"keep SGD": ("sgd", stuck_lr, momentum), "SGD, higher lr": ("sgd", better_lr, momentum),
            "switch to Adam": ("adam", adam_lr, 0.0)}
    out = {"stuck": [], **{name: [] for name in plan}}
    model = deep_plain_net(widths).to(data["train_x"].device)
    for seed in tqdm(list(seeds), desc="seeds", disable=not progress):
        reinitialize_(model, seed, init="xavier")
        opt = build_optimizer(model, "sgd", stuck_lr, weight_decay=0.0, momentum=momentum)
        hist = raise_if_interrupted(fit(model, data, epochs=stuck_epochs, seed=seed, opt=opt, **fit_kw))
        out["stuck"].append(hist["epoch"]["train_loss"])
        start = {k: v.clone() for k, v in model.state_dict().items()}
        for name, (kind, lr, mom) in plan.items():
            model.load_state_dict(start)
            opt = build_optimizer(model, kind, lr, weight_decay=0.0, momentum=mom)
            hist = raise_if_interrupted(fit(model, data, epochs=after_epochs, seed=seed + 1000, opt=opt, **fit_kw))
            out[name].append(hist["epoch"]["train_loss"])
    return out


# ----------------------------------------------------------------------------- MOM-1
def matched_lrs(effective_lr: float, momenta) -> dict:
    """The LR for each momentum so that ``lr / (1 - momentum)`` (the step size a constant gradient
    reaches under heavy-ball momentum) equals ``effective_lr``."""
    for m in momenta:
        if not 0 <= m < 1:
            raise ValueError(f"momenta must be in [0, 1), got {m!r}")
    return {m: effective_lr * (1 - m) for m in momenta}


# ----------------------------------------------------------------------------- plots
def draw_loss_curves(ax, groups: dict, title: str = "") -> None:
    """Per-epoch training loss (log scale) of every seed, one colour per group name."""
    for k, (name, runs) in enumerate(groups.items()):
        for i, r in enumerate(runs):
            curve = r["train_loss"] if isinstance(r, dict) else r
            ax.plot(range(1, len(curve) + 1), curve, "o-", color=f"C{k}", alpha=0.7, ms=3,
                    label=name if i == 0 else None)
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="training loss (cross-entropy, log scale)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def draw_seed_points(ax, groups: dict, key: str = "test_acc", ylabel: str = "test accuracy (%)",
                     title: str = "") -> None:
    """One column per group (``label -> runs``): each run's ``key`` a point in percent, the mean
    a bar, the y-axis fitted to the points (the spread stays visible)."""
    plots.seed_points(ax, {g: values(runs, key) for g, runs in groups.items()}, ylabel, title,
                      scale=100, zoom=True)


def draw_lr_grid(ax, results: dict) -> None:
    """Validation accuracy of every selection run against its LR (log scale), one line per
    optimiser, the chosen LR circled: how much the LR matters next to the optimiser (OPT-5)."""
    for k, (name, r) in enumerate(results.items()):
        sel = r["selection"]
        lrs = list(sel["val_acc"])
        ax.plot(lrs, [100 * sel["val_acc"][lr] for lr in lrs], "o-", color=f"C{k}", label=name)
        ax.plot([sel["lr"]], [100 * sel["val_acc"][sel["lr"]]], "o", ms=12, mfc="none", color=f"C{k}")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (log scale)", ylabel="validation accuracy (%)",
           title="the LR grids (selection seed): circled = chosen")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_speed_vs_accuracy(ax, results: dict, epoch: int = 1) -> None:
    """Each seed as a point: training loss after ``epoch`` (speed, left is faster) against test
    accuracy (generalisation, up is better)."""
    for k, (name, r) in enumerate(results.items()):
        x = loss_at(r["runs"], epoch)
        y = [100 * v for v in values(r["runs"], "test_acc")]
        ax.plot(x, y, "o", color=f"C{k}", label=name)
    ax.set(xlabel=f"training loss after epoch {epoch} (lower = faster)", ylabel="test accuracy (%)",
           title="speed against generalisation, one point per seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


# ----------------------------------------------------------------------------- the widget
def run_for_panel(params: dict, data: dict, report, should_stop, model: nn.Module, reference: dict,
                  **fit_kw) -> dict:
    """The widget's experiment: one optimiser from the panel's values (``optimizer``, ``lr``,
    ``momentum``, ``weight_decay``, ``epochs``) trained on ``model`` (re-initialised, seed 0).
    Returns the ``fit`` history with the notebook's tuned curves under ``"reference"``
    (name -> per-step losses of seed 0) for :func:`panel_png` to draw beside it."""
    from ..ui.widgets import history_reporter
    kind = params["optimizer"]
    mom = params["momentum"] if kind in ("sgd", "rmsprop") else 0.0
    reinitialize_(model, 0)
    opt = build_optimizer(model, kind, params["lr"], weight_decay=params["weight_decay"], momentum=mom)
    hist = fit(model, data, epochs=params["epochs"], seed=0, opt=opt, should_stop=should_stop,
               callbacks=[history_reporter(report, every_steps=10)], progress=False, **fit_kw)
    hist["reference"] = reference
    return hist


def panel_png(history: dict, title: str = "") -> bytes:
    """The panel's picture: this run's training loss per step (log scale) over the notebook's
    tuned optimisers (grey), and its validation accuracy per epoch."""
    fig = Figure(figsize=(11, 3.6))
    ax, ax2 = fig.subplots(1, 2)
    for k, (name, curve) in enumerate((history.get("reference") or {}).items()):
        ax.plot(curve, color=f"C{k}", alpha=0.35, lw=1, label=f"{name} (tuned)")
    ax.plot(history["step"]["loss"], color="k", lw=1.5, label="your run")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="training loss (log scale)", title="training loss per step")
    ax.legend(fontsize=7)
    e = history["epoch"]
    ax2.plot(e["epoch"], [100 * a for a in e["val_acc"]], "o-", color="k")
    ax2.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    return plots.finish_png(fig, title)


# ----------------------------------------------------------------------------- takeaways
MEANINGS = {
    "OPT-1": {
        "supported": "Adam fell faster early and still ended below tuned SGD with momentum on test "
                     "accuracy: the pattern Wilson et al. report, here already after a short run.",
        "not supported": "At least one half failed outright (the parts above say which). Adam not "
                         "faster early: at tuned LRs SGD with momentum can fall as fast, and 'faster' "
                         "depends on the LR each won. Adam generalising as well as SGD with momentum: in "
                         "a few epochs the gap Wilson et al. saw after hundreds may not have opened yet. "
                         "A claim with two halves fails when either does; read them apart.",
        "inconclusive": "The seed noise of short runs on a small subset hides the effect either way; "
                        "the published gap needs long training on the full set (the `full` profile)."},
    "OPT-2": {
        "supported": "Adam at lr 0.001 came within the margin of Adam at its tuned LR: the defaults "
                     "were good enough here.",
        "not supported": "Adam's default LR lost more than the margin against the tuned one: even Adam's "
                         "LR needs tuning for this model and budget (short runs favour larger LRs).",
        "inconclusive": "The difference between default and tuned LR is within the seed noise but not "
                        "shown to be small; more seeds would settle it."},
    "OPT-3": {
        "supported": "Switching to Adam moved the loss off the plateau within one epoch, more than SGD "
                     "did even at a higher LR: Adam's per-weight rescaling compensates tiny gradients.",
        "not supported": "Switching to Adam did not beat SGD at a better LR (or did not move at all): the "
                         "stall was a matter of step size that a higher SGD LR fixes too, or too deep a "
                         "hole for one epoch; the real fix is usually the init or normalisation.",
        "inconclusive": "The first epoch after the switch was too short, or the seeds too few, to tell "
                        "the arms apart."},
    "OPT-4": {
        "supported": "AdamW at its best decay beat Adam + L2 at its best: decoupling the decay helped, as "
                     "Loshchilov & Hutter report.",
        "not supported": "Adam + L2 did as well as (or better than) AdamW at their best cells. In a few "
                         "epochs weight decay has almost nothing to regularise, so how it is applied "
                         "barely matters; the paper's effect shows over long training.",
        "inconclusive": "The two best cells cannot be told apart at this budget: decay matters little in "
                        "short runs, and one seed per grid cell makes the choice of cell noisy."},
    "OPT-5": {
        "supported": "Moving one optimiser across its LR grid changed validation accuracy more than "
                     "switching between tuned optimisers: tune the LR before changing the optimiser.",
        "not supported": "The tuned optimisers differed more than one optimiser across its grid: the "
                         "choice mattered here (or the grid was too narrow to show the LR's effect).",
        "inconclusive": "With 3 to 5 values per side, the F interval for a ratio of spreads is wide; a "
                        "wider grid or more optimisers would be needed."},
    "MOM-1": {
        "supported": "Momentum 0.9 beat no momentum even at a matched effective step, and raising the "
                     "momentum at a too-low LR got the loss moving.",
        "not supported": "A part failed: most likely momentum 0.9 was no better than plain SGD at the same "
                         "effective step, which is what theory predicts for small LRs (momentum mostly "
                         "rescales the step). Raising the momentum at a low LR helps because it raises "
                         "the effective step, as raising the LR would.",
        "inconclusive": "The runs cannot tell momentum's effect from seed noise at this budget."},
}
