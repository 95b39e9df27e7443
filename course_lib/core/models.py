"""The course's models: a configurable small CNN and a fast residual-free net in the style of airbench.

Both accept any input height and width (global pooling before the head), so multi-scale and
non-square inputs work. Modules are named (``block1.conv1``, ``head.fc1``) so that tools which
report "the first module that produced a NaN" print names a student can find.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU}
INITS = ("kaiming", "xavier", "zeros", "default")
DROPOUT_KINDS = {"element": nn.Dropout, "channel": nn.Dropout2d}


def make_activation(name: str) -> nn.Module:
    """An activation module from its name (see ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def init_weights(model: nn.Module, scheme: str = "kaiming", gain: float = 1.0) -> nn.Module:
    """Initialise conv and linear weights in place; biases to zero. Returns the model.

    ``scheme``: ``kaiming`` (kaiming_normal, fan_in), ``xavier`` (xavier_normal), ``zeros`` (every
    weight zero: the classic failure, INIT-1) or ``default`` (PyTorch's own). ``gain`` scales the
    weights afterwards (a large gain makes deep plain nets explode, NAN-6).
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                if scheme == "kaiming":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                elif scheme == "xavier":
                    nn.init.xavier_normal_(m.weight)
                elif scheme == "zeros":
                    nn.init.zeros_(m.weight)
                m.weight.mul_(gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return model


def small_cnn(widths=(32, 64, 128), convs_per_block: int = 1, batch_norm: bool = True,
              conv_dropout: float = 0.0, head_dropout: float = 0.0, dropout_kind: str = "element",
              dropout_before_bn: bool = False, hidden: int = 128, activation: str = "relu",
              init: str = "kaiming", num_classes: int = 10, in_channels: int = 3) -> nn.Sequential:
    """A plain CNN: ``len(widths)`` blocks of [conv -> (bn) -> act -> (dropout)] x convs_per_block,
    each followed by 2x2 max pooling, then a head of global average pool -> fc1 -> act ->
    (dropout) -> fc2.

    Dropout positions are explicit so notebooks can compare them (DO-1..DO-4): ``conv_dropout``
    applies after each conv activation (``dropout_kind`` "element" = ``nn.Dropout``, "channel" =
    ``nn.Dropout2d``), ``head_dropout`` before the last linear layer. ``dropout_before_bn`` puts
    the conv dropout before batch norm instead (a known pitfall: BN's running statistics are then
    collected on dropped activations and do not match eval mode).
    """
    head_drop = _dropout(head_dropout, "element", "head_dropout")
    _dropout(conv_dropout, dropout_kind, "conv_dropout")  # refused before any layer is built
    blocks = OrderedDict()
    c_in = in_channels
    for b, width in enumerate(widths, start=1):
        layers = OrderedDict()
        for i in range(1, convs_per_block + 1):
            layers[f"conv{i}"] = nn.Conv2d(c_in, width, 3, padding=1, bias=not batch_norm)
            drop = _dropout(conv_dropout, dropout_kind, "conv_dropout")
            if drop is not None and dropout_before_bn:
                layers[f"drop{i}"] = drop
            if batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm2d(width)
            layers[f"act{i}"] = make_activation(activation)
            if drop is not None and not dropout_before_bn:
                layers[f"drop{i}"] = drop
            c_in = width
        layers["pool"] = nn.MaxPool2d(2)
        blocks[f"block{b}"] = nn.Sequential(layers)
    head = OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                       fc1=nn.Linear(c_in, hidden), act=make_activation(activation))
    if head_drop is not None:
        head["drop"] = head_drop
    head["fc2"] = nn.Linear(hidden, num_classes)
    blocks["head"] = nn.Sequential(head)
    model = init_weights(nn.Sequential(blocks), init)
    if init in ("kaiming", "xavier"):
        # The classifier starts with small weights so the first predictions are near uniform and
        # the initial loss near ln(10) (DBG-1); kaiming's ReLU gain there makes it several times larger.
        nn.init.normal_(model.head.fc2.weight, std=0.01)
    return model


def _conv_group(c_in: int, c_out: int, dropout: nn.Module | None = None,
                batch_norm: bool = True) -> nn.Sequential:
    """airbench's block: conv -> pool -> bn -> gelu -> conv -> bn -> gelu (-> ``dropout``).
    Without ``batch_norm`` the bn layers are left out and the convs get biases instead."""
    layers = OrderedDict(conv1=nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm),
                         pool=nn.MaxPool2d(2))
    if batch_norm:
        layers["bn1"] = nn.BatchNorm2d(c_out)
    layers.update(act1=nn.GELU(), conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=not batch_norm))
    if batch_norm:
        layers["bn2"] = nn.BatchNorm2d(c_out)
    layers["act2"] = nn.GELU()
    if dropout is not None:
        layers["drop"] = dropout
    return nn.Sequential(layers)


class Scale(nn.Module):
    """Multiply by a constant (airbench scales its logits down; a function would not be a module)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def _dropout(p: float, kind: str, name: str) -> nn.Module | None:
    """A dropout module of ``kind`` at rate ``p``, or None for p = 0 (no module at all, so a net
    without dropout is exactly the net it was before dropout existed)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1) (0 for none), got {p}")
    if kind not in DROPOUT_KINDS:
        raise ValueError(f"dropout_kind must be one of {sorted(DROPOUT_KINDS)}, got {kind!r}")
    return DROPOUT_KINDS[kind](p) if p > 0 else None


def fast_net(widths=(64, 256, 256), stem: int = 32, num_classes: int = 10,
             logit_scale: float = 1 / 9, conv_dropout: float = 0.0, head_dropout: float = 0.0,
             dropout_kind: str = "element", batch_norm: bool = True) -> nn.Sequential:
    """A fast CIFAR-10 net after Keller Jordan's airbench: a 3x3 stem then three conv groups
    (each halves the resolution) and a linear head on global max pooling.

    With the default widths it reaches about 93-94% in roughly 10 epochs on a GPU; narrower widths
    (``widths=(32, 64, 128)``) trade accuracy for speed on a CPU. Dropout is off by default (airbench
    has none); notebook 03 places it where ``small_cnn`` does: ``conv_dropout`` at the end of each
    conv group (``dropout_kind`` "element" or "channel"), ``head_dropout`` before the linear layer.
    ``batch_norm=False`` leaves out every batch-norm layer (the convs get biases instead): the same
    net without normalisation, for BN-1 (notebook 11).
    """
    head_drop = _dropout(head_dropout, "element", "head_dropout")
    stem_layers = OrderedDict(conv=nn.Conv2d(3, stem, 3, padding=1, bias=not batch_norm))
    if batch_norm:
        stem_layers["bn"] = nn.BatchNorm2d(stem)
    stem_layers["act"] = nn.GELU()
    layers = OrderedDict(stem=nn.Sequential(stem_layers))
    c_in = stem
    for b, width in enumerate(widths, start=1):
        layers[f"block{b}"] = _conv_group(c_in, width, _dropout(conv_dropout, dropout_kind, "conv_dropout"),
                                          batch_norm)
        c_in = width
    head = OrderedDict(pool=nn.AdaptiveMaxPool2d(1), flatten=nn.Flatten())
    if head_drop is not None:
        head["drop"] = head_drop
    head.update(fc=nn.Linear(c_in, num_classes, bias=False), scale=Scale(logit_scale))
    layers["head"] = nn.Sequential(head)
    model = nn.Sequential(layers)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


@torch.no_grad()
def whitening_init_(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> nn.Conv2d:
    """Set ``conv``'s filters to whiten the image patches it sees (airbench's first layer): the
    top principal directions of ``images``' patches, each scaled by one over its standard
    deviation, as +/- pairs (so ReLU-like activations pass both signs). Returns ``conv``.

    Neighbouring pixels are strongly correlated; filters that decorrelate them give the next
    layers inputs of equal variance in every direction, which speeds up early training. The
    filters stay trainable. ``images`` are normalised float images (N, C, H, W), a few thousand
    from the training split; ``eps`` keeps near-zero variances from blowing up. A patch has only
    ``C x kh x kw`` directions: filters beyond twice that (and an odd last one) keep their init.
    """
    c, (kh, kw), out = conv.in_channels, conv.kernel_size, conv.out_channels
    pairs = min(out // 2, c * kh * kw)
    patches = F.unfold(images.float(), (kh, kw)).transpose(1, 2).reshape(-1, c * kh * kw).double()
    patches = patches - patches.mean(0)
    variances, directions = torch.linalg.eigh(patches.T @ patches / len(patches))  # ascending
    top = slice(c * kh * kw - pairs, None)
    w = (directions[:, top] / torch.sqrt(variances[top] + eps)).T.flip(0)  # largest variance first
    w = w.reshape(pairs, c, kh, kw).to(conv.weight)
    conv.weight[:2 * pairs] = torch.cat([w, -w])
    return conv


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(name: str, **kwargs) -> nn.Sequential:
    """Build a model by name ("small_cnn" or "fast_net"): lets notebooks and widgets pick one by string."""
    builders = {"small_cnn": small_cnn, "fast_net": fast_net}
    if name not in builders:
        raise ValueError(f"model must be one of {sorted(builders)}, got {name!r}")
    return builders[name](**kwargs)


def baseline_net(width: int = 16, **options) -> nn.Sequential:
    """The course's baseline: ``fast_net`` with widths (2w, 4w, 8w) and a stem of w channels.

    w=16 (about 0.3 M parameters) suits a CPU; w=48 (about 2.6 M) a GPU. ``options``
    (``conv_dropout``, ``head_dropout``, ``dropout_kind``, ``batch_norm``) go to ``fast_net``:
    no dropout and batch norm on by default.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    return fast_net(widths=(2 * width, 4 * width, 8 * width), stem=width, **options)
