"""One claims ledger from several seeds' runs of the same notebooks.

A verdict from one seed rests on that seed's few measurements. Running every notebook once per
seed gives more of them; this module pools them through the verdict's own decision rule (not a
vote): a ``claims.compare`` verdict is recomputed from each arm's values of all the seeds put
together, an ``all_of`` verdict part by part. A verdict whose evidence has no measured arms (a
demonstration, a range check) cannot be pooled: its row shows each seed's verdict and says so.
The stability says how many of the seeds that judged the claim agree with the combined verdict.
"""
from __future__ import annotations

import argparse
import inspect
from collections import Counter

from ..core import claims

NOT_POOLABLE = "not poolable"


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` as a list of distinct integers (an argparse type)."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers like 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct integers like 0,1,2, got {text!r}")
    return seeds


def occurrences(verdicts: list[dict]) -> list[tuple[str, dict]]:
    """(claim ID, verdict) pairs: one verdict per claim per notebook (``experiment.record``
    refuses more); in a results file written before that rule, the last verdict is kept."""
    return list({v["claim"]: v for v in verdicts}.items())


def compare_kwargs(rule: dict) -> dict:
    """The recorded rule's settings that ``claims.compare`` accepts (its signature decides)."""
    accepted = inspect.signature(claims.compare).parameters
    return {k: v for k, v in rule.items() if k in accepted}


def parts_of(evidence: dict) -> tuple[list | dict, list] | None:
    """An ``all_of`` verdict's parts as kept in its evidence (whole verdict records, in a list
    or a dict naming them), or None for any other verdict. Returns (the parts as ``all_of``
    wants them, their verdict records)."""
    parts = evidence.get("parts")
    if isinstance(parts, list) and all(isinstance(p, dict) and "verdict" in p for p in parts):
        return parts, parts
    if isinstance(parts, dict) and all(isinstance(p, dict) and "verdict" in p for p in parts.values()):
        return parts, list(parts.values())
    return None


def pool(claim_id: str, verdicts: list[dict]) -> dict | None:
    """The verdict from every seed's measurements pooled through the course's decision rule, or
    None when the verdicts cannot be pooled (no measured arms, or seeds that disagree in shape).

    ``verdicts`` are one claim's verdict records, one per seed. A comparison is recomputed by
    ``claims.compare`` on each arm's values concatenated seed after seed (so paired runs stay
    paired); an ``all_of`` pools each part and combines them with ``claims.all_of``.
    """
    evs = [v.get("evidence") or {} for v in verdicts]
    if all("arms" in e and "rule" in e for e in evs):
        labels = list(evs[0]["arms"])
        if len(labels) != 2 or any(list(e["arms"]) != labels for e in evs):
            return None
        t = [x for e in evs for x in e["arms"][labels[0]]]
        c = [x for e in evs for x in e["arms"][labels[1]]]
        summary = verdicts[0].get("summary", "")
        what = summary.partition(f": {labels[0]} ")[0] if f": {labels[0]} " in summary else claim_id
        return claims.compare(claim_id, t, c, what, label_t=labels[0], label_c=labels[1],
                              **compare_kwargs(evs[0]["rule"]))
    found = [parts_of(e) for e in evs]
    if any(f is None for f in found):
        return None
    shapes = [list(f[0]) if isinstance(f[0], dict) else len(f[0]) for f in found]
    if any(s != shapes[0] for s in shapes) or not found[0][1]:
        return None
    pooled = [pool(claim_id, [f[1][i] for f in found]) for i in range(len(found[0][1]))]
    if any(p is None for p in pooled):
        return None
    parts = dict(zip(found[0][0], pooled)) if isinstance(found[0][0], dict) else pooled
    return claims.all_of(claim_id, parts)


def combine_seeds(records_by_seed: dict, baseline: dict | None = None) -> list[dict]:
    """The combined claims ledger: one row per claim judgement per notebook, over all seeds.

    ``records_by_seed`` maps a seed to that seed's nightly records (``{"notebook", "status",
    "results"}``; failed or lost runs simply have no verdicts). Each row has the claim's text and
    source, ``per_seed`` ({seed: verdict}), the combined ``verdict`` (or ``"not poolable"``), its
    ``summary`` and ``evidence``, ``stability`` ("2/3": seeds agreeing with the combined verdict,
    or with each other when not poolable), and the baseline's verdict with ``changed``.
    """
    baseline = baseline or {"notebooks": {}}
    info = claims.load_claims()
    judged: dict = {}  # (notebook, key) -> {seed: verdict record}
    for seed, records in sorted(records_by_seed.items()):
        for rec in records:
            for key, v in occurrences((rec.get("results") or {}).get("verdicts", [])):
                judged.setdefault((rec["notebook"], key), {})[seed] = v
    rows = []
    for (notebook, key), by_seed in judged.items():
        claim_id = key.split("#")[0]
        per_seed = {seed: v["verdict"] for seed, v in by_seed.items()}
        seeds_text = ", ".join(f"seed {s}: {v}" for s, v in per_seed.items())
        pooled = pool(claim_id, list(by_seed.values()))
        if pooled is None:
            verdict, evidence = NOT_POOLABLE, {}
            kind = next(iter(by_seed.values())).get("kind", "experiment")
            agree = Counter(per_seed.values()).most_common(1)[0][1]
            summary = f"not poolable (no measured arms): {agree}/{len(per_seed)} seeds agree ({seeds_text})"
        else:
            verdict, evidence, kind = pooled["verdict"], pooled["evidence"], pooled["kind"]
            agree = sum(v == verdict for v in per_seed.values())
            summary = (f"{len(by_seed)} seeds pooled, {agree}/{len(per_seed)} agree: {pooled['summary']} "
                       f"({seeds_text})")
        old = baseline.get("notebooks", {}).get(notebook, {}).get("verdicts", {}).get(key)
        old = old.get("verdict") if isinstance(old, dict) else old  # {"verdict", "kind"}, or an old plain string
        changed = old is not None and (old != verdict if pooled else any(v != old for v in per_seed.values()))
        rows.append({"claim": claim_id, "key": key, "text": info.get(claim_id, {}).get("claim", ""),
                     "source": info.get(claim_id, {}).get("source", ""), "notebook": notebook,
                     "verdict": verdict, "kind": kind, "summary": summary, "evidence": evidence,
                     "per_seed": per_seed, "stability": f"{agree}/{len(per_seed)}",
                     "baseline_verdict": old, "changed": changed})
    return sorted(rows, key=lambda r: (r["claim"].split("-")[0], int(r["claim"].split("-")[1]),
                                       r["notebook"], r["key"]))
