"""The lexical risk scorer: what it learns, how it is stored, and how bad files fail."""

from __future__ import annotations

import numpy as np
import pytest

from domains.lexical import N_FEATURES, LexicalScorer, mark_negation

RISKY = ["i wrote goodbye letters to everyone", "giving my guitar away, wont need it", "im such a burden to them"]
SAFE = ["i wrote a cover letter for the job", "giving my old sofa to my cousin", "work was a burden today lol"]


def test_scorer_learns_cue_words_and_round_trips() -> None:
    scorer = LexicalScorer.fit(RISKY * 5 + SAFE * 5, np.array([1] * 15 + [0] * 15))
    risk = scorer.risk(["my goodbye letters are written", "i need a cover letter"])
    assert risk[0] > 0.5 > risk[1]
    again = LexicalScorer.from_tensors(scorer.tensors())
    np.testing.assert_allclose(again.risk(RISKY + SAFE), scorer.risk(RISKY + SAFE), rtol=1e-6)


def test_wrong_shapes_are_refused() -> None:
    bad = {"idf": np.ones(10, np.float32), "coef": np.ones(2 * N_FEATURES, np.float32), "intercept": np.zeros(1, np.float32)}
    with pytest.raises(ValueError, match="idf"):
        LexicalScorer.from_tensors(bad)


def test_negation_marks_the_words_it_governs_until_the_clause_ends() -> None:
    assert mark_negation("i would never hurt myself, but i am tired") == (
        "i would never neg_hurt neg_myself , but i am tired"
    )
    assert mark_negation("i don't want to live") == "i don't neg_want neg_to neg_live"
    assert mark_negation("no one would miss me") == "no neg_one neg_would neg_miss me"
