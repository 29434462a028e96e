"""Review analysis for the review-reply agent: sentiment, aspects and the safety screen."""

from __future__ import annotations

import re
from functools import lru_cache

from domains.guard import SafetyGuard
from domains.results import ASPECTS, ReviewAnalysis, Sentiment
from domains.rules import negation_before
from domains.schema import DomainPack, ReviewLexicon, load_pack
from domains.screening import screen_message
from domains.text import normalise, validate_user_text

_NEGATORS = re.compile(r"\b(?:not|never|no|hardly|\w+n't)\b")


class _Lexicon:
    def __init__(self, lex: ReviewLexicon) -> None:
        self.positive = [re.compile(p) for p in lex.positive]
        self.negative = [re.compile(p) for p in lex.negative]
        self.aspects = {
            name: [re.compile(p) for p in pats]
            for name, pats in lex.aspects.items()
            if name in ASPECTS
        }


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    lex = load_pack("customer_service").review_lexicon
    assert lex is not None  # the pack validator requires it
    return _Lexicon(lex)


def lexical_polarity(text: str) -> int:
    """Positive minus negative cue count; a negation just before a cue flips it ("not good")."""
    norm = normalise(text)
    lex = _lexicon()
    total = 0
    for sign, patterns in ((1, lex.positive), (-1, lex.negative)):
        for rx in patterns:
            for m in rx.finditer(norm):
                flipped = negation_before(norm, m.start(), _NEGATORS, 2) is not None
                total += -sign if flipped else sign
    return total


def sentiment_for(text: str, rating: int | None) -> Sentiment:
    if rating is not None:
        return "positive" if rating >= 4 else "negative" if rating <= 2 else "neutral"
    polarity = lexical_polarity(text)
    return "positive" if polarity > 0 else "negative" if polarity < 0 else "neutral"


def aspects_in(text: str) -> list[str]:
    norm = normalise(text)
    found = {
        name
        for name, patterns in _lexicon().aspects.items()
        if any(rx.search(norm) for rx in patterns)
    }
    return [a for a in ASPECTS if a in found]


def analyse_review(
    text: str, rating: int | None = None, *, guard: SafetyGuard | None = None
) -> ReviewAnalysis:
    text = validate_user_text(text)
    screen = screen_message("customer_service", text, rating=rating, guard=guard)
    return ReviewAnalysis(
        sentiment=sentiment_for(text, rating), aspects=aspects_in(text), screen=screen
    )


def suggested_holding_reply(pack: DomainPack, *, escalated: bool, sentiment: Sentiment) -> str:
    """The pack's reply a human may publish instead of the draft, fitted to the review.

    An escalated review gets ``escalation_reply``; praise gets ``thanks_reply``; anything else
    ``holding_reply`` (each falls back to ``escalation_reply`` when the pack has none).
    """
    if pack.escalation_reply is None:
        raise ValueError(f"the {pack.name} pack has no escalation_reply")
    if escalated:
        return pack.escalation_reply
    if sentiment == "positive":
        return pack.thanks_reply or pack.escalation_reply
    return pack.holding_reply or pack.escalation_reply
