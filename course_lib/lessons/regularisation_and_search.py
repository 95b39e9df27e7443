"""Notebook 15's helpers: explicit L1/L2 penalties, paired-seed runs that keep their train and
validation curves, the over-/underfitting reading rule (DIAG-1), the three search strategies
(grid, jittered grid, random: HP-1), one-at-a-time against joint tuning (HP-2), the rank
correlation of short and long runs (HP-3), the plots and the widget's run.

The searches draw their trials with scikit-learn (``ParameterGrid``, ``ParameterSampler`` with
``scipy.stats.loguniform``); only the jitter is written here, because no installed library
jitters a grid (Optuna is not installed and would be a heavy dependency for two samplers).
"""
from __future__ import annotations

import math
import statistics

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from scipy import stats
from sklearn.model_selection import ParameterGrid, ParameterSampler
from torch import nn
from tqdm.auto import tqdm

from ..core.data import head
from ..core.models import small_cnn
from ..core.runs import choose_on_validation, reinitialize_
from ..core.train import NonFiniteLossError, evaluate, fit, raise_if_interrupted
from ..ui import plots

PENALTIES = ("none", "l1", "l2")
LOSSES = ("cross-entropy", "mse", "hinge")


# ----------------------------------------------------------------------------- models, penalties
def net(width: int, **kw) -> nn.Sequential:
    """The capacity knob: ``small_cnn`` with channel widths (w, 2w, 4w) and a head of 4w units."""
    if not (isinstance(width, int) and width >= 1):
        raise ValueError(f"width must be a whole number >= 1, got {width!r}")
    return small_cnn(widths=(width, 2 * width, 4 * width), hidden=4 * width, **kw)


def penalised_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weights a penalty applies to: conv and linear weights (not biases, not batch norm)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def penalty(model: nn.Module, kind: str, strength: float) -> torch.Tensor:
    """The regularisation loss: ``strength * sum |w|`` (L1) or ``strength * sum w**2`` (L2) over
    :func:`penalised_weights`; zero for "none". With plain SGD the L2 form equals
    ``weight_decay = 2 * strength``."""
    if kind not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {kind!r}")
    if not (strength >= 0 and math.isfinite(strength)):
        raise ValueError(f"penalty strength must be a finite number >= 0, got {strength!r}")
    ws = penalised_weights(model)
    if kind == "none" or strength == 0:
        return torch.zeros((), device=ws[0].device)
    total = sum(w.abs().sum() if kind == "l1" else w.pow(2).sum() for w in ws)
    return strength * total


def data_loss(kind: str):
    """The classification loss ``f(logits, y)``: cross-entropy, MSE between the logits and the
    one-hot targets (as many classes as logits), or the multi-class hinge
    (``nn.MultiMarginLoss``, margin 1)."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    if kind == "cross-entropy":
        return F.cross_entropy
    if kind == "hinge":
        return nn.MultiMarginLoss()

    def mse(logits, y):
        return F.mse_loss(logits, F.one_hot(y, logits.shape[1]).to(logits.dtype))
    return mse


def sparsity(model: nn.Module, threshold: float) -> float:
    """The share of :func:`penalised_weights` with ``|w| < threshold`` (near zero)."""
    ws = torch.cat([w.detach().flatten() for w in penalised_weights(model)])
    return float((ws.abs() < threshold).float().mean())


# ----------------------------------------------------------------------------- one run
def train_run(model: nn.Module, data: dict, seed: int, lr: float, *, reg: str = "none",
              strength: float = 0.0, weight_decay: float = 0.0, loss: str = "cross-entropy",
              momentum: float = 0.9, test: bool = True, sparsity_threshold: float = 1e-3,
              **fit_kw) -> dict:
    """Re-initialise ``model`` from ``seed`` and train it with SGD (``momentum``, decay
    ``weight_decay``) on ``loss`` plus the penalty ``reg``/``strength``; then score it in eval
    mode. Returns final ``train_loss``/``train_acc`` (eval mode, the training images, no
    augmentation, cross-entropy), ``val_loss``/``val_acc``, ``test_acc`` (NaN unless ``test``),
    per-epoch ``curves`` (fit's running training loss, validation loss and accuracy), ``gap``
    (train minus validation accuracy), the final ``penalty`` and its ``penalty_share`` of the
    objective (penalty / (penalty + training cross-entropy)), ``sparsity`` (share of weights
    under ``sparsity_threshold``) and ``diverged`` (a NaN/Inf stopped the run; it is scored as
    it stands)."""
    reinitialize_(model, seed)
    base = data_loss(loss)

    def objective(logits, y):
        return base(logits, y) + penalty(model, reg, strength)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    try:
        hist, diverged = fit(model, data, seed=seed, opt=opt, loss_fn=objective, **fit_kw), False
        raise_if_interrupted(hist, "a comparison run")
    except NonFiniteLossError as err:  # a search is meant to reach settings that blow up
        hist, diverged = err.history, True
    args = (data["mean"], data["std"])
    tr = evaluate(model, data["train_x"], data["train_y"], *args)
    va = evaluate(model, data["val_x"], data["val_y"], *args)
    te = evaluate(model, data["test_x"], data["test_y"], *args)["acc"] if test else math.nan
    with torch.no_grad():
        pen = float(penalty(model, reg, strength))
    e = hist["epoch"]
    return {"seed": seed, "lr": lr, "reg": reg, "strength": strength, "weight_decay": weight_decay,
            "loss": loss, "train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"],
            "val_acc": va["acc"], "test_acc": te, "gap": tr["acc"] - va["acc"], "penalty": pen,
            "penalty_share": pen / (pen + tr["loss"]) if pen + tr["loss"] > 0 else 0.0,
            "sparsity": sparsity(model, sparsity_threshold),
            "curves": {"train_loss": list(e["train_loss"]), "val_loss": list(e["val_loss"]),
                       "val_acc": list(e["val_acc"])},
            "diverged": diverged}


def repeat(model: nn.Module, data: dict, seeds, lr: float, **kw) -> list[dict]:
    """One :func:`train_run` per seed at a fixed setting (paired: seed i is the same init and
    batch order in every arm of the same architecture)."""
    return [train_run(model, data, s, lr, **kw) for s in seeds]


def values(runs: list[dict], key: str) -> list[float]:
    """One number per run (e.g. ``"test_acc"``)."""
    return [float(r[key]) for r in runs]


def select_lr(model: nn.Module, data: dict, grid, seed: int, **kw) -> dict:
    """Train once per LR in ``grid`` and keep the best on **validation** (first on a tie); the
    test split is not read. Returns ``{"lr", "val_acc": {lr: acc}}`` (a one-LR grid is not
    trained: its score is NaN)."""
    sel = choose_on_validation(lambda lr, s: train_run(model, data, s, lr, test=False, **kw), grid, seed,
                               train_single=False)
    return {"lr": sel["lr"], "val_acc": sel["val_acc"]}


# ----------------------------------------------------------------------------- DIAG-1
def read_fit(train_loss: float, val_loss: float, ratio: float) -> str:
    """The rule of thumb: "overfitting" when the validation loss is at least ``ratio`` times the
    training loss (document C: 0.8 against 2.0 is overfitting, 0.8 against 0.9 is not),
    "underfitting" when the training loss is above the validation loss, else "fine"."""
    if not ratio > 1:
        raise ValueError(f"ratio must be > 1 (validation loss / training loss), got {ratio!r}")
    if val_loss >= ratio * train_loss:
        return "overfitting"
    return "underfitting" if train_loss > val_loss else "fine"


def val_loss_turned_up(val_curve, rise: float) -> bool:
    """The textbook sign of overfitting, read from the curve itself: the last validation loss is
    more than ``rise`` (nats) above the lowest one of the run."""
    curve = [v for v in val_curve if math.isfinite(v)]
    return bool(curve) and curve[-1] - min(curve) > rise


def diagnose(runs: list[dict], ratio: float, rise: float) -> dict:
    """For every run: the rule's reading from its final train/val losses against the curve's
    own sign (:func:`val_loss_turned_up`). Returns the ``rows``, the ``agreement`` share on
    "overfitting or not", and how many runs the rule calls underfitting."""
    rows = []
    for r in runs:
        reading = read_fit(r["train_loss"], r["val_loss"], ratio)
        turned = val_loss_turned_up(r["curves"]["val_loss"], rise)
        rows.append({"name": r.get("name", ""), "train_loss": r["train_loss"], "val_loss": r["val_loss"],
                     "reading": reading, "val_loss_turned_up": turned,
                     "agree": (reading == "overfitting") == turned})
    agree = statistics.fmean(float(x["agree"]) for x in rows) if rows else math.nan
    return {"rows": rows, "agreement": agree,
            "underfitting": sum(x["reading"] == "underfitting" for x in rows)}


# ----------------------------------------------------------------------------- HP-1: searches
def log_axes(ranges: dict, points: int) -> dict:
    """``points`` log-spaced values per hyperparameter over ``ranges`` (name -> (low, high))."""
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points!r}")
    out = {}
    for name, (low, high) in ranges.items():
        if not 0 < low <= high:
            raise ValueError(f"range of {name} must satisfy 0 < low <= high (log scale), got {(low, high)}")
        out[name] = list(np.geomspace(low, high, points)) if points > 1 else [math.sqrt(low * high)]
    return out


def grid_trials(ranges: dict, points: int) -> list[dict]:
    """A log-spaced grid, ``points`` values per hyperparameter (``ParameterGrid``)."""
    return [{k: float(v) for k, v in p.items()} for p in ParameterGrid(log_axes(ranges, points))]


def jittered_trials(ranges: dict, points: int, seed: int, jitter: float = 0.5) -> list[dict]:
    """The grid of :func:`grid_trials`, each value moved by a uniform random factor of up to
    ``jitter`` grid steps in log space (values on the edge of a range move inwards only, so
    every trial stays in the range and no two trials share a value)."""
    if not 0 <= jitter <= 0.5:
        raise ValueError(f"jitter must be in [0, 0.5] grid steps (0.5 keeps neighbours apart), got {jitter!r}")
    rng = np.random.default_rng(seed)
    out = []
    for p in grid_trials(ranges, points):
        moved = {}
        for name, v in sorted(p.items()):
            low, high = ranges[name]
            step = (math.log(high) - math.log(low)) / max(points - 1, 1)
            room_down = (math.log(v) - math.log(low)) / step if step else 0.0
            room_up = (math.log(high) - math.log(v)) / step if step else 0.0
            shift = rng.uniform(-min(jitter, room_down), min(jitter, room_up))
            moved[name] = float(math.exp(math.log(v) + shift * step))
        out.append(moved)
    return out


def random_trials(ranges: dict, n: int, seed: int) -> list[dict]:
    """``n`` trials drawn log-uniformly over ``ranges`` (``ParameterSampler`` with
    ``scipy.stats.loguniform``)."""
    dists = {name: stats.loguniform(low, high) for name, (low, high) in ranges.items()}
    return [{k: float(v) for k, v in p.items()} for p in ParameterSampler(dists, n, random_state=seed)]


def search(model: nn.Module, data: dict, trials: list[dict], seed: int, short_epoch: int,
           bar: bool = True, **kw) -> list[dict]:
    """Train one run per trial (``{"lr", "weight_decay"}``; seed ``seed``; validation only) and
    keep its validation accuracy after ``short_epoch`` epochs and at the end. With a constant
    LR the first ``short_epoch`` epochs are exactly a short run of the same setting (HP-3)."""
    out = []
    for t in tqdm(trials, desc="trials", disable=not bar, leave=False):
        r = train_run(model, data, seed, t["lr"], weight_decay=t["weight_decay"], test=False, **kw)
        curve = r["curves"]["val_acc"]
        out.append({**t, "val_acc": r["val_acc"],
                    "short_acc": curve[min(short_epoch, len(curve)) - 1] if curve else math.nan})
    return out


def best(trials: list[dict], key: str = "val_acc") -> dict:
    """The trial with the highest ``key`` (the first on a tie)."""
    return max(trials, key=lambda t: t[key])


def edge_retest(trials: list[dict], ranges: dict, points: int) -> list[dict]:
    """When the grid's best trial sits on the edge of a range, the settings one grid step
    further out along each such edge (the "re-test around an optimum on the edge" of HP-1).
    Empty when the best is inside the grid."""
    top, out = best(trials), []
    for name, (low, high) in ranges.items():
        step = (high / low) ** (1 / max(points - 1, 1))
        if math.isclose(top[name], low, rel_tol=1e-6):
            out.append({**top, name: top[name] / step})
        elif math.isclose(top[name], high, rel_tol=1e-6):
            out.append({**top, name: top[name] * step})
    return [{k: v for k, v in t.items() if k in ranges} for t in out]


def one_at_a_time(trials: list[dict], start_decay: float) -> dict:
    """HP-2's tuning one knob at a time on a grid's trials: the LR that is best at the decay
    ``start_decay``, then the decay that is best at that LR (first on a tie)."""
    column = [t for t in trials if math.isclose(t["weight_decay"], start_decay, rel_tol=1e-6)]
    if not column:
        raise ValueError(f"start_decay {start_decay!r} is not a decay of the grid")
    lr = best(column)["lr"]
    return best([t for t in trials if math.isclose(t["lr"], lr, rel_tol=1e-6)])


def ridge_shift(trials: list[dict]) -> dict:
    """For each LR of a grid, the decay with the best validation accuracy: a best decay that
    falls as the LR rises is a diagonal ridge (coupled), one that stays put a rectangle."""
    out = {}
    for lr in sorted({t["lr"] for t in trials}):
        out[lr] = best([t for t in trials if t["lr"] == lr])["weight_decay"]
    return out


# ----------------------------------------------------------------------------- HP-3
# rank_agreement (Spearman rho with a Fisher-z interval) is a verdict rule: it lives in claims.



def top_lrs(trials: list[dict], key: str, k: int) -> float:
    """The geometric-mean LR of the ``k`` best trials by ``key``: do short runs prefer smaller LRs?"""
    ranked = sorted(trials, key=lambda t: -t[key])[:k]
    return float(math.exp(statistics.fmean(math.log(t["lr"]) for t in ranked)))


# ----------------------------------------------------------------------------- plots
def draw_curves(ax, groups: dict, key: str = "val_loss", title: str = "") -> None:
    """Per-epoch curves of every run, one colour per group; validation loss solid, fit's
    running training loss dashed."""
    for k, (name, runs) in enumerate(groups.items()):
        for i, r in enumerate(runs):
            c = r["curves"]
            x = range(1, len(c[key]) + 1)
            ax.plot(x, c[key], "-", color=f"C{k}", alpha=0.8, label=f"{name}: validation" if i == 0 else None)
            ax.plot(x, c["train_loss"], "--", color=f"C{k}", alpha=0.6,
                    label=f"{name}: training" if i == 0 else None)
    ax.set(xlabel="epoch", ylabel="loss (cross-entropy)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_seed_points(ax, groups: dict, key: str = "test_acc", ylabel: str = "test accuracy (%)",
                     title: str = "", scale: float = 100) -> None:
    """One column per group (``label -> runs``): each run's ``key`` a point, the mean a bar."""
    plots.seed_points(ax, {g: values(runs, key) for g, runs in groups.items()}, ylabel, title, scale)


def draw_search(ax, searches: dict, title: str = "") -> None:
    """Every trial of every search in the (LR, decay) plane, coloured by validation accuracy,
    one marker per strategy, each strategy's best circled."""
    markers = ["s", "^", "o", "D"]
    accs = [t["val_acc"] for trials in searches.values() for t in trials]
    for k, (name, trials) in enumerate(searches.items()):
        sc = ax.scatter([t["lr"] for t in trials], [t["weight_decay"] for t in trials],
                        c=[100 * t["val_acc"] for t in trials], marker=markers[k % 4], s=60,
                        vmin=100 * min(accs), vmax=100 * max(accs), cmap="viridis", label=name)
        b = best(trials)
        ax.plot([b["lr"]], [b["weight_decay"]], "o", ms=16, mfc="none", color=f"C{k}")
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="weight decay", title=title)
    ax.figure.colorbar(sc, ax=ax, label="validation accuracy (%)")
    ax.legend(fontsize=7)


def draw_ranks(ax, trials: list[dict], short_epoch: int) -> None:
    """Short-run against long-run validation accuracy, one point per configuration."""
    ax.scatter([100 * t["short_acc"] for t in trials], [100 * t["val_acc"] for t in trials],
               c=np.log10([t["lr"] for t in trials]), cmap="coolwarm")
    ax.set(xlabel=f"validation accuracy after {short_epoch} epochs (%)",
           ylabel="validation accuracy at the end (%)", title="HP-3: colour = log10 LR")
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------------------- the widget
def run_for_panel(params: dict, data: dict, report, should_stop, device, **fit_kw) -> dict:
    """The widget's experiment: a net of ``width`` trained on the first ``train_n`` images with
    the penalty ``reg`` (none, l1, l2) of ``strength`` and SGD at ``lr`` (seed 0). Returns
    ``fit``'s history (per-epoch training and validation loss are drawn)."""
    from ..ui.widgets import history_reporter
    model = net(params["width"]).to(device)
    reinitialize_(model, 0)
    part = head(data, min(params["train_n"], len(data["train_y"])))
    reg, strength = params["reg"], params["strength"]

    def objective(logits, y):
        return F.cross_entropy(logits, y) + penalty(model, reg, strength)
    opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=0.0)
    return fit(model, part, epochs=params["epochs"], seed=0, opt=opt, loss_fn=objective,
               should_stop=should_stop, callbacks=[history_reporter(report, every_steps=10)],
               progress=False, **fit_kw)


def panel_png(history: dict, title: str = "") -> bytes:
    """Training (running, with the penalty) and validation loss per epoch, and validation accuracy."""
    fig = Figure(figsize=(11, 3.6))
    ax, ax2 = fig.subplots(1, 2)
    e = history["epoch"]
    ax.plot(e["epoch"], e["train_loss"], "o--", label="training (incl. penalty)")
    ax.plot(e["epoch"], e["val_loss"], "o-", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="over- or underfitting?")
    ax.legend(fontsize=8)
    ax2.plot(e["epoch"], [100 * a for a in e["val_acc"]], "o-", color="k")
    ax2.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    return plots.finish_png(fig, title)


# ----------------------------------------------------------------------------- takeaways
MEANINGS = {
    "CAP-1": {
        "supported": "The wider net overfitted more (a larger train-validation gap), and once regularised "
                     "it beat the narrow net on test accuracy: growing capacity first, then regularising, paid.",
        "not supported": "A part failed: either the wider net did not overfit more than the narrow one, or, "
                         "regularised, it did not beat the narrow net; with so few images and epochs capacity "
                         "may not be what limits accuracy.",
        "inconclusive": "The seeds disagree too much to tell the widths apart at this budget."},
    "DATA-8": {
        "supported": "Four times more training images shrank the train-validation gap of the same net: "
                     "more data is a regulariser.",
        "not supported": "More data did not shrink the gap here; at this short budget the net may not have "
                         "fitted even the small set.",
        "inconclusive": "The gap's change cannot be told from seed noise at this budget."},
    "WD-1": {
        "supported": "Weight decay (an L2 penalty) on the overfitting net both shrank the gap and raised "
                     "test accuracy.",
        "not supported": "A part failed: decay did not shrink the gap, or shrank it without raising test "
                         "accuracy (a smaller gap alone is not better generalisation).",
        "inconclusive": "At least one part is within the seed noise: decay acts slowly, and a few epochs "
                        "leave it little to do."},
    "REG-1": {
        "supported": "At comparable accuracy, L1 left a much larger share of weights near zero than L2: "
                     "the constant pull of L1 zeroes small weights, L2's pull fades as weights shrink.",
        "not supported": "L1 did not give sparser weights than L2 here; with SGD the L1 subgradient makes "
                         "weights jitter around zero rather than land on it, and the threshold matters.",
        "inconclusive": "The sparsity difference is within the seed noise."},
    "REG-3": {
        "supported": "Where the gap was large, moderate regularisation helped, and a penalty that dominated "
                     "the objective cost accuracy: regularise, but keep the penalty a minor part of the loss.",
        "not supported": "A part failed: either moderate regularisation did not help the overfitting net, or "
                         "the dominating penalty did not hurt (the strong setting was not strong enough).",
        "inconclusive": "A part could not be told from seed noise at this budget."},
    "LOSS-1": {
        "supported": "Cross-entropy beat both MSE on one-hot targets and the multi-class hinge, each at its "
                     "own tuned LR.",
        "not supported": "Cross-entropy did not beat at least one of the others; Hui & Belkin (2021) report the "
                         "square loss comparable to cross-entropy once tuned.",
        "inconclusive": "The losses cannot be told apart at this budget."},
    "HP-1": {
        "supported": "The jittered grid's best configuration beat the plain grid's on test accuracy: jitter "
                     "tried more distinct values of each hyperparameter for the same number of trials.",
        "not supported": "The jittered grid's best was no better than the plain grid's (within the margin or "
                         "worse): in two dimensions with a smooth optimum, either covers it.",
        "inconclusive": "One search per strategy, re-trained on a few seeds: the search's own luck is not in "
                        "the interval, and the difference is within the seed noise."},
    "HP-2": {
        "supported": "Tuning LR and decay jointly found a better configuration than tuning them one at a time: "
                     "they are coupled.",
        "not supported": "Tuning one at a time reached a configuration as good as the joint grid's: on this "
                         "grid the two did not interact enough to matter.",
        "inconclusive": "The joint and one-at-a-time picks cannot be told apart at this budget."},
    "HP-3": {
        "supported": "Short runs ranked the configurations as the long runs did: coarse short runs are a fair "
                     "first filter.",
        "not supported": "Short runs ranked the configurations differently from long ones: refine with long "
                         "runs before trusting an ordering.",
        "inconclusive": "Too few configurations to pin the rank correlation down."},
    "DIAG-1": {
        "supported": "On these runs the rule's reading (validation loss many times the training loss) agreed "
                     "with the curves' own sign of overfitting (validation loss turning up) often enough.",
        "not supported": "The rule's reading disagreed with the curves: a large loss ratio can come with a "
                         "still-falling validation loss, so read the curve, not one ratio.",
        "inconclusive": "Too few runs to judge the rule."},
}


def mean(runs: list[dict], key: str) -> float:
    """The mean of ``key`` over runs."""
    return statistics.fmean(values(runs, key))


def table(arms: dict) -> str:
    """One line per arm: mean training and validation loss, gap, test accuracy, penalty share and
    sparsity over its seeds."""
    lines = [f"{'arm':44s} {'train loss':>10s} {'val loss':>8s} {'gap':>6s} {'test acc':>8s} "
             f"{'penalty share':>13s} {'near zero':>9s}"]
    for name, runs in arms.items():
        lines.append(f"{name:44s} {mean(runs, 'train_loss'):10.3f} {mean(runs, 'val_loss'):8.3f} "
                     f"{mean(runs, 'gap'):6.1%} {mean(runs, 'test_acc'):8.1%} "
                     f"{mean(runs, 'penalty_share'):13.1%} {mean(runs, 'sparsity'):9.1%}")
    return "\n".join(lines)
