"""Find where non-finite numbers (NaN, Inf) first appear: in the data, the forward pass, the loss
or the backward pass.

- :func:`find_nonfinite`: one forward and backward pass with hooks; names the first module whose
  output, or whose backward pass, is not finite (module name, type, shape, counts).
- :func:`scan_data`: every sample with NaN/Inf pixels, every constant image and every bad label,
  in one batched pass; :func:`scan_one_by_one` is document D's way (batch size 1, no shuffling)
  for comparison.
- :func:`layer_grad_norms`: the gradient norm of each layer (exploding or vanishing gradients).
- :func:`anomaly_check` and :func:`overhead`: what ``torch.autograd.detect_anomaly`` reports
  and what it costs, next to the finder.

``fit`` calls :func:`describe_nonfinite` when the loss stops being finite, so its error names
the step, the learning rate and the first module whose output was not finite. (Training until
the first non-finite value, with the finder run on the failing batch, is notebook 09's
``lessons.nan_debugging.train_until_nonfinite``: ``fit`` plus handling of its error.)
"""
from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .data import normalize


def first_nonfinite_module(model: nn.Module, x: torch.Tensor) -> dict | None:
    """Run one forward pass with hooks on every leaf module and return the first (in execution
    order) whose output contains NaN or Inf: ``{"name", "type", "shape", "nan", "inf"}``.

    Returns None if every module's output is finite. The pass runs without gradients and leaves
    the model (batch-norm statistics) and the RNG (dropout) as they were, so a diagnosis in ``fit``
    changes nothing that follows it.
    """
    found = []

    def hook(name):
        def fn(module, inputs, output):
            if found or not torch.is_tensor(output):
                return
            bad = ~torch.isfinite(output)
            if bad.any():
                found.append({"name": name, "type": type(module).__name__,
                              "shape": tuple(output.shape),
                              "nan": int(torch.isnan(output).sum()), "inf": int(torch.isinf(output).sum())})
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if n and not list(m.children())]
    cuda = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.no_grad(), preserved(model), torch.random.fork_rng(devices=cuda):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def nonfinite_params(model: nn.Module) -> list[str]:
    """Names of parameters that hold NaN or Inf."""
    return [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]


def nonfinite_grads(model: nn.Module) -> list[str]:
    """Names of parameters whose ``.grad`` holds NaN or Inf (after a backward pass)."""
    return [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]


def describe_nonfinite(model: nn.Module, x: torch.Tensor, loss: torch.Tensor, step: int,
                       epoch: int, lr: float) -> str:
    """One message saying when the loss went non-finite and where it came from.

    Called by ``fit`` before the step's backward pass, so the gradients still held by the
    parameters are the previous step's: non-finite ones point at a backward-pass fault.
    """
    head = f"loss became {loss.item()} at step {step} (epoch {epoch}), lr={lr:.3g}"
    if not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        return f"{head}: the input batch holds NaN/Inf in {n_bad} sample(s): scan the data (NAN-2)."
    bad_params = nonfinite_params(model)
    if bad_params:
        bad_grads = nonfinite_grads(model)
        if bad_grads:
            return (f"{head}: parameters are already non-finite ({', '.join(bad_params[:3])}...) and the "
                    f"previous backward pass left NaN/Inf gradients ({', '.join(bad_grads[:3])}...): a "
                    "backward-only fault (sqrt or division at 0, NAN-3) or exploding gradients (clip, NAN-5); "
                    "run debug.find_nonfinite on a batch with the model before the update.")
        return f"{head}: parameters are already non-finite ({', '.join(bad_params[:3])}...): lower the LR (NAN-1)."
    where = first_nonfinite_module(model, x)
    if where is None:
        return f"{head}: every module output is finite, so the loss function itself produced it (check log/div, NAN-3)."
    return (f"{head}: first non-finite output in module '{where['name']}' ({where['type']}, "
            f"shape {where['shape']}, {where['nan']} NaN, {where['inf']} Inf). Try a 10x lower LR (NAN-1).")


def describe_nonfinite_grads(model: nn.Module, loss: torch.Tensor, step: int, epoch: int, lr: float) -> str:
    """Message for a finite loss whose backward pass produced NaN/Inf gradients (``fit`` stops
    before the update, so the weights are still finite)."""
    bad = nonfinite_grads(model)
    where = (f"first non-finite gradients in {', '.join(bad[:3])}" if bad else
             "every gradient is finite but their total norm overflowed (exploding gradients)")
    return (f"gradients became non-finite at step {step} (epoch {epoch}), lr={lr:.3g}, with a finite loss "
            f"{loss.item():.4g}: {where}. A backward-only fault (sqrt or division at 0, NAN-3) or exploding "
            "gradients: clip them (grad_clip, NAN-5), lower the LR, or run debug.find_nonfinite on this batch.")


def tensor_stats(t: torch.Tensor) -> dict:
    """Shape, NaN and Inf counts, and the largest finite magnitude of a tensor."""
    t = t.detach()
    finite = t[torch.isfinite(t)]
    return {"shape": tuple(t.shape), "nan": int(torch.isnan(t).sum()), "inf": int(torch.isinf(t).sum()),
            "absmax": float(finite.abs().max()) if finite.numel() else math.nan}


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    return leaves or [("(model)", model)]


@contextlib.contextmanager
def preserved(model: nn.Module):
    """Run a diagnostic pass and then put back the parameters' ``.grad`` and the buffers (batch-norm
    running statistics), so that diagnosing a model does not change it."""
    grads = {p: p.grad for p in model.parameters()}
    buffers = [b.detach().clone() for b in model.buffers()]
    try:
        for p in grads:
            p.grad = None
        yield
    finally:
        for p, g in grads.items():
            p.grad = g
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)


def find_nonfinite(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=F.cross_entropy) -> dict:
    """One forward and backward pass of ``loss_fn(model(x), y)`` that says where NaN/Inf first appear.

    Forward hooks on every leaf module check its output; tensor hooks on every module input and
    output catch the gradients as the backward pass produces them. A module whose output gradient
    was finite but whose input gradient is not made the NaN in its own backward (e.g. sqrt at 0).
    Returns ``{"input", "forward", "loss", "backward", "bad_params", "bad_param_grads",
    "grad_absmax", "summary"}`` where ``forward``/``backward`` are ``{"name", "type", "shape",
    "nan", "inf", "absmax"}`` or None. ``backward["name"]`` is ``"(loss)"`` when the gradient was
    already non-finite at the model's output, and ``"(code after 'X')"`` when it came from code
    outside any leaf module that used X's output. The model's gradients and buffers are left as
    they were (see :func:`preserved`).
    """
    leaves = _leaf_modules(model)
    forward_bad, grad_events, tagged, handles = [], [], {}, []

    def grad_hook(roles):
        def fn(grad):
            if not grad_events and not torch.isfinite(grad).all():
                grad_events.append((list(roles), tensor_stats(grad)))
        return fn

    def tag(t, name, mtype, role):
        if torch.is_tensor(t) and t.requires_grad:
            if id(t) not in tagged:  # one hook per tensor, holding every (module, role) it plays
                tagged[id(t)] = (t, [])
                handles.append(t.register_hook(grad_hook(tagged[id(t)][1])))
            tagged[id(t)][1].append((name, mtype, role))

    def forward_hook(name):
        def fn(module, inputs, output):
            outs = output if isinstance(output, (tuple, list)) else (output,)
            for o in outs:
                if not forward_bad and torch.is_tensor(o) and o.is_floating_point() and not torch.isfinite(o).all():
                    forward_bad.append({"name": name, "type": type(module).__name__, **tensor_stats(o)})
            for i in inputs:
                tag(i, name, type(module).__name__, "input")
            for o in outs:
                tag(o, name, type(module).__name__, "output")
        return fn

    handles += [m.register_forward_hook(forward_hook(n)) for n, m in leaves]
    with preserved(model):
        try:
            with torch.enable_grad():
                out = model(x)
                loss = loss_fn(out, y)
                if loss.requires_grad:
                    loss.backward()
        finally:
            for h in handles:
                h.remove()
        bad_param_grads = nonfinite_grads(model)
        grad_absmax = max((tensor_stats(p.grad)["absmax"] for p in model.parameters() if p.grad is not None),
                          default=math.nan)
    backward = None
    if grad_events:
        roles, stats = grad_events[0]
        consumers = [(n, t) for n, t, role in roles if role == "input"]
        if consumers:
            name, mtype = consumers[0]
        elif roles == tagged.get(id(out), (None, []))[1]:
            name, mtype = "(loss)", "loss function"
        else:
            name, mtype = f"(code after '{roles[0][0]}')", "code outside the leaf modules"
        backward = {"name": name, "type": mtype, **stats}
    elif bad_param_grads:  # a first layer (its input needs no gradient) spoiled only its weights' gradient
        name = bad_param_grads[-1].rpartition(".")[0]
        owner = model.get_submodule(name) if name else model
        backward = {"name": name or "(model)", "type": type(owner).__name__,
                    **tensor_stats(dict(model.named_parameters())[bad_param_grads[-1]].grad)}
    bad_x = ~torch.isfinite(x)
    report = {"input": {"bad_samples": int(bad_x.flatten(1).any(1).sum()), **tensor_stats(x)} if bad_x.any() else None,
              "forward": forward_bad[0] if forward_bad else None, "loss": float(loss.detach()),
              "backward": backward, "bad_params": nonfinite_params(model), "bad_param_grads": bad_param_grads,
              "grad_absmax": grad_absmax}
    report["summary"] = summarize(report)
    return report


def _where(f: dict) -> str:
    return f"'{f['name']}' ({f['type']}, shape {f['shape']}: {f['nan']} NaN, {f['inf']} Inf)"


def summarize(report: dict) -> str:
    """One sentence from a :func:`find_nonfinite` report: the earliest place NaN/Inf appear."""
    if report["input"]:
        return f"the input batch holds NaN/Inf in {report['input']['bad_samples']} sample(s): scan the data (NAN-2)"
    if report["bad_params"]:
        return (f"the weights are already non-finite ({', '.join(report['bad_params'][:3])}): an update blew them "
                "up (too high an LR, NAN-1, or exploding gradients, NAN-5)")
    if report["forward"]:
        return f"forward pass: first non-finite output in {_where(report['forward'])}"
    if not math.isfinite(report["loss"]):
        return f"forward pass: every module output is finite but the loss is {report['loss']}: the loss function made it"
    if report["backward"]:
        b = report["backward"]
        if b["name"] == "(loss)":
            return f"backward pass: the loss's gradient is already non-finite ({b['nan']} NaN, {b['inf']} Inf)"
        return f"backward pass: forward and loss are finite, the first non-finite gradient comes out of {_where(b)}"
    return (f"forward and backward passes are finite (loss {report['loss']:.4g}, "
            f"largest gradient {report['grad_absmax']:.4g})")


def scan_data(x: torch.Tensor, y: torch.Tensor | None = None, num_classes: int | None = None,
              chunk: int = 4096) -> dict:
    """Every sample with NaN/Inf values, every constant image (zero variance) and every label
    outside ``[0, num_classes)``, found at once with batched tensor ops.

    Works chunk by chunk (``chunk`` samples) only to bound the memory of the masks. Returns
    ``{"nonfinite": [...], "constant": [...], "bad_labels": [...]}`` (sorted indices). A uint8
    tensor cannot hold NaN: non-finite values arrive with float data (decoded or computed).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    found = {"nonfinite": [], "constant": [], "bad_labels": []}
    for start in range(0, len(x), chunk):
        xb = x[start:start + chunk].flatten(1)
        if xb.is_floating_point():
            found["nonfinite"] += ((~torch.isfinite(xb)).any(1).nonzero().flatten() + start).tolist()
        found["constant"] += ((xb.amax(1) == xb.amin(1)).nonzero().flatten() + start).tolist()
    if y is not None:
        if num_classes is None:
            raise ValueError("scan_data needs num_classes to check the labels (e.g. num_classes=10)")
        found["bad_labels"] = ((y < 0) | (y >= num_classes)).nonzero().flatten().tolist()
    return found


@torch.no_grad()
def scan_one_by_one(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
                    std: torch.Tensor) -> list[int]:
    """Document D's way: batch size 1, no shuffling, one forward pass and loss per sample; returns
    every index whose loss is not finite. One Python iteration per sample, so it is slow: it is
    here to be timed against :func:`scan_data`. The model runs in eval mode and is restored."""
    was_training = model.training
    model.eval()
    bad = []
    try:
        for i in range(len(x)):
            xi = normalize(x[i:i + 1], mean, std)
            if not torch.isfinite(F.cross_entropy(model(xi), y[i:i + 1])):
                bad.append(i)
    finally:
        model.train(was_training)
    return bad


def layer_grad_norms(model: nn.Module) -> dict:
    """The L2 norm of each conv/linear layer's weight gradient, by module name, in definition
    order (input to output for the course's models); run after a backward pass."""
    return {n: float(m.weight.grad.norm()) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None}


def anomaly_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=F.cross_entropy) -> dict:
    """One forward and backward pass under ``torch.autograd.detect_anomaly``.

    Anomaly mode checks the *outputs of backward functions* for NaN (not Inf, not forward
    outputs) and raises at the first one, naming the autograd function (e.g. ``VarBackward0``)
    and printing the forward line that created it. Returns ``{"raised", "message",
    "forward_line"}``; the model's gradients and buffers are left as they were.
    """
    raised, message, forward_line = False, "no error: no backward function returned NaN", None
    with preserved(model), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autograd.detect_anomaly(check_nan=True):
                loss_fn(model(x), y).backward()
        except RuntimeError as err:
            raised, message = True, str(err).splitlines()[0]
    for w in caught:  # the forward traceback comes as a warning; keep its last frame outside torch
        lines = [ln.strip() for ln in str(w.message).splitlines() if ln.strip()]
        files = [i for i, ln in enumerate(lines[:-1]) if ln.startswith("File ") and "/torch/" not in ln]
        if "Traceback of forward call" in str(w.message) and files:
            forward_line = f"{lines[files[-1]]}: {lines[files[-1] + 1]}"
    return {"raised": raised, "message": message, "forward_line": forward_line}


def _seconds_per_call(fn, repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def overhead(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 5,
             loss_fn=F.cross_entropy) -> dict:
    """Seconds per forward+backward pass: plain, under ``detect_anomaly``, and for
    :func:`find_nonfinite` (medians over ``repeats``). Weights are not updated."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    device = next(model.parameters()).device

    def plain():
        with preserved(model):
            loss_fn(model(x), y).backward()

    def anomaly():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.autograd.detect_anomaly(check_nan=True):
                plain()

    return {"plain_s": _seconds_per_call(plain, repeats, device),
            "anomaly_s": _seconds_per_call(anomaly, repeats, device),
            "finder_s": _seconds_per_call(lambda: find_nonfinite(model, x, y, loss_fn), repeats, device)}
