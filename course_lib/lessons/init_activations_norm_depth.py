"""Notebook 11's helpers: plain and residual conv nets of any depth with a chosen init,
activation and normalisation, the per-layer gradient-norm profile at initialisation, dead-unit
counting, paired-seed training runs, BN-1 on the course's baseline net with and without batch
norm, a planted height/width swap (DBG-4), plots and the widget.

The net (:func:`conv_net`) follows He et al.'s CIFAR ResNets (6n + 2 weight layers) at one
constant width: a 3x3 stem conv and 2x2 max pooling, three stages of ``(depth - 2) / 3`` convs
with max pooling between them, then global average pooling and a linear head. ``residual=True``
adds an identity skip around every pair of convs (post-activation, as in He et al. 2016);
``kernel=5`` replaces every pair of 3x3 convs by one 5x5 conv (the same receptive field, ARCH-2).
Built here rather than in ``core.models`` because only this lesson needs depth, residual and
normalisation as knobs.
"""
from __future__ import annotations

import math
import statistics
from collections import OrderedDict

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from ..core import recipes
from ..core.data import normalize
from ..core.models import ACTIVATIONS, count_parameters, make_activation
from ..core.runs import choose_on_validation, train_and_score
from ..core.train import evaluate
from ..ui import plots
from ..ui.plots import course_look, figure_png

INITS = ("default", "kaiming", "xavier", "normal001")
NORMS = ("none", "batch", "group")
INIT_LABELS = {"default": "PyTorch default", "kaiming": "kaiming_normal", "xavier": "xavier_normal",
               "normal001": "N(0, 0.01)"}
HEAD_STD = 0.01  # every head starts small, so every net's first loss is near ln 10


# ----------------------------------------------------------------------------- the nets
def check_depth(depth: int) -> int:
    """``depth`` (weight layers: stem + body convs + head) must be 6n + 2 with n >= 1: three
    stages of an even number of convs. Returns n, the conv pairs per stage."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 26, 32, 38, ...), got {depth!r}")
    return (depth - 2) // 6


def make_norm(norm: str, width: int, groups: int) -> nn.Module:
    """The normalisation after a conv: none (identity), batch norm, or group norm with ``groups``
    groups (Wu & He 2018; statistics per image, so they do not depend on the batch)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if norm == "batch":
        return nn.BatchNorm2d(width)
    if norm == "group":
        if width % groups:
            raise ValueError(f"group norm needs the width ({width}) to be a multiple of groups ({groups})")
        return nn.GroupNorm(groups, width)
    return nn.Identity()


class ConvUnit(nn.Sequential):
    """conv -> norm -> activation (a plain layer)."""

    def __init__(self, c_in, c_out, kernel, activation, norm, groups):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=norm == "none"),
            norm=make_norm(norm, c_out, groups), act=make_activation(activation)))


class ResidualBlock(nn.Module):
    """Two 3x3 convs with an identity skip: ``act(x + norm(conv2(act(norm(conv1(x))))))``."""

    def __init__(self, width, activation, norm, groups):
        super().__init__()
        self.unit1 = ConvUnit(width, width, 3, activation, norm, groups)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=norm == "none")
        self.norm2 = make_norm(norm, width, groups)
        self.act2 = make_activation(activation)

    def forward(self, x):
        return self.act2(x + self.norm2(self.conv2(self.unit1(x))))


def init_net(model: nn.Module, init: str, head_std: float = HEAD_STD) -> nn.Module:
    """Initialise ``model``'s conv and linear weights in place with ``init`` and zero their biases;
    the last linear layer always gets N(0, ``head_std``) whatever ``init``. ``default`` keeps PyTorch's own draw
    (kaiming_uniform with a = sqrt(5): a variance of 1 / (3 fan_in), a third of kaiming's);
    ``kaiming``: kaiming_normal with the ReLU gain (variance 2 / fan_in), as it is used in
    practice whatever the activation; ``xavier``: xavier_normal (2 / (fan_in + fan_out), which is
    1 / fan_in for a conv with as many inputs as outputs); ``normal001``: N(0, 0.01), the
    "small random numbers" of old tutorials."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for m in layers:
            if m is layers[-1]:
                nn.init.normal_(m.weight, 0.0, head_std)
            elif init == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_normal_(m.weight)
            elif init == "normal001":
                nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None and (init != "default" or m is layers[-1]):
                m.bias.zero_()
    return model


def conv_net(depth: int = 8, width: int = 16, activation: str = "relu", init: str = "kaiming",
             norm: str = "none", residual: bool = False, kernel: int = 3, groups: int = 4,
             num_classes: int = 10, head_std: float = HEAD_STD, seed: int | None = None) -> nn.Sequential:
    """The lesson's net (see the module doc): ``depth`` = 6n + 2 weight layers at one ``width``.

    ``kernel=5`` (plain only) puts one 5x5 conv where the 3x3 net has two. ``seed`` seeds the
    draw of the weights, so seed i gives the same net to every arm that shares its shape. Accepts
    any input height and width (global pooling before the head)."""
    n = check_depth(depth)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if kernel not in (3, 5):
        raise ValueError(f"kernel must be 3 or 5, got {kernel!r}")
    if kernel == 5 and residual:
        raise ValueError("kernel=5 is for plain nets only (a residual block is two 3x3 convs)")
    if seed is not None:
        torch.manual_seed(seed)
    stages = OrderedDict(stem=ConvUnit(3, width, 3, activation, norm, groups), pool0=nn.MaxPool2d(2))
    for s in range(1, 4):
        layers = OrderedDict()
        for i in range(1, n + 1):
            if residual:
                layers[f"block{i}"] = ResidualBlock(width, activation, norm, groups)
            elif kernel == 5:
                layers[f"conv{i}"] = ConvUnit(width, width, 5, activation, norm, groups)
            else:
                layers[f"conv{2 * i - 1}"] = ConvUnit(width, width, 3, activation, norm, groups)
                layers[f"conv{2 * i}"] = ConvUnit(width, width, 3, activation, norm, groups)
        stages[f"stage{s}"] = nn.Sequential(layers)
        if s < 3:
            stages[f"pool{s}"] = nn.MaxPool2d(2)
    stages["head"] = nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                               fc=nn.Linear(width, num_classes)))
    return init_net(nn.Sequential(stages), init, head_std)


def equal_params_width(width: int) -> int:
    """The width of the 5x5 net whose convs hold about as many weights as the 3x3 net's: one
    5x5 conv (25 w5^2) for two 3x3 convs (18 w^2), so w5 = w * sqrt(18 / 25), rounded."""
    return max(1, round(width * math.sqrt(18 / 25)))


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The conv layers in forward order (input first), with their names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def conv_macs(model: nn.Module, height: int = 32, width: int = 32) -> int:
    """Multiply-adds of all conv layers for one ``height`` x ``width`` image (counted from the
    output sizes that a forward pass produces, so pooling and odd sizes are handled)."""
    total = []

    def hook(m, inp, out):
        total.append(out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
    handles = [m.register_forward_hook(hook) for _, m in conv_layers(model)]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width, device=next(model.parameters()).device))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return int(sum(total))


def describe_cost(model: nn.Module) -> dict:
    """Weights and conv multiply-adds per 32x32 image, for a fair-comparison table."""
    return {"params": count_parameters(model), "macs": conv_macs(model)}


# ----------------------------------------------------------------------------- gradient profile
def gradient_profile(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The norm of the loss gradient of every conv layer's weights on one batch, input layer
    first: what reaches each layer at this point, before any training step. The model is left
    with no gradients and in the mode it was in (train mode is used, so batch norm uses the
    batch's statistics as it will in training)."""
    was = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        F.cross_entropy(model(x), y).backward()
        norms = [float(m.weight.grad.norm()) for _, m in conv_layers(model)]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    return norms


def profile_batch(data: dict, n: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images, normalised, and their labels: the one batch every
    gradient profile is measured on."""
    x = normalize(data["train_x"][:n], data["mean"], data["std"], channels_last=False)
    y = data["train_y"][:n]
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


def profile_grid(x, y, depths, inits, activations, seed: int, width: int = 16, norm: str = "none",
                 residual: bool = False, progress: bool = True) -> dict:
    """:func:`gradient_profile` for every (depth, init, activation); each net drawn from ``seed``.
    Returns ``{(depth, init, activation): [norm per conv layer]}``."""
    combos = [(d, i, a) for d in depths for i in inits for a in activations]
    out = {}
    for d, i, a in tqdm(combos, desc="profiles", disable=not progress):
        net = conv_net(d, width, a, i, norm=norm, residual=residual, seed=seed).to(x.device)
        out[(d, i, a)] = gradient_profile(net, x, y)
    return out


def first_to_last(profile: list[float]) -> float:
    """The gradient norm of the first conv layer over that of the last: 1 means no vanishing;
    1e-3 means the input layer gets a thousandth of what the output layer gets."""
    if not profile or profile[-1] == 0:
        return math.nan
    return profile[0] / profile[-1]


# ----------------------------------------------------------------------------- dead units
def dead_fraction(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> float:
    """The share of channels, over every activation module of the net, whose input is <= 0 at
    every position of every image in ``x`` (normalised images): for ReLU, channels that output
    zero and pass no gradient on any of these images (dead). For leaky ReLU and PReLU the same
    count says "never positive", but those channels still pass a (small) gradient."""
    acts = [m for m in model.modules() if isinstance(m, tuple(ACTIVATIONS.values()))]
    alive = {id(m): None for m in acts}

    def hook(m, inp, out):
        seen = (inp[0] > 0).flatten(2).any(2).any(0)  # per channel: positive anywhere?
        alive[id(m)] = seen if alive[id(m)] is None else alive[id(m)] | seen
    handles = [m.register_forward_hook(hook) for m in acts]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size])
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    flags = torch.cat([a for a in alive.values() if a is not None])
    return float((~flags).float().mean()) if len(flags) else math.nan


# ----------------------------------------------------------------------------- training runs
def train_run(data: dict, seed: int, lr: float, net_kw: dict, **kw) -> dict:
    """Build :func:`conv_net` from ``net_kw`` with seed ``seed`` (paired: every arm's seed i draws
    its weights from the same seed) and train and summarise it with :func:`score_run`."""
    model = conv_net(**net_kw, seed=seed).to(data["train_x"].device)
    return score_run(model, data, seed, lr, reinit=False, **kw)


def score_run(model: nn.Module, data: dict, seed: int, lr: float, *, reinit: bool, test: bool = False,
              val: bool = False, dead_images: int = 0, target: float | None = None, **fit_kw) -> dict:
    """Train ``model`` with ``fit`` (SGD, ``lr``, data order from ``seed``; ``fit_kw`` go to
    ``fit``), re-initialised from ``seed`` first when ``reinit``, and summarise: ``train_loss``
    (the mean over the last epoch's steps), ``val_acc`` (``fit``'s last validation score; with
    ``val``, scored here when ``fit`` was told not to), ``test_acc`` (only with ``test``; NaN
    otherwise, and the test split is not read), ``dead`` (with ``dead_images`` > 0:
    :func:`dead_fraction` on that many validation images), ``steps_to`` (with ``target``: the
    first step at which the mean loss of the last 10 steps is <= target; the number of steps + 1
    when it never was: censored at the budget), ``diverged``."""
    res = train_and_score(model, data, seed=seed, reinit=reinit, lr=lr, **fit_kw)
    steps = [float(v) for v in res["history"]["step"]["loss"]]
    out = {"seed": seed, "lr": lr, "val_acc": res["val_acc"], "diverged": res["diverged"],
           "train_loss": res["train_loss"] if not res["diverged"] else math.nan, "step_loss": steps,
           "test_acc": math.nan, "dead": math.nan, "steps_to": math.nan}
    if val and math.isnan(out["val_acc"]):
        out["val_acc"] = evaluate(model, data["val_x"], data["val_y"], data["mean"], data["std"])["acc"]
    if test:
        out["test_acc"] = evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]
    if dead_images:
        xv = normalize(data["val_x"][:dead_images], data["mean"], data["std"], channels_last=False)
        out["dead"] = dead_fraction(model, xv)
    if target is not None:
        out["steps_to"] = steps_to_target(steps, target)
    return out


def steps_to_target(step_loss, target: float, window: int = 10) -> float:
    """The first step (1-based) at which the mean of the last ``window`` step losses is <=
    ``target``; ``len(step_loss) + 1`` if it never was (censored at the budget)."""
    for i in range(window, len(step_loss) + 1):
        if statistics.fmean(step_loss[i - window:i]) <= target:
            return float(i)
    return float(len(step_loss) + 1)


def repeat(data: dict, seeds, lr: float, net_kw: dict, **kw) -> list[dict]:
    """One :func:`train_run` per seed at one setting."""
    return [train_run(data, s, lr, net_kw, **kw) for s in seeds]


def run_arms(data: dict, arms: dict, seeds, progress: bool = True, **kw) -> dict:
    """``arms``: name -> ``(lr, net_kw)``; returns name -> list of :func:`train_run` summaries,
    seed i of every arm drawn from the same seed."""
    return {name: repeat(data, seeds, lr, net_kw, **kw)
            for name, (lr, net_kw) in tqdm(arms.items(), desc="arms", disable=not progress)}


def select_lr(data: dict, grid, seed: int, net_kw: dict, **kw) -> dict:
    """One run per LR in ``grid`` (seed ``seed``), scored on **validation** only; keeps the best
    (the first of equal scores). Returns ``{"lr", "val_acc": {lr: acc}}``."""
    sel = choose_on_validation(lambda lr, s: train_run(data, s, lr, net_kw, test=False, val=True, **kw),
                               grid, seed)
    return {"lr": sel["lr"], "val_acc": sel["val_acc"]}


BASELINE_NORMS = {"none": "no norm", "batch": "batch norm"}  # bn1 grids' keys -> arm names


def tune_on_baseline_net(data: dict, grids: dict, select_seed: int, seeds, target: float,
                         recipe: dict = recipes.BASELINE, bar: bool = True, **fit_kw) -> dict:
    """BN-1 on the course's baseline net, a network that trains to about 80% in three epochs on a
    CPU: the net with its batch-norm layers ("batch") and without them ("none", its convs get
    biases), each a ``recipes.comparison_net`` (random stem, the recipe's label smoothing and
    amp; ``fit_kw`` over those). ``grids`` maps "none" / "batch" to LRs: each net keeps the LR
    that scores best on **validation** at ``select_seed`` (one run per LR), then trains once per
    seed in ``seeds`` at it, re-initialised from the seed, scored on the test split and timed in
    steps to the training loss ``target`` (:func:`score_run`). ``bar`` shows one progress bar over
    all the runs. Returns
    ``{"no norm" / "batch norm": {"selection": {"lr", "val_acc": {lr: acc}}, "runs": [...]}}``."""
    unknown = sorted(set(grids) - set(BASELINE_NORMS))
    if unknown or any(not list(lrs) for lrs in grids.values()):
        raise ValueError(f"grids must map {sorted(BASELINE_NORMS)} to non-empty LR lists, got {grids}")
    total = sum(len(lrs) + len(seeds) for lrs in grids.values())
    progress = tqdm(total=total, desc="baseline net runs", disable=not bar)
    out = {}
    for norm, lrs in grids.items():
        model, kw = recipes.comparison_net(data, recipe, batch_norm=norm == "batch", **fit_kw)

        def run(lr, seed, test=False):
            summary = score_run(model, data, seed, lr, reinit=True, val=not test, test=test,
                                target=target if test else None, **kw)
            progress.update()  # after the run, so the bar counts finished runs
            return summary
        sel = choose_on_validation(run, lrs, select_seed)
        runs = [run(sel["lr"], s, test=True) for s in seeds]
        out[BASELINE_NORMS[norm]] = {"selection": {"lr": sel["lr"], "val_acc": sel["val_acc"]}, "runs": runs}
    progress.close()
    return out


def values(runs: list[dict], key: str) -> list[float]:
    """One number per seed (e.g. ``"test_acc"``)."""
    return [float(r[key]) for r in runs]


def mean(runs: list[dict], key: str) -> float:
    """The mean over seeds of ``key``, leaving out NaN (unmeasured) values; NaN if none."""
    vals = [v for v in values(runs, key) if not math.isnan(v)]
    return statistics.fmean(vals) if vals else math.nan


def gaps(a: list[dict], b: list[dict], key: str) -> list[float]:
    """Per seed, ``a[i][key] - b[i][key]`` (e.g. group norm's minus batch norm's test accuracy)."""
    return [float(x[key]) - float(y[key]) for x, y in zip(a, b)]


def summary_table(groups: dict, keys=("train_loss", "val_acc", "test_acc", "dead", "steps_to",
                                      "diverged")) -> str:
    """A plain-text table: per arm, the mean over seeds of each key that was measured
    (``diverged``: the share of seeds whose loss became NaN or Inf)."""
    used = [k for k in keys if any(not math.isnan(v) for runs in groups.values() for v in values(runs, k))]
    lines = [f"{'arm':34s}" + "".join(f"{k:>12s}" for k in used)]
    for name, runs in groups.items():
        cells = []
        for k in used:
            vals = [v for v in values(runs, k) if not math.isnan(v)]
            cells.append(f"{statistics.fmean(vals):12.4g}" if vals else f"{'n/a':>12s}")
        lines.append(f"{name:34s}" + "".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- DBG-4
def center_crop_swapped(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """A centre crop with a planted bug: the top offset is computed from the *width* and the
    left offset from the *height* (H and W swapped). Square input and square crop hide it."""
    h, w = x.shape[-2:]
    top, left = (w - out_h) // 2, (h - out_w) // 2  # the planted swap
    return x[..., top:top + out_h, left:left + out_w]


def crop_check(x: torch.Tensor, out_h: int, out_w: int) -> dict:
    """The planted crop against torchvision's ``center_crop`` on ``x``: ``same`` when both give
    the same shape and pixels."""
    ours, ref = center_crop_swapped(x, out_h, out_w), TF.center_crop(x, [out_h, out_w])
    same = ours.shape == ref.shape and bool(torch.equal(ours, ref))
    return {"input": list(x.shape[-2:]), "crop": [out_h, out_w], "same": same,
            "ours": list(ours.shape[-2:]), "torchvision": list(ref.shape[-2:])}


def runs_non_square(net_kws: dict, height: int = 24, width: int = 32, batch: int = 4) -> dict:
    """Every net in ``net_kws`` (name -> conv_net kwargs) on a ``height`` x ``width`` batch:
    name -> True when it returns one row of 10 finite logits per image and a gradient profile
    with a finite norm for every conv layer."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, height, width, generator=g)
    y = torch.arange(batch) % 10
    out = {}
    for name, kw in net_kws.items():
        net = conv_net(**kw, seed=0)
        net.eval()
        with torch.no_grad():
            logits = net(x)
        prof = gradient_profile(net, x, y)
        out[name] = (tuple(logits.shape) == (batch, 10) and bool(torch.isfinite(logits).all())
                     and len(prof) == len(conv_layers(net)) and all(map(math.isfinite, prof)))
    return out


# ----------------------------------------------------------------------------- plots
ACT_COLOURS = {"relu": "C0", "leaky_relu": "C1", "prelu": "C2", "tanh": "C3", "sigmoid": "C4", "gelu": "C5"}
INIT_STYLES = {"kaiming": "-", "xavier": "--", "default": "-.", "normal001": ":"}


def draw_profiles(ax, profiles: dict, title: str = "") -> None:
    """Gradient norm (log scale) against conv layer index, one line per entry of ``profiles``
    (label -> list of norms, or ``(depth, init, activation)`` -> norms, styled by activation
    colour and init line style)."""
    for key, prof in profiles.items():
        style = {}
        if isinstance(key, tuple):
            d, i, a = key
            style = {"color": ACT_COLOURS.get(a), "ls": INIT_STYLES.get(i, "-")}
            key = f"{a}, {INIT_LABELS.get(i, i)}, depth {d}"
        floor = [max(v, 1e-30) for v in prof]  # an exact zero cannot be drawn on a log axis
        ax.plot(range(1, len(prof) + 1), floor, marker=".", ms=3, label=key, **style)
    ax.set_yscale("log")
    ax.set(xlabel="conv layer (1 = next to the input)", ylabel="gradient norm at init (log)", title=title)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=7)


def draw_seed_points(ax, groups: dict, key: str, ylabel: str, title: str = "", scale: float = 1.0) -> None:
    """One column per arm (``label -> runs``): each run's ``key`` a point, the mean a bar."""
    plots.seed_points(ax, {g: values(runs, key) for g, runs in groups.items()}, ylabel, title, scale)


def draw_step_losses(ax, groups: dict, title: str = "", window: int = 10) -> None:
    """Training loss per step (a running mean over ``window`` steps), seed 0 of each arm."""
    for k, (name, runs) in enumerate(groups.items()):
        s = runs[0]["step_loss"]
        smooth = [statistics.fmean(s[max(0, i - window + 1):i + 1]) for i in range(len(s))]
        ax.plot(range(1, len(s) + 1), smooth, color=f"C{k % 10}", label=name)
    ax.axhline(math.log(10), color="grey", ls=":", lw=1)
    ax.set(xlabel="step", ylabel=f"training loss (mean of {window} steps)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


# ----------------------------------------------------------------------------- the widget
def profile_png(params: dict, x: torch.Tensor, y: torch.Tensor, seed: int = 0, width: int = 16) -> bytes:
    """The widget's instant picture: the gradient profile of the chosen net (``depth``,
    ``init``, ``activation``, ``norm``, ``residual``) beside the plain ReLU + kaiming net of the
    same depth, at initialisation (no training)."""
    kw = dict(depth=params["depth"], width=width, activation=params["activation"], init=params["init"],
              norm=params["norm"], residual=params["residual"])
    mine = gradient_profile(conv_net(**kw, seed=seed).to(x.device), x, y)
    ref = gradient_profile(conv_net(params["depth"], width, seed=seed).to(x.device), x, y)
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    draw_profiles(ax, {"your net": mine, "plain ReLU + kaiming, no norm": ref},
                  f"gradient norm per layer at init (first/last = {first_to_last(mine):.2g})")
    course_look(fig)
    fig.tight_layout()
    return figure_png(fig)


def run_for_panel(params: dict, data: dict, report, should_stop, **fit_kw) -> dict:
    """The widget's Run: train the chosen net (seed 0, the panel's ``lr`` and ``epochs``) and
    return the ``fit`` history, drawn live by the panel."""
    from ..core.train import fit
    from ..ui.widgets import history_reporter
    kw = dict(depth=params["depth"], activation=params["activation"], init=params["init"],
              norm=params["norm"], residual=params["residual"])
    model = conv_net(**kw, seed=0).to(data["train_x"].device)
    return fit(model, data, epochs=params["epochs"], lr=params["lr"], seed=0, should_stop=should_stop,
               callbacks=[history_reporter(report, every_steps=10)], progress=False, **fit_kw)


# ----------------------------------------------------------------------------- takeaways
MEANINGS = {
    "INIT-2": {
        "supported": "Both recommended inits reached a lower training loss than PyTorch's default and "
                     "than N(0, 0.01) in the same short budget: at this depth without normalisation the "
                     "init decides whether the net trains at all.",
        "not supported": "At least one recommended init did not beat an alternative by the margin. Look at "
                         "the profile plot: xavier with ReLU halves the signal's variance each layer, so at "
                         "depth 20 it can stall like the default; kaiming is the one made for ReLU.",
        "inconclusive": "A short run on few images leaves the seed noise larger than some of the gaps; the "
                        "profile plot shows the mechanism either way."},
    "ACT-3": {
        "supported": "Sigmoid's (and tanh's) gradients shrank a thousandfold or more between the output and "
                     "the input layer, and in training the ReLU net reached a lower loss than both.",
        "not supported": "A part failed: often tanh with xavier init keeps its gradients (it is close to "
                         "linear near zero), so 'tanh vanishes' is too broad; sigmoid is the one that "
                         "vanishes by algebra (its slope is at most 0.25 and its output is not centred).",
        "inconclusive": "The training part could not separate the activations from seed noise at this "
                        "budget; the gradient profile is the robust part of this claim."},
    "ACT-2": {
        "supported": "A 30x LR killed more ReLU channels than the good LR, and leaky ReLU / PReLU kept more "
                     "accuracy there.",
        "not supported": "A part failed: the large LR did not kill more channels, or the leaky variants "
                         "did not recover accuracy (a diverged run breaks every activation alike).",
        "inconclusive": "Dead-channel counts or accuracies vary too much between seeds at this budget."},
    "BN-1": {
        "supported": "Each at its own tuned LR, the batch-norm net scored higher on the test split and "
                     "reached the target loss in fewer steps.",
        "not supported": "A part failed: at its own best LR the net without batch norm matched it in accuracy "
                         "or in steps to the target loss here. Section 2's depth-8 net is easy to train without "
                         "it; BN's gains grow with depth and with the larger LR it allows.",
        "inconclusive": "The runs cannot separate the two nets from seed noise at this budget."},
    "BN-2": {
        "supported": "Group norm's lead over batch norm was larger at the smallest batch than at the largest: "
                     "small batches hurt batch norm itself, beyond what they do to any net.",
        "not supported": "The batch-norm penalty at small batches was no larger than at large ones here.",
        "inconclusive": "The difference of gaps is within the seed noise at this budget."},
    "ARCH-1": {
        "supported": "The deeper plain net trained worse than the shallow one, the residual net of the same "
                     "depth trained better than the plain one, and its gradients reached the input layer.",
        "not supported": "A part failed: at this scale (batch norm, few steps) the deeper plain net may not "
                         "be worse at all, in which case there is nothing for skips to cure; or the skips "
                         "did not help within the budget.",
        "inconclusive": "The short runs leave the gaps within the seed noise."},
    "ARCH-2": {
        "supported": "At about equal weights and multiply-adds, two 3x3 convs beat one 5x5 on test accuracy.",
        "not supported": "The 5x5 net was as good or better at equal cost here: with few layers and short "
                         "training the extra non-linearity of the 3x3 stack did not pay.",
        "inconclusive": "The two nets cannot be told apart from seed noise at this budget."},
    "DBG-4": {
        "supported": "The swapped crop matched torchvision exactly on square images and differed on "
                     "24x32 ones, and every net of this notebook ran on non-square input.",
        "not supported": "The planted swap was not exposed (or a net failed on non-square input): "
                         "check the crop sizes used."},
}
