"""The claims ledger and the one decision rule behind every experiment's verdict."""
import math
import re
from pathlib import Path

import numpy as np
import pytest

from course_lib.core import claims as C

SHARED = Path(__file__).resolve().parents[3] / "shared" / "claims.md"


def test_every_claim_id_is_parsed_with_text_and_source():
    cl = C.load_claims()
    assert len(cl) == len(re.findall(r"^\| [A-Z]+-\d+ \|", C.CLAIMS_FILE.read_text(), flags=re.M)) == 80
    assert cl["LR-6"]["source"] == "A 八.7, C"
    assert cl["DBG-1"]["claim"].startswith("The initial loss for 10 classes")
    assert cl["EN-1"]["section"] == "Test-time augmentation and ensembles"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/claims.md is not beside this checkout")
def test_packaged_claims_match_the_shared_list():
    assert C.CLAIMS_FILE.read_text() == SHARED.read_text()


def _decisive_rate(n, effect, paired, draws, rng, margin=0.0):
    """How often ``compare`` says supported / not supported on simulated runs: per seed, a seed
    component shared by both arms (what pairing removes) plus independent noise of SD 1."""
    decisive = 0
    for _ in range(draws):
        seed_part = rng.normal(0, 1, n) if paired else np.zeros(n)
        t = seed_part + effect + rng.normal(0, 1, n)
        c = seed_part + rng.normal(0, 1, n)
        v = C.compare("LR-1", t, c, "simulated", paired=paired, margin=margin)
        decisive += v["verdict"] == "supported"  # the expected side
        decisive += v["verdict"] == "not supported"
    return decisive / draws


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_on_a_null_effect_the_rule_is_decisive_at_most_5_percent_of_the_time(n, paired):
    rate = _decisive_rate(n, 0.0, paired, draws=1500, rng=np.random.default_rng(100 * n + paired))
    assert rate <= 0.065  # 5% (95% two-sided interval) plus about 3 standard errors of simulation


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
def test_a_two_sd_effect_is_found_with_5_runs_most_of_the_time(paired):
    rng = np.random.default_rng(7)
    found = sum(C.compare("LR-1", 2.0 + rng.normal(0, 1, 5), rng.normal(0, 1, 5), "sim",
                          paired=paired)["verdict"] == "supported" for _ in range(600))
    assert found / 600 > 0.5


def test_a_tiny_effect_measured_tightly_is_too_small_to_matter():
    rng = np.random.default_rng(3)
    c = 0.70 + rng.normal(0, 0.0005, 8)
    t = c + 0.001 + rng.normal(0, 0.0005, 8)
    v = C.compare("DO-1", t, c, "val acc", margin=0.01, unit="fraction")
    assert v["verdict"] == "not supported" and "too small to matter" in v["summary"]
    assert C.compare("DO-1", t, c, "val acc")["verdict"] == "supported"  # real, but no margin declared
    assert C.compare("DO-1", t, c, "val acc", expect="similar", margin=0.01)["verdict"] == "supported"
    assert C.compare("DO-1", t + 0.05, c, "val acc", expect="similar", margin=0.01)["verdict"] == "not supported"


def test_compare_supported_not_supported_inconclusive_in_words():
    yes = C.compare("LR-1", [0.80, 0.83, 0.81], [0.70, 0.72, 0.72], "acc", unit="fraction")
    assert yes["verdict"] == "supported" and yes["kind"] == "experiment"
    assert "95% CI" in yes["summary"] and "points" in yes["summary"]
    assert C.compare("LR-1", [0.70, 0.72, 0.72], [0.80, 0.83, 0.81], "acc")["verdict"] == "not supported"
    unsure = C.compare("LR-1", [0.70, 0.80], [0.74, 0.76], "acc", unit="fraction")
    assert unsure["verdict"] == "inconclusive"
    assert re.search(r"differences under [\d.]+ points cannot be told from seed noise", unsure["summary"])
    few = C.compare("LR-1", [0.9], [0.1], "acc")
    assert few["verdict"] == "inconclusive" and "too few runs" in few["summary"]
    low = C.compare("OPT-1", [1.0, 1.1, 1.05], [2.0, 2.1, 2.0], "loss", expect="lower")
    assert low["verdict"] == "supported" and low["evidence"]["effect"] == pytest.approx(-0.983, abs=1e-3)


def test_pairing_removes_the_seed_to_seed_spread():
    t, c = [0.61, 0.71, 0.81], [0.60, 0.70, 0.80]  # one point better in every seed; seeds differ a lot
    assert C.compare("EN-3", t, c, "acc")["verdict"] == "supported"
    welch = C.compare("EN-3", t, c, "acc", paired=False)
    assert welch["verdict"] == "inconclusive" and welch["evidence"]["test"] == "Welch t"
    assert C.compare("EN-3", t, c[:2], "acc")["evidence"]["test"] == "Welch t"  # unequal arms cannot pair


def test_evidence_keeps_arms_rule_interval_and_detectable_effect():
    v = C.compare("LR-1", [0.8, 0.82, 0.81], [0.7, 0.71, 0.73], "acc", margin=0.005, level=0.9,
                  label_t="big", label_c="small", unit="fraction")
    e = v["evidence"]
    assert list(e["arms"]) == ["big", "small"] and e["arms"]["big"] == [0.8, 0.82, 0.81]
    assert e["rule"] == {"expect": "higher", "margin": 0.005, "level": 0.9, "paired": True}
    lo, hi = e["interval"]
    assert lo < e["effect"] < hi and e["detectable_effect"] == pytest.approx((hi - lo) / 2)
    assert e["unit"] == "fraction" and e["runs"] == [3, 3] and "90% CI" in v["summary"]


def test_non_finite_values_are_handled_as_asked():
    t, c = [1.0, 1.1, float("nan")], [3.0, 3.1, 3.2]
    assert C.compare("LR-2", t, c, "s", expect="lower")["verdict"] == "inconclusive"
    v = C.compare("LR-2", t, c, "s", expect="lower", nan="omit")
    assert v["evidence"]["dropped"] == [1, 1] and v["evidence"]["runs"] == [2, 2] and "left out" in v["summary"]
    assert C.compare("LR-2", t, c, "s", paired=False, nan="omit")["evidence"]["dropped"] == [1, 0]
    with pytest.raises(ValueError, match="nan='omit'"):
        C.compare("LR-2", t, c, "s", nan="raise")
    assert C.compare("LR-2", [math.nan] * 2, c, "s", nan="omit")["verdict"] == "inconclusive"


@pytest.mark.parametrize("kw, msg", [
    (dict(expect="more"), "expect must be one of"), (dict(margin=-0.1), "margin must be"),
    (dict(expect="similar"), "needs a margin > 0"), (dict(level=95), "level must be between 0 and 1"),
    (dict(min_runs=1), "min_runs must be a whole number >= 2"), (dict(nan="drop"), "nan must be one of"),
    (dict(kind="anecdote"), "kind must be one of")])
def test_bad_rules_are_refused_with_what_to_pass(kw, msg):
    with pytest.raises(ValueError, match=msg):
        C.compare("LR-1", [0.8, 0.9], [0.7, 0.8], "acc", **kw)


def test_bad_arms_are_refused():
    with pytest.raises(ValueError, match="control arm has no measurements"):
        C.compare("LR-1", [0.8, 0.9], [], "acc")
    with pytest.raises(ValueError, match="list of numbers"):
        C.compare("LR-1", ["high", "low"], [0.7, 0.8], "acc")


def test_demonstrations_are_marked_and_unknown_ids_fail():
    assert C.check_range("DBG-1", 2.30, 2.0, 2.6, "loss")["kind"] == "demonstration"
    assert C.check_range("DBG-1", 8.1, 2.0, 2.6, "loss")["verdict"] == "not supported"
    assert C.demonstrate("NAN-3", True, {"x": 1}, "planted fault fixed")["kind"] == "demonstration"
    with pytest.raises(KeyError, match="unknown claim ID"):
        C.check_range("XX-99", 1, 0, 2, "x")
    with pytest.raises(ValueError, match="verdict must be one of"):
        C.make_verdict("DBG-1", "maybe", {}, "")


def test_all_of_decides_from_experiments_and_keeps_every_part():
    yes = C.compare("LR-6", [0.7, 0.71, 0.72], [0.5, 0.52, 0.51], "acc")
    no = C.compare("LR-6", [0.5, 0.52, 0.51], [0.7, 0.71, 0.72], "acc")
    unsure = C.compare("LR-6", [0.7], [0.5], "acc")
    shown, failed = C.demonstrate("LR-6", True, {}, "hook"), C.demonstrate("LR-6", False, {}, "hook")
    assert C.all_of("LR-6", [yes, yes])["verdict"] == "supported"
    assert C.all_of("LR-6", [yes, unsure])["verdict"] == "inconclusive"
    assert C.all_of("LR-6", [unsure, no])["verdict"] == "not supported"
    mixed = C.all_of("LR-6", [unsure, shown])
    assert mixed["verdict"] == "inconclusive" and mixed["kind"] == "experiment"  # a demonstration never supports
    assert C.all_of("LR-6", [yes, failed])["verdict"] == "supported"
    demo = C.all_of("LR-6", [shown, shown])
    assert demo["kind"] == "demonstration" and demo["verdict"] == "supported"
    named = C.all_of("LR-6", {"low": yes, "high": no}, "vs 10x")
    assert named["evidence"]["parts"]["high"]["evidence"]["effect"] < 0
    assert named["summary"].startswith("vs 10x: [low: supported]")
    assert len(C.all_of("LR-6", [yes, shown])["evidence"]["parts"]) == 2
    with pytest.raises(ValueError, match="at least one part"):
        C.all_of("LR-6", [])
    assert C.all_of("LR-6", [], allow_empty=True)["verdict"] == "inconclusive"


def test_compare_spreads_uses_an_interval_for_the_sd_ratio():
    rng = np.random.default_rng(0)
    wide, narrow = list(0.5 + rng.normal(0, 0.05, 10)), list(0.5 + rng.normal(0, 0.01, 10))
    v = C.compare_spreads("CV-1", wide, narrow, "estimates")
    assert v["verdict"] == "supported" and v["evidence"]["interval"][0] > 1
    assert C.compare_spreads("CV-1", narrow, wide, "estimates")["verdict"] == "not supported"
    assert C.compare_spreads("CV-1", wide, narrow[:2], "estimates")["verdict"] == "inconclusive"
    same = C.compare_spreads("CV-1", wide[:4], list(0.5 + rng.normal(0, 0.04, 4)), "estimates")
    assert same["verdict"] == "inconclusive" and "cannot be told" in same["summary"]
    null = sum(C.compare_spreads("CV-1", rng.normal(0, 1, 5), rng.normal(0, 1, 5), "x")["verdict"] != "inconclusive"
               for _ in range(1000))
    assert null / 1000 <= 0.065


def test_every_verdict_rule_lives_in_claims():
    """Lessons compose verdicts from ``compare``/``all_of``; none builds its own rule. (They may
    call ``effect_interval``, the one interval helper, to describe a difference beside a verdict.)"""
    lessons = Path(C.__file__).parents[1] / "lessons"
    for path in lessons.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(make_verdict|decide)\(", text), f"{path.name} decides verdicts itself"


def test_any_of_is_supported_by_one_declared_part_and_refuted_only_by_all():
    yes = C.compare("TTA-2", [0.5, 0.51, 0.52], [0.6, 0.6, 0.61], "acc", expect="lower", unit="fraction")
    no = C.compare("TTA-2", [0.6, 0.6, 0.6], [0.6, 0.6, 0.6], "acc", expect="lower", margin=0.01, unit="fraction")
    maybe = C.compare("TTA-2", [0.5, 0.7, 0.55], [0.6, 0.6, 0.61], "acc", expect="lower", unit="fraction")
    assert (yes["verdict"], no["verdict"], maybe["verdict"]) == ("supported", "not supported", "inconclusive")
    v = C.any_of("TTA-2", {"a": no, "b": yes, "c": maybe}, "policies", family_level=0.95)
    assert v["verdict"] == "supported" and v["evidence"]["shown_by"] == ["b"] and v["kind"] == "experiment"
    assert C.any_of("TTA-2", {"a": no, "b": no})["verdict"] == "not supported"
    assert C.any_of("TTA-2", {"a": no, "c": maybe})["verdict"] == "inconclusive"
    assert v["evidence"]["detectable_effect"] == max(p["evidence"]["detectable_effect"] for p in (yes, no, maybe))
    with pytest.raises(ValueError, match="at least one declared part"):
        C.any_of("TTA-2", {})


def test_all_of_carries_the_largest_detectable_effect_of_its_parts():
    tight = C.compare("DO-1", [0.60, 0.61, 0.62], [0.50, 0.50, 0.51], "acc", unit="fraction")
    loose = C.compare("DO-1", [0.60, 0.70, 0.55], [0.50, 0.62, 0.51], "acc", unit="fraction")
    v = C.all_of("DO-1", {"tight": tight, "loose": loose})
    assert v["evidence"]["detectable_effect"] == loose["evidence"]["detectable_effect"]
    assert v["evidence"]["unit"] == "fraction" and v["evidence"]["runs"] == [3, 3]
    assert "detectable_effect" not in C.all_of("DBG-1", [C.check_range("DBG-1", 2.3, 2.0, 2.5, "loss")])["evidence"]


def simulated_outcomes(rng, n: int, p: float, agree: float):
    """n paired yes/no outcomes with the same chance p in both arms (a null effect); a pair
    agrees by construction with probability ``agree`` (the same seed often fails the same way)."""
    t = rng.random(n) < p
    c = np.where(rng.random(n) < agree, t, rng.random(n) < p)
    return t.astype(float).tolist(), c.astype(float).tolist()


@pytest.mark.parametrize("n", [3, 5, 8, 14])
@pytest.mark.parametrize("p, agree", [(0.5, 0.0), (0.2, 0.0), (0.5, 0.5)])
def test_yes_no_outcomes_are_decisive_on_a_null_effect_at_most_about_5_percent(n, p, agree):
    rng = np.random.default_rng(n)
    decisive = 0
    for _ in range(600):
        t, c = simulated_outcomes(rng, n, p, agree)
        decisive += C.compare("NAN-1", t, c, "fixed", expect="higher", yes_no=True)["verdict"] != "inconclusive"
    assert decisive / 600 <= 0.07  # 5% plus simulation noise (SE about 0.9 points)


def test_yes_no_runs_that_all_agree_still_have_an_interval():
    few = C.compare("NAN-1", [1.0] * 3, [1.0] * 3, "fixed", expect="similar", margin=0.2, yes_no=True)
    assert few["verdict"] == "inconclusive"  # a t interval would have zero width: "similar" from 3 runs
    lo, hi = few["evidence"]["interval"]
    assert lo < -0.2 and hi > 0.2 and "Newcombe" in few["evidence"]["test"]
    many = C.compare("NAN-1", [1.0] * 40, [1.0] * 40, "fixed", expect="similar", margin=0.2, yes_no=True)
    assert many["verdict"] == "supported"
    with pytest.raises(ValueError, match="1 .yes. or 0 .no."):
        C.compare("NAN-1", [1.0, 0.5], [1.0, 0.0], "fixed", yes_no=True)


def test_rank_agreement_is_decided_against_the_declared_rho():
    ranks = list(range(12))
    assert C.rank_agreement("HP-3", ranks, ranks, 0.5)["verdict"] == "supported"
    assert C.rank_agreement("HP-3", ranks, ranks[::-1], 0.5)["verdict"] == "not supported"
    few = C.rank_agreement("HP-3", [1, 2, 3], [1, 3, 2], 0.5)
    assert few["verdict"] == "inconclusive" and few["kind"] == "experiment"
