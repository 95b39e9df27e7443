"""Where dropout belongs (notebook 03, claims DO-1..DO-5): configurations, placement, runs, verdicts.

- :func:`configurations`: the table of small-CNN settings compared (no dropout, head only, conv
  only element-/channel-wise, both, each with and without batch norm, and dropout before BN).
- :func:`layer_sequence`, :func:`dropout_sites`, :func:`draw_placement`: where a model drops units.
- :func:`make_model`: a configuration as a small CNN, or as the course's baseline net with the
  same dropout (``standard``'s larger set, where DO-4 and DO-5 need a trained network).
- :func:`train_config`, :func:`train_configs`: train configurations over seeds on a (sub)set and
  measure train accuracy (eval mode, no augmentation), validation accuracy and the gap.
- :func:`accuracy_by_mode`: test accuracy with dropout left on (DO-5) against ``model.eval()``.
"""
from __future__ import annotations

import copy
import statistics

import matplotlib
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import claims, recipes
from ..core.data import normalize, stratified_subset
from ..core.models import small_cnn
from ..core.train import evaluate, fit, raise_if_interrupted
from ..ui import plots
from ..ui.widgets import history_png

DROPOUT_TYPES = (nn.Dropout, nn.Dropout2d)


def configurations(conv_p: float = 0.1, head_low: float = 0.2, head_high: float = 0.5,
                   head_too_high: float = 0.8) -> dict:
    """The compared settings: name -> keyword arguments of ``models.small_cnn``.

    Every placement comes with and without batch norm (names ending in ``, no BN``); the pitfall
    (conv dropout *before* batch norm) and a rate above the 20-50% range (DO-3) with BN only.
    Rates are validated here so a bad value fails before any training starts.
    """
    for name, p in (("conv_p", conv_p), ("head_low", head_low), ("head_high", head_high),
                    ("head_too_high", head_too_high)):
        if not 0.0 < p < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {p}")
    if len({head_low, head_high, head_too_high}) < 3:
        raise ValueError(f"head_low, head_high and head_too_high must differ (each names a configuration), "
                         f"got {head_low}, {head_high}, {head_too_high}")
    base = {
        "none": {},
        f"head {head_low:g}": {"head_dropout": head_low},
        f"head {head_high:g}": {"head_dropout": head_high},
        f"conv {conv_p:g} element": {"conv_dropout": conv_p, "dropout_kind": "element"},
        f"conv {conv_p:g} channel": {"conv_dropout": conv_p, "dropout_kind": "channel"},
        "both": {"conv_dropout": conv_p, "dropout_kind": "element", "head_dropout": head_high},
    }
    out = {name: {**kw, "batch_norm": True} for name, kw in base.items()}
    out[f"conv {conv_p:g} before BN"] = {"conv_dropout": conv_p, "dropout_kind": "element",
                                         "dropout_before_bn": True, "batch_norm": True}
    out[f"head {head_too_high:g}"] = {"head_dropout": head_too_high, "batch_norm": True}
    out.update({f"{name}, no BN": {**kw, "batch_norm": False} for name, kw in base.items()})
    return out


def _kind(module: nn.Module) -> str:
    """A short type label for one leaf module (what the placement plot draws)."""
    if isinstance(module, nn.Dropout2d):
        return "dropout (channel)"
    if isinstance(module, nn.Dropout):
        return "dropout (element)"
    for cls, label in ((nn.Conv2d, "conv"), (nn.BatchNorm2d, "batch norm"), (nn.Linear, "linear"),
                       (nn.MaxPool2d, "pool"), (nn.AdaptiveAvgPool2d, "pool"), (nn.Flatten, "flatten")):
        if isinstance(module, cls):
            return label
    return "activation"


def layer_sequence(model: nn.Module) -> list[tuple[str, str]]:
    """``(name, kind)`` for every leaf module in forward order (``nn.Sequential`` models)."""
    return [(name, _kind(m)) for name, m in model.named_modules()
            if name and not list(m.children())]


def dropout_sites(model: nn.Module) -> list[dict]:
    """Every dropout module: its name, kind ("element"/"channel"), rate ``p`` and the layer it
    follows (e.g. ``block1.act1`` after the activation, ``block1.conv1`` in the before-BN pitfall)."""
    seq = [(name, m) for name, m in model.named_modules() if name and not list(m.children())]
    sites = []
    for i, (name, m) in enumerate(seq):
        if isinstance(m, DROPOUT_TYPES):
            sites.append({"name": name, "kind": "channel" if isinstance(m, nn.Dropout2d) else "element",
                          "p": float(m.p), "after": seq[i - 1][0] if i else None})
    return sites


COLOURS = {"conv": "#4c72b0", "batch norm": "#55a868", "activation": "#c7c7c7", "pool": "#8c8c8c",
           "flatten": "#e5e5e5", "linear": "#8172b2", "dropout (element)": "#dd8452",
           "dropout (channel)": "#c44e52"}


def draw_placement(ax, models: dict) -> None:
    """One row per configuration: its layers in forward order as coloured boxes, dropout boxes
    labelled with their rate. Shows at a glance where each configuration drops units and whether
    dropout comes before or after batch norm. ``models``: name -> model. Fits a figure about
    0.42 inch high per configuration plus 1.2."""
    for row, (name, model) in enumerate(models.items()):
        rates = {s["name"]: s["p"] for s in dropout_sites(model)}
        for col, (lname, kind) in enumerate(layer_sequence(model)):
            ax.add_patch(_box(col, row, COLOURS[kind]))
            if lname in rates:
                ax.text(col + 0.45, row + 0.45, f"{rates[lname]:g}", ha="center", va="center",
                        fontsize=7, color="white", fontweight="bold")
    ax.set(xlim=(-0.2, max(len(layer_sequence(m)) for m in models.values()) + 0.2),
           ylim=(len(models), -0.2), xticks=[], yticks=[r + 0.45 for r in range(len(models))],
           title="where each configuration drops units (input on the left, logits on the right)")
    ax.set_yticklabels(list(models), fontsize=8)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    handles = [_box(0, 0, c) for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), ncol=8, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0),
              frameon=False)


def _box(x: float, y: float, colour: str):
    from matplotlib.patches import Rectangle
    return Rectangle((x, y), 0.9, 0.9, facecolor=colour, edgecolor="white")


def subset(data: dict, n: int | None, seed: int = 0) -> dict:
    """``data`` with a stratified subset of ``n`` training images (scikit-learn picks them; the
    same ``seed`` gives the same images, so every configuration sees the same subset)."""
    total = len(data["train_y"])
    if n is None or n >= total:
        return data
    if n < 10:
        raise ValueError(f"subset size must be at least 10 (one image per class), got {n}")
    y = data["train_y"].cpu().numpy()
    keep = torch.as_tensor(np.sort(stratified_subset(y, np.arange(total), n, seed)),
                           device=data["train_y"].device)
    return {**data, "train_x": data["train_x"][keep], "train_y": data["train_y"][keep]}


def make_model(config: dict, data: dict, net: str = "small_cnn", widths=(32, 64, 128)) -> nn.Module:
    """One configuration's fresh model on the data's device (seed first: same seed, same weights).

    ``net="small_cnn"``: ``small_cnn(widths, **config)``, every configuration of
    :func:`configurations`. ``net="baseline"``: the course's baseline net (``recipes.BASELINE``,
    its stem whitened from the training images; ``widths`` unused) with the configuration's dropout
    at the end of each conv group and before the linear layer, the trained network of ``standard``.
    It has batch norm after every conv, so configurations without it, or with dropout before it,
    are refused with a pointer to the small CNN.
    """
    if not recipes.is_baseline(net):  # refuses any other name
        return small_cnn(widths=widths, **config).to(data["train_x"].device)
    if not config.get("batch_norm", True) or config.get("dropout_before_bn", False):
        raise ValueError(f"the baseline net always has batch norm, with dropout after it: {config} needs "
                         f"net='small_cnn'")
    dropout = {k: v for k, v in config.items() if k not in ("batch_norm", "dropout_before_bn")}
    return recipes.recipe_model(data, recipes.BASELINE, **dropout)


def train_config(config: dict, data: dict, epochs: int, seed: int = 0, widths=(32, 64, 128),
                 lr: float = 0.05, batch_size: int = 64, aug: bool = False, n_train_eval: int = 2000,
                 curve_val_n: int | None = None, keep_model: bool = False, progress: bool = False,
                 net: str = "small_cnn", **fit_kw) -> dict:
    """Train :func:`make_model`'s model for ``config`` on ``data`` (SGD + one-cycle) and measure it.

    ``fit_kw`` go to ``train.fit`` (``weight_decay``, ``callbacks``, ``should_stop``, ...); the
    arguments listed here are the ones whose defaults differ from ``fit``'s or that this
    function uses itself. With ``net="baseline"`` the baseline recipe's label smoothing and bf16
    choice come too (``recipes.net_fit_kw``); the LR, schedule and batch size stay this call's.

    Returns ``history`` (per-epoch val loss curves), ``train_acc`` measured in eval mode on up
    to ``n_train_eval`` training images without augmentation (the accuracy the model has on what
    it saw, not the running average under dropout), ``val_acc``, ``gap`` = train - val accuracy,
    ``val_loss``, ``test_acc`` and ``test_gap`` = train - test accuracy on the whole test split
    (final numbers; the validation split is for choosing) and, if ``keep_model``, the ``model``. The per-epoch curves use the first
    ``curve_val_n`` validation images (None: all; fewer keeps many short runs cheap); the final
    validation accuracy and loss always use the whole validation split.
    """
    torch.manual_seed(seed)
    model = make_model(config, data, net, widths)
    if net == "baseline":
        fit_kw = {**recipes.net_fit_kw(recipes.BASELINE, data["train_x"].device), **fit_kw}
    curve_data = {**data, "val_x": data["val_x"][:curve_val_n], "val_y": data["val_y"][:curve_val_n]}
    hist = fit(model, curve_data, epochs=epochs, batch_size=batch_size, lr=lr, aug=aug, seed=seed,
               progress=progress, **fit_kw)
    raise_if_interrupted(hist, "a dropout configuration")
    tr = evaluate(model, data["train_x"][:n_train_eval], data["train_y"][:n_train_eval],
                  data["mean"], data["std"])
    va = evaluate(model, data["val_x"], data["val_y"], data["mean"], data["std"])
    te = evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])
    out = {"history": hist, "train_acc": tr["acc"], "val_acc": va["acc"], "gap": tr["acc"] - va["acc"],
           "val_loss": va["loss"], "test_acc": te["acc"], "test_gap": tr["acc"] - te["acc"]}
    if keep_model:
        out["model"] = model
    return out


def train_configs(configs: dict, data: dict, seeds, keep=(), progress: bool = True, overrides=None,
                  **train_kw) -> dict:
    """Train every configuration once per seed: name -> list of :func:`train_config` results.

    Models are kept only for the names in ``keep`` (memory). ``train_kw`` go to ``train_config``;
    ``overrides`` (name -> dict) replace some of them for one configuration (e.g. its own ``lr``).
    Seed *i* gives every configuration the same initial weights (dropout adds no parameters)
    and the same data order, so the arms are paired.
    """
    overrides = overrides or {}
    results = {name: [] for name in configs}
    runs = [(name, s) for name in configs for s in seeds]
    for name, s in tqdm(runs, desc="runs", disable=not progress):
        kw = {**train_kw, **overrides.get(name, {})}
        results[name].append(train_config(configs[name], data, seed=s, keep_model=name in keep, **kw))
    return results


def do4_arms(lrs, rates, lr: float) -> tuple[dict, dict, dict]:
    """DO-4's candidates at equal tuning budgets: the batch-norm-only arm tries each peak LR in
    ``lrs``; the batch norm + head dropout arm tries each rate in ``rates`` at ``lr``. Returns
    (configs, per-configuration overrides, {"BN only": names, "BN + dropout": names}); each arm
    later keeps the candidate with the best validation accuracy."""
    if len(lrs) != len(rates) or not lrs:
        raise ValueError(f"give both arms the same number of candidates (equal tuning budgets), "
                         f"got {len(lrs)} LRs and {len(rates)} dropout rates")
    configs, overrides, arms = {}, {}, {"BN only": [], "BN + dropout": []}
    for a in lrs:
        name = f"BN only, lr {a:g}"
        configs[name], overrides[name] = {"batch_norm": True}, {"lr": a}
        arms["BN only"].append(name)
    for p in rates:
        name = f"BN + head {p:g}, lr {lr:g}"
        configs[name], overrides[name] = {"batch_norm": True, "head_dropout": p}, {"lr": lr}
        arms["BN + dropout"].append(name)
    return configs, overrides, arms


def draw_paired(ax, arms: dict, ylabel: str = "test accuracy (%)", title: str = "") -> None:
    """Per-seed fractions of each arm as percentages, seeds joined (``plots.draw_paired``)."""
    plots.draw_paired(ax, arms, ylabel, title, scale=100, legend=True)


def values(results: dict, name: str, key: str) -> list[float]:
    """One measurement (``train_acc``, ``val_acc``, ``gap``, ``val_loss``, ``test_acc``,
    ``test_gap``) of a configuration, per seed."""
    return [r[key] for r in results[name]]


def tuned(results: dict, names, key: str = "test_acc", select_on: str = "val_acc") -> tuple[str, list[float]]:
    """An arm tuned on validation: the configuration among ``names`` with the best mean
    ``select_on`` over seeds, and its per-seed ``key`` (final numbers, on the test split).
    Two arms given the same number of candidates get the same tuning budget."""
    name = best_of(results, names, select_on)
    return name, values(results, name, key)


def best_of(results: dict, names, key: str = "val_acc") -> str:
    """The configuration among ``names`` with the highest mean ``key`` over seeds."""
    names = list(names)
    if not names:
        raise ValueError("best_of needs at least one configuration name")
    return max(names, key=lambda n: statistics.fmean(values(results, n, key)))


def config_stats(results: dict) -> list[dict]:
    """Mean and seed-to-seed spread of train/val accuracy, the gap and the final validation loss
    for every configuration."""
    rows = []
    for name in results:
        row = {"config": name, "runs": len(results[name])}
        for key in ("train_acc", "val_acc", "gap", "val_loss"):
            v = values(results, name, key)
            row[key], row[key + "_sd"] = statistics.fmean(v), claims.spread(v)
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table of :func:`config_stats`: accuracies in %, mean ± seed spread."""
    lines = [f"{'configuration':24s} {'train acc %':>13s} {'val acc %':>13s} {'gap %':>13s} {'val loss':>13s}  runs"]
    for r in rows:
        cells = " ".join(f"{100 * r[k]:6.1f} ± {100 * r[k + '_sd']:4.1f}" for k in ("train_acc", "val_acc", "gap"))
        lines.append(f"{r['config']:24s} {cells} {r['val_loss']:6.3f} ± {r['val_loss_sd']:4.2f}  {r['runs']}")
    return "\n".join(lines)


def draw_results(axes, results: dict, title: str = "") -> None:
    """On two axes: validation loss per epoch (mean over seeds), with batch norm (solid) and
    without (dashed); train and validation accuracy per configuration (bars: mean; ticks: seeds)."""
    ax_loss, ax_acc = axes
    tab10 = matplotlib.colormaps["tab10"]
    placements = list(dict.fromkeys(n.removesuffix(", no BN") for n in results))  # one colour each
    for name, runs in results.items():
        curves = [r["history"]["epoch"]["val_loss"] for r in runs]
        n = min(len(c) for c in curves)
        mean = np.mean([c[:n] for c in curves], axis=0)
        colour = tab10(placements.index(name.removesuffix(", no BN")) % 10)
        ax_loss.plot(range(1, n + 1), mean, "--" if name.endswith("no BN") else "-", color=colour, label=name)
    ax_loss.set(xlabel="epoch", ylabel="validation loss", title=f"validation loss {title}")
    ax_loss.legend(fontsize=6, ncol=2)
    ax_loss.grid(alpha=0.3)
    names = list(results)
    for i, name in enumerate(names):
        for key, dx, colour in (("train_acc", -0.2, "#4c72b0"), ("val_acc", 0.2, "#dd8452")):
            v = [100 * a for a in values(results, name, key)]
            ax_acc.bar(i + dx, statistics.fmean(v), 0.4, color=colour,
                       label=key.replace("_acc", "") if i == 0 else None)
            ax_acc.plot([i + dx] * len(v), v, "k_", ms=8)
    ax_acc.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax_acc.set(ylabel="accuracy (%)", title=f"train vs validation accuracy {title}")
    ax_acc.legend(fontsize=8)


def accuracy_by_mode(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
                     std: torch.Tensor, batch_size: int = 1000) -> dict:
    """Accuracy on uint8 images ``x`` in three modes (DO-5):

    ``eval``: ``model.eval()``, as it should be; ``dropout_on``: eval mode but every dropout
    module left in training mode (isolates dropout: batch norm keeps its running statistics);
    ``train_mode``: ``model.train()`` as a whole, the bug as written (on a copy, so the model's
    batch-norm running statistics are not changed). The model's own mode is restored.
    """
    was_training = model.training
    device = next(model.parameters()).device
    ghost = copy.deepcopy(model).train()
    accs = {}
    try:
        for mode in ("eval", "dropout_on", "train_mode"):
            m = ghost if mode == "train_mode" else model.eval()
            if mode == "dropout_on":
                for mod in model.modules():
                    if isinstance(mod, DROPOUT_TYPES):
                        mod.train()
            correct = 0
            with torch.no_grad():
                for start in range(0, len(x), batch_size):
                    xb = normalize(x[start:start + batch_size].to(device), mean, std)
                    correct += int((m(xb).argmax(1) == y[start:start + batch_size].to(device)).sum())
            accs[mode] = correct / max(len(x), 1)
    finally:
        model.train(was_training)
    return accs


def result_png(history: dict, title: str = "") -> bytes:
    """Render a widget run: the usual curves, with the final train/val accuracy in the title
    once :func:`run_for_panel` has added them."""
    f = history.get("final")
    if f:
        title = f"{title} | train {f['train_acc']:.1%}, val {f['val_acc']:.1%}, gap {f['gap']:+.1%}"
    return history_png(history, title)


def run_for_panel(params: dict, data: dict, report, should_stop, **train_kw) -> dict:
    """The widget's experiment: one configuration from the panel's values (``conv_p``,
    ``head_p``, ``kind``, ``batch_norm``, ``before_bn``, ``subset``, ``epochs``), trained with
    :func:`train_config`; returns its history with the final accuracies under ``"final"``."""
    from ..ui.widgets import history_reporter
    config = {"conv_dropout": params["conv_p"], "head_dropout": params["head_p"],
              "dropout_kind": params["kind"], "batch_norm": params["batch_norm"],
              "dropout_before_bn": params["before_bn"]}
    res = train_config(config, subset(data, params["subset"]), epochs=params["epochs"],
                       callbacks=[history_reporter(report, every_steps=10)], should_stop=should_stop,
                       **train_kw)
    res["history"]["final"] = {k: res[k] for k in ("train_acc", "val_acc", "gap")}
    return res["history"]


MEANINGS = {
    "DO-1": {
        "supported": "Head dropout helped and conv dropout stayed within the margin, as Srivastava et "
                     "al. found for fully connected layers.",
        "not supported": "Either head dropout did not help by more than the margin, or conv dropout moved "
                         "accuracy by more than the margin (read the parts). With batch norm and a short "
                         "budget, the head has few parameters to overfit, so dropout there has little to do.",
        "inconclusive": "The seeds disagree too much to tell: the effects are smaller than this budget can "
                        "resolve.",
    },
    "DO-2": {
        "supported": "On the small set, p = 0.5 in the head both narrowed the train-test gap and raised "
                     "test accuracy: it countered overfitting.",
        "not supported": "Dropout did not both narrow the gap and raise test accuracy by more than the "
                         "margin; a narrower gap alone can come from lower training accuracy (underfitting).",
        "inconclusive": "At least one part could not be told from seed noise.",
    },
    "DO-3": {
        "supported": "The best head rate inside 20-50% beat the best rate outside it on the test split "
                     "(both chosen on validation).",
        "not supported": "A rate outside 20-50% (none, or 0.8) did as well or better here: the useful rate "
                         "depends on how much the model overfits, which batch norm and the budget change.",
        "inconclusive": "The rates are too close to tell apart at this budget.",
    },
    "DO-4": {
        "supported": "Each arm tuned on validation, dropout on top of batch norm changed test accuracy by "
                     "less than the margin: batch norm has made it redundant here.",
        "not supported": "Read the sign: a positive effect means dropout still adds accuracy on top of batch "
                         "norm (the claim fails); a negative one means it costs accuracy, as Li et al. "
                         "report when dropout's variance shift meets batch norm.",
        "inconclusive": "The interval reaches past the margin: more seeds or a longer budget would settle "
                        "whether dropout adds anything on top of batch norm.",
    },
    "DO-5": {
        "supported": "With strong dropout, leaving it on at test time cost accuracy: each prediction came "
                     "from one random thinned network instead of the averaged (weight-scaled) one.",
        "not supported": "Leaving dropout on did not cost accuracy; read the sign: a negative effect means "
                         "it helped. Batch norm's running statistics were gathered with dropout on, so "
                         "switching dropout off shifts the variance the next layers see (Li et al. 2019); "
                         "in a net far from trained that shift can cost more than the thinning noise.",
        "inconclusive": "The difference between eval and dropout left on is within seed noise at these "
                        "rates and this budget.",
    },
}
