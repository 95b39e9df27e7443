"""NaN debugging tools: the finder names the faulty module (forward, loss and backward), the
scanner finds exactly the planted bad samples, the training stop reports the right step."""
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.core import nonfinite as debug
from course_lib.core.models import small_cnn
from course_lib.core.train import NonFiniteLossError, fit
from course_lib.lessons import nan_debugging as faults

H, W = 24, 32  # non-square on purpose


class LogOfInput(nn.Module):
    """Forward fault: log of values that can be negative."""
    def forward(self, x):
        return torch.log(x)


def batch(n=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, H, W, generator=g), torch.randint(0, classes, (n,), generator=g)


def conv_net(middle: nn.Module, name: str) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 4, 3)), ("bn", nn.BatchNorm2d(4)), ("act", nn.ReLU()),
                                      ("pool", nn.AdaptiveMaxPool2d(1)), (name, middle), ("flat", nn.Flatten()),
                                      ("fc", nn.Linear(8 if name == "stats" else 4, 3))]))


def test_finder_names_a_forward_fault():
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), bad_log=LogOfInput(),
                                      pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 3)))
    x, y = batch()
    r = debug.find_nonfinite(model, x, y)
    assert r["forward"]["name"] == "bad_log" and r["forward"]["type"] == "LogOfInput"
    assert r["forward"]["shape"] == (8, 4, H - 2, W - 2) and r["forward"]["nan"] > 0
    assert r["input"] is None and "'bad_log' (LogOfInput" in r["summary"]


def test_finder_names_a_backward_only_fault_and_eps_fixes_it():
    """StdPool over a 1x1 map: std = sqrt(0) is fine forward, NaN backward (document D's bug)."""
    x, y = batch()
    r = debug.find_nonfinite(conv_net(faults.StdPool(eps=0.0), "stats"), x, y)
    assert r["forward"] is None and torch.isfinite(torch.tensor(r["loss"]))
    assert r["backward"]["name"] == "stats" and r["backward"]["type"] == "StdPool"
    assert r["backward"]["shape"] == (8, 4, 1, 1)  # the gradient flowing out of StdPool into its input
    assert "conv.weight" in r["bad_param_grads"] and "fc.weight" not in r["bad_param_grads"]
    assert r["summary"].startswith("backward pass") and "'stats' (StdPool" in r["summary"]
    fixed = debug.find_nonfinite(conv_net(faults.StdPool(eps=faults.EPS), "stats"), x, y)
    assert fixed["backward"] is None and fixed["bad_param_grads"] == [] and "finite" in fixed["summary"]


def test_finder_blames_the_loss_when_only_the_loss_is_not_finite():
    model = nn.Sequential(OrderedDict(flat=nn.Flatten(), fc=nn.Linear(3 * H * W, 3)))
    with torch.no_grad():
        model.fc.weight.mul_(2000.0)  # logits hundreds apart: softmax underflows to exactly 0
    x, y = batch()
    r = debug.find_nonfinite(model, x, y, loss_fn=faults.log_softmax_by_hand)
    assert r["forward"] is None and r["loss"] == float("inf")
    assert r["backward"]["name"] == "(loss)"
    assert "the loss function made it" in r["summary"]
    assert debug.find_nonfinite(model, x, y, loss_fn=F.cross_entropy)["backward"] is None


class SqrtOutsideModules(nn.Module):
    """The fault sits in a parent's forward, between two leaf modules."""
    def __init__(self):
        super().__init__()
        self.lin, self.head = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.sqrt(self.lin(x) * 0))


def test_finder_points_between_modules_when_the_fault_is_in_a_parents_forward():
    torch.manual_seed(0)
    r = debug.find_nonfinite(SqrtOutsideModules(), torch.randn(6, 4), torch.randint(0, 3, (6,)))
    assert r["forward"] is None and r["backward"]["name"] == "(code after 'lin')"


def test_finder_reports_dirty_input_and_leaves_the_model_unchanged():
    model = small_cnn(widths=(4, 8), hidden=8, num_classes=3)
    x, y = batch()
    sentinel = {n: torch.full_like(p, 7.0) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = sentinel[n].clone()
    running = model.block1.bn1.running_mean.clone()
    x[2, 1, 5, 7] = float("nan")
    x[5, 0, 0, 0] = float("inf")
    r = debug.find_nonfinite(model, x, y)
    assert r["input"]["bad_samples"] == 2 and r["input"]["nan"] == 1 and r["input"]["inf"] == 1
    assert "2 sample(s)" in r["summary"]
    assert all(torch.equal(p.grad, sentinel[n]) for n, p in model.named_parameters())
    assert torch.equal(model.block1.bn1.running_mean, running)


def test_scan_finds_exactly_the_planted_samples_constant_images_and_bad_labels():
    x = torch.randint(0, 256, (300, 3, H, W), dtype=torch.uint8)
    dirty, planted = faults.plant_nonfinite(x, 7, seed=3)
    y = torch.randint(0, 10, (300,))
    y[[4, 250]] = torch.tensor([10, -1])
    found = debug.scan_data(dirty, y, num_classes=10, chunk=64)  # several chunks
    assert found["nonfinite"] == planted and len(planted) == 7
    assert found["bad_labels"] == [4, 250] and found["constant"] == []
    blank, blanks = faults.plant_blank(x, 3, seed=1)
    assert debug.scan_data(blank)["constant"] == blanks and debug.scan_data(blank)["nonfinite"] == []
    with pytest.raises(ValueError, match="num_classes"):
        debug.scan_data(x, y)


def test_one_by_one_scan_agrees_and_does_not_touch_the_data():
    x = torch.randint(0, 256, (40, 3, H, W), dtype=torch.uint8)
    dirty, planted = faults.plant_nonfinite(x, 3, seed=0)
    before = dirty.clone()
    model = small_cnn(widths=(4, 8), hidden=8, num_classes=3).train()
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    assert debug.scan_one_by_one(model, dirty, torch.zeros(40, dtype=torch.long), mean, std) == planted
    assert torch.equal(dirty.isnan(), before.isnan()) and torch.equal(dirty.nan_to_num(), before.nan_to_num())
    assert model.training


def test_fit_message_points_at_the_backward_pass_when_gradients_were_nan(tiny):
    model = conv_net(faults.StdPool(eps=0.0), "stats")
    # fit stops right after the backward pass that produced NaN gradients, before the update
    with pytest.raises(NonFiniteLossError, match="gradients became non-finite at step 1 .* with a finite loss"):
        fit(model, tiny, epochs=1, batch_size=16, lr=0.01, progress=False, schedule="constant")
    assert not debug.nonfinite_params(model)


def test_anomaly_mode_names_the_autograd_function_not_the_module():
    x, y = batch()
    r = debug.anomaly_check(conv_net(faults.StdPool(eps=0.0), "stats"), x, y)
    assert r["raised"] and "VarBackward0" in r["message"] and "nan_debugging.py" in r["forward_line"]
    fwd = nn.Sequential(nn.Conv2d(3, 4, 3), LogOfInput(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert "LogSoftmaxBackward0" in debug.anomaly_check(fwd, x, y)["message"]  # only the backward is checked
    assert not debug.anomaly_check(conv_net(faults.StdPool(eps=1e-8), "stats"), x, y)["raised"]


def test_overhead_times_each_way_and_refuses_zero_repeats():
    x, y = batch()
    model = conv_net(nn.Identity(), "id")
    t = debug.overhead(model, x, y, repeats=2)
    assert set(t) == {"plain_s", "anomaly_s", "finder_s"} and all(v > 0 for v in t.values())
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        debug.overhead(model, x, y, repeats=0)


def test_layer_grad_norms_show_sigmoid_gradients_vanishing_toward_the_input():
    x, y = batch(32)
    ratios = {}
    for act in ("sigmoid", "relu"):
        torch.manual_seed(0)
        m = faults.deep_mlp(depth=8, width=32, activation=act, in_features=3 * H * W, num_classes=3)
        F.cross_entropy(m(x), y).backward()
        norms = debug.layer_grad_norms(m)
        assert list(norms) == [f"fc{i}" for i in range(1, 9)] + ["out"]
        ratios[act] = norms["fc1"] / norms["out"]
    assert ratios["sigmoid"] < 1e-3 < ratios["relu"]
