"""Find where non-finite numbers (NaN, Inf) first appear.

``fit`` calls :func:`describe_nonfinite` when the loss stops being finite, so the error names
the step, the learning rate and the first module whose output was not finite.
"""
from __future__ import annotations

import torch
from torch import nn


def first_nonfinite_module(model: nn.Module, x: torch.Tensor) -> dict | None:
    """Run one forward pass with hooks on every leaf module and return the first (in execution
    order) whose output contains NaN or Inf: ``{"name", "type", "shape", "nan", "inf"}``.

    Returns None if every module's output is finite. The pass runs without gradients.
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
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def nonfinite_params(model: nn.Module) -> list[str]:
    """Names of parameters that hold NaN or Inf."""
    return [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]


def describe_nonfinite(model: nn.Module, x: torch.Tensor, loss: torch.Tensor, step: int,
                       epoch: int, lr: float) -> str:
    """One message saying when the loss went non-finite and where it came from."""
    head = f"loss became {loss.item()} at step {step} (epoch {epoch}), lr={lr:.3g}"
    if not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        return f"{head}: the input batch holds NaN/Inf in {n_bad} sample(s): scan the data (NAN-2)."
    bad_params = nonfinite_params(model)
    if bad_params:
        return f"{head}: parameters are already non-finite ({', '.join(bad_params[:3])}...): lower the LR (NAN-1)."
    where = first_nonfinite_module(model, x)
    if where is None:
        return f"{head}: every module output is finite, so the loss function itself produced it (check log/div, NAN-3)."
    return (f"{head}: first non-finite output in module '{where['name']}' ({where['type']}, "
            f"shape {where['shape']}, {where['nan']} NaN, {where['inf']} Inf). Try a 10x lower LR (NAN-1).")
