"""Shared fixtures: small synthetic image-folder datasets (non-square on purpose) and caches."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course_lib.core.data import load_cifar10
from course_lib.core.datasets import build_cache

CLASSES = ("cat", "dog", "frog")
H, W = 24, 32  # non-square: a swapped H and W shows up (DBG-4)


def write_image_folder(root: Path, per_class: int = 4, size=(H, W), seed: int = 0) -> Path:
    """train/<class>/*.png and test/<class>/*.png: random pixels, class k brighter in channel k
    (so a model can learn it); returns root."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", max(per_class // 2, 1))):
        for k, cls in enumerate(CLASSES):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 128, (size[0], size[1], 3), dtype=np.uint8)
                arr[..., k] += 128
                Image.fromarray(arr).save(d / f"{i:04d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "imgs")


@pytest.fixture
def tiny_cache(tmp_path):
    """A cache of 3 classes x 40 training images of 24x32 (H x W)."""
    src = write_image_folder(tmp_path / "src", per_class=40)
    return build_cache(str(src), tmp_path / "cache.npz", size=(H, W), log=lambda *_: None)


@pytest.fixture
def tiny(tiny_cache):
    """The tiny cache loaded as ``load_cifar10`` returns it: 90 training and 30 validation images."""
    return load_cifar10(cache_path=tiny_cache, val_size=30)
