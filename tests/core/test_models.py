"""Models: non-square inputs, parameter counts, dropout placement, inits."""
import pytest
import torch
from torch import nn

from course_lib.core import models as M


@pytest.mark.parametrize("build", [lambda: M.small_cnn(), lambda: M.fast_net((16, 32, 64), stem=8),
                                   lambda: M.baseline_net(8), lambda: M.small_cnn(batch_norm=False),
                                   lambda: M.baseline_net(8, batch_norm=False)])
@pytest.mark.parametrize("hw", [(32, 24), (24, 32), (40, 40), (16, 20)])
def test_output_shape_for_non_square_and_other_sizes(build, hw):
    out = build()(torch.randn(3, 3, *hw))
    assert out.shape == (3, 10)


def test_trainable_parameter_counts():
    # conv 3->32 (864+BN 64), 32->64 (18432+128), 64->128 (73728+256), fc 128->128 (16512), 128->10 (1290)
    assert M.count_parameters(M.small_cnn()) == 864 + 64 + 18432 + 128 + 73728 + 256 + 16512 + 1290
    assert M.count_parameters(M.small_cnn(batch_norm=False)) == 896 + 18496 + 73856 + 16512 + 1290
    net = M.baseline_net(16)
    for p in net.head.parameters():
        p.requires_grad = False
    assert M.count_parameters(net) == M.count_parameters(net, trainable_only=False) - 128 * 10


def test_dropout_is_placed_exactly_where_asked():
    m = M.small_cnn(conv_dropout=0.1, head_dropout=0.5, dropout_kind="channel")
    names = {n: type(mod) for n, mod in m.named_modules()}
    assert names["block1.drop1"] is nn.Dropout2d and names["head.drop"] is nn.Dropout
    order = [n for n, _ in m.block1.named_children()]
    assert order.index("bn1") < order.index("act1") < order.index("drop1")
    assert "drop1" not in dict(M.small_cnn(head_dropout=0.5).block1.named_children())
    pitfall = [n for n, _ in M.small_cnn(conv_dropout=0.1, dropout_before_bn=True).block1.named_children()]
    assert pitfall.index("drop1") < pitfall.index("bn1")


def test_baseline_net_takes_dropout_at_the_end_of_each_group_and_before_its_linear_layer():
    m = M.baseline_net(8, conv_dropout=0.3, head_dropout=0.5)
    names = {n: type(mod) for n, mod in m.named_modules()}
    drops = [n for n, t in names.items() if t in (nn.Dropout, nn.Dropout2d)]
    assert drops == ["block1.drop", "block2.drop", "block3.drop", "head.drop"]
    assert [n for n, _ in m.block2.named_children()][-2:] == ["act2", "drop"]
    assert [n for n, _ in m.head.named_children()] == ["pool", "flatten", "drop", "fc", "scale"]
    assert m.block1.drop.p == 0.3 and m.head.drop.p == 0.5
    assert isinstance(M.baseline_net(8, conv_dropout=0.1, dropout_kind="channel").block3.drop, nn.Dropout2d)
    assert M.baseline_net(8, conv_dropout=0.3).eval()(torch.randn(2, 3, 32, 24)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"conv_dropout must be in \[0, 1\)"):
        M.baseline_net(8, conv_dropout=1.0)
    with pytest.raises(ValueError, match="dropout_kind must be one of"):
        M.baseline_net(8, conv_dropout=0.1, dropout_kind="spatial")


def test_baseline_net_without_dropout_is_the_same_net_with_the_same_seed():
    torch.manual_seed(0)
    plain = M.baseline_net(8)
    torch.manual_seed(0)
    zero = M.baseline_net(8, conv_dropout=0.0, head_dropout=0.0)
    torch.manual_seed(0)
    dropped = M.baseline_net(8, conv_dropout=0.2, head_dropout=0.5)  # dropout adds no parameters
    assert not any(isinstance(m, (nn.Dropout, nn.Dropout2d)) for m in zero.modules())
    for other in (zero, dropped):
        assert list(other.state_dict()) == list(plain.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), plain.state_dict().values()))


def test_baseline_net_without_batch_norm_has_no_norm_layers_and_biased_convs():
    with_bn, without = M.baseline_net(8), M.baseline_net(8, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in without.modules())
    convs = [m for m in without.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 7 and all(c.bias is not None for c in convs)  # a bias takes over BN's shift
    assert all(m.bias is None for m in with_bn.modules() if isinstance(m, nn.Conv2d))
    bn_params = sum(m.weight.numel() + m.bias.numel() for m in with_bn.modules() if isinstance(m, nn.BatchNorm2d))
    conv_biases = sum(c.bias.numel() for c in convs)
    assert bn_params == 2 * conv_biases  # one channel each
    assert M.count_parameters(without) == M.count_parameters(with_bn) - bn_params + conv_biases
    names = [n for n, _ in without.block1.named_children()]
    assert names == ["conv1", "pool", "act1", "conv2", "act2"]


def test_dropout_is_inactive_in_eval_mode():
    m = M.small_cnn(conv_dropout=0.3, head_dropout=0.5).eval()
    x = torch.randn(4, 3, 32, 24)
    assert torch.equal(m(x), m(x))
    m.train()
    assert not torch.equal(m(x), m(x))


def test_zero_init_zeroes_every_weight_and_gain_scales():
    m = M.small_cnn(init="zeros")
    assert all(float(p.detach().abs().sum()) == 0 for n, p in m.named_parameters() if "conv" in n or "fc" in n)
    a = M.init_weights(nn.Linear(50, 50), "kaiming")
    torch.manual_seed(0)
    b = M.init_weights(nn.Linear(50, 50), "kaiming", gain=10.0)
    assert b.weight.std() > 5 * a.weight.std()


def test_bad_arguments_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="activation must be one of"):
        M.small_cnn(activation="swishy")
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        M.small_cnn(head_dropout=1.0)
    with pytest.raises(ValueError, match="init must be one of"):
        M.small_cnn(init="ones")
    with pytest.raises(ValueError, match="model must be one of"):
        M.build_model("resnet1000")


def smooth_images(n=64, h=32, w=24, seed=0):
    """Images whose neighbouring pixels are correlated, as in photographs (blurred noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h + 4, w + 4, generator=g)
    return nn.functional.avg_pool2d(x, 5, stride=1)  # n, 3, h, w


def test_whitening_init_gives_decorrelated_unit_variance_filter_outputs_in_pairs():
    images = smooth_images()  # 32x24
    conv = M.whitening_init_(nn.Conv2d(3, 16, 3, padding=1, bias=False), images, eps=0.0)
    w = conv.weight.detach()
    assert torch.equal(w[8:], -w[:8])  # +/- pairs
    out = nn.functional.conv2d(images, w[:8]).permute(1, 0, 2, 3).reshape(8, -1).double()
    cov = torch.cov(out)
    assert torch.allclose(cov, torch.eye(8, dtype=torch.float64), atol=1e-3)  # whitened
    raw = nn.functional.unfold(images, 3).transpose(1, 2).reshape(-1, 27)
    assert raw.var(0).min() < 0.1  # the patches themselves were far from unit variance


def test_whitening_init_keeps_the_largest_variance_directions_first():
    images = smooth_images(seed=1)
    w = M.whitening_init_(nn.Conv2d(3, 8, 3, bias=False), images).weight.detach()[:4]
    raw_var = [float(nn.functional.conv2d(images, f[None] / f.norm()).var()) for f in w]
    assert raw_var == sorted(raw_var, reverse=True)  # principal directions, largest first


@pytest.mark.parametrize("out, pairs", [(7, 3), (56, 27), (96, 27)])
def test_whitening_init_pairs_what_the_patch_allows_and_leaves_the_other_filters_as_they_were(out, pairs):
    conv = nn.Conv2d(3, out, 3)  # a 3x3x3 patch has 27 directions
    before = conv.weight.detach().clone()
    w = M.whitening_init_(conv, smooth_images(4)).weight.detach()
    assert torch.equal(w[pairs:2 * pairs], -w[:pairs])
    assert torch.equal(w[2 * pairs:], before[2 * pairs:])  # a wide stem's extra filters keep their init
    assert not torch.equal(w[:2 * pairs], before[:2 * pairs])
