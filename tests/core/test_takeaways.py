"""Takeaways are computed from verdicts: the sentence for the measured outcome, the numbers,
and for an inconclusive experiment how many runs would settle it."""
import math

import pytest

from course_lib.core import takeaways as T


def verdict(outcome, kind="experiment", effect=0.01, detectable=0.02, runs=(3, 3), unit="fraction"):
    return {"claim": "DO-1", "text": "Dropout reduces overfitting.", "verdict": outcome, "kind": kind,
            "summary": "val acc: dropout 60.00% vs none 59.00%",
            "evidence": {"effect": effect, "detectable_effect": detectable, "runs": list(runs), "unit": unit}}


MEANING = {"supported": "Dropout helped here.", "not supported": "It did not help.",
           "inconclusive": "Cannot tell."}


@pytest.mark.parametrize("outcome", T.OUTCOMES)
def test_the_sentence_follows_the_measured_outcome(outcome):
    text = T.takeaway(verdict(outcome), MEANING)
    assert MEANING[outcome] in text and f"**{outcome}**" in text
    assert sum(m in text for m in MEANING.values()) == 1


def test_inconclusive_says_what_would_settle_it():
    text = T.takeaway(verdict("inconclusive", effect=0.01, detectable=0.02, runs=(3, 3)))
    assert "larger than 2 points" in text and "about 12 runs per arm (now 3)" in text
    assert T.runs_needed(0.02, 3, 0.01) == 12 and T.runs_needed(0.02, 3, 0.04) == 4
    assert T.runs_needed(math.nan, 3, 0.01) is None
    assert "Too few runs" in T.takeaway(verdict("inconclusive", detectable=math.nan, runs=(1, 1)))
    assert "would need" not in T.takeaway(verdict("supported"))


def test_demonstrations_say_so_and_are_not_counted():
    text = T.takeaways([verdict("supported", kind="demonstration"), verdict("not supported")], {"DO-1": MEANING})
    first, second = text.splitlines()[:2]
    assert "not supported" in first and "demonstration, shown" in second  # experiments first
    assert "0 supported, 1 not supported, 0 inconclusive; 1 demonstrations" in text


def test_a_misspelt_outcome_is_refused():
    with pytest.raises(ValueError, match="outcomes must be among"):
        T.takeaways([verdict("supported")], {"DO-1": {"suported": "typo"}})
