"""Multi-scale training on the device: batched resizes, per-batch random scales, progressive
resizing, per-sample random-resized crops, a training loop that uses them, and evaluation at
several test resolutions (MS-1, MS-2, MS-3 and the FixRes train/test resolution gap).

Sizes are in pixels of image *height*; the width keeps the image's aspect ratio (a 24x32 image
resized to 12 becomes 12x16), or pass an explicit ``(h, w)``. Everything works on whole batches
of device tensors: no per-sample Python. The ``draw_*`` functions draw on given axes;
:func:`render_multiscale` renders a run for the widget panel.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from ..core import recipes
from ..core.models import small_cnn
from ..core.train import NonFiniteLossError, evaluate, fit, raise_if_interrupted
from ..ui import plots
from ..ui.plots import render_png

MODES = ("fixed", "random", "progressive", "crop")
MIN_SIZE, MAX_SIZE = 4, 256  # allowed image heights, in pixels


def target_hw(shape_hw, size) -> tuple[int, int]:
    """``(h, w)`` for resizing an image of ``shape_hw`` to ``size`` (a height, or an (h, w) pair)."""
    if isinstance(size, (tuple, list)):
        h, w = (int(s) for s in size)
    else:
        h = int(size)
        w = max(round(h * shape_hw[1] / shape_hw[0]), 1)
    if not (MIN_SIZE <= h <= MAX_SIZE and MIN_SIZE <= w <= MAX_SIZE):
        raise ValueError(f"size {size!r} gives {h}x{w}; height and width must be in "
                         f"[{MIN_SIZE}, {MAX_SIZE}] pixels")
    return h, w


def resize(x: torch.Tensor, size, chunk: int = 2000) -> torch.Tensor:
    """Resize a batch (N,C,H,W) to ``size`` with bilinear interpolation, antialiased when it
    shrinks (without antialias, downscaling skips pixels and aliases fine patterns).

    Float input stays float (a training batch); uint8 input is rounded back to uint8 (stored
    images at another resolution) and processed ``chunk`` images at a time to bound memory.
    The memory format (channels_last or not) is kept.
    """
    h, w = target_hw(x.shape[-2:], size)
    if (h, w) == tuple(x.shape[-2:]):
        return x
    shrink = h < x.shape[-2] or w < x.shape[-1]
    fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    if x.dtype == torch.uint8:
        parts = [F.interpolate(x[i:i + chunk].float(), size=(h, w), mode="bilinear", antialias=shrink,
                               align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
                 for i in range(0, len(x), chunk)]
        out = torch.cat(parts) if parts else x.new_zeros((0, x.shape[1], h, w))
    else:
        out = F.interpolate(x, size=(h, w), mode="bilinear", antialias=shrink, align_corners=False)
    return out.contiguous(memory_format=fmt)


def check_size_range(low: int, high: int, what: str = "scale range") -> None:
    """Raise a ValueError naming the allowed range unless MIN_SIZE <= low <= high <= MAX_SIZE."""
    if not MIN_SIZE <= low <= high <= MAX_SIZE:
        raise ValueError(f"{what} must satisfy {MIN_SIZE} <= low <= high <= {MAX_SIZE} pixels, "
                         f"got low={low}, high={high}")


def random_size(low: int, high: int, generator: torch.Generator, multiple: int = 4) -> int:
    """One random height from {low, low+multiple, ..., high} (uniform): the per-batch scale of
    multi-scale training (YOLOv2 draws a new size every few batches, in multiples of 32)."""
    check_size_range(low, high)
    n = (high - low) // multiple + 1
    k = torch.randint(0, n, (1,), generator=generator, device=generator.device)
    return int(low + multiple * int(k))


def progressive_sizes(epochs: int, start: int, end: int, multiple: int = 4) -> list[int]:
    """Progressive resizing: one height per epoch, growing linearly from ``start`` to ``end``
    (rounded to ``multiple``); the last epoch always trains at ``end``, the test resolution."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    check_size_range(start, end, "progressive sizes (start, end)")
    ramp = np.linspace(start, end, epochs) if epochs > 1 else np.array([end])
    sizes = [int(min(max(multiple * round(s / multiple), start), end)) for s in ramp]
    sizes[-1] = end
    return sizes


def crop_boxes(n: int, h: int, w: int, generator: torch.Generator, scale=(0.35, 1.0),
               ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """``n`` random boxes (x1, y1, x2, y2) in pixel coordinates, one per image: the area is a
    fraction in ``scale`` of the image and the aspect ratio (w/h) log-uniform in ``ratio``, as
    in torchvision's RandomResizedCrop (boxes that would not fit are clamped to the image)."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {tuple(scale)}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"crop ratio must satisfy 0 < low <= high, got {tuple(ratio)}")
    dev = generator.device
    u = torch.rand(4, n, device=dev, generator=generator)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[0])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[1]
    bw = (area * log_r.exp()).sqrt().clamp(1, w)
    bh = (area / log_r.exp()).sqrt().clamp(1, h)
    x1, y1 = (w - bw) * u[2], (h - bh) * u[3]
    return torch.stack([x1, y1, x1 + bw, y1 + bh], dim=1)


def random_resized_crop(x: torch.Tensor, size, generator: torch.Generator, scale=(0.35, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Scale augmentation: crop a different random box from every image and resize it to
    ``size``, in one batched ``torchvision.ops.roi_align`` call (float input).

    Written with roi_align because ``torchvision.transforms.v2.RandomResizedCrop`` draws one box
    per call, i.e. the same crop for the whole batch. roi_align averages several bilinear samples
    per output pixel when a box shrinks, which limits aliasing.
    """
    n, _, h, w = x.shape
    oh, ow = target_hw((h, w), size)
    boxes = crop_boxes(n, h, w, generator, scale, ratio).to(x.dtype)
    rois = torch.cat([torch.arange(n, device=x.device, dtype=x.dtype)[:, None], boxes.to(x.device)], 1)
    out = roi_align(x.contiguous(), rois, (oh, ow), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.contiguous(memory_format=torch.channels_last) if not x.is_contiguous() else out


def rescale_batch(x: torch.Tensor, mode: str, generator: torch.Generator, size: int = 32,
                  scale_range=(24, 40), epoch_size: int | None = None, crop_scale=(0.35, 1.0)):
    """The training-time rescale of one (normalised) batch for each mode:
    ``fixed`` -> ``size``; ``random`` -> a random height in ``scale_range`` per batch;
    ``progressive`` -> ``epoch_size`` (this epoch's size); ``crop`` -> a random-resized crop per
    image, output at ``size``."""
    if mode == "fixed":
        return resize(x, size)
    if mode == "random":
        return resize(x, random_size(*scale_range, generator))
    if mode == "progressive":
        return resize(x, epoch_size)
    if mode == "crop":
        return random_resized_crop(x, size, generator, crop_scale)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def make_net(data: dict, baseline: bool = False) -> nn.Module:
    """A fresh net for one arm, on the data's device (seed first: same seed, same weights).

    ``small_cnn`` by default; with ``baseline=True`` the course's baseline net
    (``recipes.BASELINE``: ``baseline_net(16)``, its stem whitened from the training images),
    which passes 75% on all of CIFAR-10 in 3 epochs at 32 px on 2 CPU cores (79.0% over 4 seeds,
    2026-12-04), so the ``standard`` profile tests the claims on a trained network. Both pool
    globally, so both take any height from 8 px up (three halvings).
    """
    if baseline:
        return recipes.recipe_model(data, recipes.BASELINE)
    return small_cnn().to(data["train_x"].device)


def net_fit_kw(device: torch.device, baseline: bool = False) -> dict:
    """``fit``'s keyword arguments that go with :func:`make_net`'s net: none for ``small_cnn``;
    the baseline recipe's label smoothing and bf16 autocast where it is fast, for the baseline."""
    return recipes.net_fit_kw(recipes.BASELINE, device) if baseline else {}


def fit_multiscale(model: nn.Module, data: dict, mode: str = "fixed", epochs: int = 4,
                   batch_size: int = 128, size: int = 32, scale_range=(24, 40), start_size: int = 16,
                   crop_scale=(0.35, 1.0), callbacks=(), **fit_kw) -> dict:
    """``train.fit`` with a rescale step: by default SGD (Nesterov), one-cycle LR, the standard flip
    and translate augmentation, then :func:`rescale_batch` for ``mode``. Validation is at ``size``
    (skipped, recorded as NaN, with ``evaluate_val=False``). ``fit_kw`` go to ``fit`` (``lr``,
    ``weight_decay``, ``label_smoothing``, ``seed``, ``should_stop``, ...).

    The history is ``fit``'s plus ``step["size"]`` (height of each batch) and ``epoch["size"]``
    (mean height). A non-finite loss raises ``NonFiniteLossError``; KeyboardInterrupt or
    ``should_stop()`` ends training and returns the history so far, as in ``fit``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_size_range(*scale_range)
    sizes = progressive_sizes(epochs, start_size, size) if mode == "progressive" else [size] * epochs
    step_sizes, epoch_sizes, epoch_ends = [], [], [0]

    def rescale(x, epoch, generator):
        x = rescale_batch(x, mode, generator, size, scale_range, sizes[epoch - 1], crop_scale)
        step_sizes.append(x.shape[-2])
        return x

    def record_sizes(event, hist, model):  # runs before the caller's callbacks, so they see sizes
        if event == "epoch":
            this_epoch = step_sizes[epoch_ends[-1]:]
            epoch_sizes.append(float(np.mean(this_epoch)) if this_epoch else math.nan)
            epoch_ends.append(len(step_sizes))
        hist["step"]["size"], hist["epoch"]["size"] = step_sizes, epoch_sizes

    def attach(hist):  # a step that went non-finite was resized but never recorded
        hist["step"]["size"], hist["epoch"]["size"] = step_sizes[:len(hist["step"]["loss"])], epoch_sizes
        return hist

    try:
        hist = fit(model, data, epochs=epochs, batch_size=batch_size, callbacks=[record_sizes, *callbacks],
                   batch_transform=rescale, val_transform=lambda v: resize(v, size), **fit_kw)
    except NonFiniteLossError as err:
        attach(err.history)
        raise
    return attach(hist)


def accuracy_at_sizes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean, std, sizes,
                      restore: bool = False, batch_size: int = 256) -> dict:
    """Accuracy of ``model`` on uint8 images ``x`` resized to each height in ``sizes``.

    ``restore=True`` resizes back to the original size afterwards, so the model sees its usual
    resolution and only the information lost by the rescale changes (MS-3). Batches of 256
    evaluate about twice as fast as 1000 on a CPU (they stay in cache).
    """
    out = {}
    for s in sizes:
        xs = resize(x, s)
        if restore:
            xs = resize(xs, tuple(x.shape[-2:]))
        out[int(s)] = evaluate(model, xs, y, mean, std, batch_size=batch_size)["acc"]
    return out


def train_and_test(model: nn.Module, data: dict, mode: str = "fixed", test_sizes=(24, 32, 40),
                   restore_sizes=(), gap_images: int = 1000, **fit_kw) -> dict:
    """One experiment arm: :func:`fit_multiscale`, then the numbers the notebook compares,
    added to the returned history:

    ``test_res`` {height: test accuracy} for ``test_sizes``; ``test_restored`` {height: accuracy}
    on test images shrunk to each of ``restore_sizes`` and resized back (MS-3); ``train_clean``
    and ``test_at_train_size``: accuracy on (up to ``gap_images``) un-augmented training images
    and on the test set, both at the training ``size``, whose difference is the generalisation gap.
    """
    hist = raise_if_interrupted(fit_multiscale(model, data, mode=mode, **fit_kw), "a multi-scale run")
    size, mean, std = fit_kw.get("size", 32), data["mean"], data["std"]
    hist["test_res"] = accuracy_at_sizes(model, data["test_x"], data["test_y"], mean, std, test_sizes)
    hist["test_restored"] = accuracy_at_sizes(model, data["test_x"], data["test_y"], mean, std,
                                              restore_sizes, restore=True)
    hist["train_clean"] = accuracy_at_sizes(model, data["train_x"][:gap_images], data["train_y"][:gap_images],
                                            mean, std, [size])[size]
    if size not in hist["test_res"]:
        hist["test_res"].update(accuracy_at_sizes(model, data["test_x"], data["test_y"], mean, std, [size]))
    hist["test_at_train_size"] = hist["test_res"][size]
    return hist


def restoration_error(x: torch.Tensor, sizes) -> dict:
    """Mean absolute pixel change (0-255 grey levels) after resizing uint8 images ``x`` to each
    height and back: how much of the image a rescale destroys (0 = nothing)."""
    return {int(s): float((resize(resize(x, s), tuple(x.shape[-2:])).float() - x.float()).abs().mean())
            for s in sizes}


def draw_scale_grid(axes, x: torch.Tensor, sizes, labels=None, classes=None, restore: bool = False) -> None:
    """On a (images x sizes) array of axes: the same images (rows) at each height in ``sizes``
    (columns), shown at their own pixel resolution (``restore=True``: resized back to the
    original size, what a model trained at full size would see). Column titles give the mean
    pixel change of the rescale."""
    err = restoration_error(x, sizes)
    for j, s in enumerate(sizes):
        xs = resize(x, s)
        xs = resize(xs, tuple(x.shape[-2:])) if restore else xs
        for i, ax in enumerate(axes[:, j]):
            ax.imshow(xs[i].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{int(s)} px\n(change {err[int(s)]:.1f})", fontsize=8)
            if j == 0 and labels is not None:
                ax.set_ylabel(classes[int(labels[i])] if classes else str(int(labels[i])), fontsize=8)


def draw_resolution_curves(ax, curves: dict, train_size: int = 32, title: str = "") -> None:
    """Accuracy against test resolution, one line per training variant (``{name: {size: acc}}``);
    a dotted line marks the training resolution."""
    for name, accs in curves.items():
        sizes = sorted(accs)
        ax.plot(sizes, [100 * accs[s] for s in sizes], "o-", label=name)
    ax.axvline(train_size, color="grey", ls=":", lw=1)
    ax.set(xlabel="test resolution (px)", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_epoch_accuracy(ax, history: dict) -> None:
    """Validation and (rescaled) training accuracy per epoch of a :func:`fit_multiscale` history."""
    e = history["epoch"]
    ax.plot(e["epoch"], [100 * v for v in e["val_acc"]], "s--", label="val")
    ax.plot(e["epoch"], [100 * v for v in e["train_acc"]], "o-", label="train (rescaled)")
    ax.set(xlabel="epoch", ylabel="accuracy (%)")
    ax.legend(fontsize=8)


def draw_train_heights(ax, history: dict) -> None:
    """The training height per step of a :func:`fit_multiscale` history."""
    ax.plot(history["step"]["size"], lw=1)
    ax.set(xlabel="step", ylabel="training height (px)")


def draw_test_resolution(ax, history: dict) -> None:
    """The accuracy-against-test-resolution curve of a run, once ``history["test_res"]`` is there."""
    if history.get("test_res"):
        draw_resolution_curves(ax, {"this run": history["test_res"]})
    else:
        ax.text(0.5, 0.5, "test-resolution curve\nafter training", ha="center", va="center")
        ax.axis("off")


def render_multiscale(result: dict, title: str = "") -> bytes:
    """PNG for the widget panel: validation accuracy and training height per epoch, and the
    accuracy-against-test-resolution curve once ``result["test_res"]`` is there."""
    return render_png([draw_epoch_accuracy, draw_train_heights, draw_test_resolution], result, title,
                      ncols=3, size=(11, 3.4))


def draw_seeds(ax, arms: dict, ylabel: str = "test accuracy at 32 px (%)", title: str = "") -> None:
    """Per-seed fractions of each arm as percentages, seeds joined (``plots.draw_paired``)."""
    plots.draw_paired(ax, arms, ylabel, title, scale=100, legend=True)


MEANINGS = {
    "MS-1": {
        "supported": "Random scales per batch raised test accuracy at 32 px by more than the margin.",
        "not supported": "Random scales did not raise accuracy at 32 px by more than the margin (or "
                         "lowered it): scale augmentation is a regulariser, and a short budget on small "
                         "images leaves the model underfitting, so it has nothing to regularise. Look at "
                         "the resolution curves: its benefit may be robustness to other test sizes.",
        "inconclusive": "The difference at 32 px is within seed noise at this budget.",
    },
    "MS-2": {
        "supported": "With scarce data, random scales both narrowed the train-test gap and raised test "
                     "accuracy: they countered overfitting.",
        "not supported": "Random scales did not both narrow the gap and raise test accuracy by more than "
                         "the margin. A narrower gap with lower accuracy means the model fits its training "
                         "images worse (underfitting), not that it generalises better.",
        "inconclusive": "At least one part (gap or accuracy) could not be told from seed noise.",
    },
    "MS-3": {
        "supported": "Shown: at the smallest training height no variant recovers the accuracy it has at "
                     "32 px; the rescale destroyed information the labels depend on.",
        "not supported": "Not shown: some variant does as well on the small images, so at this height "
                         "the rescale kept what the labels depend on.",
        "inconclusive": "The loss at the small height is within seed noise.",
    },
}
