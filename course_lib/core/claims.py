"""The claims ledger: the rules of thumb the course tests, and verdicts computed from measurements.

``claims.md`` (a copy of ``../shared/claims.md`` shipped with the package) is parsed into
``{id: {"claim", "source", "section"}}``. A verdict is always computed from numbers by one of
the functions below; it is never typed by hand.
"""
from __future__ import annotations

import math
import re
import statistics
from functools import lru_cache
from pathlib import Path

VERDICTS = ("supported", "not supported", "inconclusive")
CLAIMS_FILE = Path(__file__).with_name("claims.md")


@lru_cache(maxsize=None)
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


def make_verdict(claim_id: str, verdict: str, evidence: dict, summary: str) -> dict:
    """A verdict record: claim ID and text, verdict, the numbers behind it and a one-line summary."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return {"claim": claim_id, "text": claim_text(claim_id), "verdict": verdict,
            "evidence": evidence, "summary": summary}


def spread(values) -> float:
    """Seed-to-seed spread: the sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def decide(effect: float, noise: float, n: int, min_runs: int, expect: str = "higher",
           too_few: str = "too few runs ({n} < {min_runs} per arm)",
           effect_name: str = "effect", noise_name: str = "seed spread") -> tuple[str, str]:
    """The one verdict rule every comparison uses: fewer than ``min_runs`` measurements, or an
    ``effect`` no larger than its ``noise`` (or NaN), is ``inconclusive``; otherwise ``supported``
    if the effect has the ``expect``-ed sign, else ``not supported``. Returns (verdict, why)."""
    if n < min_runs:
        return "inconclusive", too_few.format(n=n, min_runs=min_runs)
    if math.isnan(effect) or math.isnan(noise) or abs(effect) <= noise:
        return "inconclusive", f"{effect_name} {effect:+.4g} within {noise_name} {noise:.4g}"
    sign = 1 if expect == "higher" else -1
    return ("supported" if sign * effect > 0 else "not supported",
            f"{effect_name} {effect:+.4g} vs {noise_name} {noise:.4g}")


def compare(claim_id: str, treatment, control, what: str, expect: str = "higher",
            min_runs: int = 2, label_t: str = "treatment", label_c: str = "control") -> dict:
    """Verdict on "``treatment`` gives a {higher|lower} ``what`` than ``control``".

    ``treatment`` and ``control`` are lists of measurements, one per seed. The effect is the
    difference of means; the noise is the larger of the two seed-to-seed standard deviations.
    Fewer than ``min_runs`` runs per arm, or an effect no larger than the noise, is
    ``inconclusive``; otherwise ``supported`` if the effect has the expected sign, else
    ``not supported``.
    """
    if expect not in ("higher", "lower"):
        raise ValueError(f"expect must be 'higher' or 'lower', got {expect!r}")
    t, c = [float(v) for v in treatment], [float(v) for v in control]
    if not t or not c:
        raise ValueError("compare needs at least one measurement per arm")
    effect = statistics.fmean(t) - statistics.fmean(c)
    noise = max(spread(t), spread(c))
    evidence = {f"{label_t}_mean": statistics.fmean(t), f"{label_c}_mean": statistics.fmean(c),
                "effect": effect, "noise": noise, "runs": [len(t), len(c)],
                label_t: t, label_c: c,
                "arms": {label_t: t, label_c: c}, "rule": {"expect": expect, "min_runs": min_runs}}
    verdict, why = decide(effect, noise, min(len(t), len(c)), min_runs, expect)
    summary = (f"{what}: {label_t} {statistics.fmean(t):.4g} vs {label_c} {statistics.fmean(c):.4g} "
               f"({why}; expected {expect})")
    return make_verdict(claim_id, verdict, evidence, summary)


def check_range(claim_id: str, value: float, low: float, high: float, what: str) -> dict:
    """Verdict on "``what`` lies in [low, high]": a single deterministic measurement against a
    stated expectation (e.g. the initial loss near ln 10)."""
    ok = low <= float(value) <= high
    return make_verdict(claim_id, "supported" if ok else "not supported",
                        {"value": float(value), "low": low, "high": high},
                        f"{what} = {float(value):.4g}; expected in [{low:.4g}, {high:.4g}]")


def check_true(claim_id: str, holds: bool, evidence: dict, summary: str) -> dict:
    """Verdict from a boolean computed from measurements in ``evidence`` (state it in ``summary``)."""
    return make_verdict(claim_id, "supported" if holds else "not supported", evidence, summary)


def all_of(claim_id: str, parts, what: str = "", allow_empty: bool = False) -> dict:
    """One verdict for a claim with several parts that must all hold, each part a verdict:
    ``not supported`` if any part is, else ``inconclusive`` if any part is, else ``supported``.

    ``parts`` is a list of verdicts, or a dict naming them; every part's verdict, summary and
    numbers are kept in the evidence. No parts raise ValueError, or give ``inconclusive`` ("no
    part applied") with ``allow_empty``.
    """
    named = list(parts.items()) if isinstance(parts, dict) else [(None, p) for p in parts]
    if not named and not allow_empty:
        raise ValueError("all_of needs at least one part")
    found = [p["verdict"] for _, p in named]
    verdict = ("not supported" if "not supported" in found else
               "inconclusive" if "inconclusive" in found or not found else "supported")
    kept = [{"verdict": p["verdict"], "summary": p["summary"], **p["evidence"]} for _, p in named]
    evidence = ({name: k for (name, _), k in zip(named, kept)} if isinstance(parts, dict) else {"parts": kept})
    text = "; ".join(f"[{name + ': ' if name else ''}{p['verdict']}] {p['summary']}" for name, p in named)
    summary = (f"{what}: " if what else "") + (text or "no part applied")
    return make_verdict(claim_id, verdict, evidence, summary)
