"""The training loop: learning, determinism, NaN stop, interrupt, stop requests."""
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from course_lib.core.models import small_cnn
from course_lib.core.train import NonFiniteLossError, evaluate, fit


def tiny_model():
    return small_cnn(widths=(8, 16), hidden=16, num_classes=3)


def test_loss_falls_on_a_tiny_problem(tiny):
    torch.manual_seed(0)
    h = fit(tiny_model(), tiny, epochs=15, batch_size=30, lr=0.05, aug=False, progress=False,
            optimizer="adam", weight_decay=0.0, schedule="constant")
    first, last = h["step"]["loss"][:3], h["step"]["loss"][-3:]
    assert sum(last) < 0.5 * sum(first)
    assert h["epoch"]["train_acc"][-1] > 0.8
    assert h["stopped"] is None and len(h["epoch"]["epoch"]) == 15


def test_same_seed_gives_the_same_history_on_cpu(tiny):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        runs.append(fit(tiny_model(), tiny, epochs=2, batch_size=16, seed=5, progress=False))
    for key in ("loss", "lr", "grad_norm"):
        assert runs[0]["step"][key] == runs[1]["step"][key]
    assert runs[0]["epoch"]["val_acc"] == runs[1]["epoch"]["val_acc"]
    torch.manual_seed(123)
    other = fit(tiny_model(), tiny, epochs=2, batch_size=16, seed=6, progress=False)
    assert other["step"]["loss"] != runs[0]["step"]["loss"]


class LogOfInput(nn.Module):
    """A planted bug: log of values that can be negative gives NaN."""
    def forward(self, x):
        return torch.log(x)


def test_nonfinite_loss_stops_with_step_lr_and_module_named(tiny):
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), bad_log=LogOfInput(),
                                      pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 3)))
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, tiny, epochs=1, batch_size=16, lr=0.01, progress=False, schedule="constant")
    msg = str(err.value)
    assert "step 1 " in msg and "lr=0.01" in msg and "'bad_log'" in msg and "LogOfInput" in msg
    assert err.value.history["stopped"] == "nonfinite"


def test_nan_in_the_data_is_reported_as_dirty_samples(tiny):
    dirty = dict(tiny)
    dirty["mean"] = tiny["mean"].clone()
    dirty["mean"][0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="input batch holds NaN"):
        fit(tiny_model(), dirty, epochs=1, batch_size=16, progress=False)


def test_interrupt_returns_the_history_so_far(tiny, capsys):
    def press_stop_button(event, history, model):
        if event == "step" and len(history["step"]["loss"]) == 3:
            raise KeyboardInterrupt
    h = fit(tiny_model(), tiny, epochs=5, batch_size=16, progress=False, callbacks=[press_stop_button])
    assert h["stopped"] == "interrupted"
    assert len(h["step"]["loss"]) == 3
    out = capsys.readouterr().out
    assert "Interrupted at step 3" in out and "Traceback" not in out


def test_should_stop_ends_at_the_next_step_and_keeps_history(tiny):
    calls = {"n": 0}
    def should_stop():
        calls["n"] += 1
        return calls["n"] >= 4
    h = fit(tiny_model(), tiny, epochs=5, batch_size=16, progress=False, should_stop=should_stop)
    assert h["stopped"] == "requested"
    assert len(h["step"]["loss"]) == 4 and len(h["epoch"]["epoch"]) == 1


def test_history_records_per_step_and_per_epoch(tiny):
    h = fit(tiny_model(), tiny, epochs=2, batch_size=16, lr=0.1, warmup_epochs=1, schedule="cosine",
            progress=False)
    steps = len(h["step"]["loss"])
    assert steps == 2 * (90 // 16)
    assert len(h["step"]["lr"]) == len(h["step"]["grad_norm"]) == steps
    assert h["step"]["lr"][0] < h["step"]["lr"][5]  # warming up
    assert set(h["epoch"]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}


def test_evaluate_restores_training_mode(tiny):
    m = tiny_model().train()
    r = evaluate(m, tiny["val_x"], tiny["val_y"], tiny["mean"], tiny["std"])
    assert m.training and 0 <= r["acc"] <= 1


def test_bad_arguments_are_refused(tiny):
    with pytest.raises(ValueError, match="lr must be positive"):
        fit(tiny_model(), tiny, lr=-1, progress=False)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        fit(tiny_model(), tiny, optimizer="rmsprop", progress=False)
    with pytest.raises(ValueError, match="at least 1"):
        fit(tiny_model(), tiny, batch_size=0, progress=False)


class SqrtOfVariance(nn.Module):
    """A planted backward-only fault: sqrt of a variance that is exactly 0 (forward finite, backward NaN)."""
    def forward(self, x):
        return torch.sqrt(((x - x.mean(dim=(2, 3), keepdim=True)) ** 2).mean(dim=(2, 3)) * 0.0)


def test_nonfinite_gradient_stops_before_the_update_and_names_the_parameters(tiny):
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), std=SqrtOfVariance(), fc=nn.Linear(4, 3)))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, tiny, epochs=1, batch_size=16, lr=0.01, progress=False, schedule="constant",
            channels_last=False)
    msg = str(err.value)
    assert "gradients became non-finite at step 1" in msg and "conv.weight" in msg and "fc.weight" not in msg
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # no NaN update was applied
    assert err.value.history["stopped"] == "nonfinite"


def test_normalize_never_changes_the_callers_tensor():
    from course_lib.core.data import normalize
    x = torch.rand(2, 3, 24, 32) * 255
    copy = x.clone()
    normalize(x, torch.zeros(3), torch.ones(3))
    assert torch.equal(x, copy)


def _with_grads(*grads):
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False))
    for p, g in zip(model.parameters(), grads):
        p.grad = torch.full_like(p, g)
    return model


def test_grad_norm_clips_like_torch_and_leaves_a_nan_where_it_is():
    from course_lib.core.train import grad_norm
    a, b = _with_grads(1.0, 2.0), _with_grads(1.0, 2.0)
    norm = grad_norm(a, clip=1.0)
    ref = float(nn.utils.clip_grad_norm_(b.parameters(), 1.0))
    assert norm == pytest.approx(ref)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad)
    assert grad_norm(_with_grads(0.01, 0.01), clip=1.0) < 1.0  # below the limit: untouched
    bad = _with_grads(float("nan"), 2.0)
    assert math.isnan(grad_norm(bad, clip=1.0))
    first, second = bad.parameters()
    assert first.grad.isnan().all() and (second.grad == 2.0).all()  # the NaN stays in its layer


def test_helpers_pass_the_stop_button_on_so_a_loop_of_runs_stops(tiny):
    from course_lib.core.runs import train_and_score
    from course_lib.core.train import raise_if_interrupted

    def press_stop_button(event, history, model):
        if event == "step" and len(history["step"]["loss"]) == 2:
            raise KeyboardInterrupt
    started = []
    with pytest.raises(KeyboardInterrupt, match="run the cell again") as info:
        for seed in range(3):  # a notebook loop over runs: the first Stop must end it
            started.append(seed)
            train_and_score(tiny_model(), tiny, seed, epochs=2, batch_size=16, lr=0.05, progress=False,
                            callbacks=[press_stop_button])
    assert started == [0] and len(info.value.history["step"]["loss"]) == 2  # the history so far rides along
    finished = {"stopped": None}
    assert raise_if_interrupted(finished) is finished


def test_predictions_build_no_autograd_graph(tiny):
    from course_lib.core.train import predict_logits
    logits = predict_logits(tiny_model(), tiny["val_x"], tiny["mean"], tiny["std"])
    assert not logits.requires_grad


# ---------------------------------------------------------------- checks every k steps (the GPU path)
# There is no GPU here: these run the deferred path on the CPU, where it must give the same
# numbers as checking every step.

def _run(sync_every, **kw):
    torch.manual_seed(0)
    return fit(tiny_model(), kw.pop("data"), epochs=2, batch_size=16, progress=False,
               sync_every=sync_every, **kw)


def _same(a, b):
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def test_checking_every_4_steps_gives_the_same_history_as_every_step(tiny):
    kw = {"data": tiny, "grad_clip": 0.5, "label_smoothing": 0.1}  # clipping happens on the device
    every, deferred = _run(1, **kw), _run(4, **kw)
    for key in ("lr", "loss", "grad_norm"):
        assert deferred["step"][key] == every["step"][key]
        assert all(type(v) is float for v in deferred["step"][key])  # device values became numbers
    assert min(every["step"]["grad_norm"]) > 0.5, "clipping was active"
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert deferred["epoch"][key] == every["epoch"][key]
    assert len(every["step"]["loss"]) == 10 and deferred["stopped"] is every["stopped"] is None


class LogPlus100(nn.Module):
    """A planted bug: log(x + 100) is NaN once x < -100, i.e. only for a planted input."""
    def forward(self, x):
        return torch.log(x + 100)


def _plant_at(step):
    calls = []

    def transform(x, epoch, generator):
        calls.append(1)
        if len(calls) == step:
            x = x.clone()
            x[0] = -1e3  # one image far below anything normalised data holds
        return x
    return transform


@pytest.mark.parametrize("sync_every", [1, 4])
def test_a_planted_nan_at_step_7_is_reported_at_step_7_with_the_same_message(tiny, sync_every):
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), bad_log=LogPlus100(),
                                      pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 3)))
    torch.manual_seed(0)
    reference = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), bad_log=LogPlus100(),
                                          pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 3)))
    kw = {"epochs": 2, "batch_size": 16, "lr": 0.01, "progress": False, "schedule": "constant"}
    with pytest.raises(NonFiniteLossError) as ref:
        fit(reference, tiny, batch_transform=_plant_at(7), sync_every=1, **kw)
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, tiny, batch_transform=_plant_at(7), sync_every=sync_every, **kw)
    e = err.value
    assert str(e) == str(ref.value) and "step 7 (epoch 2)" in str(e) and "'bad_log'" in str(e)
    assert (e.step, e.epoch, e.cause) == (7, 2, "loss") and math.isnan(e.loss)
    assert e.batch[0][0].max() == -1e3  # the failing batch rides on the error
    assert e.history["step"] == ref.value.history["step"] and len(e.history["step"]["loss"]) == 6
    assert all(type(v) is float for v in e.history["step"]["loss"])
    assert len(e.history["epoch"]["epoch"]) == 1 and e.history["stopped"] == "nonfinite"
    for a, b in zip(model.parameters(), reference.parameters()):  # the weights step 7 started from
        assert torch.equal(a, b)


def test_deferred_checks_catch_a_backward_only_fault_before_any_update(tiny):
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), std=SqrtOfVariance(), fc=nn.Linear(4, 3)))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, tiny, epochs=1, batch_size=16, lr=0.01, progress=False, schedule="constant",
            channels_last=False, sync_every=4)
    assert "gradients became non-finite at step 1" in str(err.value) and err.value.cause == "gradient"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # replayed from the start


def test_interrupt_between_checks_returns_numbers(tiny, capsys):
    def press_stop_button(event, history, model):
        if event == "step" and len(history["step"]["loss"]) == 3:
            raise KeyboardInterrupt
    h = fit(tiny_model(), tiny, epochs=2, batch_size=16, progress=False, callbacks=[press_stop_button],
            sync_every=4)
    assert h["stopped"] == "interrupted" and len(h["step"]["loss"]) == 3
    assert all(type(v) is float for v in h["step"]["loss"] + h["step"]["grad_norm"])


def test_max_steps_ends_the_run_and_the_schedule_spans_it(tiny):
    h = fit(tiny_model(), tiny, epochs=None, max_steps=7, batch_size=16, progress=False, evaluate_val=False)
    assert len(h["step"]["loss"]) == 7 and h["epoch"]["epoch"] == [1, 2] and h["stopped"] is None
    assert h["step"]["lr"][-1] < 0.01 * max(h["step"]["lr"])  # one-cycle over 7 steps, not 2 epochs
    h = fit(tiny_model(), tiny, epochs=1, max_steps=50, batch_size=16, progress=False)
    assert len(h["step"]["loss"]) == 90 // 16  # whichever comes first


def test_loss_fn_replaces_the_default_cross_entropy(tiny):
    seen = []

    def loss_fn(logits, y):
        seen.append(logits.shape)
        return torch.nn.functional.cross_entropy(logits, y) * 0.0 + 1.5
    h = fit(tiny_model(), tiny, epochs=1, batch_size=16, progress=False, loss_fn=loss_fn)
    assert h["step"]["loss"] == [1.5] * 5 and seen[0] == (16, 3)


def test_fit_refuses_runs_it_cannot_size(tiny):
    with pytest.raises(ValueError, match="give epochs or max_steps"):
        fit(tiny_model(), tiny, epochs=None, progress=False)
    with pytest.raises(ValueError, match="max_steps and sync_every must be at least 1"):
        fit(tiny_model(), tiny, sync_every=0, max_steps=3, progress=False)


def test_amp_true_trains_in_bf16_on_the_cpu_and_the_default_stays_fp32(tiny):
    """amp=True opts in to bf16 autocast on the CPU (non-square 24x32 images): convolutions then
    compute in bf16 in training steps (evaluation stays fp32), the loss stays finite and falls;
    without it they stay fp32."""
    seen = {}
    for amp in (None, True):
        torch.manual_seed(0)
        model = tiny_model()
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        dtypes = []

        def record(module, inputs, out, dtypes=dtypes):
            if module.training:
                dtypes.append(out.dtype)
        conv.register_forward_hook(record)
        h = fit(model, tiny, epochs=6, batch_size=30, lr=0.05, aug=False, progress=False,
                optimizer="adam", weight_decay=0.0, schedule="constant", amp=amp)
        seen[amp] = set(dtypes)
        losses = h["step"]["loss"]
        assert all(map(math.isfinite, losses)) and sum(losses[-3:]) < sum(losses[:3])
        assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32
    assert seen == {None: {torch.float32}, True: {torch.bfloat16}}
