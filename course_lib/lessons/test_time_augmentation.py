"""Test-time augmentation (TTA): predict on several transformed copies ("views") of each test
image and merge the predictions (notebook 07, claims TTA-1 and TTA-2).

A view is a named function of a whole uint8 batch (N, 3, H, W), applied on its device with
``torchvision.transforms.v2.functional`` (a view is the same deterministic transform for every
image, so one call per batch is exactly right here, unlike random training augmentation):

- :data:`identity` (unchanged), :data:`mirror` (left-right flip);
- :func:`translate` ``(dx, dy)`` moves the content dx pixels right and dy down (reflect padding,
  as in training);
- :func:`crop` ``(frac, pos)`` the frac-sized crop (e.g. 0.875 of height and width) at pos in c,
  tl, tr, bl, br, fed at its smaller size (the models pool globally, so any size works);
- :func:`scale` ``(f)`` resized by f (antialiased), fed at the new size;
- :func:`rotate` ``(deg)`` rotated by deg degrees (bilinear, black corners);
- :func:`compose` ``(a, b, ...)`` applies views left to right, e.g. ``compose(mirror, translate(1, 1))``.

Each view has a readable ``name``; views with the same name are equal, so logits can be keyed by
view. A bad view raises :class:`ViewError` (a ``ValueError``) where it is detected. A policy is a
list of views. Merging averages the softmax probabilities (``mean_probs``) or the logits
(``mean_logits``). Logits are computed once per distinct view and shared by all policies; a
policy's cost is the sum of its views' measured times over the plain prediction's.

Figures: :func:`draw_gains` and :func:`draw_table` draw on a given axes; :func:`render_panel`
renders both for the widget panel.
"""
from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from ..core import claims, recipes
from ..core.experiment import seed_everything
from ..core.models import small_cnn
from ..core.train import fit, predict_logits
from ..ui.plots import render_png

MERGES = ("mean_probs", "mean_logits")
CROP_POSITIONS = ("c", "tl", "tr", "bl", "br")
VIEW_FORMS = ("identity", "mirror", "translate(dx, dy)", "crop(frac, pos)", "scale(f)", "rotate(deg)",
              "compose(view, ...)")


class ViewError(ValueError):
    """A TTA view that cannot be built or applied; the message lists the views there are."""

    def __init__(self, what: str):
        super().__init__(f"bad TTA view {what}; the views are {', '.join(VIEW_FORMS)}, with pos one of "
                         f"{CROP_POSITIONS}")


@dataclasses.dataclass(frozen=True)
class View:
    """A deterministic transform of a uint8 batch with a readable name; equal by name."""
    name: str
    fn: Callable = dataclasses.field(compare=False, repr=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _number(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ViewError(f"{what}: {value!r} is not a number") from None


identity = View("identity", lambda x: x)
mirror = View("mirror", TF.horizontal_flip)


def translate(dx: int, dy: int) -> View:
    """Content moved ``dx`` pixels right and ``dy`` down, the border filled by reflection."""
    if not (_number(dx, "translate").is_integer() and _number(dy, "translate").is_integer()):
        raise ViewError(f"translate({dx!r}, {dy!r}): shifts are whole pixels")
    dx, dy = int(dx), int(dy)
    p = max(abs(dx), abs(dy))

    def fn(x):
        h, w = x.shape[-2:]
        if p >= min(h, w):
            raise ViewError(f"translate({dx}, {dy}): a shift must be smaller than the image ({h}x{w})")
        return TF.crop(TF.pad(x, [p, p, p, p], padding_mode="reflect"), p - dy, p - dx, h, w) if p else x
    return View(f"translate({dx},{dy})", fn)


def crop(frac: float, pos: str = "c") -> View:
    """The ``frac``-sized crop (of height and width) at ``pos`` (c, tl, tr, bl or br)."""
    f = _number(frac, "crop")
    if not 0 < f <= 1 or pos not in CROP_POSITIONS:
        raise ViewError(f"crop({frac!r}, {pos!r}): frac must be in (0, 1] and pos one of {CROP_POSITIONS}")

    def fn(x):
        h, w = x.shape[-2:]
        ch, cw = max(round(h * f), 1), max(round(w * f), 1)
        top = {"c": (h - ch) // 2, "t": 0, "b": h - ch}[pos[0]]
        left = {"c": (w - cw) // 2, "l": 0, "r": w - cw}[pos[-1]]
        return TF.crop(x, top, left, ch, cw)
    return View(f"crop({f:g},{pos})", fn)


def scale(factor: float) -> View:
    """Resized by ``factor`` (between 0.25 and 4, antialiased), fed at the new size."""
    f = _number(factor, "scale")
    if not 0.25 <= f <= 4:
        raise ViewError(f"scale({factor!r}): the factor must be between 0.25 and 4")

    def fn(x):
        h, w = x.shape[-2:]
        return TF.resize(x, [max(round(h * f), 1), max(round(w * f), 1)], antialias=True)
    return View(f"scale({f:g})", fn)


def rotate(degrees: float) -> View:
    """Rotated by ``degrees`` (counter-clockwise, bilinear, black corners)."""
    deg = _number(degrees, "rotate")
    return View(f"rotate({deg:g})", lambda x: TF.rotate(x, deg, interpolation=TF.InterpolationMode.BILINEAR))


def compose(*views: View) -> View:
    """The views applied left to right, named ``a+b``."""
    if not views or not all(isinstance(v, View) for v in views):
        raise ViewError(f"compose{views!r}: give one or more views")

    def fn(x):
        for v in views:
            x = v(x)
        return x
    return View("+".join(v.name for v in views), fn)


POLICIES = {
    "none": [identity],
    "flip": [identity, mirror],
    "flip+translate": [identity, mirror, translate(1, 1), translate(-1, -1),
                       compose(mirror, translate(1, 1)), compose(mirror, translate(-1, -1))],
    "crops": [crop(0.875, p) for p in CROP_POSITIONS],
    "scales": [identity, scale(0.875), scale(1.125)],
    "rotate": [identity, rotate(15), rotate(-15)],
}


def train_model(data: dict, seed: int, flip: bool, epochs: int, baseline: bool = False,
                batch_size: int = 256, lr: float = 0.2, **fit_kw):
    """Train one model whose predictions TTA will average; returns ``(model, history)``.

    Every model sees random translations; ``flip`` adds random left-right flips (the two groups
    of the notebook). The same ``seed`` gives the same initial weights in both groups, so models
    pair by seed. ``baseline=False``: a ``small_cnn`` trained by ``fit`` with one-cycle SGD at
    ``batch_size`` and ``lr``. ``baseline=True``: the course baseline recipe
    (``recipes.BASELINE``: whitened stem, progressive resizing, its own batch size, LR and label
    smoothing; ``batch_size`` and ``lr`` are not used), so TTA is judged on networks trained to
    the level the claims are about. ``fit_kw`` goes to ``fit`` (``progress``, ``should_stop``...).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if baseline:
        return recipes.train(data, recipes.BASELINE, seed=seed, epochs=epochs, flip=flip,
                             evaluate_val=False, **fit_kw)
    seed_everything(seed)
    model = small_cnn().to(data["train_x"].device)
    return model, fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr, flip=flip,
                      seed=seed, evaluate_val=False, **fit_kw)


def policy_names(policies: dict) -> dict:
    """``{policy: [view name, ...]}``: the policies as plain text, for a results file."""
    return {p: [v.name for v in views] for p, views in policies.items()}


def policy_views(policies: dict) -> list[View]:
    """The distinct views that ``policies`` use, in first-use order (each is computed once)."""
    return list(dict.fromkeys(v for views in policies.values() for v in views))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def view_logits(model: torch.nn.Module, x: torch.Tensor, mean, std, views, batch_size: int = 1000):
    """Logits of ``model`` for every view of uint8 images ``x``, and the seconds each view took
    (transform and forward pass). Returns ``(logits, seconds)``, two dicts keyed by view."""
    for v in views:                                   # refuse a bad view before any work
        if not isinstance(v, View):
            raise ViewError(f"{v!r} is not a view (views are functions now, e.g. mirror, not 'flip')")
        v(x[:1])
    device = next(model.parameters()).device
    predict_logits(model, x[:min(len(x), 64)], mean, std, batch_size)   # warm-up: first calls are slow
    logits, seconds = {}, {}
    for v in views:
        _sync(device)
        t0 = time.perf_counter()
        out = torch.cat([predict_logits(model, v(x[i:i + batch_size].to(device)), mean, std, batch_size)
                         for i in range(0, len(x), batch_size)])
        _sync(device)
        logits[v], seconds[v] = out, time.perf_counter() - t0
    return logits, seconds


def merge(logits_list, mode: str = "mean_probs") -> torch.Tensor:
    """Merged class probabilities (N, C) from a list of logits (N, C), one per view:
    ``mean_probs`` averages the softmax outputs, ``mean_logits`` takes the softmax of the mean."""
    if mode not in MERGES:
        raise ValueError(f"merge mode must be one of {MERGES}, got {mode!r}")
    stacked = torch.stack(list(logits_list))
    return stacked.softmax(-1).mean(0) if mode == "mean_probs" else stacked.mean(0).softmax(-1)


def tta_predict(model: torch.nn.Module, x: torch.Tensor, mean, std, views, mode: str = "mean_probs",
                batch_size: int = 1000) -> torch.Tensor:
    """TTA probabilities (N, C) of ``model`` on uint8 images ``x`` for the list of ``views``."""
    logits, _ = view_logits(model, x, mean, std, list(dict.fromkeys(views)), batch_size)
    return merge([logits[v] for v in views], mode)


def score_policies(logits: dict, seconds: dict, y: torch.Tensor, policies: dict, mode: str = "mean_probs",
                   base: str = "none") -> dict:
    """Per policy: accuracy, gain over policy ``base``, how many predictions TTA turned from wrong
    to right and from right to wrong, and cost (its views' time over the :data:`identity` view's)."""
    y = y.to(next(iter(logits.values())).device)
    preds = {p: merge([logits[v] for v in views], mode).argmax(1) for p, views in policies.items()}
    ok_base = preds[base] == y
    out = {}
    for p, pred in preds.items():
        ok = pred == y
        out[p] = {"acc": float(ok.float().mean()), "gain": float(ok.float().mean() - ok_base.float().mean()),
                  "wrong_to_right": int((ok & ~ok_base).sum()), "right_to_wrong": int((~ok & ok_base).sum()),
                  "cost": sum(seconds[v] for v in policies[p]) / seconds[identity], "views": len(policies[p])}
    return out


def mean_over_models(per_model: list) -> dict:
    """Mean and model-to-model spread of ``score_policies`` results over several models:
    ``{policy: {"acc", "accs", "gain", "gain_sd", "gains", "wrong_to_right", "right_to_wrong", "cost"}}``
    (``accs`` and ``gains``: one value per model, in model order, so arms stay paired)."""
    out = {}
    for p in per_model[0]:
        rows = [m[p] for m in per_model]
        gains = [r["gain"] for r in rows]
        out[p] = {"acc": statistics.fmean(r["acc"] for r in rows), "accs": [r["acc"] for r in rows],
                  "gain": statistics.fmean(gains),
                  "gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0, "gains": gains,
                  "wrong_to_right": statistics.fmean(r["wrong_to_right"] for r in rows),
                  "right_to_wrong": statistics.fmean(r["right_to_wrong"] for r in rows),
                  "cost": statistics.fmean(r["cost"] for r in rows), "views": rows[0]["views"]}
    return out


def policy_verdict(claim_id: str, summary: dict, policy: str, expect: str, margin: float,
                   level: float = 0.95, what: str = "") -> dict:
    """``claims.compare`` of one policy's accuracy against no TTA (policy ``none``), paired by
    model (each model is its own control), in fractions; cost is left out of the verdict."""
    s = summary[policy]
    return claims.compare(claim_id, s["accs"], summary["none"]["accs"],
                          what or f"test accuracy with '{policy}' TTA ({s['views']} views)",
                          expect=expect, margin=margin, level=level, unit="fraction",
                          label_t=policy, label_c="no_tta")


def any_policy_lowers(claim_id: str, summary: dict, policies, margin: float,
                      family_level: float = 0.95) -> dict:
    """One verdict for "TTA can lower accuracy" over every declared policy, by a rule fixed
    before the run: each policy is compared with no TTA (paired by model, ``expect="lower"``)
    at the Bonferroni level ``1 - (1 - family_level) / len(policies)``, so that the chance of
    any false "lowers" stays under ``1 - family_level``. *supported* when at least one policy is
    (its interval wholly below zero and not wholly inside +-``margin``); *not supported*
    when every policy's verdict is not supported (none lowers accuracy by more than the
    margin); otherwise *inconclusive*. Every part is kept in the evidence."""
    policies = list(policies)
    if not policies or "none" in policies or not set(policies) <= set(summary):
        raise ValueError(f"policies must be a non-empty list of scored policies other than 'none' "
                         f"(scored: {sorted(p for p in summary if p != 'none')}), got {policies}")
    level = 1 - (1 - family_level) / len(policies)
    parts = {p: policy_verdict(claim_id, summary, p, "lower", margin, level) for p in policies}
    hurt = [p for p in policies if summary[p]["gain"] < 0]
    v = claims.any_of(claim_id, parts, f"{len(policies)} declared TTA policies, each against no TTA at the "
                                       f"{level:.1%} level", family_level=family_level)
    v["evidence"].update(margin=margin, level=level, share_with_lower_mean=len(hurt) / len(policies))
    v["summary"] += f"; lower mean accuracy for {len(hurt)} of {len(policies)} ({hurt or 'none'})"
    return v


def table_rows(summary: dict) -> list[str]:
    """A text table of a :func:`mean_over_models` result (accuracy, gain ± spread in points, flips, cost)."""
    rows = [f"{'policy':15s} {'views':>5s} {'accuracy':>9s} {'gain (points)':>15s} {'wrong->right':>13s} "
            f"{'right->wrong':>13s} {'cost':>6s}"]
    for p, s in summary.items():
        rows.append(f"{p:15s} {s['views']:5d} {100 * s['acc']:8.2f}% {100 * s['gain']:+7.2f} ± {100 * s['gain_sd']:4.2f}"
                    f" {s['wrong_to_right']:13.1f} {s['right_to_wrong']:13.1f} {s['cost']:5.1f}x")
    return rows


def per_class_accuracy(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Accuracy per class (num_classes,), on the CPU; NaN for a class absent from ``y``."""
    pred, y = pred.cpu(), y.cpu()
    hits = torch.bincount(y[pred == y], minlength=num_classes).float()
    counts = torch.bincount(y, minlength=num_classes).float()
    return hits / counts


def pair_ensemble_gains(plain_logits: list, y: torch.Tensor, mode: str = "mean_probs") -> list[float]:
    """For every pair of models: the accuracy of their two-model ensemble minus the mean accuracy
    of the two alone. Two models cost 2x inference, like a two-view TTA: the fair comparison."""
    y = y.to(plain_logits[0].device)
    def acc(scores):
        return float((scores.argmax(1) == y).float().mean())
    return [acc(merge([a, b], mode)) - (acc(a) + acc(b)) / 2 for a, b in itertools.combinations(plain_logits, 2)]


def draw_gains(ax, summaries: dict, title: str = "") -> None:
    """Bar chart of accuracy gain (points, ± model-to-model spread) per policy, one bar group per
    entry of ``summaries`` ``{label: mean_over_models(...)}``, with each policy's cost on the x axis."""
    labels = list(summaries)
    policies = [p for p in next(iter(summaries.values())) if p != "none"]
    width = 0.8 / max(len(labels), 1)
    for i, lab in enumerate(labels):
        s = summaries[lab]
        ax.bar(np.arange(len(policies)) + i * width, [100 * s[p]["gain"] for p in policies], width,
               yerr=[100 * s[p]["gain_sd"] for p in policies], capsize=3, label=lab)
    first = summaries[labels[0]]
    ax.set_xticks(np.arange(len(policies)) + width * (len(labels) - 1) / 2,
                  [f"{p}\n{first[p]['views']} views, {first[p]['cost']:.1f}x time" for p in policies], fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(ylabel="accuracy gain over no TTA (points)", title=title or "TTA: gain per policy (mean ± spread over models)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)


def draw_table(ax, summary: dict) -> None:
    """The :func:`table_rows` of ``summary`` as monospaced text filling ``ax``."""
    ax.set_axis_off()
    ax.text(0, 0.5, "\n".join(table_rows(summary)), family="monospace", fontsize=8, va="center",
            transform=ax.transAxes)


def render_panel(result: dict, title: str = "") -> bytes:
    """PNG for the widget panel: the gains chart above the text table of ``result["summary"]``."""
    return render_png([lambda ax, r: draw_gains(ax, {r["label"]: r["summary"]}),
                       lambda ax, r: draw_table(ax, r["summary"])],
                      result, title, size=(10, 5.5), gridspec_kw={"height_ratios": [2.2, 1]})


def widget_spec(policies: dict, groups, merge_mode: str = "mean_probs") -> dict:
    """Control-panel spec for notebook 07: a tick box per policy, the merge mode and which
    trained models (e.g. with or without flip augmentation) to look at."""
    spec = {p: {"kind": "bool", "value": True, "label": p} for p in policies if p != "none"}
    spec["merge"] = {"kind": "choice", "value": merge_mode, "options": list(MERGES), "label": "merge"}
    spec["models"] = {"kind": "choice", "value": list(groups)[0], "options": list(groups), "label": "models trained"}
    return spec


def panel_result(params: dict, policies: dict, outputs: dict, y: torch.Tensor) -> dict:
    """Score the ticked policies (plus ``none``) for the chosen models and merge mode from
    logits already computed (``outputs``: ``{group: [(logits, seconds), ...]}``): instant."""
    chosen = {"none": policies["none"], **{p: v for p, v in policies.items() if p != "none" and params.get(p)}}
    if len(chosen) == 1:
        raise ValueError("tick at least one policy")
    per_model = [score_policies(lg, sec, y, chosen, params["merge"]) for lg, sec in outputs[params["models"]]]
    return {"label": f"models trained {params['models']}, {params['merge']}", "summary": mean_over_models(per_model),
            "stopped": None}


MEANINGS = {
    "TTA-1": {
        "supported": "Flip TTA bought accuracy here for about twice the inference time: worth it where "
                     "inference is cheap next to the value of the gain (offline scoring, a competition), "
                     "not where latency is billed per request.",
        "not supported": "Flip TTA gained nothing that matters (or lost) at this budget: models this "
                         "small and short-trained may already be nearly flip-invariant from training with "
                         "flips, so the mirrored view adds little new information; the papers' gains come "
                         "from larger models and images.",
        "inconclusive": "The gain could not be told from model-to-model noise: more models (the "
                        "`standard` profile, or `full` on a GPU) or the whole test split would settle it.",
    },
    "TTA-2": {
        "supported": "At least one declared policy lowered test accuracy beyond chance, as Shanmugam "
                     "et al. 2021 report for standard policies: a TTA policy must be validated, not "
                     "assumed to help. Views the model never saw in training are the usual culprits.",
        "not supported": "No declared policy lowered accuracy by more than the margin here: on these "
                         "models every view was close enough to training to do no harm. The claim says "
                         "TTA *can* hurt; this run found no such case among its policies.",
        "inconclusive": "Some policy may hurt, but with this many models and the strict per-policy "
                        "level (Bonferroni) no decrease was clear: more models would settle it.",
    },
}
