"""CIFAR-10 on the device: uint8 tensors, splits, normalisation and batched per-sample augmentation.

The whole split stays on the device as uint8 (150 MB for CIFAR-10's training set); a batch is
an index into it, augmented and normalised with tensor ops, so there is no per-sample Python and
no DataLoader worker in the hot loop.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .datasets import PREPARE_HINT, default_cache_path, load_cache_file


def load_cifar10(device="cpu", cache_path: str | Path | None = None, val_size: int = 5000,
                 train_size: int | None = None, test_size: int | None = None,
                 split_seed: int = 0) -> dict:
    """Load the prepared cache onto ``device`` and carve a stratified validation split.

    Returns a dict: ``train_x, train_y, val_x, val_y, test_x, test_y`` (uint8 N,3,H,W and int64
    tensors on the device), ``classes``, ``mean`` and ``std`` (per channel, from the *training*
    split only, DBG-3) and ``provenance``. ``train_size``/``test_size`` take stratified subsets
    (for fast profiles). Every split is in a random order fixed by ``split_seed`` (the files on
    disk are sorted by class), so a prefix such as ``train_x[:n]`` is a random sample. The split depends on ``split_seed`` only, so changing the training seed
    does not move images between train and validation.
    """
    path = Path(cache_path) if cache_path else default_cache_path()
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 cache not found at {path}. Prepare it with: {PREPARE_HINT}")
    c = load_cache_file(path)
    x, y = c["train_x"], c["train_y"]
    idx = np.arange(len(y))
    tr_idx, va_idx = train_test_split(idx, test_size=val_size, stratify=y, random_state=split_seed)
    if train_size is not None and train_size < len(tr_idx):
        tr_idx = stratified_subset(y, tr_idx, train_size, split_seed)
    te_idx = np.random.default_rng(split_seed).permutation(len(c["test_y"]))
    if test_size is not None and test_size < len(te_idx):
        te_idx = stratified_subset(c["test_y"], te_idx, test_size, split_seed)

    def to_dev(a, i):  # i is in a random order (fixed by split_seed): any prefix is a random sample
        return torch.from_numpy(np.ascontiguousarray(a[i])).to(device)

    out = {"train_x": to_dev(x, tr_idx), "train_y": to_dev(y, tr_idx),
           "val_x": to_dev(x, va_idx), "val_y": to_dev(y, va_idx),
           "test_x": to_dev(c["test_x"], te_idx), "test_y": to_dev(c["test_y"], te_idx),
           "classes": c["classes"], "provenance": c["provenance"]}
    out["mean"], out["std"] = channel_stats(out["train_x"])
    return out


def head(data: dict, n: int) -> dict:
    """``data`` with only its first ``n`` training images (every split is in a random order, so
    this is a random sample): one loaded set serves a lesson's smaller and larger experiments.
    Validation, test and the normalisation statistics stay those of ``data``; nothing is copied."""
    if not 1 <= n <= len(data["train_y"]):
        raise ValueError(f"n must be between 1 and the {len(data['train_y'])} training images loaded, "
                         f"got {n}: load more with experiment.setup(train_size=...)")
    return {**data, "train_x": data["train_x"][:n], "train_y": data["train_y"][:n]}


def stratified_subset(y: np.ndarray, idx: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` indices from ``idx`` with the class proportions of ``y[idx]`` (scikit-learn does the split)."""
    keep, _ = train_test_split(idx, train_size=size, stratify=y[idx], random_state=seed)
    return keep


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, on the 0-1 scale, as float32 (3,) tensors."""
    xf = x.float() / 255  # a new tensor: never scale the caller's data in place
    return xf.mean(dim=(0, 2, 3)), xf.std(dim=(0, 2, 3))


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
              channels_last: bool = True) -> torch.Tensor:
    """uint8 images -> float32, zero mean and unit variance per channel (training-set statistics)."""
    # one new tensor, then in place: never touches the caller's x, even when x is already float
    out = x.to(torch.float32, copy=True).div_(255).sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def denormalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`, back to 0-1 floats (for showing images)."""
    return (x * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)).clamp(0, 1)


def reflect_index(start: torch.Tensor, size: int, length: int) -> torch.Tensor:
    """Source positions of ``size`` consecutive pixels from ``start`` (one per image) in an axis
    of ``length`` pixels, folded back into it as reflect padding does (-1 -> 1, length -> length - 2)."""
    i = (start[:, None] + torch.arange(size, device=start.device)).abs()
    return torch.where(i >= length, 2 * (length - 1) - i, i)


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop after reflect padding, with its own offset for every image of the batch.

    Written here because torchvision.transforms.v2 draws one random crop per call (per batch).
    Works for any H, W (non-square too): output shape equals input shape. It never builds the
    padded batch: each output pixel's source (reflected at the border) is computed and the batch
    is read with one ``gather``, in the input's dtype (7x faster on a CPU than padding in float
    and indexing with four index tensors, the same pixels).
    """
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    if pad >= min(h, w):
        raise ValueError(f"pad must be smaller than the image ({h}x{w}) for reflect padding, got {pad}")
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    src = reflect_index(dy - pad, h, h)[:, :, None] * w + reflect_index(dx - pad, w, w)[:, None, :]
    flat = x.reshape(n, c, h * w)
    return flat.gather(2, src.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability ``p``, independently per image."""
    mask = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """The standard CIFAR-10 augmentation, per sample, batched: random translation + flip."""
    x = random_translate(x, pad, generator)
    return random_flip(x, generator) if flip else x


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None,
                  shuffle: bool = True, drop_last: bool = False, device="cpu"):
    """Yield index tensors that cover ``range(n)`` in batches (shuffled with ``generator``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = (torch.randperm(n, device=device, generator=generator) if shuffle
             else torch.arange(n, device=device))
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def train_batches(data: dict, batch_size: int, generator: torch.Generator, aug: bool = True,
                  pad: int = 4, flip: bool = True, channels_last: bool = True,
                  x_key: str = "train_x", y_key: str = "train_y", shuffle: bool = True):
    """One epoch of shuffled, augmented, normalised training batches ``(x, y)`` from ``data``.

    ``shuffle=False`` keeps the stored order (notebook 13 compares orders, SHUF-1). The last partial batch is dropped (when there is more than one batch) so batch-norm
    statistics never come from a handful of images.
    """
    x_all, y_all = data[x_key], data[y_key]
    for idx in batch_indices(len(y_all), batch_size, generator, shuffle=shuffle, drop_last=True,
                             device=x_all.device):
        x = x_all[idx]
        if aug:
            x = augment(x, generator, pad=pad, flip=flip)
        yield normalize(x, data["mean"], data["std"], channels_last), y_all[idx]


def make_generator(seed: int, device) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (shuffling and augmentation draw from it)."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g
