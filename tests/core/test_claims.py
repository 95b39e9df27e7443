"""The claims ledger and verdict rules."""
import re
from pathlib import Path

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


def test_compare_supported_not_supported_inconclusive():
    assert C.compare("LR-1", [0.80, 0.81, 0.82], [0.70, 0.71, 0.72], "acc")["verdict"] == "supported"
    assert C.compare("LR-1", [0.70, 0.71, 0.72], [0.80, 0.81, 0.82], "acc")["verdict"] == "not supported"
    assert C.compare("LR-1", [0.70, 0.80], [0.74, 0.76], "acc")["verdict"] == "inconclusive"  # within spread
    few = C.compare("LR-1", [0.9], [0.1], "acc")
    assert few["verdict"] == "inconclusive" and "too few runs" in few["summary"]
    low = C.compare("OPT-1", [1.0, 1.1], [2.0, 2.1], "loss", expect="lower")
    assert low["verdict"] == "supported"
    assert low["evidence"]["effect"] == pytest.approx(-1.0)


def test_check_range_and_unknown_ids():
    assert C.check_range("DBG-1", 2.30, 2.0, 2.6, "loss")["verdict"] == "supported"
    assert C.check_range("DBG-1", 8.1, 2.0, 2.6, "loss")["verdict"] == "not supported"
    with pytest.raises(KeyError, match="unknown claim ID"):
        C.check_range("XX-99", 1, 0, 2, "x")
    with pytest.raises(ValueError, match="verdict must be one of"):
        C.make_verdict("DBG-1", "maybe", {}, "")


def test_all_of_needs_every_part_and_keeps_their_numbers():
    yes = C.compare("LR-6", [0.7, 0.71], [0.5, 0.51], "acc")
    no = C.compare("LR-6", [0.5, 0.51], [0.7, 0.71], "acc")
    unsure = C.compare("LR-6", [0.7], [0.5], "acc")
    assert C.all_of("LR-6", [yes, yes])["verdict"] == "supported"
    assert C.all_of("LR-6", [yes, unsure])["verdict"] == "inconclusive"
    assert C.all_of("LR-6", [unsure, no])["verdict"] == "not supported"
    named = C.all_of("LR-6", {"low": yes, "high": no}, "vs 10x")
    assert named["evidence"]["high"]["effect"] == pytest.approx(-0.2)
    assert named["summary"].startswith("vs 10x: [low: supported]")
    with pytest.raises(ValueError, match="at least one part"):
        C.all_of("LR-6", [])
    assert C.all_of("LR-6", [], allow_empty=True)["verdict"] == "inconclusive"



def test_decide_is_the_one_verdict_rule():
    assert C.decide(0.05, 0.01, 3, 2, "higher")[0] == "supported"
    assert C.decide(0.05, 0.01, 3, 2, "lower")[0] == "not supported"
    assert C.decide(0.01, 0.05, 3, 2)[0] == "inconclusive"
    assert C.decide(float("nan"), 0.01, 3, 2)[0] == "inconclusive"
    verdict, why = C.decide(0.05, 0.01, 1, 2, too_few="too few pairs ({n} < {min_runs})")
    assert verdict == "inconclusive" and why == "too few pairs (1 < 2)"
