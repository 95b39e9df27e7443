"""Notebook 13's helpers: per-sample batched augmentations on device tensors (document D's colour
distortion and zoom-out, a destructive flip/rotation), mixup with its label mixing and its
switch-off epoch, training orders (sorted, shuffled once, reshuffled every epoch), paired-seed
runs, the image grid and the widget's run.

Why the course writes its own augmentations: ``torchvision.transforms.v2`` draws *one* random
value per call, so a batched call would give every image of a batch the same brightness, crop or
zoom; here every image draws its own (one tensor op per batch, no per-sample Python).
``torchvision.transforms.v2.MixUp`` is the reference for mixup (one lambda per batch, partner =
the batch rolled by one, as Zhang et al. 2018 do), but it needs the labels with the images, and
``fit``'s ``batch_transform`` sees the images only; :class:`Mixup` therefore mixes the images in
the transform and the labels in the loss, with the same lambda and partner (the tests check that
it matches ``v2.MixUp``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from ..core.data import make_generator, random_flip, random_translate
from ..core.runs import reinitialize_, train_and_score
from ..core.train import evaluate, raise_if_interrupted
from ..ui import plots
from ..ui.plots import course_look, figure_png

# Document D's RandomDistort: each of brightness, contrast, saturation scaled by a factor in
# [1 - 0.5, 1 + 0.5] with probability 0.5, hue turned by up to 18 degrees with probability 0.5.
D_JITTER = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue_deg": 18.0, "prob": 0.5}
D_EXPAND = {"max_ratio": 4.0, "prob": 0.5}  # RandomExpand (PaddleX's default ratio 4)
D_MIXUP_ALPHA = 1.5                          # MixupImage(alpha=1.5, beta=1.5)
D_MIXUP_SHARE = 25 / 27                      # mixup_epoch = int(170 * 25 / 27): off for the last 7%

# ----------------------------------------------------------------------------- augmentations
_GREY = torch.tensor([0.299, 0.587, 0.114])


def _chance(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    """(n,1,1,1) float mask: 1 for the images (each with probability ``p``) that get the change."""
    return (torch.rand(n, device=device, generator=gen) < p).float().view(n, 1, 1, 1)


def _factor(n: int, spread: float, p: float, gen: torch.Generator, device) -> torch.Tensor:
    """(n,1,1,1) factors in [1 - spread, 1 + spread], left at 1 with probability 1 - p."""
    f = 1 + spread * (2 * torch.rand(n, device=device, generator=gen) - 1)
    on = _chance(n, p, gen, device)
    return 1 + on * (f.view(n, 1, 1, 1) - 1)


def colour_jitter(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0,
                  settings: dict | None = None) -> torch.Tensor:
    """Brightness, contrast, saturation and hue changed per image (0-1 float images, N,3,H,W).

    ``settings`` default to document D's (:data:`D_JITTER`); ``strength`` scales every range (0:
    unchanged, 1: D's, 2: twice D's). Hue is a rotation of the colour plane around the grey axis
    (exact for hue, up to the final clamp). Returns a new tensor in [0, 1], same shape.
    """
    s = {**D_JITTER, **(settings or {})}
    if strength <= 0:
        return x
    n, dev = x.shape[0], x.device
    grey_w = _GREY.to(dev, x.dtype).view(1, 3, 1, 1)
    x = x * _factor(n, s["brightness"] * strength, s["prob"], gen, dev)
    grey = (x * grey_w).sum(1, keepdim=True)
    mean = grey.mean(dim=(2, 3), keepdim=True)
    x = mean + _factor(n, s["contrast"] * strength, s["prob"], gen, dev) * (x - mean)
    grey = (x * grey_w).sum(1, keepdim=True)
    x = grey + _factor(n, s["saturation"] * strength, s["prob"], gen, dev) * (x - grey)
    angle = math.radians(s["hue_deg"] * strength) * (2 * torch.rand(n, device=dev, generator=gen) - 1)
    angle = angle * _chance(n, s["prob"], gen, dev).view(n)
    return _rotate_hue(x, angle).clamp(0, 1)


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each image's colours by ``angle[i]`` radians around the grey axis (1,1,1)/sqrt(3)."""
    c, s = torch.cos(angle), torch.sin(angle)
    k = torch.full_like(c, 1 / 3)
    r = torch.sqrt(k)
    a = c + (1 - c) * k            # Rodrigues' rotation matrix about a unit axis of equal parts
    b = (1 - c) * k - s * r
    d = (1 - c) * k + s * r
    m = torch.stack([torch.stack([a, b, d], -1), torch.stack([d, a, b], -1),
                     torch.stack([b, d, a], -1)], -2)  # n,3,3
    return torch.einsum("nij,njhw->nihw", m, x)


def zoom_out(x: torch.Tensor, gen: torch.Generator, max_ratio: float = D_EXPAND["max_ratio"],
             prob: float = D_EXPAND["prob"], fill: torch.Tensor | None = None) -> torch.Tensor:
    """Document D's RandomExpand at a fixed input size: with probability ``prob`` an image is
    shrunk by a ratio drawn from [1, ``max_ratio``] and placed at a random spot on a canvas of
    ``fill`` (per-channel 0-1 values; default mid-grey), per image. Same shape out (any H, W)."""
    if max_ratio <= 1 or prob <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device
    ratio = 1 + (max_ratio - 1) * torch.rand(n, device=dev, generator=gen)
    ratio = torch.where(torch.rand(n, device=dev, generator=gen) < prob, ratio, torch.ones_like(ratio))
    room = 1 - 1 / ratio                 # how far the shrunken image may move from the centre
    tx = room * (2 * torch.rand(n, device=dev, generator=gen) - 1)
    ty = room * (2 * torch.rand(n, device=dev, generator=gen) - 1)
    theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = ratio, ratio
    theta[:, 0, 2], theta[:, 1, 2] = -tx * ratio, -ty * ratio
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    fill = (fill if fill is not None else torch.full((3,), 0.5)).to(dev, x.dtype).view(1, -1, 1, 1)
    return out + (1 - inside) * fill


def destroy(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A destructive augmentation for CIFAR-10 (AUG-2): each image is flipped upside down with
    probability 0.5 and, independently, rotated 180 degrees with probability 0.5. Upright test
    images never look like this, so the network spends capacity on views it will not meet."""
    x = torch.where(_chance(x.shape[0], 0.5, gen, x.device) > 0, x.flip(-2), x)
    return torch.where(_chance(x.shape[0], 0.5, gen, x.device) > 0, x.flip(-2).flip(-1), x)


RECIPE_KEYS = ("flip", "crop_pad", "jitter", "expand", "destroy")


def check_recipe(recipe: dict) -> dict:
    """A full recipe (defaults: nothing on) or a ValueError naming the bad entry and its range."""
    full = {"flip": False, "crop_pad": 0, "jitter": 0.0, "expand": 1.0, "destroy": False, **recipe}
    unknown = set(full) - set(RECIPE_KEYS)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {RECIPE_KEYS}")
    if not (isinstance(full["crop_pad"], int) and 0 <= full["crop_pad"] <= 16):
        raise ValueError(f"crop_pad must be a whole number of pixels 0 to 16, got {full['crop_pad']!r}")
    if not 0 <= full["jitter"] <= 3:
        raise ValueError(f"jitter strength must be 0 to 3 (1 = document D's), got {full['jitter']!r}")
    if not 1 <= full["expand"] <= 8:
        raise ValueError(f"expand ratio must be 1 (off) to 8, got {full['expand']!r}")
    return full


def needs_float(recipe: dict) -> bool:
    """True when the recipe has a step that works on float colours (jitter, zoom-out)."""
    return recipe["jitter"] > 0 or recipe["expand"] > 1


def apply_recipe(x: torch.Tensor, recipe: dict, gen: torch.Generator) -> torch.Tensor:
    """Every augmentation of ``recipe`` on uint8 images ``x`` (N,3,H,W), per image; uint8 out.

    Order: crop (reflect-padded translation), left-right flip, destruction, colour jitter,
    zoom-out. Used for the image grid; training applies the same functions (see :func:`fit_kwargs`).
    """
    r = check_recipe(recipe)
    x = random_translate(x, r["crop_pad"], gen)
    if r["flip"]:
        x = random_flip(x, gen)
    if r["destroy"]:
        x = destroy(x, gen)
    if needs_float(r):
        xf = colour_and_zoom(x.float() / 255, r, gen)
        x = (xf * 255).round().clamp(0, 255).to(torch.uint8)
    return x


def colour_and_zoom(x01: torch.Tensor, recipe: dict, gen: torch.Generator) -> torch.Tensor:
    """The float steps of a recipe (colour jitter, then zoom-out) on 0-1 images."""
    x01 = colour_jitter(x01, gen, recipe["jitter"])
    return zoom_out(x01, gen, recipe["expand"]) if recipe["expand"] > 1 else x01


# ----------------------------------------------------------------------------- mixup
def mix(x: torch.Tensor, y: torch.Tensor, lam: float, num_classes: int = 10):
    """mixup of a batch with itself rolled by one (torchvision v2.MixUp's pairing): images
    ``lam * x + (1 - lam) * x.roll(1)`` and soft targets mixed the same way (each row sums to 1)."""
    xm = lam * x + (1 - lam) * x.roll(1, 0)
    one = F.one_hot(y, num_classes).to(x.dtype if x.is_floating_point() else torch.float32)
    return xm, lam * one + (1 - lam) * one.roll(1, 0)


class Mixup:
    """mixup for ``fit``: :meth:`transform` is the ``batch_transform`` (mixes the images with one
    lambda ~ Beta(alpha, alpha) per batch, drawn from a NumPy generator seeded with ``seed``) and
    :meth:`loss` the ``loss_fn`` (cross-entropy against the labels mixed with the same lambda and
    partner). From epoch ``off_after + 1`` on, no mixing (MIX-2); ``off_after=None``: never off.

    The two calls share state (the last lambda), which is safe because ``fit`` calls the loss on
    the batch it has just transformed.
    """

    def __init__(self, alpha: float, seed: int = 0, off_after: int | None = None, num_classes: int = 10):
        if not alpha > 0:
            raise ValueError(f"mixup alpha must be positive, got {alpha!r}")
        self.alpha, self.off_after, self.num_classes = alpha, off_after, num_classes
        self.rng = np.random.default_rng(seed)
        self.lam = 1.0

    def transform(self, x: torch.Tensor, epoch: int, gen: torch.Generator) -> torch.Tensor:
        """Mix the (normalised) images of one batch; lambda 1 (unchanged) after ``off_after``."""
        on = self.off_after is None or epoch <= self.off_after
        self.lam = float(self.rng.beta(self.alpha, self.alpha)) if on else 1.0
        return x if self.lam == 1.0 else self.lam * x + (1 - self.lam) * x.roll(1, 0)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the mixed labels of the batch just transformed."""
        if self.lam == 1.0:
            return F.cross_entropy(logits, y)
        return self.lam * F.cross_entropy(logits, y) + (1 - self.lam) * F.cross_entropy(logits, y.roll(1, 0))


def mixup_off_epoch(epochs: int, share: float = D_MIXUP_SHARE) -> int:
    """The last epoch with mixup when it is switched off for the last ``1 - share`` of ``epochs``
    (document D: int(170 * 25 / 27) = 157 of 170); at least one epoch off, at least one on."""
    if epochs < 2:
        raise ValueError(f"switching mixup off needs at least 2 epochs, got {epochs}")
    return max(1, min(int(epochs * share), epochs - 1))


# ----------------------------------------------------------------------------- training
def fit_kwargs(recipe: dict, seed: int, mixup_alpha: float = 0.0, mixup_off_after: int | None = None,
               mean=None, std=None) -> dict:
    """``fit`` keywords for one arm: crop and flip through ``fit``'s own batched augmentation,
    the destructive, colour and zoom steps as a ``batch_transform`` (un-normalise, change,
    normalise again, since ``fit`` hands over normalised batches), mixup last (``Mixup``)."""
    r = check_recipe(recipe)
    kw = {"aug": r["crop_pad"] > 0 or r["flip"], "pad": r["crop_pad"], "flip": r["flip"]}
    mixer = Mixup(mixup_alpha, seed, mixup_off_after) if mixup_alpha > 0 else None
    extra = r["destroy"] or needs_float(r)
    if not extra and mixer is None:
        return kw
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    def transform(x, epoch, gen):
        if r["destroy"]:
            x = destroy(x, gen)
        if needs_float(r):
            x = (colour_and_zoom(x * s + m, r, gen) - m) / s
        return mixer.transform(x, epoch, gen) if mixer else x
    kw["batch_transform"] = transform
    if mixer:
        kw["loss_fn"] = mixer.loss
    return kw


def darken(x: torch.Tensor, factor: float = 0.5, tint=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """A shifted copy of uint8 images: every pixel times ``factor`` and per-channel ``tint``
    (the robustness test set: colour jitter may pay off here and not on the clean set)."""
    t = torch.tensor(tint, device=x.device).view(1, 3, 1, 1)
    return (x.float() * factor * t).round().clamp(0, 255).to(torch.uint8)


def sort_by_class(data: dict) -> dict:
    """``data`` with the training images in class order (all 0s, then all 1s, ...), stable."""
    order = torch.argsort(data["train_y"], stable=True)
    return {**data, "train_x": data["train_x"][order], "train_y": data["train_y"][order]}


def shuffle_once(data: dict, seed: int) -> dict:
    """``data`` with the training images put in one random order (``seed``), kept for every epoch."""
    g = make_generator(seed, data["train_y"].device)
    order = torch.randperm(len(data["train_y"]), generator=g, device=data["train_y"].device)
    return {**data, "train_x": data["train_x"][order], "train_y": data["train_y"][order]}


def run_arm(model: nn.Module, data: dict, seed: int, recipe: dict, mixup_alpha: float = 0.0,
            mixup_off_after: int | None = None, test_sets: dict | None = None, **fit_kw) -> dict:
    """Re-initialise ``model`` from ``seed``, train one arm, and score it on each of
    ``test_sets`` (name -> (uint8 images, labels); default the clean test split). Returns
    ``{"seed", "<name>_acc" per test set, "train_loss" per epoch}``."""
    kw = fit_kwargs(recipe, seed, mixup_alpha, mixup_off_after, data["mean"], data["std"])
    res = train_and_score(model, data, seed=seed, evaluate_val=False, **kw, **fit_kw)
    raise_if_interrupted(res["history"], "an augmentation arm")
    out = {"seed": seed, "train_loss": list(res["history"]["epoch"]["train_loss"])}
    for name, (x, y) in (test_sets or {"test": (data["test_x"], data["test_y"])}).items():
        out[f"{name}_acc"] = evaluate(model, x, y, data["mean"], data["std"])["acc"]
    return out


def run_arms(model: nn.Module, data: dict, arms: dict, seeds, bar: bool = True, **kw) -> dict:
    """Every arm (name -> ``run_arm`` keywords: recipe, mixup_alpha, ...) once per seed, seed
    *i* the same for every arm (paired). Returns name -> list of ``run_arm`` results."""
    out = {name: [] for name in arms}
    with tqdm(total=len(arms) * len(seeds), disable=not bar, desc="runs", leave=False) as pbar:
        for name, arm in arms.items():
            for s in seeds:
                out[name].append(run_arm(model, data, s, **arm, **kw))
                pbar.update(1)
    return out


def values(runs: list[dict], key: str = "test_acc") -> list[float]:
    """One value per seed, in seed order."""
    return [r[key] for r in runs]


def gains(runs: dict, arm: str, base: str, key: str = "test_acc") -> list[float]:
    """Per-seed gain of ``arm`` over ``base`` (paired by seed)."""
    return [a - b for a, b in zip(values(runs[arm], key), values(runs[base], key))]


def table(groups: dict, keys=("test_acc",)) -> str:
    """A text table: arm, then the mean and the per-seed values of each key (in %)."""
    lines = []
    for name, runs in groups.items():
        cells = [f"{k} {100 * np.mean(values(runs, k)):5.1f}% "
                 f"({', '.join(f'{100 * v:.1f}' for v in values(runs, k))})" for k in keys]
        lines.append(f"{name:34s} " + " | ".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- pictures
def preview(x: torch.Tensor, recipes: dict, seed: int = 0) -> dict:
    """Each recipe applied to the same uint8 images with the same seed: name -> uint8 images."""
    out = {"original": x}
    for name, recipe in recipes.items():
        out[name] = apply_recipe(x, recipe, make_generator(seed, x.device))
    return out


def grid_figure(views: dict, mixed: torch.Tensor | None = None, scale: float = 1.1) -> Figure:
    """Rows = augmentations, columns = the same images: what the network sees. ``mixed`` (0-1
    float images) adds a mixup row. Built without pyplot (the widget redraws it in a thread)."""
    rows = dict(views)
    if mixed is not None:
        rows["mixup"] = (mixed * 255).round().clamp(0, 255).to(torch.uint8)
    ncols = max(len(v) for v in rows.values())
    fig = Figure(figsize=(ncols * scale + 1.6, len(rows) * scale))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for i, (name, imgs) in enumerate(rows.items()):
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(imgs):
                ax.imshow(imgs[j].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    course_look(fig)
    fig.subplots_adjust(left=0.18, wspace=0.05, hspace=0.08)
    return fig


def mixup_preview(x: torch.Tensor, y: torch.Tensor, alpha: float, seed: int = 0) -> torch.Tensor:
    """0-1 float images of one mixup batch (lambda ~ Beta(alpha, alpha), one per batch)."""
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    return mix(x.float() / 255, y, lam)[0]


def draw_points(ax, groups: dict, key: str = "test_acc", title: str = "") -> None:
    """Per-seed values (points) and the mean (bar line) of each arm, in %."""
    for i, (name, runs) in enumerate(groups.items()):
        v = [100 * a for a in values(runs, key)]
        ax.scatter([i] * len(v), v, color=f"C{i}", zorder=3)
        ax.hlines(np.mean(v), i - 0.3, i + 0.3, color=f"C{i}")
    ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right", fontsize=8)
    ax.set(ylabel=f"{key.replace('_', ' ')} (%)", title=title)
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------------------- the widget
def panel_spec(crop_pad: int = 4, epochs: int = 10) -> dict:
    """The widget's inputs: each augmentation with its strength (ranges the panel enforces)."""
    return {"flip": {"kind": "bool", "value": True, "label": "left-right flip"},
            "crop_pad": {"kind": "int", "value": crop_pad, "min": 0, "max": 16, "label": "crop pad (px)"},
            "jitter": {"kind": "float", "value": 0.0, "min": 0.0, "max": 3.0,
                       "label": "colour jitter (1 = D's)"},
            "expand": {"kind": "float", "value": 1.0, "min": 1.0, "max": 8.0,
                       "label": "zoom-out ratio (1 = off)"},
            "destroy": {"kind": "bool", "value": False, "label": "upside-down / rotated"},
            "mixup_alpha": {"kind": "float", "value": 0.0, "min": 0.0, "max": 8.0,
                            "label": "mixup alpha (0 = off)"},
            "epochs": {"kind": "int", "value": epochs, "min": 1, "max": 100, "label": "epochs"}}


def recipe_from(params: dict) -> dict:
    """The augmentation recipe in a panel's values."""
    return {k: params[k] for k in RECIPE_KEYS}


def preview_png(params: dict, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> bytes:
    """The panel's instant picture: the chosen recipe (and mixup, if alpha > 0) on ``x``."""
    views = preview(x, {"your recipe": recipe_from(params)}, seed)
    mixed = mixup_preview(x, y, params["mixup_alpha"], seed) if params["mixup_alpha"] > 0 else None
    return figure_png(grid_figure(views, mixed))


def run_for_panel(params: dict, data: dict, report, should_stop, model: nn.Module, **fit_kw) -> dict:
    """The widget's experiment: the panel's recipe and mixup trained on ``data`` (seed 0), the
    ``fit`` history with ``test_acc`` added."""
    from ..ui.widgets import history_reporter
    alpha = params["mixup_alpha"]
    kw = fit_kwargs(recipe_from(params), 0, alpha, None, data["mean"], data["std"])
    reinitialize_(model, 0)
    res = train_and_score(model, data, seed=0, epochs=params["epochs"], should_stop=should_stop,
                          callbacks=[history_reporter(report, every_steps=10)], progress=False,
                          **kw, **fit_kw)
    hist = res["history"]
    hist["test_acc"] = evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]
    return hist


def panel_png(history: dict, title: str = "") -> bytes:
    """The panel's training picture: training loss per step and validation accuracy per epoch."""
    fig = Figure(figsize=(10, 3.4))
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(history["step"]["loss"], color="k", lw=1)
    ax.set(xlabel="step", ylabel="training loss", title="training loss (mixed labels if mixup)")
    e = history["epoch"]
    ax2.plot(e["epoch"], [100 * a for a in e["val_acc"]], "o-", color="k")
    test = history.get("test_acc")
    ax2.set(xlabel="epoch", ylabel="validation accuracy (%)",
            title="validation accuracy" + (f"; test {100 * test:.1f}%" if test is not None else ""))
    return plots.finish_png(fig, title)


def attach_preview(panel, x: torch.Tensor, y: torch.Tensor, validate) -> None:
    """Redraw the panel's image with the recipe's preview whenever an input changes (no
    training); bad values show the refusal in the status line instead."""
    def redraw(_=None):
        params, errors = validate(panel.spec, {k: w.value for k, w in panel.inputs.items()})
        if errors:
            panel.status.value = "; ".join(errors)
            return
        panel.image.value = preview_png(params, x, y)
        panel.image.layout.display = ""
    for w in panel.inputs.values():
        w.observe(redraw, names="value")
    redraw()


# ----------------------------------------------------------------------------- takeaways
MEANINGS = {
    "DATA-2": {
        "supported": "Flips and crops raised test accuracy on the scarce subset, and by more than on "
                     "the larger one: augmentation pays most where data is scarce.",
        "not supported": "A part failed: flip + crop did not help on the scarce subset, or helped as "
                         "much on the larger one. In a few epochs a small net may not overfit yet, so "
                         "there is little for augmentation to fix.",
        "inconclusive": "The gains cannot be told from seed noise at this budget (or the difference "
                        "between the two data sizes cannot)."},
    "AUG-2": {
        "supported": "Upside-down and rotated copies lowered test accuracy against flip + crop: an "
                     "augmentation that makes views the test set never shows costs accuracy.",
        "not supported": "The destructive augmentation did not cost more than the margin: in a short "
                         "run it acts mostly as extra noise, which a small net can absorb.",
        "inconclusive": "The cost of the destructive augmentation is within the seed noise."},
    "DATA-4": {
        "supported": "mixup raised test accuracy even at this budget.",
        "not supported": "mixup did not help here: its gains (Zhang et al. 2018) come after about 200 "
                         "epochs; in a short run it mostly makes the task harder and the net underfits.",
        "inconclusive": "mixup's effect cannot be told from seed noise at this budget; it needs long "
                        "training (the full profile) to show."},
    "MIX-2": {
        "supported": "Switching mixup off for the last epochs raised test accuracy over mixup to the end: "
                     "the net fits clean images at the end of training.",
        "not supported": "Switching mixup off at the end did not help more than the margin.",
        "inconclusive": "The switch-off's effect is within the seed noise at this budget."},
    "SHUF-1": {
        "supported": "Reshuffling every epoch beat one fixed shuffled order (and class-sorted data, "
                     "without shuffling, failed outright).",
        "not supported": "One fixed random order did as well as reshuffling every epoch: what matters is "
                         "that batches mix the classes; class-sorted data without shuffling is what "
                         "fails.",
        "inconclusive": "A fixed random order and reshuffling every epoch cannot be told apart at this "
                        "budget; class-sorted data without shuffling fails either way."},
}
