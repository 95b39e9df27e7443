"""Throughput benchmark: is the course's loader the bottleneck?

    python -m course_lib.tools.bench [--model fast_net] [--batch-size 256] [--steps 30]

Prints, for the same net and batch size in one run: end-to-end training images/second through
``train_batches`` (index, augment, normalise on the device) and compute-only images/second on
one batch already in memory. A ratio near 1 means the loader costs nothing next to the model.
Measured here, not in a timed test, because timings depend on the machine.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ..core.data import make_generator, normalize, train_batches
from ..core.experiment import default_device, device_name
from ..core.models import build_model
from ..core.train import autocast_for, make_optimizer

QUICK_NET = {"widths": (32, 64, 128), "stem": 16}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step(model, opt, x, y, device):
    # Deliberately not train.fit: the benchmark times compute only, so no history, checks or schedule.
    with autocast_for(device, None):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def images_per_second(model, batches, opt, device, steps: int, warmup: int = 3) -> float:
    """Run ``warmup`` + ``steps`` training steps from the iterator ``batches``; images/s over ``steps``."""
    it = iter(batches)
    for _ in range(warmup):
        train_step(model, opt, *next(it), device)
    sync(device)
    t0, n = time.perf_counter(), 0
    for _ in range(steps):
        x, y = next(it)
        train_step(model, opt, x, y, device)
        n += len(y)
    sync(device)
    return n / (time.perf_counter() - t0)


def run(model_name: str = "fast_net", batch_size: int = 256, steps: int = 30, n_images: int = 20000,
        device=None) -> dict:
    """Measure loader-inclusive and compute-only throughput on synthetic uint8 CIFAR-sized data."""
    device = torch.device(device) if device else default_device()
    g = make_generator(0, device)
    n = max(n_images, batch_size * (steps + 4))
    data = {"train_x": torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device, generator=g),
            "train_y": torch.randint(0, 10, (n,), device=device, generator=g),
            "mean": torch.full((3,), 0.48, device=device), "std": torch.full((3,), 0.25, device=device)}
    kw = QUICK_NET if (model_name == "fast_net" and device.type == "cpu") else {}
    model = build_model(model_name, **kw).to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, "sgd", lr=0.01)
    x0 = normalize(data["train_x"][:batch_size], data["mean"], data["std"])
    y0 = data["train_y"][:batch_size]

    def fixed():
        while True:
            yield x0, y0

    compute = images_per_second(model, fixed(), opt, device, steps)
    end_to_end = images_per_second(model, train_batches(data, batch_size, g), opt, device, steps)
    return {"device": device_name(device), "model": model_name, "model_kwargs": kw, "batch_size": batch_size,
            "end_to_end_img_s": end_to_end, "compute_only_img_s": compute, "ratio": end_to_end / compute}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fast_net", choices=["fast_net", "small_cnn"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    r = run(a.model, a.batch_size, a.steps, device=a.device)
    print(f"device: {r['device']}  model: {r['model']} {r['model_kwargs']}  batch: {r['batch_size']}")
    print(f"end-to-end (loader + augment + train): {r['end_to_end_img_s']:9.0f} images/s")
    print(f"compute only (batch already in memory): {r['compute_only_img_s']:9.0f} images/s")
    print(f"ratio: {r['ratio']:.2f}")


if __name__ == "__main__":
    main()
