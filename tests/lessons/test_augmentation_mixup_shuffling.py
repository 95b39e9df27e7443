"""Notebook 13's helpers: every augmentation keeps shapes (non-square 32x24 too) and labels
aligned, draws per image, repeats with the seed; mixup matches torchvision's v2.MixUp and its
targets sum to 1; the training orders of SHUF-1; the widget's pictures and run."""
import pytest
import torch
from torchvision.transforms import v2

from course_lib.core.data import make_generator, train_batches
from course_lib.core.models import small_cnn
from course_lib.core.train import fit
from course_lib.lessons import augmentation_mixup_shuffling as A

RECIPES = {"flip+crop": {"flip": True, "crop_pad": 4}, "jitter": {"jitter": 1.0},
           "zoom-out": {"expand": 4.0}, "destroy": {"destroy": True},
           "all": {"flip": True, "crop_pad": 4, "jitter": 2.0, "expand": 3.0, "destroy": True}}


def images(n=16, h=32, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_augmentation_keeps_non_square_shape_dtype_and_repeats_with_the_seed(name):
    x = images()
    a = A.apply_recipe(x, RECIPES[name], make_generator(3, "cpu"))
    b = A.apply_recipe(x, RECIPES[name], make_generator(3, "cpu"))
    c = A.apply_recipe(x, RECIPES[name], make_generator(4, "cpu"))
    assert a.shape == x.shape == (16, 3, 32, 24) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", ["jitter", "zoom-out", "destroy"])
def test_augmentations_draw_per_image_not_per_batch(name):
    """The same image repeated 16 times comes out in several different versions."""
    x = images(1).repeat(16, 1, 1, 1)
    out = A.apply_recipe(x, RECIPES[name], make_generator(0, "cpu"))
    assert len({bytes(o.numpy().tobytes()) for o in out}) >= 3


def test_labels_stay_aligned_each_image_keeps_its_own_content():
    """Image i after augmentation is still a version of image i, so its label needs no change.
    Image i is coloured in channel i % 3 at its own level: the geometric steps keep the level
    (each output is nearest its own input), and every step keeps the dominant channel."""
    x = torch.zeros(12, 3, 32, 24, dtype=torch.uint8)
    for i in range(12):
        x[i, i % 3] = 60 + 15 * i
    own = torch.arange(12) % 3
    for name in RECIPES:
        out = A.apply_recipe(x, RECIPES[name], make_generator(1, "cpu")).float()
        assert torch.equal(out.mean(dim=(2, 3)).argmax(1), own), name
        if name in ("flip+crop", "destroy"):
            dist = torch.cdist(out.flatten(1), x.float().flatten(1))
            assert torch.equal(dist.argmin(1), torch.arange(12)), name


def test_zero_strength_changes_nothing_and_bad_values_are_refused():
    x = images()
    assert torch.equal(A.apply_recipe(x, {}, make_generator(0, "cpu")), x)
    for bad in ({"jitter": -1}, {"expand": 0.5}, {"crop_pad": 2.5}, {"blur": 1}):
        with pytest.raises(ValueError):
            A.apply_recipe(x, bad, make_generator(0, "cpu"))


def test_hue_rotation_keeps_grey_and_zoom_out_fills_the_border():
    grey = torch.full((2, 3, 8, 6), 0.4)
    assert torch.allclose(A._rotate_hue(grey, torch.tensor([0.5, -1.0])), grey, atol=1e-6)
    white = torch.ones(4, 3, 32, 24)
    out = A.zoom_out(white, make_generator(0, "cpu"), max_ratio=4.0, prob=1.0,
                     fill=torch.zeros(3))
    assert out.shape == white.shape and (out < 0.5).any() and out.max() <= 1 + 1e-5


def test_destroy_is_an_upside_down_or_rotated_copy():
    x = images(32)
    out = A.destroy(x, make_generator(0, "cpu"))
    for o, i in zip(out, x):
        assert any(torch.equal(o, v) for v in (i, i.flip(-2), i.flip(-1), i.flip(-2).flip(-1)))


def test_mix_matches_torchvision_mixup_and_targets_sum_to_one():
    x, y = images().float() / 255, torch.arange(16) % 10
    torch.manual_seed(0)
    tx, ty = v2.MixUp(alpha=1.5, num_classes=10)(x, y)
    lam = float(ty[0, y[0]])        # y[0] != y[-1], so this entry is lambda
    mx, my = A.mix(x, y, lam)
    assert torch.allclose(mx, tx) and torch.allclose(my, ty)
    assert torch.allclose(my.sum(1), torch.ones(16))


def test_mixup_loss_is_soft_target_cross_entropy_and_switches_off():
    m = A.Mixup(1.5, seed=0, off_after=2)
    x, y = torch.randn(8, 3, 4, 4), torch.arange(8) % 10
    xm = m.transform(x, 1, None)
    logits = torch.randn(8, 10)
    _, target = A.mix(x, y, m.lam)
    assert 0 < m.lam < 1 and torch.allclose(xm, A.mix(x, y, m.lam)[0])
    assert torch.allclose(m.loss(logits, y), torch.nn.functional.cross_entropy(logits, target))
    assert torch.equal(m.transform(x, 3, None), x) and m.lam == 1.0
    lams = [A.Mixup(1.0, seed=5).transform(x, 1, None) for _ in range(2)]
    assert torch.equal(*lams)   # the same seed gives the same mixed batch
    assert A.mixup_off_epoch(170) == 157 and A.mixup_off_epoch(8) == 7 and A.mixup_off_epoch(2) == 1
    with pytest.raises(ValueError):
        A.Mixup(0.0)


def test_fit_kwargs_arms_train_and_repeat_with_the_seed(tiny):
    model = small_cnn(widths=(4, 8), hidden=8, num_classes=3)
    data = {**tiny, "test_x": tiny["val_x"], "test_y": tiny["val_y"]}
    fit_kw = {"epochs": 2, "batch_size": 30, "schedule": "constant", "lr": 0.05, "progress": False}
    arm = {"recipe": RECIPES["all"], "mixup_alpha": 1.5, "mixup_off_after": 1}
    a = A.run_arm(model, data, 0, **arm, **fit_kw)
    b = A.run_arm(model, data, 0, **arm, **fit_kw)
    assert a["test_acc"] == b["test_acc"] and a["train_loss"] == b["train_loss"]
    assert len(a["train_loss"]) == 2


def test_training_orders_sorted_once_and_every_epoch(tiny):
    data = A.sort_by_class(tiny)
    assert torch.equal(data["train_y"], torch.sort(tiny["train_y"]).values)
    once = A.shuffle_once(data, 0)
    assert sorted(once["train_y"].tolist()) == sorted(tiny["train_y"].tolist())
    assert not torch.equal(once["train_y"], data["train_y"])
    g = make_generator(0, "cpu")
    fixed = [torch.cat([y for _, y in train_batches(once, 30, g, aug=False, shuffle=False)])
             for _ in range(2)]
    assert torch.equal(fixed[0], fixed[1]) and torch.equal(fixed[0], once["train_y"])
    moved = [torch.cat([y for _, y in train_batches(once, 30, g, aug=False)]) for _ in range(2)]
    assert not torch.equal(moved[0], moved[1])
    model = small_cnn(widths=(4, 8), hidden=8, num_classes=3)
    hist = fit(model, data, epochs=1, batch_size=30, shuffle=False, progress=False)
    assert len(hist["step"]["loss"]) == 3


def test_darken():
    x = images()
    assert torch.equal(A.darken(x, 1.0), x)
    assert (A.darken(x, 0.5).float() <= x.float() * 0.5 + 0.5).all()


def test_widget_preview_and_run(tiny):
    params = {"flip": True, "crop_pad": 2, "jitter": 1.0, "expand": 2.0, "destroy": False,
              "mixup_alpha": 1.0, "epochs": 1}
    png = A.preview_png(params, tiny["train_x"][:6], tiny["train_y"][:6])
    assert png[:4] == b"\x89PNG"
    data = {**tiny, "test_x": tiny["val_x"], "test_y": tiny["val_y"]}
    model = small_cnn(widths=(4, 8), hidden=8, num_classes=3)
    seen = []
    hist = A.run_for_panel(params, data, seen.append, lambda: False, model, batch_size=30)
    assert 0 <= hist["test_acc"] <= 1 and seen
    assert A.panel_png(hist)[:4] == b"\x89PNG"
