"""Public safety API for the graphs.

``screen_message`` decides whether a user turn goes to a human. Layers, in order:

1. rules: a strong, non-negated, non-idiomatic pattern hit escalates on its own;
2. classifier: a score at or above the trained threshold escalates, unless the rules saw
   only negated risk or an idiom and the score is short of ``strong_score``;
3. a weak rule hit escalates when the classifier gives it at least ``support_score``;
4. history: risk in the last few user turns plus some signal now escalates, so
   "I have the pills ready" after "I don't want to be here anymore" is caught.
"""

from __future__ import annotations

from dataclasses import dataclass

from domains.classifier import SafetyClassifier, load_classifier
from domains.output_check import check_output
from domains.results import OutputCheck, ReviewAnalysis, ScreenResult
from domains.reviews import analyse_review
from domains.rules import RuleResult, match_rules
from domains.schema import DomainPack, load_pack
from domains.text import InvalidInputError, validate_user_text

__all__ = [
    "HISTORY_TURNS",
    "InvalidInputError",
    "OutputCheck",
    "ReviewAnalysis",
    "ScreenResult",
    "analyse_review",
    "check_output",
    "screen_message",
]

HISTORY_TURNS = 2  # previous user turns considered besides the current one
STRONG_RULE_SCORE = 0.95
# Star ratings nudge the customer-service score a little; they never decide alone.
RATING_NUDGE: dict[int, float] = {1: 0.06, 2: 0.03, 3: 0.0, 4: -0.03, 5: -0.06}


@dataclass(frozen=True)
class _Turn:
    rules: RuleResult
    category: str
    score: float

    @property
    def risky(self) -> bool:
        return bool(self.rules.strong)


def _clean_history(history: list[str] | None) -> list[str]:
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise InvalidInputError(f"history must be a list of str, got {type(history).__name__}")
    turns = []
    for item in list(history)[-HISTORY_TURNS:]:
        if not isinstance(item, str):
            raise InvalidInputError(f"history items must be str, got {type(item).__name__}")
        if item.strip():
            turns.append(validate_user_text(item))
    return turns


def _verdict(
    pack: DomainPack, clf: SafetyClassifier, turn: _Turn, nudge: float = 0.0
) -> tuple[bool, str, float, list[str]]:
    """Single-message decision from rules and classifier."""
    settings = pack.classifier
    rules = turn.rules
    score = min(1.0, max(0.0, turn.score + nudge))
    if rules.strong:
        hit = rules.strong[0]
        return True, hit.category, max(score, STRONG_RULE_SCORE), [f"strong rule: {rules.reason()}"]
    if score >= clf.threshold:
        if rules.has_veto and not rules.active and score < settings.strong_score:
            return (
                False,
                settings.safe_category,
                score,
                [f"classifier {turn.category} {score:.2f} vetoed: {rules.reason()}"],
            )
        category = (
            rules.active[0].category
            if rules.active and score < settings.strong_score
            else turn.category
        )
        return (
            True,
            category,
            score,
            [f"classifier {turn.category} {score:.2f} >= {clf.threshold:.2f}"],
        )
    words = len(rules.text.split())
    if rules.active and (
        score >= settings.support_score or words <= pack.risk_rules.short_message_words
    ):
        return (
            True,
            rules.active[0].category,
            score,
            [f"weak rule supported by classifier {score:.2f}: {rules.reason()}"],
        )
    return False, settings.safe_category, score, []


def screen_message(
    domain: str,
    text: str,
    history: list[str] | None = None,
    *,
    rating: int | None = None,
    prior_risk: bool = False,
) -> ScreenResult:
    """Screen one user message.

    ``history`` holds the earlier user turns, oldest first; the last ``HISTORY_TURNS`` count.
    ``prior_risk`` says risk was raised earlier on this conversation (or for this person), so
    any signal now escalates even when the risky turn has left the history window.
    """
    pack = load_pack(domain)
    text = validate_user_text(text)
    past = _clean_history(history)
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5
    ):
        raise InvalidInputError(f"rating must be an int from 1 to 5, got {rating!r}")
    clf = load_classifier(domain)
    texts = [text, *past]
    if past:
        texts.append(" ".join([*past, text]))
    proba = clf.predict_proba(texts)
    turns = []
    for i, t in enumerate([text, *past]):
        category, score = clf.top_risk(proba[i])
        turns.append(_Turn(match_rules(domain, t), category, score))
    now = turns[0]

    nudge = (
        RATING_NUDGE.get(rating, 0.0)
        if (rating is not None and domain == "customer_service")
        else 0.0
    )
    escalate, category, score, reasons = _verdict(pack, clf, now, nudge)
    if nudge and (escalate or score >= pack.classifier.support_score):
        reasons.append(f"rating {rating} adjusted the score by {nudge:+.2f}")

    if not escalate and past:
        settings = pack.classifier
        ctx_category, ctx_score = clf.top_risk(proba[-1])
        earlier = [t for t in turns[1:] if t.risky or t.score >= clf.threshold]
        signal_now = bool(now.rules.active) or now.score >= settings.support_score
        vetoed_now = now.rules.has_veto and not now.rules.active
        if earlier and signal_now and not vetoed_now:
            prior = earlier[0]
            category = prior.rules.strong[0].category if prior.rules.strong else prior.category
            if now.rules.active:
                category = now.rules.active[0].category
            escalate, score = True, max(now.score, ctx_score)
            reasons = [
                f"earlier turn was at risk ({prior.rules.reason()}); this turn adds signal {now.score:.2f}"
            ]
        elif ctx_score >= clf.threshold and signal_now and not vetoed_now:
            escalate, category, score = True, ctx_category, ctx_score
            reasons = [
                f"conversation window scores {ctx_category} {ctx_score:.2f} >= {clf.threshold:.2f}"
            ]

    if not escalate and prior_risk:
        signal_now = bool(now.rules.active) or now.score >= pack.classifier.support_score
        if signal_now and not (now.rules.has_veto and not now.rules.active):
            escalate, category, score = True, now.category, now.score
            if now.rules.active:
                category = now.rules.active[0].category
            reasons = [f"risk was raised earlier for this person; this turn adds signal {now.score:.2f}"]

    if not escalate:
        reasons = reasons or [
            f"below threshold ({score:.2f} < {clf.threshold:.2f}); {now.rules.reason()}"
        ]
        category = pack.classifier.safe_category
    return ScreenResult(
        escalate=escalate,
        category=category,
        score=round(min(1.0, max(0.0, score)), 4),
        reasons=reasons,
    )
