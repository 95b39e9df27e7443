"""Notebook 12's helpers: a source model pretrained by the course itself (no download), two
targets (five other CIFAR-10 classes, and scikit-learn's bundled handwritten digits), freezing
layers for real, per-group learning rates, the arms of the comparison, plots and the widget's run.

The source model is trained on five CIFAR-10 classes and cached (``ui.cache``'s folder and key:
the key changes with the code, the settings and the data), so the lecture and later runs reuse
it. The network is ``core.models.small_cnn``; its layers, bottom to top, are ``LAYERS``: three
conv blocks (the *body*) and the head's two linear layers ``fc1`` and ``fc2`` (``fc2``, the
classifier, is always new on a target: the number of classes differs).
"""
from __future__ import annotations

import math
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm.auto import tqdm

from ..core.data import channel_stats
from ..core.models import small_cnn
from ..core.train import evaluate, fit, raise_if_interrupted
from ..ui import cache
from ..ui.plots import course_look, figure_png

SOURCE_CLASSES = (0, 1, 2, 3, 4)   # airplane, automobile, bird, cat, deer
TARGET_CLASSES = (5, 6, 7, 8, 9)   # dog, frog, horse, ship, truck
LAYERS = ("block1", "block2", "block3", "fc1", "fc2")
BODY = ("block1", "block2", "block3")
NORMS = ("pretraining", "own", "none")
BN_MODES = ("update", "frozen")


# ----------------------------------------------------------------------------- data
def class_subset(data: dict, classes, mean=None, std=None) -> dict:
    """The train/val/test images of ``classes`` only, labels renumbered 0..len(classes)-1 in
    the order given. ``mean``/``std`` default to the statistics of the subset's training images."""
    out = {"classes": [data["classes"][c] for c in classes]}
    for split in ("train", "val", "test"):
        y = data[f"{split}_y"]
        keep = torch.isin(y, torch.tensor(list(classes), device=y.device))
        new = torch.full((int(max(classes)) + 1,), -1, dtype=y.dtype, device=y.device)
        new[list(classes)] = torch.arange(len(classes), device=y.device, dtype=y.dtype)
        out[f"{split}_x"], out[f"{split}_y"] = data[f"{split}_x"][keep], new[y[keep]]
    own = channel_stats(out["train_x"])
    out["mean"] = own[0] if mean is None else mean
    out["std"] = own[1] if std is None else std
    return out


def upscale_digits(images: np.ndarray, size: int = 32) -> torch.Tensor:
    """scikit-learn's 8x8 digits (values 0..16) as uint8 images (N, 3, size, size), 0..255:
    bilinear upscaling, the grey channel copied three times, so the CIFAR-10 models take them."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(-1, 1, 8, 8) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)


def load_digits_target(device="cpu", test_fraction: float = 0.3, val_fraction: float = 0.15,
                       split_seed: int = 0, size: int = 32) -> dict:
    """The dissimilar target: scikit-learn's bundled handwritten digits (1,797 images, 10
    classes, no download), upscaled to ``size`` x ``size`` and made 3-channel, split with
    stratified scikit-learn splits into train / val / test (``test_fraction`` of all, then
    ``val_fraction`` of the rest). Same keys as the CIFAR-10 dicts; ``mean``/``std`` are the
    digits' own training statistics."""
    raw = load_digits()
    idx = np.arange(len(raw.target))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=raw.target, random_state=split_seed)
    train, val = train_test_split(rest, test_size=val_fraction, stratify=raw.target[rest],
                                  random_state=split_seed)
    x, y = upscale_digits(raw.images, size), torch.as_tensor(raw.target, dtype=torch.int64)
    out = {"classes": [str(c) for c in raw.target_names]}
    for split, i in (("train", train), ("val", val), ("test", test)):
        out[f"{split}_x"], out[f"{split}_y"] = x[i].to(device), y[i].to(device)
    out["mean"], out["std"] = channel_stats(out["train_x"])
    return out


def per_class_subset(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` random images of every class (all of a class if it has fewer),
    drawn with ``seed``; a smaller ``per_class`` with the same seed gives a subset of a larger."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(int(seed))).to(y.device)
    picked = [order[y[order] == c][:per_class] for c in torch.unique(y).tolist()]
    return torch.cat(picked).sort().values


def norm_stats(norm: str, train_x: torch.Tensor, source_stats) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, std) that inputs are normalised with: the ``pretraining`` images' (what the
    source model saw), the target training images' ``own``, or ``none`` (0-1 pixels as they are)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if norm == "pretraining":
        return source_stats[0].to(train_x.device), source_stats[1].to(train_x.device)
    if norm == "own":
        return channel_stats(train_x)
    return torch.zeros(3, device=train_x.device), torch.ones(3, device=train_x.device)


def target_data(pool: dict, per_class: int, seed: int, norm: str, source_stats, val_n: int | None = None) -> dict:
    """A target training set for one run: ``per_class`` images of each class of ``pool``'s
    training split (drawn with ``seed``: every arm of seed *i* gets the same images), the first
    ``val_n`` validation images, the whole test split, normalised as ``norm`` says."""
    idx = per_class_subset(pool["train_y"], per_class, seed)
    out = {"train_x": pool["train_x"][idx], "train_y": pool["train_y"][idx],
           "val_x": pool["val_x"][:val_n], "val_y": pool["val_y"][:val_n],
           "test_x": pool["test_x"], "test_y": pool["test_y"], "classes": pool["classes"]}
    out["mean"], out["std"] = norm_stats(norm, out["train_x"], source_stats)
    return out


# ----------------------------------------------------------------------------- the source model
def pretrain(data: dict, widths, epochs: int, batch_size: int, lr: float, seed: int,
             progress: bool = True) -> dict:
    """Train ``small_cnn(widths)`` on ``data`` (the source classes) with ``fit``'s defaults
    (SGD + Nesterov momentum, one-cycle schedule, crop + flip) and return ``{"state"`` (CPU
    tensors), ``"val_acc"``, ``"mean"``, ``"std"`` (the pretraining normalisation)``}``."""
    torch.manual_seed(seed)
    model = small_cnn(widths=widths, num_classes=len(data["classes"])).to(data["train_x"].device)
    hist = raise_if_interrupted(fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                    progress=progress), "pretraining")
    return {"state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "val_acc": float(hist["epoch"]["val_acc"][-1]), "mean": data["mean"].cpu(), "std": data["std"].cpu()}


def source_key(settings: dict) -> str:
    """The cache key of a source model: ``ui.cache``'s scope (code version included) and the
    settings (widths, epochs, batch size, LR, seed, classes, images), so any change retrains."""
    return cache.make_key(cache.scope("12_transfer_learning", "source-model"), settings)


def cached_source(data: dict, widths, epochs: int, batch_size: int, lr: float, seed: int,
                  use_cache: bool = True, directory: str | Path | None = None, progress: bool = True) -> dict:
    """:func:`pretrain`, or its stored result from the course's cache folder when the key
    matches. Weights are kept as ``<key>.pt`` (``torch.save``; the JSON results cache would
    bloat them), written atomically. Adds ``"cached"`` (True when loaded) and ``"key"``."""
    settings = {"widths": list(widths), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                "classes": list(data["classes"]), "train_n": len(data["train_y"]), "val_n": len(data["val_y"])}
    key = source_key(settings)
    folder = Path(directory) if directory is not None else cache.cache_dir()
    path = folder / f"{key}.pt"
    if use_cache and path.exists():
        try:
            return {**torch.load(path, weights_only=True), "cached": True, "key": key}
        except Exception:  # a corrupt file counts as a miss and is overwritten below
            pass
    result = pretrain(data, widths, epochs, batch_size, lr, seed, progress)
    if use_cache:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:12]}-", suffix=".tmp")
        os.close(fd)
        torch.save(result, tmp)
        os.replace(tmp, path)
    return {**result, "cached": False, "key": key}


# ----------------------------------------------------------------------------- freezing
class StatsFrozenBN(nn.BatchNorm2d):
    """Batch norm that always normalises with its stored running statistics and never updates
    them, in training too; its scale and shift still train unless frozen. (torchvision's
    ``FrozenBatchNorm2d`` also freezes the scale and shift, so it cannot give the
    "statistics frozen, affine trained" arm.)"""

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def layer(model: nn.Module, name: str) -> nn.Module:
    """The module of one of ``LAYERS`` in a ``small_cnn``."""
    if name not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {name!r}")
    return getattr(model.head, name) if name.startswith("fc") else getattr(model, name)


def freeze_bn_stats(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` inside ``module`` by a :class:`StatsFrozenBN` with the same
    values (in place); returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, StatsFrozenBN):
            new = StatsFrozenBN(child.num_features, eps=child.eps).to(child.weight.device)
            new.load_state_dict(child.state_dict())
            new.weight.requires_grad_(child.weight.requires_grad)
            new.bias.requires_grad_(child.bias.requires_grad)
            setattr(module, name, new)
        else:
            freeze_bn_stats(child)
    return module


def freeze_below(model: nn.Module, train_from: str, bn_stats: bool = True) -> nn.Module:
    """Freeze every layer below ``train_from`` (one of ``LAYERS``; "block1" freezes nothing).

    Freezing means no gradient (``requires_grad=False``) **and**, with ``bn_stats`` (the
    default), batch norm that stops updating its running statistics: ``requires_grad=False``
    alone leaves a "frozen" block's batch norm re-estimating its statistics on every training
    batch, so the block still changes (``bn_stats=False`` keeps that mistake, to show it)."""
    stop = LAYERS.index(train_from) if train_from in LAYERS else None
    if stop is None:
        raise ValueError(f"train_from must be one of {LAYERS}, got {train_from!r}")
    for name in LAYERS[:stop]:
        mod = layer(model, name)
        for p in mod.parameters():
            p.requires_grad_(False)
        if bn_stats:
            freeze_bn_stats(mod)
    return model


def trainable_counts(model: nn.Module) -> dict:
    """Trainable parameters per layer of ``LAYERS`` (the check that a freeze did what was meant)."""
    return {name: sum(p.numel() for p in layer(model, name).parameters() if p.requires_grad) for name in LAYERS}


def param_groups(model: nn.Module, body_lr: float, head_lr: float) -> list[dict]:
    """``torch.optim`` parameter groups: the trainable conv body (blocks) at ``body_lr``, the
    trainable head (fc1, fc2) at ``head_lr``; a group with nothing to train is left out."""
    for name, lr in (("body_lr", body_lr), ("head_lr", head_lr)):
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"{name} must be a positive number, got {lr!r}")
    groups = []
    for name, names, lr in (("body", BODY, body_lr), ("head", ("fc1", "fc2"), head_lr)):
        params = [p for n in names for p in layer(model, n).parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr, "name": name})
    return groups


def make_optimizer(model: nn.Module, body_lr: float, head_lr: float, momentum: float = 0.9,
                   weight_decay: float = 5e-4) -> torch.optim.SGD:
    """SGD with Nesterov momentum over :func:`param_groups` (the course's usual optimiser)."""
    return torch.optim.SGD(param_groups(model, body_lr, head_lr), lr=head_lr, momentum=momentum,
                           weight_decay=weight_decay, nesterov=momentum > 0)


def target_model(widths, num_classes: int, seed: int, source_state: dict | None = None,
                 device="cpu") -> nn.Module:
    """A ``small_cnn`` for the target drawn from ``seed``; with ``source_state``, every layer
    but the classifier ``fc2`` is then overwritten with the pretrained weights. So seed *i*
    gives every arm the same new classifier (and scratch the same body draw)."""
    torch.manual_seed(seed)
    model = small_cnn(widths=widths, num_classes=num_classes)
    if source_state is not None:
        kept = {k: v for k, v in source_state.items() if not k.startswith("head.fc2.")}
        missing, unexpected = model.load_state_dict(kept, strict=False)
        if unexpected or set(missing) != {"head.fc2.weight", "head.fc2.bias"}:
            raise ValueError(f"the source model does not fit: missing {missing}, unexpected {unexpected}")
    return model.to(device)


# ----------------------------------------------------------------------------- the arms
def arm(init: str = "pretrained", train_from: str = "block1", body_lr: float = 0.05, head_lr: float = 0.05,
        norm: str = "pretraining", bn: str = "update") -> dict:
    """One way to train on a target, as a plain dict: ``init`` ("pretrained" or "scratch"),
    ``train_from`` (layers below it are frozen), per-group LRs, input normalisation (``NORMS``)
    and batch norm in the trained layers (``BN_MODES``: statistics updated or frozen)."""
    if init not in ("pretrained", "scratch"):
        raise ValueError(f"init must be 'pretrained' or 'scratch', got {init!r}")
    if train_from not in LAYERS or norm not in NORMS or bn not in BN_MODES:
        raise ValueError(f"train_from in {LAYERS}, norm in {NORMS}, bn in {BN_MODES}; got "
                         f"{train_from!r}, {norm!r}, {bn!r}")
    return {"init": init, "train_from": train_from, "body_lr": body_lr, "head_lr": head_lr, "norm": norm, "bn": bn}


@dataclass(frozen=True)
class Plan:
    """What every target run shares: the source model, the net, the step budget, the optimiser."""
    source: dict
    widths: tuple
    steps: int
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    val_n: int | None = None


def train_arm(a: dict, pool: dict, per_class: int, seed: int, plan: Plan, flip: bool = True,
              curve_every: int | None = None) -> dict:
    """One run of arm ``a`` on ``per_class`` images per class of ``pool`` (seed ``seed``: the
    images, the classifier's init and the batch order), ``plan.steps`` SGD steps. Returns
    ``test_acc``, ``train_acc`` (eval mode, on the training images, no augmentation), ``gap``
    (train minus test), ``trainable`` (parameters) and, with ``curve_every``, the validation
    accuracy every that many steps (``curve``: ``[(step, acc), ...]``)."""
    data = target_data(pool, per_class, seed, a["norm"], (plan.source["mean"], plan.source["std"]), plan.val_n)
    device = data["train_x"].device
    state = plan.source["state"] if a["init"] == "pretrained" else None
    model = target_model(plan.widths, len(pool["classes"]), seed, state, device)
    freeze_below(model, a["train_from"])
    if a["bn"] == "frozen":
        freeze_bn_stats(model)
    opt = make_optimizer(model, a["body_lr"], a["head_lr"], plan.momentum, plan.weight_decay)
    curve, callbacks = [], []
    if curve_every:
        def record_curve(event, history, m):
            step = len(history["step"]["loss"])
            if event == "step" and step % curve_every == 0:
                curve.append((step, evaluate(m, data["val_x"], data["val_y"], data["mean"], data["std"])["acc"]))
        callbacks.append(record_curve)
    hist = fit(model, data, epochs=None, max_steps=plan.steps, batch_size=plan.batch_size, opt=opt,
               schedule=plan.schedule, seed=seed, flip=flip, evaluate_val=False, progress=False,
               callbacks=callbacks)
    raise_if_interrupted(hist, "a transfer run")
    test = evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]
    train = evaluate(model, data["train_x"], data["train_y"], data["mean"], data["std"])["acc"]
    return {"seed": seed, "per_class": per_class, "test_acc": test, "train_acc": train, "gap": train - test,
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad), "curve": curve,
            "final_loss": float(hist["step"]["loss"][-1]) if hist["step"]["loss"] else math.nan}


def run_arms(arms: dict, pool: dict, per_class: int, seeds, plan: Plan, flip: bool = True,
             curve_every: int | None = None, desc: str = "arms") -> dict:
    """:func:`train_arm` for every arm (name -> arm) and seed: name -> list of run summaries."""
    out = {}
    for name in tqdm(list(arms), desc=desc, leave=False):
        out[name] = [train_arm(arms[name], pool, per_class, s, plan, flip, curve_every) for s in seeds]
    return out


def values(runs: list[dict], key: str = "test_acc") -> list[float]:
    """One number per seed from a list of run summaries."""
    return [float(r[key]) for r in runs]


def gains(transfer: list[dict], scratch: list[dict]) -> list[float]:
    """Per seed: test accuracy of the transferred run minus that of scratch (paired seeds)."""
    return [t["test_acc"] - s["test_acc"] for t, s in zip(transfer, scratch)]


def steps_to_reach(curve, target: float, never: float = math.nan) -> float:
    """The first step whose validation accuracy is at least ``target``; ``never`` if none is."""
    for step, acc in curve:
        if acc >= target:
            return float(step)
    return never


def steps_to_scratch_final(transfer: list[dict], scratch: list[dict]) -> tuple[list[float], list[float]]:
    """TL-4's speed measure, per seed: the steps each arm needed to reach the scratch run's
    final validation accuracy (scratch's own count is at most its budget; a transferred run
    that never gets there counts one evaluation past the budget)."""
    t_steps, s_steps = [], []
    for t, s in zip(transfer, scratch):
        if not (t["curve"] and s["curve"]):
            raise ValueError("these runs have no validation curve: train them with curve_every")
        goal = s["curve"][-1][1]
        past = s["curve"][-1][0] + s["curve"][0][0]
        t_steps.append(steps_to_reach(t["curve"], goal, never=past))
        s_steps.append(steps_to_reach(s["curve"], goal, never=past))
    return t_steps, s_steps


# ----------------------------------------------------------------------------- the freeze check
def freeze_check(source: dict, widths, pool: dict, per_class: int, seed: int, steps: int, batch_size: int,
                 lr: float, train_from: str = "block3") -> dict:
    """Freeze the layers below ``train_from`` two ways and train a few steps: with
    ``requires_grad=False`` only (the classic mistake) and with :func:`freeze_below` (batch-norm
    statistics frozen too). For each: trainable parameters per layer, and whether the frozen
    layers' parameters and their buffers (batch-norm running statistics) changed."""
    frozen = LAYERS[:LAYERS.index(train_from)]
    out = {}
    for way, bn_stats in (("requires_grad only", False), ("frozen properly", True)):
        data = target_data(pool, per_class, seed, "pretraining", (source["mean"], source["std"]))
        model = target_model(widths, len(pool["classes"]), seed, source["state"], data["train_x"].device)
        freeze_below(model, train_from, bn_stats=bn_stats)
        before = {n: {k: v.detach().clone() for k, v in layer(model, n).state_dict().items()} for n in frozen}
        fit(model, data, epochs=None, max_steps=steps, batch_size=batch_size, evaluate_val=False, progress=False,
            opt=make_optimizer(model, lr, lr), schedule="constant", seed=seed)
        params_moved = buffers_moved = False
        for n in frozen:
            mod, names = layer(model, n), {k for k, _ in layer(model, n).named_parameters()}
            for k, v in mod.state_dict().items():
                moved = not torch.equal(v, before[n][k])
                params_moved |= moved and k in names
                buffers_moved |= moved and k not in names
        out[way] = {"trainable": trainable_counts(model), "params_changed": params_moved,
                    "buffers_changed": buffers_moved}
    return out


# ----------------------------------------------------------------------------- plots
def draw_gain_curve(ax, sizes, gain_per_size: dict) -> None:
    """TL-3's curve: the gain of transfer over scratch (points) against images per class (log
    scale), the mean joined by a line, zero dotted."""
    means = []
    for n in sizes:
        g = [100 * v for v in gain_per_size[n]]
        ax.plot([n] * len(g), g, "o", color="C0", alpha=0.5, ms=5)
        means.append(statistics.fmean(g))
    ax.plot(list(sizes), means, "-", color="C0", lw=2, label="mean over seeds")
    ax.axhline(0, color="grey", ls=":")
    ax.set_xscale("log")
    ax.set_xticks(list(sizes), [str(n) for n in sizes])
    ax.set(xlabel="target images per class (log scale)", ylabel="gain over scratch (points)",
           title="what pretraining adds, by target size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_val_curves(ax, groups: dict, title: str = "") -> None:
    """Validation accuracy against the step, every seed, one colour per group."""
    for k, (name, runs) in enumerate(groups.items()):
        for i, r in enumerate(runs):
            steps, accs = zip(*r["curve"]) if r["curve"] else ((), ())
            ax.plot(steps, [100 * a for a in accs], "o-", color=f"C{k}", alpha=0.6, ms=3,
                    label=name if i == 0 else None)
    ax.set(xlabel="step", ylabel="validation accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


# ----------------------------------------------------------------------------- the widget
def run_for_panel(params: dict, pools: dict, plan: Plan, report, should_stop, flips: dict | None = None) -> dict:
    """The widget's experiment: one fine-tuning run from the panel's values (``target``, a key
    of ``pools``; ``per_class``; ``train_from``; ``body_lr``; ``head_lr``; ``steps``), seed 0,
    pretraining normalisation. Returns the ``fit`` history (validation every epoch)."""
    from ..ui.widgets import history_reporter
    pool = pools[params["target"]]
    data = target_data(pool, params["per_class"], 0, "pretraining", (plan.source["mean"], plan.source["std"]),
                       plan.val_n)
    model = target_model(plan.widths, len(pool["classes"]), 0, plan.source["state"], data["train_x"].device)
    freeze_below(model, params["train_from"])
    opt = make_optimizer(model, params["body_lr"], params["head_lr"], plan.momentum, plan.weight_decay)
    hist = fit(model, data, epochs=None, max_steps=params["steps"], batch_size=plan.batch_size, opt=opt,
               schedule=plan.schedule, seed=0, flip=(flips or {}).get(params["target"], True),
               should_stop=should_stop, callbacks=[history_reporter(report, every_steps=5)], progress=False)
    hist["trainable"] = trainable_counts(model)
    return hist


def panel_png(history: dict, title: str = "") -> bytes:
    """The panel's picture: training loss per step and validation accuracy per epoch."""
    fig = Figure(figsize=(11, 3.6))
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(history["step"]["loss"], color="k", lw=1)
    ax.set(xlabel="step", ylabel="training loss", title="training loss per step")
    e = history["epoch"]
    ax2.plot(e["epoch"], [100 * a for a in e["val_acc"]], "o-", color="C0")
    ax2.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    course_look(fig)
    counts = history.get("trainable")
    fig.suptitle(title + (f"  trainable per layer: {counts}" if counts else ""), fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


# ----------------------------------------------------------------------------- takeaways
MEANINGS = {
    "TL-1": {
        "supported": "The body at a tenth of the head's LR beat fine-tuning everything at the head's LR "
                     "and at the low LR alike: the split itself helped, not merely a lower LR.",
        "not supported": "Differential LR did not beat both single-LR arms: here one LR for all layers "
                         "did as well, or better (often the low single LR does just as well: the benefit "
                         "was the lower LR, not the split).",
        "inconclusive": "The three fine-tuning arms lie within the seed noise of each other at this "
                        "budget; the effect, if any, is small next to the seed-to-seed spread."},
    "TL-2": {
        "supported": "Freezing most layers won on the similar target and end-to-end training won on the "
                     "digits: the rule of thumb held in both halves.",
        "not supported": "A half failed: on the similar target freezing did not beat end-to-end training "
                         "(with a cheap-to-overfit small body and steps to spare, updating everything "
                         "costs little), or on the digits end-to-end did not beat freezing.",
        "inconclusive": "At least one half could not be told from seed noise at this budget."},
    "TL-3": {
        "supported": "Pretraining helped most where target data were scarcest, and the gain shrank as the "
                     "target grew: transfer makes up for scarce data.",
        "not supported": "The gain did not shrink with more target data (or transfer did not help at the "
                         "smallest size): at this step budget, scratch is as short of training at 500 "
                         "images a class as at 20, so the gain need not fall.",
        "inconclusive": "The gain at the smallest size could not be told apart from the gain at the "
                        "largest (or from zero) at this budget."},
    "TL-4": {
        "supported": "The pretrained model reached scratch's final validation accuracy in fewer steps and "
                     "had a smaller train-test gap: faster and less overfitted.",
        "not supported": "A half failed: most often the gap, since both models fit the few training images "
                         "perfectly and the gap then only mirrors the test accuracy; He et al. also found "
                         "pretraining speeds convergence without necessarily regularising.",
        "inconclusive": "Either the speed or the gap could not be told from seed noise at this budget."},
    "TL-5": {
        "supported": "Normalising the digits as in pretraining beat both their own statistics and no "
                     "normalisation: the pretrained filters expect the inputs they were trained on.",
        "not supported": "A mismatched normalisation cost nothing here (or helped): batch norm right after "
                         "the first convolution re-normalises each channel during fine-tuning, which "
                         "absorbs most of an input shift or scale.",
        "inconclusive": "The normalisation arms differ by less than the seed noise at this budget."},
}
