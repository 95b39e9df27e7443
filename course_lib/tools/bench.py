"""Benchmarks: is the course's loader the bottleneck, and how long does a student wait?

    python -m course_lib.tools.bench [--model fast_net] [--batch-size 256] [--steps 30]
    python -m course_lib.tools.bench --time-to-accuracy [--recipes baseline] [--targets 0.7,0.8]

Prints, for the same net and batch size in one run: end-to-end training images/second through
``train_batches`` (index, augment, normalise on the device) and compute-only images/second on
one batch already in memory. A ratio near 1 means the loader costs nothing next to the model.
With ``--time-to-accuracy`` it also trains each named recipe on CIFAR-10 (the prepared cache)
and prints the training seconds it needed to reach each test-accuracy target, recipes run one
after another in the same process so their times compare as ratios on the same machine (printed
last, as fractions of the first recipe's time). ``plain`` is the course's baseline recipe until
2026-12-03, ``baseline`` the one that replaced it (``course_lib.core.recipes``).
Measured here, not in a timed test, because timings depend on the machine (and its load).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ..core import recipes
from ..core.data import make_generator, normalize, train_batches
from ..core.experiment import default_device, device_name
from ..core.models import build_model
from ..core.train import autocast_for, evaluate, make_optimizer

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


# Recipes timed by --time-to-accuracy (course_lib.core.recipes): the course's baseline against the
# one it replaced, both baseline_net(16); "baseline_fp32" shows what a CPU without bf16 units gets.
RECIPES = {"plain": recipes.PLAIN, "baseline": recipes.BASELINE,
           "baseline_fp32": {**recipes.BASELINE, "amp": False}}
DEFAULT_RECIPES = ("plain", "baseline")  # the first is the reference the others are compared with


def time_to_accuracy(data: dict, recipe: dict, targets=(0.7, 0.8), seed: int = 0, progress: bool = False) -> dict:
    """Train ``recipe`` on ``data`` and return the training seconds at which test accuracy first
    reached each target (None if never), measured at the end of each epoch.

    The clock starts before the net is built (a whitening stem is part of the recipe's cost); the
    test score after each epoch is taken outside it (only training counts), so a target is met
    at an epoch boundary: the seconds are an upper bound by at most one epoch. Evaluation is
    always at the data's own size, in fp32.
    Returns ``{"targets": {t: seconds|None}, "curve": [(seconds, test_acc)], "train_seconds"}``.
    """
    curve, clock = [], {"train": 0.0, "since": time.perf_counter()}

    def on_epoch(event, history, m):
        if event != "epoch":
            return
        clock["train"] += time.perf_counter() - clock["since"]
        acc = evaluate(m, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]
        curve.append((clock["train"], acc))
        clock["since"] = time.perf_counter()

    recipes.train(data, recipe, seed=seed, evaluate_val=False, progress=progress, callbacks=[on_epoch])
    reached = {t: next((s for s, a in curve if a >= t), None) for t in targets}
    return {"targets": reached, "curve": curve, "train_seconds": clock["train"]}


def compare_recipes(results: dict, reference: str) -> list[str]:
    """One line per other recipe and target: its seconds to the target as a fraction of
    ``reference``'s (both measured in this run, so the machine's speed cancels out).

    Where only the other recipe reached a target, ``reference`` would have needed more than its
    whole training time, so the fraction of that time is an upper bound and is printed as one."""
    lines = []
    for name, r in results.items():
        for t, secs in r["targets"].items() if name != reference else ():
            ref, ref_total = results[reference]["targets"][t], results[reference].get("train_seconds")
            if secs is not None and ref is not None:
                ratio = f"{secs / ref:.2f}x the time of {reference!r}"
            elif secs is not None and ref_total:
                ratio = (f"under {secs / ref_total:.2f}x the time of {reference!r} (which did not "
                         f"reach it in its {ref_total:.0f} s of training)")
            else:
                ratio = f"n/a (not reached by both) the time of {reference!r}"
            lines.append(f"recipe {name!r} to {100 * t:.0f}%: {ratio}")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fast_net", choices=["fast_net", "small_cnn"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default=None)
    p.add_argument("--time-to-accuracy", action="store_true",
                   help="also train each recipe on CIFAR-10 and time it to the test-accuracy targets")
    p.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                   help=f"comma-separated, from {sorted(RECIPES)}; the first is the reference")
    p.add_argument("--targets", default="0.7,0.8", help="test-accuracy targets, comma-separated fractions")
    a = p.parse_args(argv)
    r = run(a.model, a.batch_size, a.steps, device=a.device)
    print(f"device: {r['device']}  model: {r['model']} {r['model_kwargs']}  batch: {r['batch_size']}")
    print(f"end-to-end (loader + augment + train): {r['end_to_end_img_s']:9.0f} images/s")
    print(f"compute only (batch already in memory): {r['compute_only_img_s']:9.0f} images/s")
    print(f"ratio: {r['ratio']:.2f}")
    if a.time_to_accuracy:
        from ..core.data import load_cifar10
        names = [n.strip() for n in a.recipes.split(",") if n.strip()]
        unknown = sorted(set(names) - set(RECIPES))
        if unknown:
            p.error(f"unknown recipe(s) {unknown}: choose from {sorted(RECIPES)}")
        targets = [float(t) for t in a.targets.split(",")]
        data = load_cifar10(torch.device(a.device) if a.device else default_device())
        results = {}
        for name in names:
            t = results[name] = time_to_accuracy(data, RECIPES[name], targets, progress=True)
            reached = ", ".join(f"{100 * k:.0f}% in {'not reached' if v is None else f'{v:.0f} s'}"
                                for k, v in t["targets"].items())
            print(f"time to test accuracy, recipe {name!r}: {reached} (training {t['train_seconds']:.0f} s, "
                  f"final {100 * t['curve'][-1][1]:.1f}%; seconds at epoch ends, other work on the machine slows them)")
        for line in compare_recipes(results, names[0]):
            print(line)


if __name__ == "__main__":
    main()
