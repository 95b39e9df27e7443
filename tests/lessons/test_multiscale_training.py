"""Multi-scale training: device-side resizes keep labels aligned and shapes right (non-square
too), per-batch and per-sample random scales are seeded, the training loop behaves like fit."""
import pytest
import torch
from matplotlib.figure import Figure

from course_lib.core import recipes
from course_lib.core.data import make_generator
from course_lib.core.models import small_cnn
from course_lib.core.train import NonFiniteLossError
from course_lib.lessons import multiscale_training as MS


def constant_images(n=6, h=24, w=32):
    """Image i is filled with the value 10 * i in every pixel: its 'label' survives any resize."""
    return (torch.arange(n, dtype=torch.float32) * 10).view(n, 1, 1, 1).expand(n, 3, h, w).clone()


def gradient_images(n=6, h=24, w=32):
    """The same horizontal+vertical ramp in every image, so different crops give different pixels."""
    ramp = torch.arange(h, dtype=torch.float32)[:, None] * 3 + torch.arange(w, dtype=torch.float32)
    return ramp.expand(n, 3, h, w).clone()


def tiny_model():
    return small_cnn(widths=(8, 16, 16), hidden=16, num_classes=3)


@pytest.mark.parametrize("size, hw", [(12, (12, 16)), (36, (36, 48)), ((20, 20), (20, 20)), (24, (24, 32))])
def test_resize_keeps_batch_labels_and_aspect_ratio(size, hw):
    x = constant_images()
    out = MS.resize(x, size)
    assert out.shape == (6, 3, *hw)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-4)  # image i is still i


def test_resize_uint8_rounds_back_to_uint8_and_keeps_channels_last():
    x = constant_images().to(torch.uint8)
    out = MS.resize(x, 12)
    assert out.dtype == torch.uint8 and out.shape == (6, 3, 12, 16)
    assert torch.equal(out[:, 0, 0, 0], x[:, 0, 0, 0])
    cl = gradient_images().contiguous(memory_format=torch.channels_last)
    assert MS.resize(cl, 16).is_contiguous(memory_format=torch.channels_last)


def test_downscaling_is_antialiased():
    # a one-pixel checkerboard averages to grey when antialiased; plain subsampling keeps 0/255
    board = ((torch.arange(32)[:, None] + torch.arange(32)) % 2 * 255).float().expand(1, 3, 32, 32)
    out = MS.resize(board, 8)
    assert (out - 127.5).abs().max() < 20


def test_resize_refuses_sizes_outside_the_allowed_range():
    with pytest.raises(ValueError, match=r"must be in \[4, 256\]"):
        MS.resize(constant_images(), 2)
    with pytest.raises(ValueError, match=r"must be in \[4, 256\]"):
        MS.resize(constant_images(), 1000)


def test_random_size_is_seeded_and_covers_the_range():
    draws = [MS.random_size(24, 40, make_generator(s, "cpu")) for s in range(60)]
    assert set(draws) == {24, 28, 32, 36, 40}
    g1, g2 = make_generator(7, "cpu"), make_generator(7, "cpu")
    assert [MS.random_size(16, 48, g1) for _ in range(10)] == [MS.random_size(16, 48, g2) for _ in range(10)]
    with pytest.raises(ValueError, match="4 <= low <= high <= 256"):
        MS.random_size(40, 24, g1)


def test_progressive_sizes_grow_and_end_at_full_size():
    sizes = MS.progressive_sizes(4, 16, 32)
    assert sizes == [16, 20, 28, 32]
    assert MS.progressive_sizes(1, 16, 32) == [32]
    assert sorted(MS.progressive_sizes(10, 12, 40)) == MS.progressive_sizes(10, 12, 40)
    with pytest.raises(ValueError, match="start, end"):
        MS.progressive_sizes(4, 40, 32)
    with pytest.raises(ValueError, match="at least 1"):
        MS.progressive_sizes(0, 16, 32)


def test_random_resized_crop_is_per_sample_seeded_and_keeps_labels():
    x = constant_images()
    out = MS.random_resized_crop(x, 16, make_generator(0, "cpu"))
    assert out.shape == (6, 3, 16, 21)  # height 16, aspect ratio of 24x32 kept
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-4)
    g = gradient_images()
    a = MS.random_resized_crop(g, 24, make_generator(3, "cpu"))
    b = MS.random_resized_crop(g, 24, make_generator(3, "cpu"))
    c = MS.random_resized_crop(g, 24, make_generator(4, "cpu"))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({round(float(m), 3) for m in a.mean(dim=(1, 2, 3))}) == 6  # a different box per image


def test_a_full_image_crop_is_the_identity_and_boxes_stay_inside():
    g = gradient_images()
    full = MS.random_resized_crop(g, 24, make_generator(0, "cpu"), scale=(1, 1), ratio=(4 / 3, 4 / 3))
    assert torch.allclose(full, g, atol=1e-4)
    boxes = MS.crop_boxes(500, 24, 32, make_generator(1, "cpu"), scale=(0.1, 1))
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 32 + 1e-4).all() and (boxes[:, 3] <= 24 + 1e-4).all()
    with pytest.raises(ValueError, match="crop scale"):
        MS.crop_boxes(2, 24, 32, make_generator(1, "cpu"), scale=(0, 1))


@pytest.mark.parametrize("mode", MS.MODES)
def test_fit_multiscale_trains_every_mode_and_records_sizes(tiny, mode):
    h = MS.fit_multiscale(tiny_model(), tiny, mode=mode, epochs=3, batch_size=16, size=24,
                          scale_range=(16, 32), start_size=12, progress=False)
    assert len(h["epoch"]["val_acc"]) == 3 and h["stopped"] is None
    assert len(h["step"]["size"]) == len(h["step"]["loss"]) == 3 * (90 // 16)
    if mode == "progressive":
        assert [int(s) for s in h["epoch"]["size"]] == MS.progressive_sizes(3, 12, 24)
    elif mode == "random":
        assert set(h["step"]["size"]) <= {16, 20, 24, 28, 32} and len(set(h["step"]["size"])) > 1
    else:
        assert set(h["step"]["size"]) == {24}


@pytest.mark.parametrize("mode", MS.MODES)
def test_standard_arms_train_the_baseline_net_in_every_mode_on_non_square_images(tiny, mode):
    """standard trains the course's baseline net (whitened stem, the recipe's label smoothing,
    bf16 where fast) through the same multi-scale loop: every mode, 24x32 images, tested at 8 px."""
    torch.manual_seed(0)
    net = MS.make_net(tiny, baseline=True)
    kw = MS.net_fit_kw(torch.device("cpu"), baseline=True)
    assert kw == {"label_smoothing": recipes.BASELINE["fit"]["label_smoothing"],
                  "amp": recipes.bf16_is_fast(torch.device("cpu"))}
    h = MS.train_and_test(net, tiny, mode, [8, 16, 24], [12], epochs=2, batch_size=16, size=24,
                          scale_range=(16, 32), start_size=12, progress=False, seed=0, **kw)
    assert set(h["test_res"]) == {8, 16, 24} and set(h["test_restored"]) == {12}
    assert all(0 <= a <= 1 for a in h["test_res"].values()) and h["test_at_train_size"] == h["test_res"][24]
    assert torch.isfinite(torch.tensor(h["step"]["loss"])).all() and len(h["step"]["size"]) == 2 * (90 // 16)


def test_make_net_is_seeded_and_small_cnn_unless_baseline(tiny):
    def weights(baseline):
        torch.manual_seed(3)
        return torch.cat([p.detach().flatten() for p in MS.make_net(tiny, baseline).parameters()])
    assert torch.equal(weights(True), weights(True)) and torch.equal(weights(False), weights(False))
    assert weights(True).numel() != weights(False).numel()  # baseline_net(16) is not small_cnn
    assert MS.net_fit_kw(torch.device("cpu")) == {}


def test_fit_multiscale_same_seed_same_history(tiny):
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(0)
        runs.append(MS.fit_multiscale(tiny_model(), tiny, mode="random", epochs=1, batch_size=16,
                                      size=24, scale_range=(16, 32), seed=seed, progress=False))
    assert runs[0]["step"]["loss"] == runs[1]["step"]["loss"]
    assert runs[0]["step"]["size"] == runs[1]["step"]["size"]
    assert runs[0]["step"]["loss"] != runs[2]["step"]["loss"]


def test_fit_multiscale_nan_interrupt_and_bad_arguments(tiny, capsys):
    dirty = {**tiny, "mean": tiny["mean"].clone()}
    dirty["mean"][0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="step 1"):
        MS.fit_multiscale(tiny_model(), dirty, epochs=1, batch_size=16, size=24, progress=False)

    def press_stop(event, history, model):
        if event == "step" and len(history["step"]["loss"]) == 2:
            raise KeyboardInterrupt
    h = MS.fit_multiscale(tiny_model(), tiny, epochs=3, batch_size=16, size=24, progress=False,
                          callbacks=[press_stop])
    assert h["stopped"] == "interrupted" and len(h["step"]["loss"]) == 2
    assert "Interrupted at step 2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="mode must be one of"):
        MS.fit_multiscale(tiny_model(), tiny, mode="zoom", progress=False)
    with pytest.raises(ValueError, match="scale range must satisfy"):
        MS.fit_multiscale(tiny_model(), tiny, mode="random", scale_range=(40, 20), progress=False)


def test_accuracy_at_sizes_runs_the_model_at_several_non_square_sizes(tiny):
    model = tiny_model()
    x, y = tiny["val_x"], tiny["val_y"]
    accs = MS.accuracy_at_sizes(model, x, y, tiny["mean"], tiny["std"], [8, 12, 24, 36])
    assert set(accs) == {8, 12, 24, 36} and all(0 <= a <= 1 for a in accs.values())
    same = MS.accuracy_at_sizes(model, x, y, tiny["mean"], tiny["std"], [24], restore=True)
    assert same[24] == accs[24]  # 24 is the native height: nothing to restore


def test_restoration_error_is_zero_at_native_size_and_grows_when_shrinking():
    x = (torch.rand(4, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    err = MS.restoration_error(x, [24, 12, 6])
    assert err[24] == 0 and 0 < err[12] < err[6]


def test_figures_render(tiny):
    x = tiny["val_x"][:3]
    axes = Figure().subplots(3, 3, squeeze=False)
    MS.draw_scale_grid(axes, x, [8, 16, 24], tiny["val_y"][:3], ["a", "b", "c"], restore=True)
    assert [ax.get_title().split("\n")[0] for ax in axes[0]] == ["8 px", "16 px", "24 px"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == [["a", "b", "c"][int(v)] for v in tiny["val_y"][:3]]
    h = MS.fit_multiscale(tiny_model(), tiny, epochs=1, batch_size=30, size=24, progress=False)
    assert MS.render_multiscale(h, "t").startswith(b"\x89PNG")
    h["test_res"] = {16: 0.3, 24: 0.5}
    assert MS.render_multiscale(h, "t").startswith(b"\x89PNG")


def test_widget_panel_trains_in_the_background_and_shows_the_resolution_curve(tiny):
    from course_lib.ui.widgets import control_panel, history_reporter
    spec = {"mode": {"kind": "choice", "value": "random", "options": list(MS.MODES)},
            "scale_min": {"kind": "int", "value": 16, "min": 8, "max": 64}}

    def run(p, report, should_stop):
        return MS.train_and_test(tiny_model(), tiny, p["mode"], [12, 24], epochs=2, batch_size=16, size=24,
                                 scale_range=(p["scale_min"], 32), callbacks=[history_reporter(report, 2)],
                                 should_stop=should_stop, progress=False)
    panel = control_panel(spec, run, render=MS.render_multiscale)
    panel.inputs["scale_min"].value = 40  # allowed by the spec, but above the largest height (32)
    panel.run_button.click()
    panel.thread.join(timeout=60)
    assert "scale range must satisfy" in panel.status.value  # the run's ValueError is shown, not raised
    panel.inputs["scale_min"].value = 16
    panel.run_button.click()
    panel.thread.join(timeout=60)
    assert set(panel.result["test_res"]) == {12, 24} and bytes(panel.image.value[:4]) == b"\x89PNG"
    assert "finished" in panel.status.value


def test_draw_seeds_joins_the_seeds_of_every_arm():
    ax = Figure().subplots()
    MS.draw_seeds(ax, {"fixed": [0.5, 0.6, 0.55], "random": [0.52, 0.61, 0.5]})
    assert len(ax.get_lines()) == 3 + 2 + 2  # a line per seed, the points and the mean of each arm
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fixed", "random"]
