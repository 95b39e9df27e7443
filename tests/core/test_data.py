"""Device-resident data: splits, normalisation, per-sample augmentation (non-square shapes)."""
import pytest
import torch

from course_lib.core import data as D
from tests.conftest import H, W


def batch(n=16, h=H, w=W, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)


def test_augmentation_differs_across_the_batch_and_repeats_with_the_seed():
    x = batch(1).repeat(32, 1, 1, 1)  # 32 copies of one image
    a = D.augment(x, D.make_generator(7, "cpu"))
    b = D.augment(x, D.make_generator(7, "cpu"))
    c = D.augment(x, D.make_generator(8, "cpu"))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    distinct = {tuple(img.flatten().tolist()) for img in a}
    assert len(distinct) > 10  # per-sample, not one draw for the whole batch
    assert a.shape == x.shape and a.dtype == torch.uint8


def test_translation_keeps_non_square_shape_and_moves_content():
    x = batch(8, h=24, w=32)
    out = D.random_translate(x, 4, D.make_generator(0, "cpu"))
    assert out.shape == (8, 3, 24, 32)
    # every output is a 24x32 window of the reflect-padded input
    padded = torch.nn.functional.pad(x.float(), (4,) * 4, mode="reflect").to(torch.uint8)
    for i in range(8):
        found = any(torch.equal(out[i], padded[i, :, dy:dy + 24, dx:dx + 32])
                    for dy in range(9) for dx in range(9))
        assert found
    assert torch.equal(D.random_translate(x, 0, D.make_generator(0, "cpu")), x)


def test_translation_takes_the_drawn_window_of_the_reflect_padded_image_in_any_dtype():
    # the offsets are the generator's first two draws (rows, then columns): the window they name
    # in the reflect-padded image, as torch pads it, is what comes out, for uint8 and float input
    for x in (batch(64, h=24, w=32), batch(64, h=24, w=32).float() / 255):
        g = D.make_generator(3, "cpu")
        out = D.random_translate(x, 4, g)
        g = D.make_generator(3, "cpu")
        dy, dx = (torch.randint(0, 9, (64,), generator=g) for _ in range(2))
        padded = torch.nn.functional.pad(x.float(), (4,) * 4, mode="reflect").to(x.dtype)
        for i in range(64):
            assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 24, dx[i]:dx[i] + 32])
        assert out.dtype == x.dtype and len({(int(a), int(b)) for a, b in zip(dy, dx)}) > 20


def test_translation_refuses_a_pad_as_large_as_the_image():
    with pytest.raises(ValueError, match="pad must be smaller"):
        D.random_translate(batch(2, h=4, w=8), 4, D.make_generator(0, "cpu"))


def test_flip_is_per_sample_and_exact():
    x = batch(64)
    out = D.random_flip(x, D.make_generator(0, "cpu"))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped | same).all() and 10 < flipped.sum() < 54


def test_normalize_uses_given_stats_and_roundtrips():
    x = batch(32)
    mean, std = D.channel_stats(x)
    z = D.normalize(x, mean, std)
    assert z.shape == (32, 3, H, W)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.allclose(D.denormalize(z, mean, std), x.float() / 255, atol=1e-5)


def test_load_splits_are_stratified_disjoint_and_stats_come_from_train(tiny_cache):
    d = D.load_cifar10(cache_path=tiny_cache, val_size=30)
    assert d["train_x"].shape[1:] == (3, H, W)
    assert len(d["train_y"]) == 90 and len(d["val_y"]) == 30
    assert torch.bincount(d["val_y"]).tolist() == [10, 10, 10]
    tr = {tuple(x.flatten().tolist()) for x in d["train_x"]}
    va = {tuple(x.flatten().tolist()) for x in d["val_x"]}
    assert not tr & va
    mean, _ = D.channel_stats(d["train_x"])
    assert torch.allclose(d["mean"], mean)
    # the split depends on split_seed only
    d2 = D.load_cifar10(cache_path=tiny_cache, val_size=30)
    assert torch.equal(d["val_x"], d2["val_x"])
    # files are stored sorted by class; a prefix of any split must still mix the classes
    assert len(d["train_y"][:12].unique()) == 3 and len(d["test_y"][:12].unique()) == 3
    sub = D.load_cifar10(cache_path=tiny_cache, val_size=30, train_size=30, test_size=6)
    assert torch.bincount(sub["train_y"]).tolist() == [10, 10, 10] and len(sub["test_y"]) == 6


def test_train_batches_cover_the_epoch_without_a_ragged_last_batch(tiny_cache):
    d = D.load_cifar10(cache_path=tiny_cache, val_size=30)
    sizes, labels = [], []
    for x, y in D.train_batches(d, 32, D.make_generator(0, "cpu")):
        assert x.dtype == torch.float32 and x.shape[1:] == (3, H, W)
        sizes.append(len(y))
        labels.append(y)
    assert sizes == [32, 32]  # 90 images: the ragged 26 are dropped
    assert len(torch.cat(labels).unique()) == 3


def test_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        list(D.batch_indices(10, 0))


def test_normalize_leaves_the_callers_images_alone():
    x = batch(8)
    for given in (x.clone(), x.float()):  # uint8 from the cache, or float (e.g. a planted NaN batch)
        before = given.clone()
        D.normalize(given, *D.channel_stats(x))
        assert torch.equal(given, before)


def test_head_keeps_the_first_training_images_and_the_rest_of_the_set(tiny):
    small = D.head(tiny, 10)
    assert tuple(small["train_x"].shape) == (10, 3, H, W) and torch.equal(small["train_y"], tiny["train_y"][:10])
    assert small["val_x"] is tiny["val_x"] and small["mean"] is tiny["mean"] and len(tiny["train_y"]) == 90
    for n in (0, 91):
        with pytest.raises(ValueError, match="train_size"):
            D.head(tiny, n)
