"""Takeaways computed from a run: sentences generated from the measured verdicts, never typed.

A notebook's closing cell passes its verdicts and, per claim, what each *possible* outcome
would mean (written before the run, like the experiment's declaration); :func:`takeaways`
picks the sentence for the outcome that was measured, adds the numbers, and for an
inconclusive experiment says how many runs would have resolved an effect of the size seen.
"""
from __future__ import annotations

import math

OUTCOMES = ("supported", "not supported", "inconclusive")


def runs_needed(detectable: float, runs: int, target: float) -> int | None:
    """Runs per arm for the interval's half-width to shrink from ``detectable`` (measured with
    ``runs`` runs) to ``target``: the half-width falls as 1/sqrt(runs), so about
    ``runs * (detectable / target)**2`` (ignoring the t quantile's own shrinkage, which only
    makes this an overestimate). None when it cannot be computed."""
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (detectable, target)) or runs < 1:
        return None
    return max(runs + 1, math.ceil(runs * (detectable / target) ** 2))


def what_would_settle(verdict: dict) -> str:
    """For an inconclusive experiment: the smallest effect this run could detect, and the runs
    per arm that an effect of the measured size would need. Empty for other verdicts."""
    ev = verdict.get("evidence", {})
    if verdict.get("verdict") != "inconclusive" or verdict.get("kind") == "demonstration":
        return ""
    detectable, effect, runs = ev.get("detectable_effect"), ev.get("effect"), ev.get("runs") or [0]
    unit = ev.get("unit", "")
    scale, suffix = (100, " points") if unit == "fraction" else (1, f" {unit}" if unit else "")
    if not (isinstance(detectable, (int, float)) and math.isfinite(detectable)):
        return ("Too few runs to estimate the seed noise: run more seeds (a larger profile, or `full` "
                "on a GPU) to settle it.")
    text = f"This run could only detect effects larger than {scale * detectable:.2g}{suffix}."
    need = runs_needed(detectable, min(runs), abs(effect)) if isinstance(effect, (int, float)) else None
    if need:
        text += (f" An effect of the size measured ({scale * abs(effect):.2g}{suffix}) would need about "
                 f"{need} runs per arm (now {min(runs)}), or a longer budget that lowers the seed noise.")
    return text


def takeaway(verdict: dict, meaning: dict | None = None) -> str:
    """One paragraph for one verdict: the claim, the measured outcome and its numbers, what
    that outcome means (``meaning[outcome]``, declared before the run), and what would settle
    an inconclusive experiment. Demonstrations say they are demonstrations."""
    outcome = verdict["verdict"]
    kind = verdict.get("kind", "experiment")
    head = f"**{verdict['claim']}** ({verdict['text']}): "
    if kind == "demonstration":
        head += f"demonstration, {'shown' if outcome == 'supported' else 'not shown'}. "
    else:
        head += f"**{outcome}**. "
    parts = [head + verdict["summary"].rstrip(".") + "."]
    if meaning and meaning.get(outcome):
        parts.append(meaning[outcome])
    settle = what_would_settle(verdict)
    if settle:
        parts.append(settle)
    return " ".join(parts)


def takeaways(verdicts: list[dict], meanings: dict | None = None) -> str:
    """Markdown: one bullet per verdict (experiments first, then demonstrations), each from
    :func:`takeaway`, and a last line counting the experiments' outcomes. ``meanings`` maps a
    claim ID to ``{outcome: sentence}``; unknown outcomes in it are refused, so a typo cannot
    silently drop a sentence."""
    meanings = meanings or {}
    for claim, m in meanings.items():
        bad = set(m) - set(OUTCOMES)
        if bad:
            raise ValueError(f"meanings for {claim}: outcomes must be among {OUTCOMES}, got {sorted(bad)}")
    ordered = sorted(verdicts, key=lambda v: v.get("kind", "experiment") != "experiment")
    lines = [f"- {takeaway(v, meanings.get(v['claim']))}" for v in ordered]
    exp = [v["verdict"] for v in verdicts if v.get("kind", "experiment") == "experiment"]
    lines.append(f"\nExperiments in this run: {exp.count('supported')} supported, "
                 f"{exp.count('not supported')} not supported, {exp.count('inconclusive')} inconclusive; "
                 f"{len(verdicts) - len(exp)} demonstrations (never counted as support).")
    return "\n".join(lines)


def show_takeaways(verdicts: list[dict], meanings: dict | None = None) -> str:
    """Display :func:`takeaways` as Markdown in Jupyter (plain text elsewhere); returns it."""
    text = takeaways(verdicts, meanings)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
        if get_ipython() is not None:
            display(Markdown(text))
            return text
    except ImportError:
        pass
    print(text)
    return text
