"""Planted faults for notebook 09: layers, losses, data and nets that make NaN or Inf in a known
place, each with its fix, and :func:`run_scenario`, which trains one of them (broken or fixed)
with :func:`train_until_nonfinite` (``fit`` plus handling of its error) and reports where the
finder points.

The faults (claims in ``claims.md``):
- ``lr_too_high``: a plain CNN (no batch norm) at a far too high LR (NAN-1);
- ``dirty_data``: a few training images with NaN/Inf pixels (NAN-2);
- ``sqrt_at_zero``: :class:`StdPool` takes sqrt of a variance that is exactly 0 (NAN-3, D's bug);
- ``zero_variance``: :class:`PerImageStandardize` divides by the std of a blank image (NAN-3);
- ``log_of_zero``: :func:`log_softmax_by_hand` takes log of a probability that underflowed to 0 (NAN-3);
- ``naive_softmax``: :func:`naive_softmax` overflows to Inf/Inf (NAN-4); both on the deep MLP
  below with a large init, whose logits start in the hundreds, at a small LR;
- ``exploding``: a deep plain MLP with a large init (NAN-5, NAN-6);
- ``sigmoid``: the same deep MLP with sigmoid, whose gradients vanish (ACT-1).

Figures: :func:`draw_losses` and :func:`draw_layer_norms` draw on a given axes;
:func:`scenario_png` renders both for the widget panel.
"""
from __future__ import annotations

import functools
import math
import statistics
import textwrap
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from torch import nn
from tqdm.auto import tqdm

from ..core.models import init_weights, make_activation, small_cnn
from ..core.nonfinite import find_nonfinite, scan_data
from ..core.train import NonFiniteLossError, fit
from ..ui import plots
from ..ui.plots import render_png

EPS = 1e-8  # document D's eps

# ---------------------------------------------------------------- faulty layers and losses


class StdPool(nn.Module):
    """Global mean-and-standard-deviation pooling: (N, C, H, W) -> (N, 2C), the per-channel
    spatial mean and std side by side (a richer global pool, as in statistics pooling).

    The planted bug is document D's own: ``std = sqrt(var + eps)`` with ``eps = 0``. Where the
    variance is exactly 0 (a 1x1 map, or a constant channel) the forward pass is fine (std = 0)
    but sqrt's derivative there is infinite and the variance's derivative is 0: 0 * inf = NaN in
    the backward pass. ``eps = 1e-8`` makes the derivative finite.
    """

    def __init__(self, eps: float = 0.0):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        var = x.var(dim=(2, 3), unbiased=False)
        return torch.cat([x.mean(dim=(2, 3)), torch.sqrt(var + self.eps)], dim=1)


class PerImageStandardize(nn.Module):
    """Standardise each image, channel by channel, by its own mean and std: ``(x - mean) / (std + eps)``.

    With ``eps = 0`` a blank (constant) image gives 0 / 0 = NaN in the forward pass: a division
    by a zero variance. (TensorFlow's ``per_image_standardization`` divides by
    ``max(std, 1/sqrt(N))`` for exactly this reason.)
    """

    def __init__(self, eps: float = 0.0):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True, unbiased=False)
        return (x - mean) / (std + self.eps)


def naive_softmax(logits: torch.Tensor) -> torch.Tensor:
    """exp(z) / sum(exp(z)) as written in a textbook: exp overflows to Inf above about 88.7 in
    float32 (11 in float16), and Inf / Inf = NaN (NAN-4)."""
    e = torch.exp(logits)
    return e / e.sum(dim=1, keepdim=True)


def max_subtracted_softmax(logits: torch.Tensor) -> torch.Tensor:
    """exp(z - max z) / sum(exp(z - max z)): the same function, which cannot overflow."""
    e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


def log_softmax_by_hand(logits: torch.Tensor, y: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Cross-entropy written as -log(softmax(z)[y] + eps), the softmax max-subtracted.

    A class whose logit is about 104 below the largest gets probability exactly 0 in float32,
    log(0) = -inf, the loss is Inf and its gradient NaN (NAN-3). ``eps`` bounds the loss at
    -log(eps) but then such a sample gives almost no gradient; ``F.cross_entropy`` (a fused
    log_softmax) is exact and finite.
    """
    p = max_subtracted_softmax(logits).gather(1, y[:, None])
    return -torch.log(p + eps).mean()


def naive_softmax_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy through :func:`naive_softmax`: NaN as soon as a logit passes about 88.7."""
    return -torch.log(naive_softmax(logits).gather(1, y[:, None])).mean()


def softmax_overflow_sweep(scales, num_classes: int = 10, n: int = 256, seed: int = 0,
                           dtype=torch.float32) -> dict:
    """For logits ``scale * z`` (z standard normal, ``n`` rows), which softmaxes stay finite?

    Returns ``{"max_logit": [...], "naive_finite": [...], "max_subtracted_finite": [...],
    "log_softmax_finite": [...]}``, one entry per scale, each "finite" meaning every output of the
    function is finite.
    """
    z = torch.randn(n, num_classes, generator=torch.Generator().manual_seed(seed))
    out = {"max_logit": [], "naive_finite": [], "max_subtracted_finite": [], "log_softmax_finite": []}
    for s in scales:
        logits = (z * s).to(dtype)
        out["max_logit"].append(float(logits.float().max()))
        out["naive_finite"].append(bool(torch.isfinite(naive_softmax(logits)).all()))
        out["max_subtracted_finite"].append(bool(torch.isfinite(max_subtracted_softmax(logits)).all()))
        out["log_softmax_finite"].append(bool(torch.isfinite(F.log_softmax(logits, dim=1)).all()))
    return out


# ---------------------------------------------------------------- models with a fault inside


def deep_mlp(depth: int = 10, width: int = 128, activation: str = "relu", batch_norm: bool = False,
             gain: float = 1.0, in_features: int = 3 * 32 * 32, num_classes: int = 10) -> nn.Sequential:
    """A deep plain (no skip connections) MLP: flatten -> ``depth`` x [fc -> (bn) -> act] -> out.

    Weights are normal with std = ``gain`` x the activation's recommended gain
    (``nn.init.calculate_gain``: sqrt 2 for ReLU, 5/3 for tanh, 1 for sigmoid) / sqrt(fan_in),
    so ``gain = 1`` keeps the signal's scale through the depth and ``gain = 1.5`` multiplies it
    by about 1.5 per layer: it explodes (NAN-5, NAN-6). Input size is free: ``in_features``.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be at least 1, got {depth} and {width}")
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    layers = OrderedDict(flatten=nn.Flatten())
    c = in_features
    for i in range(1, depth + 1):
        layers[f"fc{i}"] = nn.Linear(c, width, bias=not batch_norm)
        if batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm1d(width)
        layers[f"act{i}"] = make_activation(activation)
        c = width
    layers["out"] = nn.Linear(c, num_classes)
    model = nn.Sequential(layers)
    act_gain = nn.init.calculate_gain(activation if activation in ("relu", "tanh", "sigmoid") else "relu")
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=gain * act_gain / math.sqrt(m.in_features))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def stdpool_cnn(eps: float = 0.0, widths=(16, 32, 64, 64, 64), hidden: int = 64,
                num_classes: int = 10) -> nn.Sequential:
    """A small CNN whose head pools with :class:`StdPool`. Five 2x2 poolings bring a 32x32 image
    to a 1x1 map, whose variance is exactly 0: with ``eps = 0`` every backward pass is NaN."""
    body = small_cnn(widths=widths, hidden=hidden, num_classes=num_classes)
    head = nn.Sequential(OrderedDict(pool=StdPool(eps), fc1=nn.Linear(2 * widths[-1], hidden),
                                     act=nn.ReLU(), fc2=nn.Linear(hidden, num_classes)))
    init_weights(head, "kaiming")
    nn.init.normal_(head.fc2.weight, std=0.01)
    body.head = head
    return body


def standardize_cnn(eps: float = 0.0, **small_cnn_kw) -> nn.Sequential:
    """:func:`course_lib.core.models.small_cnn` with :class:`PerImageStandardize` in front."""
    body = small_cnn(**small_cnn_kw)
    return nn.Sequential(OrderedDict([("standardize", PerImageStandardize(eps)), *body.named_children()]))


# ---------------------------------------------------------------- dirty data


def _pick(n_total: int, n: int, seed: int) -> tuple[torch.Tensor, np.random.Generator]:
    """``n`` sorted random indices below ``n_total``. NumPy draws them: a torch generator with the
    same seed would repeat the training shuffle and put every planted image in the first batch."""
    if not 0 < n <= n_total:
        raise ValueError(f"n must be between 1 and the number of images ({n_total}), got {n}")
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.sort(rng.choice(n_total, n, replace=False))), rng


def plant_nonfinite(x: torch.Tensor, n: int, seed: int = 0, margin: int = 4) -> tuple[torch.Tensor, list[int]]:
    """A float32 copy of uint8 images ``x`` (0-255 scale) where ``n`` random images have one
    corrupted row: NaN in every other one, +Inf in the rest (like a truncated decode).

    The row lies at least ``margin`` pixels from the top and bottom, so a random translation by
    up to ``margin`` never crops it away. Returns (copy, sorted indices of the planted images).
    """
    h = x.shape[2]
    if h <= 2 * margin:
        raise ValueError(f"images of height {h} are too small for a margin of {margin}")
    idx, rng = _pick(len(x), n, seed)
    rows = torch.from_numpy(rng.integers(margin, h - margin, n))
    values = torch.where(torch.arange(n) % 2 == 0, math.nan, math.inf)
    out = x.to(torch.float32, copy=True)
    out[idx.to(x.device), :, rows.to(x.device), :] = values.to(x.device)[:, None, None]
    return out, idx.tolist()


def plant_blank(x: torch.Tensor, n: int, seed: int = 0, value: int = 0) -> tuple[torch.Tensor, list[int]]:
    """A copy of images ``x`` where ``n`` random images are blank (every pixel ``value``, e.g. a
    black frame from a failed decode). Returns (copy, sorted indices)."""
    idx, _ = _pick(len(x), n, seed)
    out = x.clone()
    out[idx.to(x.device)] = value
    return out, idx.tolist()


# ---------------------------------------------------------------- scenarios: break it, fix it

FIXES = {
    "lr_too_high": ("lower_lr",),
    "dirty_data": ("drop_scanned",),
    "sqrt_at_zero": ("eps",),
    "zero_variance": ("eps",),
    "log_of_zero": ("eps", "log_softmax"),
    "naive_softmax": ("max_subtracted", "log_softmax"),
    "exploding": ("clip", "batch_norm", "small_init", "tanh"),
    "sigmoid": ("relu", "tanh"),
}
# Per scenario: learning rate and batch size of the broken run, and the planted samples.
SETTINGS = {
    "lr_too_high": dict(lr=3.0, batch_size=64),
    "dirty_data": dict(lr=0.05, batch_size=64, n_images=4000, n_bad=3),
    "sqrt_at_zero": dict(lr=0.05, batch_size=64),
    "zero_variance": dict(lr=0.05, batch_size=64, n_images=4000, n_bad=3),
    "log_of_zero": dict(lr=0.001, batch_size=64),
    "naive_softmax": dict(lr=0.001, batch_size=64),
    "exploding": dict(lr=0.01, batch_size=128),
    "sigmoid": dict(lr=0.01, batch_size=128),
}
LARGE_GAIN = 1.5  # the "large init" of the exploding MLP


def check_scenario(name: str, fix: str = "none") -> None:
    """Raise a ValueError naming the allowed choices if ``name`` or ``fix`` is unknown."""
    if name not in FIXES:
        raise ValueError(f"failure must be one of {sorted(FIXES)}, got {name!r}")
    if fix not in ("none",) + FIXES[name]:
        raise ValueError(f"fix {fix!r} does not apply to {name!r}: choose one of {('none',) + FIXES[name]}")


def scenario_model(name: str, fix: str = "none", in_shape=(3, 32, 32), num_classes: int = 10) -> nn.Module:
    """The model a scenario trains, for images of shape ``in_shape`` (on the CPU; move it with
    ``.to(device)``). ``sqrt_at_zero`` needs 32x32 images: five poolings bring them to 1x1."""
    check_scenario(name, fix)
    c, n_in = in_shape[0], math.prod(in_shape)
    if name == "lr_too_high":
        return small_cnn(batch_norm=False, num_classes=num_classes, in_channels=c)
    if name in ("log_of_zero", "naive_softmax"):  # large init: logits start in the hundreds
        return deep_mlp(gain=LARGE_GAIN, in_features=n_in, num_classes=num_classes)
    if name == "dirty_data":
        return small_cnn(num_classes=num_classes, in_channels=c)
    if name == "sqrt_at_zero":
        return stdpool_cnn(eps=EPS if fix == "eps" else 0.0, num_classes=num_classes)
    if name == "zero_variance":
        return standardize_cnn(eps=EPS if fix == "eps" else 0.0, num_classes=num_classes, in_channels=c)
    if name == "exploding":
        return deep_mlp(activation="tanh" if fix == "tanh" else "relu", batch_norm=fix == "batch_norm",
                        gain=1.0 if fix == "small_init" else LARGE_GAIN, in_features=n_in, num_classes=num_classes)
    return deep_mlp(activation=fix if fix != "none" else "sigmoid", in_features=n_in, num_classes=num_classes)


def scenario_loss(name: str, fix: str = "none"):
    """The loss a scenario trains with: a hand-written one for the loss faults, else cross-entropy."""
    check_scenario(name, fix)
    if name == "log_of_zero" and fix != "log_softmax":
        return functools.partial(log_softmax_by_hand, eps=EPS if fix == "eps" else 0.0)
    if name == "naive_softmax" and fix == "none":
        return naive_softmax_loss
    if name == "naive_softmax" and fix == "max_subtracted":
        return log_softmax_by_hand
    return F.cross_entropy


def scenario_data(name: str, data: dict, fix: str = "none", seed: int = 0) -> dict:
    """The data a scenario trains on: ``data`` itself, or for ``dirty_data``/``zero_variance`` a
    subset with planted bad images (``"planted"`` holds their indices). The fix ``drop_scanned``
    removes every image :func:`course_lib.core.nonfinite.scan_data` flags."""
    check_scenario(name, fix)
    if name not in ("dirty_data", "zero_variance"):
        return data
    s = SETTINGS[name]
    n = min(s["n_images"], len(data["train_y"]))
    plant = plant_nonfinite if name == "dirty_data" else plant_blank
    x, planted = plant(data["train_x"][:n], min(s["n_bad"], n), seed)
    y = data["train_y"][:n]
    if fix == "drop_scanned":
        found = scan_data(x)
        keep = torch.ones(n, dtype=torch.bool, device=x.device)
        keep[found["nonfinite"] + found["constant"]] = False
        x, y = x[keep], y[keep]
    return {**data, "train_x": x, "train_y": y, "planted": planted}


def run_scenario(name: str, data: dict, fix: str = "none", steps: int = 100, seed: int = 0,
                 lr_scale: float = 1.0, batch_size: int | None = None, on_step=None, should_stop=None) -> dict:
    """Train scenario ``name`` with ``fix`` ("none" = broken) for up to ``steps`` steps.

    The learning rate is the scenario's (``SETTINGS``) times ``lr_scale`` (the fix ``lower_lr``
    divides it by 10); the fix ``clip`` clips the gradient norm at 1. Returns the result of
    :func:`train_until_nonfinite` plus ``scenario`` and ``fix``.
    """
    check_scenario(name, fix)
    if not lr_scale > 0:
        raise ValueError(f"lr_scale must be positive, got {lr_scale}")
    s = SETTINGS[name]
    device = data["train_x"].device
    torch.manual_seed(seed)
    model = scenario_model(name, fix, tuple(data["train_x"].shape[1:]), len(data["classes"])).to(device)
    lr = s["lr"] * lr_scale * (0.1 if fix == "lower_lr" else 1.0)

    def step_done(res):  # label partial results too (the widget draws them while training runs)
        res.update(scenario=name, fix=fix)
        if on_step is not None:
            on_step(res)

    res = train_until_nonfinite(model, scenario_data(name, data, fix, seed), steps, lr,
                                batch_size or s["batch_size"], scenario_loss(name, fix),
                                grad_clip=1.0 if fix == "clip" else None, seed=seed,
                                on_step=step_done, should_stop=should_stop)
    res.update(scenario=name, fix=fix)
    return res


MLP_SCENARIOS = ("log_of_zero", "naive_softmax", "exploding", "sigmoid")


def memo_runner(data: dict, steps: int, mlp_steps: int):
    """``run(name, fix="none", seed=0, lr_scale=1.0)``: :func:`run_scenario` with the scenario's
    step budget (``mlp_steps`` for the deep-MLP scenarios, ``steps`` for the CNNs), run once per
    distinct call. Later identical calls return the same result, so the notebook's sections
    share their runs instead of training them again."""
    cache = {}

    def run(name: str, fix: str = "none", seed: int = 0, lr_scale: float = 1.0) -> dict:
        key = (name, fix, int(seed), float(lr_scale))
        if key not in cache:
            n = mlp_steps if name in MLP_SCENARIOS else steps
            cache[key] = run_scenario(name, data, fix, steps=n, seed=seed, lr_scale=lr_scale)
        return cache[key]
    return run


def early_nan_fixes(run, fixes: dict, seeds, lr_factor: float = 10, within: int = 100,
                    progress: bool = True) -> list[dict]:
    """NAN-1 as stated ("an early NaN means the LR is too high; lowering it fixes it"), over
    planted causes. ``fixes`` maps each cause (a scenario) to its own fix; ``run`` is a
    :func:`memo_runner`. For every cause and seed: the broken run; if its first non-finite
    step comes within ``within`` steps (an *early* NaN), the same run with the LR divided by
    ``lr_factor`` and the run with the cause's own fix (for a cause whose own fix is
    ``lower_lr``, that is the lowered run itself). *Fixed* means finite for the whole budget.

    Returns one row per (cause, seed): ``cause``, ``seed``, ``first_nan``, ``early``, and for
    early rows ``lr_fixed``, ``lr_first_nan`` (the lowered run's first non-finite step, None
    if fixed) and ``fix_fixed``."""
    if not lr_factor > 1:
        raise ValueError(f"lr_factor must be > 1 (how many times lower the LR is), got {lr_factor}")
    for name, fix in fixes.items():
        check_scenario(name, fix)
    rows = []
    todo = [(name, s) for name in fixes for s in seeds]
    for name, s in tqdm(todo, desc="causes x seeds", disable=not progress):
        first = run(name, "none", s)["first_nonfinite"]
        row = {"cause": name, "seed": s, "first_nan": first, "early": first is not None and first <= within}
        if row["early"]:
            lowered = run(name, "none", s, 1 / lr_factor)
            own = lowered if fixes[name] == "lower_lr" else run(name, fixes[name], s)
            row.update(lr_fixed=lowered["first_nonfinite"] is None, lr_first_nan=lowered["first_nonfinite"],
                       fix_fixed=own["first_nonfinite"] is None)
        rows.append(row)
    return rows


def draw_fix_shares(ax, rows: list[dict], lr_label: str = "LR lowered") -> None:
    """Per cause, the share of its early NaNs that lowering the LR fixed and that the cause's own
    fix fixed (bars), each seed as a point (1 = fixed, 0 = still NaN)."""
    causes = list(dict.fromkeys(r["cause"] for r in rows if r["early"]))
    for j, (key, label) in enumerate((("lr_fixed", lr_label), ("fix_fixed", "its own fix"))):
        xs = [i + (j - 0.5) * 0.38 for i in range(len(causes))]
        got = [[float(r[key]) for r in rows if r["early"] and r["cause"] == c] for c in causes]
        ax.bar(xs, [100 * statistics.fmean(g) for g in got], width=0.36, alpha=0.6, label=label)
        for x, g in zip(xs, got):
            ax.plot([x] * len(g), [100 * v for v in g], "k.", ms=5)
    ax.set_xticks(range(len(causes)), causes, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="early NaNs fixed (%)", ylim=(-5, 105))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)


def lr_sweep_summary(runs: dict, within: int = 100) -> dict:
    """NAN-1 from a learning-rate sweep. ``runs`` maps ``(lr, seed)`` to a run result.

    Per seed: the step at which each LR went non-finite (``nan_step``, None = finite
    throughout); the LRs that failed within ``within`` steps (``early``); the finite LRs that
    *learn* (mean loss of the last 10 steps below 90% of the first loss); whether every early
    failure had a higher LR than every LR that learns (``above_learning``); and, for each early
    failure, the factor down to the largest finite LR (``needed_factor``, D's "lower it until the
    NaN goes") and down to the largest LR that learns (``learn_factor``); inf if there is none.

    ``holds``: for every seed some LR failed early, above every LR that learns, and the median
    needed factor over all early failures is at most 10. None (undecided) if no LR learned at
    all, since then "too high" cannot be told from "too few steps".
    """
    per_seed, factors, learn_factors = {}, [], []
    for seed in sorted({s for _, s in runs}):
        lrs = sorted(lr for lr, s in runs if s == seed)
        step = {lr: runs[(lr, seed)]["first_nonfinite"] for lr in lrs}
        finite = [lr for lr in lrs if step[lr] is None]
        early = [lr for lr in lrs if step[lr] is not None and step[lr] <= within]
        learns = [lr for lr in finite if mean_last_loss(runs[(lr, seed)]) < 0.9 * runs[(lr, seed)]["loss"][0]]
        need = {lr: _factor(lr, finite) for lr in early}
        learn_need = {lr: _factor(lr, learns) for lr in early}
        factors += list(need.values())
        learn_factors += list(learn_need.values())
        per_seed[seed] = {"nan_step": step, "early": early, "learns": learns, "needed_factor": need,
                          "learn_factor": learn_need,
                          "above_learning": all(lr > max(learns, default=math.inf) for lr in early)}
    median = statistics.median(factors) if factors else math.inf
    learned = any(v["learns"] for v in per_seed.values())
    holds = (all(v["early"] and v["above_learning"] for v in per_seed.values()) and median <= 10) if learned else None
    return {"per_seed": per_seed, "factors": factors, "median_factor": median, "learn_factors": learn_factors,
            "median_learn_factor": statistics.median(learn_factors) if learn_factors else math.inf, "holds": holds}


def _factor(lr: float, lower: list) -> float:
    """``lr`` over the largest of ``lower`` below it (inf if none)."""
    below = [f for f in lower if f < lr]
    return lr / max(below) if below else math.inf


def mean_last_loss(res: dict, k: int = 10) -> float:
    """Mean training loss of a run's last ``k`` steps (NaN if one of them is not finite)."""
    last = res["loss"][-k:]
    return sum(last) / len(last)


def finite_fraction(res: dict, steps: int) -> float:
    """Fraction of the ``steps`` asked for that a run completed with a finite loss and gradient."""
    done = res["first_nonfinite"] - 1 if res["first_nonfinite"] else res["steps"]
    return done / steps


def outcome(res: dict) -> str:
    """One line: how a run ended (first non-finite step and cause, or the final loss)."""
    label = f"{res.get('scenario', 'run')} / fix {res.get('fix', 'none')} (lr {res['lr']:.3g})"
    if res["first_nonfinite"]:
        return (f"{label}: non-finite {res['cause']} at step {res['first_nonfinite']}; finder: "
                f"{res['finding']['summary']}")
    return (f"{label}: finite for all {res['steps']} steps, loss {res['loss'][0]:.3f} at step 1, "
            f"{mean_last_loss(res):.3f} over the last {min(10, len(res['loss']))}")


def draw_losses(ax, runs: dict) -> None:
    """Loss per step for each labelled run (log scale); a dotted line and a cross mark the step
    where a run went non-finite."""
    for label, r in runs.items():
        steps = range(1, len(r["loss"]) + 1)
        (line,) = ax.plot(steps, [v if math.isfinite(v) else math.nan for v in r["loss"]], label=label)
        if r["first_nonfinite"]:
            ax.axvline(r["first_nonfinite"], color=line.get_color(), ls=":")
            ax.plot([r["first_nonfinite"]], [max([v for v in r["loss"] if math.isfinite(v)] or [1.0])], "x",
                    color=line.get_color(), ms=10, mew=2)
    ax.set(xlabel="step", ylabel="training loss", yscale="log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_layer_norms(ax, runs: dict) -> None:
    """Each run's weight-gradient norm per layer at step 1 (input on the left), log scale."""
    drawn = [label for label, r in runs.items() if r["layer_grad_norms"]]
    for label in drawn:
        norms = runs[label]["layer_grad_norms"].values()
        ax.plot(range(1, len(norms) + 1), [v if 0 < v < math.inf else math.nan for v in norms], "o-", label=label)
    ax.set(xlabel="layer (input -> output)", ylabel="gradient norm at step 1", yscale="log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no gradient: the loss was\nnot finite at step 1", ha="center", transform=ax.transAxes)


def scenario_png(res: dict, title: str = "") -> bytes:
    """PNG of a scenario run for the widget panel: loss curve, per-layer gradient norms and the
    finder's verdict as the title."""
    label = f"{res.get('scenario', 'run')} / {res.get('fix', 'none')}"
    text = outcome(res) if res["stopped"] != "requested" and (res["first_nonfinite"] or res["steps"]) else ""
    heading = "\n".join(textwrap.wrap(f"{title}: {text}" if title else text, 100))
    return render_png([draw_losses, draw_layer_norms], {label: res}, heading, ncols=2, size=(10, 4))


def train_until_nonfinite(model: nn.Module, data: dict, steps: int, lr: float, batch_size: int = 64,
                          loss_fn=F.cross_entropy, seed: int = 0, aug: bool = False, on_step=None,
                          should_stop=None, **fit_kw) -> dict:
    """Train for ``steps`` steps (constant LR) and stop at the first non-finite loss or gradient.

    This is ``train.fit`` plus handling of its ``NonFiniteLossError``: ``fit`` stops on a
    non-finite loss *or gradient* (a backward-only fault leaves the loss finite until the update
    spoils the weights), before the update; here the failing step's loss (and gradient norm) join
    the curves, its cause is kept, and :func:`find_nonfinite` runs on the failing batch with the
    weights as they were. ``fit_kw`` go to ``fit`` (``grad_clip``, ``optimizer``,
    ``weight_decay``, ...). Returns ``{"loss", "grad_norm", "layer_grad_norms" (at step 1, before
    clipping), "first_nonfinite" (step or None), "cause" ("loss", "gradient", "gradient norm"
    (elements finite, norm overflowed) or None), "finding", "steps", "seconds", "stopped", "lr",
    "model"}`` and, after a failure, ``"batch"`` (x, y). ``on_step(result)`` is called after every
    step; ``should_stop()`` ends the run early.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be at least 1, got {steps} and {batch_size}")
    res = {"loss": [], "grad_norm": [], "layer_grad_norms": {}, "first_nonfinite": None, "cause": None,
           "finding": None, "steps": 0, "seconds": 0.0, "stopped": None, "lr": lr, "model": model}
    # each conv/linear weight's gradient norm in the first backward pass, before clipping or a check
    layers = [(n, m.weight) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    first = {}

    def keep_norm(name):
        def hook(param):
            first.setdefault(name, float(param.grad.norm()))
        return hook
    hooks = [w.register_post_accumulate_grad_hook(keep_norm(n)) for n, w in layers if w.requires_grad]

    def record(hist):
        for h in hooks:
            h.remove()
        res.update(loss=hist["step"]["loss"], grad_norm=hist["step"]["grad_norm"], stopped=hist["stopped"],
                   steps=len(hist["step"]["loss"]), layer_grad_norms={n: first[n] for n, _ in layers if n in first})

    def step_done(event, hist, _model):
        if event == "step":
            record(hist)
            if on_step is not None:
                on_step(res)

    t0, failure = time.perf_counter(), None
    try:  # sync_every=1: on_step draws every step's loss, which must then be a number
        hist = fit(model, data, epochs=None, max_steps=steps, batch_size=batch_size, lr=lr, schedule="constant",
                   loss_fn=loss_fn, seed=seed, aug=aug, evaluate_val=False, progress=False, callbacks=[step_done],
                   should_stop=should_stop, **{"sync_every": 1, **fit_kw})
    except NonFiniteLossError as err:
        failure, hist = err, err.history
    finally:
        for h in hooks:
            h.remove()
    if failure is not None:
        hist["step"]["loss"].append(failure.loss)  # the failing step is part of the curves
        if failure.cause != "loss":
            hist["step"]["grad_norm"].append(failure.grad_norm)
        res.update(first_nonfinite=failure.step, cause=failure.cause, batch=failure.batch,
                   finding=find_nonfinite(model, *failure.batch, loss_fn))
    record(hist)
    res["seconds"] = time.perf_counter() - t0
    return res


def draw_seed_points(ax, values: dict, ylabel: str) -> None:
    """One column per arm (``name -> one value per seed``, fractions): each seed as a point and
    the mean as a bar, in percent, so the seed spread is visible."""
    plots.seed_points(ax, values, ylabel, scale=100)


# What each possible outcome would mean, written before the run (takeaways.show_takeaways).
MEANINGS = {
    "NAN-1": {
        "supported": "Lowering the LR fixed about as many early NaNs as each cause's own fix: in this mix "
                     "of causes, an early NaN was mostly an LR problem.",
        "not supported": "Lowering the LR fixed clearly fewer early NaNs than the causes' own fixes: an early "
                         "NaN is a symptom with several causes (data, a sqrt or log at 0, an overflowing "
                         "softmax), most of which no LR can fix. Locate the first NaN before turning the LR down.",
        "inconclusive": "Too few early NaNs, or too mixed, to tell; more seeds per cause would settle it.",
    },
    "NAN-6": {
        "supported": "Every fix kept the deep MLP finite and left it more accurate than the broken run.",
        "not supported": "At least one fix kept the net finite without making it more accurate: finite is not "
                         "the same as trained, so check accuracy after any NaN fix.",
        "inconclusive": "A fix's accuracy gain could not be told from seed noise at this budget.",
    },
    "ACT-1": {
        "supported": "Sigmoid trailed both ReLU and tanh by more than the margin: its gradient shrinks on the "
                     "way to the input (see the gradient-norm panel).",
        "not supported": "Sigmoid was not clearly worse here: in a shallower net or with a longer budget its "
                         "saturation may matter less.",
        "inconclusive": "The gap could not be told from seed noise at this budget.",
    },
}
