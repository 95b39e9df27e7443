"""The claims ledger: the rules of thumb the course tests, and verdicts computed from measurements.

``claims.md`` (a copy of ``../shared/claims.md`` shipped with the package) is parsed into
``{id: {"claim", "source", "section"}}``. A verdict is always computed from numbers by one of
the functions below; it is never typed by hand.

Two kinds of verdict (``KINDS``):

- an **experiment** could have come out either way. Its verdict comes from one decision rule
  (:func:`decide`) applied to a confidence interval for the effect: :func:`compare` for a
  difference of means (paired over seeds, or Welch), :func:`compare_spreads` for a ratio of
  standard deviations. *supported*: the interval lies wholly on the expected side of zero;
  *not supported*: wholly on the other side, or wholly inside the declared margin of
  practical indifference (too small to matter); otherwise *inconclusive*, with the smallest
  effect this run could have detected.
- a **demonstration** shows a mechanism by construction (a planted fault and its fix, a check
  that holds by algebra): :func:`demonstrate` and :func:`check_range`. Its numbers are kept
  and shown, but it never counts as support for a claim.

:func:`all_of` folds several parts of one claim into one verdict, keeping every part.
"""
from __future__ import annotations

import math
import re
import statistics
import warnings
from functools import cache
from pathlib import Path

from scipy import stats

VERDICTS = ("supported", "not supported", "inconclusive")
KINDS = ("experiment", "demonstration")
EXPECTS = ("higher", "lower", "similar")
NAN_POLICIES = ("inconclusive", "omit", "raise")
CLAIMS_FILE = Path(__file__).with_name("claims.md")


@cache
def load_claims(path: str | None = None) -> dict:
    """Parse the markdown tables of claims into a dict keyed by claim ID."""
    text = Path(path or CLAIMS_FILE).read_text(encoding="utf-8")
    claims, section = {}, ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        m = re.match(r"^\|\s*([A-Z]+-\d+)\s*\|(.+)\|(.+)\|\s*$", line)
        if m:
            claims[m.group(1)] = {"claim": m.group(2).strip(), "source": m.group(3).strip(),
                                  "section": section}
    return claims


def claim_text(claim_id: str) -> str:
    """The English text of a claim; raises KeyError naming the known IDs' pattern if unknown."""
    claims = load_claims()
    if claim_id not in claims:
        raise KeyError(f"unknown claim ID {claim_id!r}: use an ID from claims.md (e.g. LR-1, DO-2)")
    return claims[claim_id]["claim"]


def make_verdict(claim_id: str, verdict: str, evidence: dict, summary: str,
                 kind: str = "experiment") -> dict:
    """A verdict record: claim ID and text, verdict, kind (experiment or demonstration), the
    numbers behind it and a one-line summary."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"claim": claim_id, "text": claim_text(claim_id), "verdict": verdict, "kind": kind,
            "evidence": evidence, "summary": summary}


def spread(values) -> float:
    """Seed-to-seed spread: the sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def fmt(x: float, unit: str = "", style: str = "effect") -> str:
    """A number in the metric's unit for a summary. ``style``: ``effect`` (signed difference),
    ``size`` (unsigned difference), ``bare`` (signed, no unit) or ``level`` (a measured value).
    ``unit="fraction"`` (accuracies and rates in [0, 1]) shows levels in percent and
    differences in percentage points."""
    if x is None or math.isnan(x):
        return "n/a"
    sign = "" if style in ("size", "level") else "+"
    if unit == "fraction":
        if style == "level":
            return f"{100 * x:.2f}%"
        return f"{100 * x:{sign}.2f}" + ("" if style == "bare" else " points")
    return f"{x:{sign}.4g}" + (f" {unit}" if unit and style != "bare" else "")


def _check_rule(expect: str, margin: float, level: float, min_runs: int) -> None:
    """Refuse a rule that cannot be applied, saying what to pass instead."""
    if expect not in EXPECTS:
        raise ValueError(f"expect must be one of {EXPECTS}, got {expect!r}")
    if not (isinstance(margin, (int, float)) and margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a finite number >= 0 (in the metric's unit), got {margin!r}")
    if expect == "similar" and margin <= 0:
        raise ValueError("expect='similar' needs a margin > 0: the largest difference that does not matter")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}")
    if int(min_runs) != min_runs or min_runs < 2:
        raise ValueError(f"min_runs must be a whole number >= 2 (one run cannot show seed noise), got {min_runs!r}")


def _values(arm, name: str) -> list[float]:
    """An arm's measurements as floats; a clear error for text or an empty arm."""
    try:
        vals = [float(v) for v in arm]
    except (TypeError, ValueError) as e:
        raise ValueError(f"the {name} arm must be a list of numbers, one per run: {e}") from None
    if not vals:
        raise ValueError(f"the {name} arm has no measurements: pass one number per run (seed)")
    return vals


def effect_interval(t: list[float], c: list[float], paired: bool, level: float) -> dict:
    """The one effect/noise helper: mean difference ``t - c`` with a two-sided ``level`` t
    interval, from the per-seed differences (``paired``) or Welch's unequal-variance form.
    Both arms need >= 2 finite values. No seed-to-seed variation at all gives a zero-width
    interval (the measurement is deterministic)."""
    paired = paired and len(t) == len(c)
    if paired:
        d = [a - b for a, b in zip(t, c)]
        effect = statistics.fmean(d)
        if spread(d) == 0:
            lo = hi = effect
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # nearly equal differences
                lo, hi = stats.ttest_1samp(d, 0.0).confidence_interval(level)
    else:
        effect = statistics.fmean(t) - statistics.fmean(c)
        if spread(t) == 0 and spread(c) == 0:
            lo = hi = effect
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = stats.ttest_ind(t, c, equal_var=False).confidence_interval(level)
    return {"effect": effect, "interval": [float(lo), float(hi)], "detectable_effect": float(hi - lo) / 2,
            "test": "paired t" if paired else "Welch t"}


def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson's score interval for k successes in n (scipy's), which stays sensible at 0/n and n/n."""
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def share_interval(t: list[float], c: list[float], paired: bool, level: float) -> dict:
    """The difference of two shares of yes (1) / no (0) outcomes, with Newcombe's score interval
    (1998; method 10, built from the two Wilson intervals; paired: corrected by the correlation
    of the pairs). A t interval on 0/1 values collapses to zero width whenever every pair agrees,
    which would make three runs look certain; this one does not."""
    paired = paired and len(t) == len(c)
    n1, n2 = len(t), len(c)
    p1, p2 = sum(t) / n1, sum(c) / n2
    l1, u1 = _wilson(sum(t), n1, level)
    l2, u2 = _wilson(sum(c), n2, level)
    phi = 0.0
    if paired:  # the 2x2 table of pairs: both yes, only t, only c, both no
        a = sum(1 for x, y in zip(t, c) if x and y)
        b = sum(1 for x, y in zip(t, c) if x and not y)
        cc = sum(1 for x, y in zip(t, c) if y and not x)
        d = n1 - a - b - cc
        margins = (a + b) * (cc + d) * (a + cc) * (b + d)
        phi = (a * d - b * cc) / math.sqrt(margins) if margins > 0 else 0.0
    effect = p1 - p2
    down = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    up = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    lo, hi = effect - down, effect + up
    return {"effect": effect, "interval": [lo, hi], "detectable_effect": (hi - lo) / 2,
            "test": "Newcombe score (paired)" if paired else "Newcombe score"}


def decide(interval, expect: str = "higher", margin: float = 0.0, centre: float = 0.0,
           unit: str = "") -> tuple[str, str]:
    """The one decision rule every experiment uses, on a confidence interval ``[lo, hi]`` for
    the effect (``centre`` is "no effect": 0 for a difference, 1 for a ratio).

    ``expect="higher"``/``"lower"``: *not supported* when (``margin`` > 0) the interval lies
    wholly within ``centre`` +- ``margin`` (too small to matter, even if it excludes zero) or
    wholly on the unexpected side of ``centre``; *supported* when wholly on the expected side. ``expect="similar"``:
    *supported* when wholly within the margin, *not supported* when wholly outside it.
    Anything else is *inconclusive*. Returns (verdict, why in words; ``unit`` as in :func:`fmt`)."""
    lo, hi = interval
    m = fmt(margin, unit, "size")
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive", "no interval could be computed"
    inside = margin > 0 and centre - margin <= lo and hi <= centre + margin
    if expect == "similar":
        if inside:
            return "supported", f"wholly within the margin +-{m}: too small to matter"
        if lo > centre + margin or hi < centre - margin:
            return "not supported", f"wholly outside the margin +-{m}"
        return "inconclusive", f"reaches past the margin +-{m}"
    if inside:
        return "not supported", f"wholly within the margin +-{m}: the effect, if any, is too small to matter"
    above, below = lo > centre, hi < centre
    if (above and expect == "higher") or (below and expect == "lower"):
        return "supported", f"wholly {'above' if above else 'below'} {centre:g}, as expected ({expect})"
    if above or below:
        return "not supported", f"wholly {'above' if above else 'below'} {centre:g}, expected {expect}"
    return "inconclusive", f"includes {centre:g}"


def _finite_arms(t, c, paired: bool, nan: str) -> tuple[list, list, list[int]]:
    """Apply the NaN policy: ``omit`` drops non-finite values (the whole pair when paired and
    the arms are equally long), ``raise`` refuses them, ``inconclusive`` keeps them (the caller
    then returns inconclusive). Returns the two arms and how many were dropped per arm."""
    bad_t, bad_c = [not math.isfinite(v) for v in t], [not math.isfinite(v) for v in c]
    if not (any(bad_t) or any(bad_c)) or nan == "inconclusive":
        return t, c, [0, 0]
    if nan == "raise":
        raise ValueError(f"non-finite measurements ({sum(bad_t)} and {sum(bad_c)} per arm): pass nan='omit' "
                         "to leave those runs out, or nan='inconclusive'")
    if paired and len(t) == len(c):
        keep = [not (a or b) for a, b in zip(bad_t, bad_c)]
        t2 = [v for v, k in zip(t, keep) if k]
        c2 = [v for v, k in zip(c, keep) if k]
    else:
        t2 = [v for v, b in zip(t, bad_t) if not b]
        c2 = [v for v, b in zip(c, bad_c) if not b]
    return t2, c2, [len(t) - len(t2), len(c) - len(c2)]


def compare(claim_id: str, treatment, control, what: str, expect: str = "higher", paired: bool = True,
            margin: float = 0.0, level: float = 0.95, min_runs: int = 2, label_t: str = "treatment",
            label_c: str = "control", unit: str = "", kind: str = "experiment",
            nan: str = "inconclusive", yes_no: bool = False) -> dict:
    """Verdict on "``treatment`` gives a {higher|lower|similar} ``what`` than ``control``".

    ``treatment`` and ``control`` hold one measurement per run. ``paired`` (the default): run
    *i* of both arms shares seed *i* (same initial weights and data order), so the effect is the
    mean of the per-seed differences with a t interval on them; ``paired=False``, or arms of
    different sizes, use Welch's interval. The interval is two-sided at ``level``; the verdict
    is :func:`decide`'s with the declared ``margin`` (in the metric's ``unit``). Fewer than
    ``min_runs`` (>= 2) per arm is inconclusive. Non-finite values: ``nan="inconclusive"``
    (default) makes the verdict inconclusive, ``"omit"`` leaves those runs out (saying how
    many), ``"raise"`` refuses them. ``yes_no=True``: each run is an outcome, 1 (yes) or 0 (no),
    and the effect is the difference of the two shares of yes. Its t interval is kept (simulated
    in the tests: decisive on a null effect at most about 5% of the time) except when every pair
    agrees, where a t interval has no width and three runs would look certain; then Newcombe's
    score interval (:func:`share_interval`) is used.

    The evidence keeps ``arms`` (treatment first), ``rule`` (expect, margin, level, paired),
    ``effect``, ``interval``, ``detectable_effect`` (the interval's half-width: smaller
    effects cannot be told from seed noise at this budget), ``unit`` and ``runs``.
    """
    _check_rule(expect, margin, level, min_runs)
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan must be one of {NAN_POLICIES}, got {nan!r}")
    t0, c0 = _values(treatment, label_t), _values(control, label_c)
    if yes_no and any(v not in (0.0, 1.0) for v in t0 + c0):
        raise ValueError(f"yes_no=True needs outcomes of 1 (yes) or 0 (no) per run; got {sorted(set(t0 + c0))}")
    t, c, dropped = _finite_arms(t0, c0, paired, nan)
    evidence = {"arms": {label_t: t0, label_c: c0},
                "rule": {"expect": expect, "margin": margin, "level": level, "paired": paired},
                "effect": math.nan, "interval": [math.nan, math.nan], "detectable_effect": math.nan,
                "unit": unit, "runs": [len(t), len(c)]}
    if any(dropped):
        evidence["dropped"] = dropped
    note = f" [left out as non-finite: {dropped[0]} and {dropped[1]} runs]" if any(dropped) else ""
    head = f"{what}{note}: {label_t} vs {label_c}"
    if not all(math.isfinite(v) for v in t + c):
        return make_verdict(claim_id, "inconclusive", evidence,
                            f"{head}: a run gave a non-finite value, so no interval (pass nan='omit' to "
                            "leave such runs out)", kind)
    if t and c:
        evidence["effect"] = statistics.fmean(t) - statistics.fmean(c)  # a point estimate, no interval
    if min(len(t), len(c)) < min_runs:
        return make_verdict(claim_id, "inconclusive", evidence,
                            f"{head}: effect {fmt(evidence['effect'], unit)}, but too few runs "
                            f"({min(len(t), len(c))} < {min_runs} per arm); one run cannot tell an effect "
                            "from seed noise", kind)
    ei = effect_interval(t, c, paired, level)
    if yes_no and ei["interval"][0] == ei["interval"][1]:
        ei = share_interval(t, c, paired, level)  # every run agreed: a t interval would have no width
    evidence.update(effect=ei["effect"], interval=ei["interval"], detectable_effect=ei["detectable_effect"],
                    test=ei["test"])
    verdict, why = decide(ei["interval"], expect, margin, unit=unit)
    lo, hi = ei["interval"]
    summary = (f"{head} {fmt(statistics.fmean(t), unit, 'level')} vs {fmt(statistics.fmean(c), unit, 'level')}, "
               f"effect {fmt(ei['effect'], unit)} ({level:.0%} CI {fmt(lo, unit, 'bare')} to {fmt(hi, unit)}, "
               f"{ei['test']}, {len(t)} and {len(c)} runs): {why}")
    if verdict == "inconclusive":
        summary += (f"; at this budget, differences under {fmt(ei['detectable_effect'], unit, 'size')} "
                    "cannot be told from seed noise")
    return make_verdict(claim_id, verdict, evidence, summary, kind)


def compare_spreads(claim_id: str, wider, narrower, what: str, level: float = 0.95, min_runs: int = 3,
                    label_t: str = "wider", label_c: str = "narrower", unit: str = "") -> dict:
    """Verdict on "estimates in ``wider`` vary more than estimates in ``narrower``" (e.g. single
    hold-out splits against k-fold means), an experiment on the ratio of standard deviations.

    The interval is the F-distribution interval for the SD ratio (two independent, roughly
    normal samples): (s_t / s_c) / sqrt(F_hi) to (s_t / s_c) / sqrt(F_lo) with F on (n_t - 1,
    n_c - 1) degrees of freedom. *supported* when it lies wholly above 1, *not supported* when
    wholly below, else inconclusive; the detectable effect is the smallest ratio this run
    could have told from 1, sqrt(F_hi). Fewer than ``min_runs`` (>= 3) per arm is inconclusive.
    """
    _check_rule("higher", 0.0, level, min_runs)
    t, c = _values(wider, label_t), _values(narrower, label_c)
    evidence = {"arms": {label_t: t, label_c: c},
                "rule": {"expect": "higher", "margin": 0.0, "level": level, "paired": False},
                "effect": math.nan, "interval": [math.nan, math.nan], "detectable_effect": math.nan,
                "unit": "ratio of standard deviations", "runs": [len(t), len(c)], "test": "F interval of the SD ratio"}
    head = f"{what}: spread of {label_t} vs {label_c} estimates"
    if min(len(t), len(c)) < min_runs or not all(math.isfinite(v) for v in t + c):
        return make_verdict(claim_id, "inconclusive", evidence,
                            f"{head}: too few finite estimates ({len(t)} and {len(c)}; need {min_runs} per arm)")
    st, sc = spread(t), spread(c)
    if sc == 0 or st == 0:
        return make_verdict(claim_id, "inconclusive", evidence,
                            f"{head}: an arm has no spread at all (SDs {st:.4g}, {sc:.4g})")
    a = (1 - level) / 2
    f_lo, f_hi = stats.f.ppf([a, 1 - a], len(t) - 1, len(c) - 1)
    ratio = st / sc
    interval = [ratio / math.sqrt(f_hi), ratio / math.sqrt(f_lo)]
    evidence.update(effect=ratio, interval=interval, detectable_effect=math.sqrt(f_hi), sd=[st, sc])
    verdict, why = decide(interval, "higher", 0.0, centre=1.0)
    summary = (f"{head}: SD {fmt(st, unit, 'level')} ({len(t)}) vs {fmt(sc, unit, 'level')} ({len(c)}), ratio "
               f"{ratio:.2f} ({level:.0%} CI {interval[0]:.2f} to {interval[1]:.2f}, F interval): {why}")
    if verdict == "inconclusive":
        summary += f"; at this budget, ratios under {math.sqrt(f_hi):.2f} cannot be told from sampling noise"
    return make_verdict(claim_id, verdict, evidence, summary)


def rank_agreement(claim_id: str, short, long, min_rho: float, level: float = 0.95) -> dict:
    """An experiment on "short runs rank configurations as long runs do": Spearman's rho between
    the two scores over the configurations, with a Fisher-z interval (standard error
    sqrt(1.06 / (n - 3)), Fieller, Hartley & Pearson 1957). Decided by ``claims.decide`` against
    the declared ``min_rho`` (supported when the interval lies wholly above it). Kendall's tau
    is kept in the evidence."""
    short, long = [float(v) for v in short], [float(v) for v in long]
    n = len(short)
    rho = float(stats.spearmanr(short, long).statistic) if n > 2 else math.nan
    tau = float(stats.kendalltau(short, long).statistic) if n > 2 else math.nan
    if n > 3 and math.isfinite(rho):
        z, se = math.atanh(max(min(rho, 0.999999), -0.999999)), math.sqrt(1.06 / (n - 3))
        q = stats.norm.ppf(1 - (1 - level) / 2)
        interval = [math.tanh(z - q * se), math.tanh(z + q * se)]
    else:
        interval = [math.nan, math.nan]
    verdict, why = decide(interval, "higher", 0.0, centre=min_rho)
    evidence = {"rho": rho, "kendall_tau": tau, "interval": interval, "min_rho": min_rho, "configs": n,
                "effect": rho - min_rho, "detectable_effect": (interval[1] - interval[0]) / 2,
                "unit": "Spearman rho", "runs": [n, n]}
    summary = (f"Spearman rho between short- and long-run validation accuracy over {n} configurations "
               f"{rho:.2f} (Kendall tau {tau:.2f}; {level:.0%} CI {interval[0]:.2f} to {interval[1]:.2f}, "
               f"Fisher z) against the declared {min_rho:g}: {why}")
    return make_verdict(claim_id, verdict, evidence, summary)


def demonstrate(claim_id: str, holds: bool, evidence: dict, summary: str) -> dict:
    """A demonstration: a mechanism shown by construction (a planted fault and its fix, a check
    that holds by algebra), from a boolean computed from the measurements in ``evidence``
    (state it in ``summary``). It is shown, never counted as support for the claim."""
    return make_verdict(claim_id, "supported" if holds else "not supported", evidence, summary,
                        kind="demonstration")


def check_range(claim_id: str, value: float, low: float, high: float, what: str) -> dict:
    """A demonstration that ``what`` lies in [low, high]: a single deterministic measurement
    against a stated expectation (e.g. the initial loss near ln 10)."""
    ok = low <= float(value) <= high
    return demonstrate(claim_id, ok, {"value": float(value), "low": low, "high": high},
                       f"{what} = {float(value):.4g}; expected in [{low:.4g}, {high:.4g}]")


def _largest_detectable(parts) -> dict:
    """For a verdict built from parts: the largest detectable effect among the parts that share
    the first part's unit (the part hardest to settle decides what the whole run could see), with
    that unit and the first part's runs. Empty when no part has an interval."""
    evs = [p.get("evidence", {}) for p in parts]
    unit = next((e.get("unit", "") for e in evs if "detectable_effect" in e), None)
    found = [e["detectable_effect"] for e in evs if e.get("unit", "") == unit
             and isinstance(e.get("detectable_effect"), (int, float)) and math.isfinite(e["detectable_effect"])]
    if unit is None or not found:
        return {}
    runs = next(e.get("runs") for e in evs if e.get("unit", "") == unit and "runs" in e)
    return {"detectable_effect": max(found), "unit": unit, "runs": runs}


def all_of(claim_id: str, parts, what: str = "", allow_empty: bool = False) -> dict:
    """One verdict for a claim with several parts that must all hold, each part a verdict.

    The verdict comes from the experiment parts: ``not supported`` if any is, else
    ``inconclusive`` if any is, else ``supported``. Demonstration parts are kept and shown but
    never make a claim supported; with no experiment part the result is itself a demonstration
    (decided the same way from its parts). ``parts`` is a list, or a dict naming the parts; each
    is kept whole in ``evidence["parts"]`` (a list or a dict, as given). No parts raise
    ValueError, or give an inconclusive experiment ("no part applied") with ``allow_empty``.
    """
    named = list(parts.items()) if isinstance(parts, dict) else [(None, p) for p in parts]
    if not named and not allow_empty:
        raise ValueError("all_of needs at least one part")
    experiments = [p for _, p in named if p.get("kind", "experiment") == "experiment"]
    deciding = experiments or [p for _, p in named]
    kind = "experiment" if experiments or not named else "demonstration"
    found = [p["verdict"] for p in deciding]
    verdict = ("not supported" if "not supported" in found else
               "inconclusive" if "inconclusive" in found or not found else "supported")
    kept = {name: p for name, p in named} if isinstance(parts, dict) else [p for _, p in named]
    evidence = {"rule": "all_of", "parts": kept, **_largest_detectable(deciding)}
    text = "; ".join(f"[{name + ': ' if name else ''}{p['verdict']}"
                     f"{', demonstration' if p.get('kind') == 'demonstration' and experiments else ''}] "
                     f"{p['summary']}" for name, p in named)
    summary = (f"{what}: " if what else "") + (text or "no part applied")
    return make_verdict(claim_id, verdict, evidence, summary, kind)


def any_of(claim_id: str, parts: dict, what: str = "", family_level: float | None = None) -> dict:
    """One verdict for "at least one of several declared alternatives shows the effect" (e.g.
    "some TTA policies lower accuracy"): *supported* when any experiment part is supported,
    *not supported* when every part is, otherwise *inconclusive*. The alternatives must be
    declared before the run, and each part's interval should be at a family-corrected level
    (Bonferroni: ``1 - (1 - family_level) / len(parts)``, passed to each part's ``compare``),
    so that the chance of a false "supported" over the family stays under ``1 - family_level``.
    ``parts`` is a dict naming the parts; each is kept whole in ``evidence["parts"]``, and the
    detectable effect is the largest of the parts'."""
    if not parts:
        raise ValueError("any_of needs at least one declared part")
    experiments = {n: p for n, p in parts.items() if p.get("kind", "experiment") == "experiment"}
    deciding = experiments or parts
    found = [p["verdict"] for p in deciding.values()]
    verdict = ("supported" if "supported" in found else
               "not supported" if all(f == "not supported" for f in found) else "inconclusive")
    shown = [n for n, p in deciding.items() if p["verdict"] == "supported"]
    detectable = [p["evidence"].get("detectable_effect") for p in deciding.values()]
    detectable = [d for d in detectable if isinstance(d, (int, float)) and math.isfinite(d)]
    first = next(iter(deciding.values()))["evidence"]
    evidence = {"rule": "any_of", "family_level": family_level, "parts": dict(parts), "shown_by": shown,
                "detectable_effect": max(detectable) if detectable else math.nan,
                "unit": first.get("unit", ""), "runs": first.get("runs")}
    level = f" (family level {family_level:.0%}, Bonferroni)" if family_level else ""
    summary = (f"{what}: " if what else "") + (f"{len(deciding)} declared alternatives{level}; "
                                               f"shown by {', '.join(shown) if shown else 'none'}")
    return make_verdict(claim_id, verdict, evidence, summary, "experiment" if experiments else "demonstration")


def count_verdicts(verdicts) -> dict:
    """``{kind: {verdict: n}}`` for a list of verdict records, every kind and verdict present
    (0 when none): experiments' verdicts are counted apart from demonstrations'."""
    counts = {k: dict.fromkeys(VERDICTS, 0) for k in KINDS}
    for v in verdicts:
        counts[v.get("kind", "experiment")][v["verdict"]] += 1
    return counts


def counts_line(counts: dict) -> str:
    """``count_verdicts`` in words: "experiments: 3 supported / 1 not supported / 4
    inconclusive; demonstrations: 5 (4 shown, 1 not)"."""
    e, d = counts["experiment"], counts["demonstration"]
    return (f"experiments: {e['supported']} supported / {e['not supported']} not supported / "
            f"{e['inconclusive']} inconclusive; demonstrations (not counted as support): {sum(d.values())} "
            f"({d['supported']} shown, {d['not supported'] + d['inconclusive']} not)")
