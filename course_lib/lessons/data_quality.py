"""Notebook 14's helpers: a planted-fault image archive read by the course's own data
preparation (DATA-1), imbalanced subsets and their remedies (DATA-5), reproducible label flips
(DATA-7), hard-example mining against dropping the hardest examples (DATA-3 against DATA-6),
the plots and the widget's run.

Every training run goes through ``core.train.fit``; the data changes are index tensors on the
device (a run's training set is ``x[idx]``), so there is no per-sample Python in a hot loop.
"""
from __future__ import annotations

import functools
import io
import math
import statistics
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, recall_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from ..core.claims import effect_interval
from ..core.datasets import read_image_folder
from ..core.experiment import metric
from ..core.runs import reinitialize_
from ..core.train import evaluate, fit, predict_logits, raise_if_interrupted
from ..ui import plots

FAULTS = ("truncated", "empty", "not an image", "wrong size", "tiny")
REMEDIES = ("plain", "oversample", "class weights", "undersample")
MINING_ARMS = ("hard x3", "random x3", "drop hardest", "drop random")


# ----------------------------------------------------------------------------- DATA-1
def png_bytes(img: np.ndarray) -> bytes:
    """An HxWx3 uint8 array as PNG bytes (lossless, so a kept image can be checked pixel for pixel)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def fault_bytes(fault: str, img: np.ndarray) -> bytes:
    """The bytes of one planted fault made from a real image ``img`` (HxWx3 uint8):
    ``truncated`` (the first 60% of its PNG), ``empty``, ``not an image`` (text named .png),
    ``wrong size`` (the image doubled to 64x64) or ``tiny`` (the 8-byte PNG signature alone)."""
    good = png_bytes(img)
    makers = {"truncated": lambda: good[:int(0.6 * len(good))], "empty": lambda: b"",
              "not an image": lambda: b"label,file\n3,cat_0001.png\n" * 20,
              "wrong size": lambda: png_bytes(np.kron(img, np.ones((2, 2, 1), np.uint8))),
              "tiny": lambda: good[:8]}
    if fault not in makers:
        raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
    return makers[fault]()


def blank_bytes(img: np.ndarray) -> bytes:
    """A valid PNG of the same size as ``img`` in one flat colour (its mean): a content fault
    (a failed capture, a placeholder) that decodes fine and compresses to a very small file."""
    flat = np.broadcast_to(img.reshape(-1, 3).mean(0).astype(np.uint8), img.shape)
    return png_bytes(np.ascontiguousarray(flat))


def build_faulty_archive(x: torch.Tensor, y: torch.Tensor, classes, folder, faults=FAULTS,
                         seed: int = 0) -> dict:
    """Write a ``train/<class>/<n>.png`` image-folder ``.tar.gz`` at ``folder`` from real images
    ``x`` (N,3,H,W uint8) with labels ``y``: one planted fault per name in ``faults`` and one
    valid blank image replace randomly chosen files (``seed``); the rest are the real images.

    Returns ``{"archive", "sizes" (member -> bytes), "good" (member -> HxWx3 array),
    "broken" (member -> fault), "blank" (the blank image's member), "size" (H, W)}``."""
    imgs = x.permute(0, 2, 3, 1).cpu().numpy()
    labels = y.cpu().tolist()
    if len(imgs) < len(faults) + 2:
        raise ValueError(f"need at least {len(faults) + 2} images for {len(faults)} faults, got {len(imgs)}")
    chosen = np.random.default_rng(seed).choice(len(imgs), len(faults) + 1, replace=False).tolist()
    plan = dict(zip(chosen, list(faults) + ["blank"]))
    out = {"sizes": {}, "good": {}, "broken": {}, "blank": None, "size": tuple(imgs.shape[1:3])}
    path = Path(folder) / "cifar10_planted_faults.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for i, (img, label) in enumerate(zip(imgs, labels)):
            name = f"train/{classes[label]}/{i:05d}.png"
            kind = plan.get(i)
            data = (png_bytes(img) if kind is None else blank_bytes(img) if kind == "blank"
                    else fault_bytes(kind, img))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
            out["sizes"][name] = len(data)
            if kind is None:
                out["good"][name] = img
            elif kind == "blank":
                out["blank"] = name
            else:
                out["broken"][name] = kind
    out["archive"] = path
    return out


def size_heuristic(sizes: dict, fraction: float) -> set:
    """Document C's rule: flag files smaller than ``fraction`` x the median file size."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (of the median size), got {fraction!r}")
    limit = fraction * statistics.median(sizes.values())
    return {name for name, n in sizes.items() if n < limit}


def check_archive(planted: dict, size_fraction: float, log=None) -> dict:
    """Read ``planted["archive"]`` with the course's own ``read_image_folder`` (it decodes every
    file, reports each bad one by path and skips it; the expected size is that of the real images)
    and compare with the size heuristic.

    Returns ``{"skipped" (member -> reason), "found" (broken members skipped), "missed" (broken
    members kept), "good_dropped", "good_kept_exact" (every good image kept, pixel for pixel),
    "table" (fault -> (decode found it, size rule flagged it)), "size_false_alarms"
    (good members the size rule flags), "n_good"}``."""
    prefix = f"{planted['archive']}:"
    read = read_image_folder(planted["archive"], size=planted["size"], log=log or (lambda msg: None))
    skipped = {p[len(prefix):] if p.startswith(prefix) else p: why for p, why in read["skipped"]}
    kept = [name for name in planted["sizes"] if name not in skipped]  # a tar is read in archive order
    images = dict(zip(kept, read["train_x"].transpose(0, 2, 3, 1)))
    exact = all(name in images and np.array_equal(images[name], img) for name, img in planted["good"].items())
    flagged = size_heuristic(planted["sizes"], size_fraction)
    table = {fault: (name in skipped, name in flagged) for name, fault in planted["broken"].items()}
    if planted["blank"]:
        table["blank (valid image)"] = (planted["blank"] in skipped, planted["blank"] in flagged)
    return {"skipped": skipped, "found": sorted(set(planted["broken"]) & set(skipped)),
            "missed": sorted(set(planted["broken"]) - set(skipped)),
            "good_dropped": sorted(set(planted["good"]) & set(skipped)), "good_kept_exact": exact,
            "table": table, "size_false_alarms": sorted(set(planted["good"]) & flagged),
            "n_good": len(planted["good"])}


def archive_evidence(check: dict) -> dict:
    """The numbers behind DATA-1's demonstration, for its verdict record."""
    return {"found": check["found"], "missed": check["missed"], "good_dropped": check["good_dropped"],
            "good_kept_exact": check["good_kept_exact"], "table": check["table"],
            "size_false_alarms": len(check["size_false_alarms"]), "n_good": check["n_good"]}


def archive_summary(check: dict) -> str:
    """DATA-1's one-line summary: what decoding found and kept, and what the size rule missed."""
    broken = len(check["found"]) + len(check["missed"])
    size_missed = [f for f, (decoded, flagged) in check["table"].items() if decoded and not flagged]
    dec_missed = [f for f, (decoded, flagged) in check["table"].items() if not decoded]
    return (f"decoding skipped {len(check['found'])} of {broken} broken files by path, dropped "
            f"{len(check['good_dropped'])} of {check['n_good']} good images and kept the rest pixel for pixel: "
            f"{'yes' if check['good_kept_exact'] else 'NO'}; the size rule missed {size_missed or 'none'} "
            f"and flagged {len(check['size_false_alarms'])} good images; decoding missed "
            f"{dec_missed or 'none'} (valid files)")


def fault_table(check: dict) -> str:
    """The heuristic against decoding, one line per planted case, as plain text."""
    lines = [f"{'planted case':22s} {'decoding finds it':>18s} {'size rule flags it':>19s}"]
    for fault, (dec, size) in check["table"].items():
        lines.append(f"{fault:22s} {'yes' if dec else 'NO':>18s} {'yes' if size else 'NO':>19s}")
    lines.append(f"{'good real images':22s} {len(check['good_dropped']):>12d} dropped "
                 f"{len(check['size_false_alarms']):>11d} flagged   (of {check['n_good']})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- DATA-5
def class_counts(y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Images per class."""
    return torch.bincount(y, minlength=num_classes)


def imbalanced_indices(y: torch.Tensor, rare_classes, ratio: float, n_major: int, seed: int) -> torch.Tensor:
    """Indices into ``y`` of an imbalanced subset: ``n_major`` images of every common class and
    ``round(n_major / ratio)`` (at least 1) of each class in ``rare_classes``, drawn at random
    (``seed``), in a random order. Refuses a class with too few images."""
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1 (common : rare), got {ratio!r}")
    n_rare = max(1, round(n_major / ratio))
    gen = torch.Generator().manual_seed(int(seed))
    y_cpu, picks = y.cpu(), []
    for c in range(int(y_cpu.max()) + 1):
        pool = torch.nonzero(y_cpu == c).flatten()
        want = n_rare if c in set(rare_classes) else n_major
        if len(pool) < want:
            raise ValueError(f"class {c} has {len(pool)} images, fewer than the {want} asked for")
        picks.append(pool[torch.randperm(len(pool), generator=gen)[:want]])
    idx = torch.cat(picks)
    return idx[torch.randperm(len(idx), generator=gen)].to(y.device)


def balanced_weights(y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Per-sample weights 1 / (its class's count), as for ``torch.utils.data.WeightedRandomSampler``:
    every class then carries the same total weight, so weighted draws are balanced in expectation."""
    return 1.0 / class_counts(y, num_classes).clamp(min=1).to(torch.float32)[y]


def oversample(y: torch.Tensor, n: int, generator: torch.Generator, num_classes: int = 10) -> torch.Tensor:
    """``n`` indices drawn with replacement with :func:`balanced_weights` (WeightedRandomSampler's
    rule, on the device: ``torch.multinomial`` instead of a Python sampler)."""
    return torch.multinomial(balanced_weights(y, num_classes), n, replacement=True, generator=generator)


def undersample(y: torch.Tensor, generator: torch.Generator, num_classes: int = 10) -> torch.Tensor:
    """Indices of a balanced subset: every present class cut at random to the rarest class's count
    (written here: imbalanced-learn is not a course dependency, and this is three lines)."""
    counts = class_counts(y, num_classes)
    keep = int(counts[counts > 0].min())
    picks = []
    for c in torch.nonzero(counts).flatten().tolist():
        pool = torch.nonzero(y == c).flatten()
        picks.append(pool[torch.randperm(len(pool), device=y.device, generator=generator)[:keep]])
    return torch.cat(picks)


def loss_weights(y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Per-class loss weights n / (C x count) (scikit-learn's ``class_weight="balanced"``); a class
    absent from ``y`` gets weight 0."""
    counts = class_counts(y, num_classes).cpu()
    present = torch.nonzero(counts).flatten().numpy()
    w = compute_class_weight("balanced", classes=present, y=y.cpu().numpy())
    out = torch.zeros(num_classes)
    out[present] = torch.as_tensor(w, dtype=torch.float32)
    return out.to(y.device)


def remedy_stream(y: torch.Tensor, remedy: str, epochs: int, generator: torch.Generator,
                  num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What one remedy trains on, for ``epochs`` epochs' worth of draws: an index stream into
    ``y`` (every arm sees ``epochs x len(y)`` images, so all arms get the same compute) and the
    loss's class weights (None but for "class weights").

    "plain" and "class weights": every image ``epochs`` times; "oversample": balanced weighted
    draws with replacement; "undersample": one balanced subset, repeated to the same length."""
    if remedy not in REMEDIES:
        raise ValueError(f"remedy must be one of {REMEDIES}, got {remedy!r}")
    n = len(y) * epochs
    every = torch.arange(len(y), device=y.device)
    if remedy == "oversample":
        return oversample(y, n, generator, num_classes), None
    if remedy == "undersample":
        sub = undersample(y, generator, num_classes)
        return sub.repeat(math.ceil(n / len(sub)))[:n], None
    weights = loss_weights(y, num_classes) if remedy == "class weights" else None
    return every.repeat(epochs), weights


def score_classes(model: nn.Module, data: dict, prior=None, num_classes: int = 10) -> dict:
    """Test-split scores: ``acc``, ``balanced_acc`` (sklearn's mean per-class recall), per-class
    ``recall`` and, with ``prior`` (class shares of the training set), ``prior_acc``: the accuracy
    a test set with the training set's imbalance would show (sum of prior x recall)."""
    logits = predict_logits(model, data["test_x"], data["mean"], data["std"])
    pred, y = logits.argmax(1).cpu().numpy(), data["test_y"].cpu().numpy()
    recall = recall_score(y, pred, labels=list(range(num_classes)), average=None, zero_division=0)
    out = {"acc": float((pred == y).mean()), "balanced_acc": float(balanced_accuracy_score(y, pred)),
           "recall": [float(r) for r in recall]}
    if prior is not None:
        p = np.asarray(prior, dtype=float)
        out["prior_acc"] = float((p / p.sum() * recall).sum())
    return out


def train_on(model: nn.Module, data: dict, x: torch.Tensor, y: torch.Tensor, seed: int, start=None,
             weights: torch.Tensor | None = None, **fit_kw) -> dict:
    """Train ``model`` on images ``x`` with labels ``y`` (the rest of ``data`` as it is): from
    ``seed``'s initial weights, or from the state dict ``start``; ``weights`` are the loss's
    class weights. Returns the ``fit`` history (the stop button stops the whole cell)."""
    if start is None:
        reinitialize_(model, seed)
    else:
        model.load_state_dict(start)
    loss_fn = functools.partial(F.cross_entropy, weight=weights) if weights is not None else None
    hist = fit(model, {**data, "train_x": x, "train_y": y}, seed=seed, loss_fn=loss_fn, **fit_kw)
    return raise_if_interrupted(hist, "a comparison run")


def image_passes(hist: dict, batch_size: int) -> int:
    """Training images a run processed (steps x batch): the work it cost."""
    return len(hist["step"]["loss"]) * batch_size


def imbalance_runs(model: nn.Module, data: dict, ratios, remedies, seeds, rare_classes, n_major: int,
                   epochs: int, **fit_kw) -> dict:
    """DATA-5: for each ratio, one imbalanced subset of the training split (the same subset for
    every seed), then every remedy once per seed, paired: seed *i* gives every
    remedy the same initial weights. Each run trains on ``epochs x len(subset)`` images in one
    pass over its stream and is scored on the test split. Returns ``{"runs": {ratio: {remedy:
    [scores per seed]}}, "counts": {ratio: per-class counts}, "work": image passes}``."""
    out, counts, work = {}, {}, 0
    bs = fit_kw.get("batch_size", 256)
    for ratio in ratios:
        idx = imbalanced_indices(data["train_y"], rare_classes, ratio, n_major, seed=0)
        x, y = data["train_x"][idx], data["train_y"][idx]
        prior = class_counts(y).tolist()
        counts[ratio] = prior
        out[ratio] = {r: [] for r in remedies}
        for seed in seeds:
            for remedy in remedies:
                gen = torch.Generator(device=y.device).manual_seed(int(seed))
                stream, w = remedy_stream(y, remedy, epochs, gen)
                hist = train_on(model, data, x[stream], y[stream], seed, weights=w, epochs=1,
                                evaluate_val=False, **fit_kw)
                work += image_passes(hist, bs)
                out[ratio][remedy].append(score_classes(model, data, prior))
    return {"runs": out, "counts": counts, "work": work}


def effects_line(parts: dict) -> str:
    """Each compared arm's effect and interval in points, e.g. "oversample +3.1 (-0.2 to +6.4)",
    so a verdict over several alternatives still shows every number behind it."""
    out = []
    for name, v in parts.items():
        e = v["evidence"]
        lo, hi = e["interval"]
        out.append(f"{name} {100 * e['effect']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f})")
    return "; ".join(out) + " points"


def pick_scores(runs: list[dict], key: str) -> list[float]:
    """One number per seed from a list of score dicts (e.g. ``"balanced_acc"``)."""
    return [float(r[key]) for r in runs]


def rare_recall(runs: list[dict], rare_classes) -> list[float]:
    """Per seed: the mean test recall of the rare classes."""
    return [statistics.fmean(r["recall"][c] for c in rare_classes) for r in runs]


# ----------------------------------------------------------------------------- DATA-7
def flip_labels(y: torch.Tensor, rate: float, seed: int, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels with exactly ``round(rate x n)`` of them changed to another class, and the mask of
    the changed ones. Reproducible from ``seed`` on any device (drawn on the CPU), and nested:
    the images flipped at a lower rate are flipped, to the same wrong class, at a higher rate."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be a fraction between 0 and 1, got {rate!r}")
    n = len(y)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n, generator=gen)
    shift = torch.randint(1, num_classes, (n,), generator=gen)  # never 0: a flip always changes the class
    k = round(rate * n)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:k]] = True
    noisy = torch.where(mask, (y.cpu() + shift) % num_classes, y.cpu())
    return noisy.to(y.device), mask.to(y.device)


def sample_losses(model: nn.Module, data: dict, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each training image's cross-entropy against its (possibly wrong) label, in eval mode
    without augmentation, and whether the model misclassifies it."""
    logits = predict_logits(model, x, data["mean"], data["std"])
    y = y.to(logits.device)
    return F.cross_entropy(logits, y, reduction="none"), logits.argmax(1) != y


def best_epoch_keeper():
    """A ``fit`` callback keeping a copy of the weights of the epoch with the best validation
    accuracy (early stopping's choice). Returns ``(callback, kept)``; ``kept["state"]``,
    ``kept["epoch"]``."""
    kept = {"state": None, "epoch": 0, "acc": -math.inf}

    def callback(event, history, model):
        if event == "epoch" and history["epoch"]["val_acc"][-1] > kept["acc"]:
            kept.update(acc=history["epoch"]["val_acc"][-1], epoch=history["epoch"]["epoch"][-1],
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})
    return callback, kept


def noise_run(model: nn.Module, data: dict, x: torch.Tensor, y: torch.Tensor, rate: float, seed: int,
              **fit_kw) -> dict:
    """DATA-7: flip ``rate`` of the labels ``y`` (seed ``seed``), train from ``seed``'s initial
    weights, and score on the test split both the last epoch and the epoch with the best
    validation accuracy. Also keeps, for the loss filter and the mining arms, each training
    image's loss and misclassification under the final model, the flip mask, the noisy labels
    and the final weights. Returns a dict of those."""
    noisy, flipped = flip_labels(y, rate, seed)
    keeper, kept = best_epoch_keeper()
    hist = train_on(model, data, x, noisy, seed, callbacks=[keeper], **fit_kw)
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    losses, wrong = sample_losses(model, data, x, noisy)
    last = evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]
    best = last
    if kept["epoch"] != hist["epoch"]["epoch"][-1]:  # the best epoch was an earlier one: score it too
        model.load_state_dict(kept["state"])
        best = evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"]
        model.load_state_dict(final)
    return {"rate": rate, "seed": seed, "test_last": last, "test_best": best, "best_epoch": kept["epoch"],
            "val_curve": list(hist["epoch"]["val_acc"]), "train_loss": list(hist["epoch"]["train_loss"]),
            "losses": losses, "wrong": wrong, "flipped": flipped, "labels": noisy, "state": final,
            "work": image_passes(hist, fit_kw.get("batch_size", 256))}


def loss_filter(losses: torch.Tensor, flipped: torch.Tensor, fraction: float) -> dict:
    """Flag the ``fraction`` of images with the highest loss as "probably mislabelled" and score
    the flag against the true flips: ``precision`` (flagged that were flipped), ``recall``
    (flipped that were flagged) and ``chance`` (the precision of flagging at random: the flip rate)."""
    k = round(fraction * len(losses))
    flagged = torch.zeros_like(flipped)
    flagged[torch.topk(losses, k).indices] = True
    hits = int((flagged & flipped).sum())
    n_flip = int(flipped.sum())
    return {"precision": hits / max(k, 1), "recall": hits / n_flip if n_flip else math.nan,
            "chance": n_flip / len(flipped)}


# ----------------------------------------------------------------------------- DATA-3 against DATA-6
def mining_sets(losses: torch.Tensor, wrong: torch.Tensor, seed: int, repeats: int = 3,
                drop: float = 0.1) -> dict:
    """The four training sets of the mining comparison, as index tensors into the training set:
    "hard x3" (every image, plus the misclassified ones ``repeats`` more times), "random x3"
    (every image, plus as many extra passes on random images: the same extra compute), "drop
    hardest" (all but the ``drop`` share with the highest loss) and "drop random" (all but a
    random share of the same size). Random picks come from ``seed``."""
    n, dev = len(losses), losses.device
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    every = torch.arange(n, device=dev)
    hard = torch.nonzero(wrong).flatten()
    extra = torch.randint(0, n, (repeats * len(hard),), device=dev, generator=gen)
    k = round(drop * n)
    keep_easy = torch.sort(torch.topk(losses, n - k, largest=False).indices).values
    keep_random = torch.sort(torch.randperm(n, device=dev, generator=gen)[:n - k]).values
    return {"hard x3": torch.cat([every, hard.repeat(repeats)]), "random x3": torch.cat([every, extra]),
            "drop hardest": keep_easy, "drop random": keep_random}


def mining_runs(model: nn.Module, data: dict, x: torch.Tensor, probes: list[dict], repeats: int, drop: float,
                **fit_kw) -> dict:
    """For every probe run (one per seed, from :func:`noise_run`): retrain its final weights on
    each of the four :func:`mining_sets` with the probe's (possibly noisy) labels, paired (the
    same seed and start for all four), and score on the test split. Also records the share of
    flipped labels in the re-added and the dropped images. Returns ``{"test": {arm: [acc per
    seed]}, "flipped_share": {arm: [share per seed]}, "hard_n": [...], "work"}``."""
    out = {"test": {a: [] for a in MINING_ARMS}, "flipped_share": {"hard": [], "dropped": []},
           "hard_n": [], "work": 0}
    for p in probes:
        sets = mining_sets(p["losses"], p["wrong"], p["seed"], repeats, drop)
        out["hard_n"].append(int(p["wrong"].sum()))
        dropped = torch.ones_like(p["flipped"])
        dropped[sets["drop hardest"]] = False
        out["flipped_share"]["hard"].append(float(p["flipped"][p["wrong"]].float().mean()) if p["wrong"].any() else 0.0)
        out["flipped_share"]["dropped"].append(float(p["flipped"][dropped].float().mean()))
        for arm in MINING_ARMS:
            idx = sets[arm]
            hist = train_on(model, data, x[idx], p["labels"][idx], p["seed"], start=p["state"],
                            evaluate_val=False, **fit_kw)
            out["work"] += image_passes(hist, fit_kw.get("batch_size", 256))
            out["test"][arm].append(evaluate(model, data["test_x"], data["test_y"], data["mean"], data["std"])["acc"])
    return out


# ----------------------------------------------------------------------------- tables
def _mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else math.nan


def imbalance_table(imb: dict, rare_classes) -> str:
    """Per ratio and remedy, means over the seeds: balanced test accuracy, the rare classes' mean
    recall, and the accuracy a test set with the training imbalance would show."""
    lines = []
    for ratio, arms in imb["runs"].items():
        lines.append(f"{ratio}:1, training images per class {imb['counts'][ratio]}")
        lines.append(f"  {'remedy':14s} {'balanced acc':>12s} {'rare recall':>11s} {'acc at training mix':>19s}")
        for name, runs in arms.items():
            lines.append(f"  {name:14s} {_mean(pick_scores(runs, 'balanced_acc')):12.1%} "
                         f"{_mean(rare_recall(runs, rare_classes)):11.1%} {_mean(pick_scores(runs, 'prior_acc')):19.1%}")
    return "\n".join(lines)


def noise_table(probes: dict) -> str:
    """Per noise rate, means over the seeds: test accuracy at the last and at the best-validation
    epoch, the best epoch, and the training images the final model gets wrong (against the noisy
    labels)."""
    lines = [f"{'flipped':>7s} {'test, last':>10s} {'test, best epoch':>16s} {'best epoch':>10s} {'wrong on train':>14s}"]
    for rate, runs in probes.items():
        lines.append(f"{rate:7.0%} {_mean(pick_scores(runs, 'test_last')):10.1%} "
                     f"{_mean(pick_scores(runs, 'test_best')):16.1%} {_mean(r['best_epoch'] for r in runs):10.1f} "
                     f"{_mean(float(r['wrong'].float().mean()) for r in runs):14.1%}")
    return "\n".join(lines)


def _interval_text(t, c, what: str) -> str:
    """``what``: mean of t - c over paired seeds with its 95% t interval, in points."""
    if len(t) < 2:
        return f"{what}: {100 * (_mean(t) - _mean(c)):+.2f} points (one seed: no interval)"
    ei = effect_interval(list(t), list(c), paired=True, level=0.95)
    lo, hi = ei["interval"]
    return f"{what}: {100 * ei['effect']:+.2f} points (95% CI {100 * lo:+.2f} to {100 * hi:+.2f})"


def side_measurements(probes: dict) -> str:
    """Section 3's measurements beside the verdict, each with a paired 95% interval: test
    accuracy of the best-validation epoch minus the last, and the loss filter's precision (flag
    as many highest-loss images as were flipped) minus flagging at random."""
    lines = ["not part of the verdict:"]
    for rate, runs in probes.items():
        lines.append("  " + _interval_text(pick_scores(runs, "test_best"), pick_scores(runs, "test_last"),
                                           f"{rate:.0%} flipped, best epoch - last epoch"))
    for rate, runs in probes.items():
        if rate <= 0:
            continue
        scores = [loss_filter(r["losses"], r["flipped"], rate) for r in runs]
        lines.append("  " + _interval_text([s["precision"] for s in scores], [s["chance"] for s in scores],
                                           f"{rate:.0%} flipped, loss filter precision - chance") +
                     f"; recall {_mean(s['recall'] for s in scores):.0%}")
    return "\n".join(lines)


def mining_table(mining: dict) -> str:
    """Per setting: mean test accuracy of each retraining arm, how many images were misclassified,
    and the share of flipped labels among the misclassified and among the dropped images."""
    lines = []
    for rate, m in mining.items():
        arms = ", ".join(f"{a} {_mean(v):.1%}" for a, v in m["test"].items())
        lines.append(f"{rate:.0%} flipped: {arms}")
        lines.append(f"   misclassified images {_mean(m['hard_n']):.0f}; flipped labels among them "
                     f"{_mean(m['flipped_share']['hard']):.0%}, among the dropped {_mean(m['flipped_share']['dropped']):.0%}")
    return "\n".join(lines)


def summary_metrics(imb: dict, probes: dict, mining: dict, rare_classes) -> dict:
    """The numbers the nightly run compares with its baseline: mean balanced accuracy per ratio and
    remedy, mean test accuracy per noise rate and per mining arm."""
    out = {}
    for ratio, arms in imb["runs"].items():
        for name, runs in arms.items():
            key = name.replace(" ", "_")
            out[f"balanced_acc_{ratio}to1_{key}"] = metric(_mean(pick_scores(runs, "balanced_acc")))
            out[f"rare_recall_{ratio}to1_{key}"] = metric(_mean(rare_recall(runs, rare_classes)))
    for rate, runs in probes.items():
        out[f"test_acc_noise_{round(100 * rate)}"] = metric(_mean(pick_scores(runs, "test_last")))
    for rate, m in mining.items():
        for arm, accs in m["test"].items():
            out[f"test_acc_noise_{round(100 * rate)}_{arm.replace(' ', '_')}"] = metric(_mean(accs))
    return out


# ----------------------------------------------------------------------------- plots
def draw_recall_bars(ax, runs: dict, classes, rare_classes, title: str = "") -> None:
    """Per-class test recall (mean over seeds), one bar group per class, one colour per remedy;
    rare classes' names are starred."""
    names = list(runs)
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        mean = np.mean([r["recall"] for r in runs[name]], axis=0)
        ax.bar(np.arange(len(classes)) + (k - (len(names) - 1) / 2) * width, 100 * mean, width,
               color=f"C{k}", label=name)
    ax.set_xticks(range(len(classes)), [c + ("*" if i in set(rare_classes) else "") for i, c in enumerate(classes)],
                  rotation=40, fontsize=8)
    ax.set(ylabel="test recall (%)", title=title or "per-class recall (* = rare in training)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)


def draw_seed_points(ax, groups: dict, ylabel: str, title: str = "") -> None:
    """One column per group ``{label: [fraction per seed]}``: a point per seed and a bar at the
    mean, in percent, the y-axis fitted to the points."""
    plots.seed_points(ax, groups, ylabel, title, scale=100, zoom=True)


def draw_val_curves(ax, probes: dict) -> None:
    """Validation accuracy per epoch of every run, one colour per noise rate: does accuracy peak
    before the last epoch when labels are noisy?"""
    for k, (rate, runs) in enumerate(probes.items()):
        for i, r in enumerate(runs):
            curve = [100 * a for a in r["val_curve"]]
            ax.plot(range(1, len(curve) + 1), curve, "o-", ms=3, color=f"C{k}", alpha=0.7,
                    label=f"{rate:.0%} flipped" if i == 0 else None)
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy per epoch (clean labels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


# ----------------------------------------------------------------------------- the widget
def run_for_panel(params: dict, data: dict, report, should_stop, model: nn.Module, rare_classes,
                  n_major: int, **fit_kw) -> dict:
    """The widget's experiment: an imbalanced subset of the training split at the panel's ``ratio``, its
    labels flipped at ``noise``, trained with the panel's ``remedy`` for ``epochs`` (seed 0).
    The history gains ``recall`` (per-class validation recall after each reported step block)
    and ``counts`` (per-class training images), which :func:`panel_png` draws as bars."""
    from ..ui.widgets import history_reporter
    idx = imbalanced_indices(data["train_y"], rare_classes, params["ratio"], n_major, seed=0)
    x, y = data["train_x"][idx], data["train_y"][idx]
    y, _ = flip_labels(y, params["noise"], seed=0)
    gen = torch.Generator(device=y.device).manual_seed(0)
    stream, w = remedy_stream(y, params["remedy"], params["epochs"], gen)
    state = {"recall": [0.0] * 10}

    def with_recall(history):
        history["counts"], history["recall"], history["rare"] = class_counts(y).tolist(), state["recall"], list(rare_classes)
        report(history)

    def per_class(event, history, m):
        if event == "epoch" or len(history["step"]["loss"]) % 20 == 0:
            pred = predict_logits(m, data["val_x"], data["mean"], data["std"]).argmax(1).cpu().numpy()
            state["recall"] = recall_score(data["val_y"].cpu().numpy(), pred, labels=list(range(10)), average=None,
                                           zero_division=0).tolist()
    reinitialize_(model, 0)
    loss_fn = functools.partial(F.cross_entropy, weight=w) if w is not None else None
    hist = fit(model, {**data, "train_x": x[stream], "train_y": y[stream]}, epochs=1, seed=0, loss_fn=loss_fn,
               should_stop=should_stop, evaluate_val=False, progress=False,
               callbacks=[per_class, history_reporter(with_recall, every_steps=20)], **fit_kw)
    hist["counts"], hist["recall"], hist["rare"] = class_counts(y).tolist(), state["recall"], list(rare_classes)
    return hist


def panel_png(history: dict, title: str = "") -> bytes:
    """The panel's picture: per-class training images (log scale) and per-class validation recall
    (rare classes in orange), redrawn as the run goes, and the training loss per step."""
    fig = Figure(figsize=(12, 3.4))
    ax0, ax1, ax2 = fig.subplots(1, 3)
    rare = set(history.get("rare", []))
    colours = ["C1" if c in rare else "C0" for c in range(10)]
    ax0.bar(range(10), history.get("counts", [0] * 10), color=colours)
    ax0.set_yscale("log")
    ax0.set(xlabel="class", ylabel="training images (log)", title="class counts (orange = rare)")
    ax1.bar(range(10), [100 * r for r in history.get("recall", [0.0] * 10)], color=colours)
    ax1.set(xlabel="class", ylabel="validation recall (%)", title="per-class recall", ylim=(0, 100))
    ax2.plot([float(v) for v in history["step"]["loss"]], color="k", lw=1)
    ax2.set(xlabel="step", ylabel="training loss", title="training loss per step")
    return plots.finish_png(fig, title)


# ----------------------------------------------------------------------------- takeaways
MEANINGS = {
    "DATA-1": {
        "supported": "Decoding every file, as the course's preparation does, found every broken file by "
                     "path and kept every good image unchanged; the size rule missed broken files of "
                     "normal size and flagged a valid blank image that no decoder can call broken. Use "
                     "both: decode to find unreadable files, look at the smallest files for content faults.",
        "not supported": "The preparation missed a planted broken file or dropped a good image: see the "
                         "table for which, and fix the reader before trusting any cache built with it."},
    "DATA-3": {
        "supported": "Re-adding the misclassified images beat spending the same extra compute on random "
                     "images, with and without label noise: mining helped here.",
        "not supported": "Re-adding the misclassified images did not beat random extra passes in at least "
                         "one setting; with noisy labels many 'hard' images are mislabelled, so mining "
                         "repeats the errors (see the flipped share among them).",
        "inconclusive": "The difference between hard and random re-adding is within the seed noise in at "
                        "least one setting."},
    "DATA-5": {
        "supported": "At both ratios at least one remedy raised balanced accuracy over plain training: "
                     "balancing paid off here, mostly by raising the rare classes' recall.",
        "not supported": "At some ratio no remedy beat plain training on balanced accuracy; with very few "
                         "rare images there may be too little to learn from, whatever the weighting.",
        "inconclusive": "At some ratio the remedies' gains cannot be told from seed noise at this budget."},
    "DATA-6": {
        "supported": "Dropping the 10% with the highest loss beat dropping a random 10%, with and without "
                     "noise: the hardest images were worth less than average here.",
        "not supported": "Dropping the hardest 10% did worse than (or no better than) dropping a random 10% "
                         "in at least one setting: on clean, scarce data the hard images carry information.",
        "inconclusive": "The difference between dropping the hardest and dropping at random is within the "
                        "seed noise in at least one setting."},
    "DATA-7": {
        "supported": "Flipping 20% and 40% of the training labels cost test accuracy beyond the margin: "
                     "label errors are worth keeping few.",
        "not supported": "At least one noise rate cost less than the margin: the network learned through the "
                         "noise (Rolnick et al.'s robustness), at least in this short training.",
        "inconclusive": "The cost of a noise rate could not be told from seed noise at this budget."},
}
