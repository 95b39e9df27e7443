"""The course's baseline recipe, defined once: what notebook 00 trains as "the baseline" and what
``make bench`` times against the recipe it replaced.

A recipe is a plain dict (airbench's ``hyp``): the net's width, how its stem starts, the share of
the epochs spent at each image scale, ``fit``'s keyword arguments, and whether to train in bf16.
``train(data, BASELINE)`` builds the net and trains it through ``fit``, the course's one loop.

Until 2026-12-03 the course's baseline was ``PLAIN``; ``BASELINE`` won the side-by-side
time-to-accuracy benchmark (#18): on 2 CPU cores it passed 80% test accuracy in a median 0.50x of
``PLAIN``'s whole training, which ends at 79.8%, and in under 0.75x where it runs in fp32 (a CPU
without bf16 units; one run). README, "Speed".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import normalize
from .models import baseline_net, whitening_init_
from .train import fit

# The course's baseline: the same net and loss as PLAIN, started and scheduled for speed.
BASELINE = {
    "width": 16,  # baseline_net(16): channels 16/32/64/128, 0.3 M parameters (a GPU's `full`: 48)
    # airbench's first-layer trick: the stem's filters start as a whitening of 3x3 patches of
    # 5,000 training images (the top principal directions, +/-, scaled to unit variance; still
    # trained). Seed 0 on 2026-12-03: 78.9% -> 79.7% for 5 epochs; most of the gain is early.
    "whiten_images": 5000,  # 0: the stem keeps its random init
    # progressive resizing (fast.ai's DAWNBench trick): (scale of the image height, share of the
    # epochs), in order. A bf16 step at 16 / 24 px costs 0.45 / 0.66 of one at 32 px here; the last
    # epochs at full size undo the train/test resolution gap. Five epochs: 16-16-24-32-32 px.
    "resize": ((0.5, 0.4), (0.75, 0.2), (1.0, 0.4)),
    "fit": {"epochs": 5,  # the one-cycle schedule spans all of them
            "batch_size": 128,  # twice PLAIN's steps per epoch
            "lr": 0.15,  # peak LR of one-cycle SGD + Nesterov (0.1: 79.7% vs 80.3%, seed 0)
            "label_smoothing": 0.1},  # as PLAIN (0.2 gave 78.5% vs 79.6%)
    # bf16 autocast where it is fast: on CUDA, and on CPUs with bf16 instructions (AVX512-BF16 or
    # AMX: a step costs 0.6-0.65x fp32's here); elsewhere fp32, since emulated bf16 is slower
    "amp": "auto",
}

# The course's baseline until 2026-12-03: fp32 at full size throughout, batch 256, lr 0.2.
PLAIN = {"width": 16, "whiten_images": 0, "resize": ((1.0, 1.0),),
         "fit": {"epochs": 5, "batch_size": 256, "lr": 0.2, "label_smoothing": 0.1}, "amp": False}


# The nets a notebook's ``net`` parameter names: the lesson's own small CNN, or BASELINE's net.
NETS = ("small_cnn", "baseline")


def is_baseline(net: str, name: str = "net") -> bool:
    """Whether a notebook's net parameter (called ``name`` in its parameters cell) names the
    course's baseline net ("baseline") rather than the lesson's small CNN ("small_cnn"); any
    other value is refused, with the parameter's name and the allowed values, before anything
    trains."""
    if net not in NETS:
        raise ValueError(f"{name} must be one of {NETS}, got {net!r}")
    return net == "baseline"


def bf16_is_fast(device: torch.device) -> bool:
    """True on CUDA, and on CPUs with bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast
    makes a training step cheaper; False elsewhere, where it is emulated and slower."""
    if device.type == "cuda":
        return True
    # torch asks oneDNN; these checks are private in torch.cpu, so a torch without them means no
    check = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return device.type == "cpu" and any(f is not None and f() for f in check)


def amp_for(recipe: dict, device: torch.device) -> bool | None:
    """The ``amp`` that ``fit`` gets for ``recipe`` on ``device``: "auto" means bf16 where it is
    fast (:func:`bf16_is_fast`); any other value is passed as it is."""
    amp = recipe.get("amp", None)
    return bf16_is_fast(device) if amp == "auto" else amp


def resize_schedule(epochs: int, resize) -> list[float]:
    """The image scale of each of ``epochs`` epochs: ``resize`` is ``((scale, share), ...)`` in
    order; each scale gets ``share`` of the epochs (rounded), the last one at least one epoch and
    the rest of them. ``resize_schedule(5, BASELINE["resize"])`` is [0.5, 0.5, 0.75, 1, 1]."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not resize or any(not 0 < scale <= 1 or share < 0 for scale, share in resize):
        raise ValueError(f"resize needs (scale in (0, 1], share >= 0) pairs, got {resize!r}")
    last_scale, last_share = resize[-1]
    last = max(1, round(last_share * epochs))
    scales = []
    for scale, share in resize[:-1]:
        scales += [scale] * min(round(share * epochs), epochs - last - len(scales))
    return scales + [last_scale] * (epochs - len(scales))


def resize_to(x: torch.Tensor, height: int) -> torch.Tensor:
    """Resize a float batch to ``height`` pixels high (the width keeps the aspect ratio), bilinear
    and antialiased when it shrinks; the memory format is kept."""
    h, w = x.shape[-2:]
    if height == h:
        return x
    size = (height, max(round(height * w / h), 1))
    out = F.interpolate(x, size=size, mode="bilinear", antialias=height < h, align_corners=False)
    return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
        memory_format=torch.channels_last) else out


def progressive_resizing(scales):
    """A ``fit`` ``batch_transform`` that resizes epoch e's batches to ``scales[e - 1]`` of their
    height (rounded to whole pixels; 1.0 leaves them alone)."""
    def transform(x, epoch, generator):
        return resize_to(x, max(1, round(scales[epoch - 1] * x.shape[-2])))
    return transform


def recipe_model(data: dict, recipe: dict, width: int | None = None, **options) -> torch.nn.Module:
    """``baseline_net`` of the recipe's width (or ``width``) on the data's device, its stem
    whitened from the first ``recipe["whiten_images"]`` training images when that is above 0.
    ``options`` (``conv_dropout``, ``head_dropout``, ``dropout_kind``, ``batch_norm``) go to
    ``baseline_net``."""
    model = baseline_net(width or recipe["width"], **options).to(data["train_x"].device)
    n = recipe.get("whiten_images", 0)
    if n:
        images = normalize(data["train_x"][:n], data["mean"], data["std"], channels_last=False)
        whitening_init_(model.stem.conv, images)
    return model


def comparison_net(data: dict, recipe: dict = BASELINE, batch_norm: bool = True,
                   **fit_kw) -> tuple[torch.nn.Module, dict]:
    """The recipe's net for a lesson's own comparison of optimisers, batch sizes or LRs, and the
    ``fit`` keywords to train it with: :func:`recipe_model` with a random stem (no whitening), so
    that re-initialising it from a seed starts every run alike, and ``fit_kw`` over
    :func:`net_fit_kw` (the recipe's label smoothing and amp). ``batch_norm=False`` builds the
    same net without its batch-norm layers (BN-1)."""
    model = recipe_model(data, {**recipe, "whiten_images": 0}, batch_norm=batch_norm)
    return model, {**net_fit_kw(recipe, data["train_x"].device), **fit_kw}


def net_fit_kw(recipe: dict, device: torch.device) -> dict:
    """The ``fit`` keywords that go with the recipe's net whatever a lesson compares: its label
    smoothing and its amp on ``device`` (:func:`amp_for`). No schedule, LR, batch size or
    resizing: a lesson that trains the recipe's net for its own comparison sets those itself."""
    return {"label_smoothing": recipe["fit"]["label_smoothing"], "amp": amp_for(recipe, device)}


def fit_kw(recipe: dict, device: torch.device, **overrides) -> dict:
    """``fit``'s keyword arguments for ``recipe`` on ``device``: its ``fit`` dict, its amp
    (:func:`amp_for`) and, where it resizes, the progressive-resizing ``batch_transform`` for the
    number of epochs. ``overrides`` (``epochs``, ``lr``, ``callbacks``, ...) replace the recipe's;
    the resizing follows the epochs they give, and an explicit ``batch_transform`` (None included)
    replaces it."""
    kw = {**recipe["fit"], **overrides}
    kw.setdefault("amp", amp_for(recipe, device))
    scales = resize_schedule(kw["epochs"], recipe.get("resize", ((1.0, 1.0),)))
    if any(s != 1.0 for s in scales):
        kw.setdefault("batch_transform", progressive_resizing(scales))
    return kw


def train(data: dict, recipe: dict = BASELINE, width: int | None = None, seed: int = 0, **overrides):
    """Build ``recipe``'s net and train it on ``data``; returns ``(model, history)``.

    ``width`` and any of ``fit``'s keyword arguments (``epochs``, ``batch_size``, ``lr``,
    ``callbacks``, ``should_stop``, ...) override the recipe's (:func:`fit_kw`). The stem's
    whitening is part of the recipe's cost: it runs in this call.
    """
    kw = fit_kw(recipe, data["train_x"].device, **overrides)
    torch.manual_seed(seed)  # the stem's random init (and the whitening's images) depend on nothing else
    model = recipe_model(data, recipe, width)
    return model, fit(model, data, seed=seed, **kw)
