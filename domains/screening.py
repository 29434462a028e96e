"""Public safety API for the graphs.

``screen_message`` decides whether a user turn goes to a human. Layers, in order; the result
names the one that decided (``ScreenResult.layer``):

1. rules: a strong, non-negated, non-idiomatic pattern hit escalates on its own;
2. classifier: a score at or above the trained threshold escalates, unless the rules saw
   only negated risk or an idiom and the score is short of ``strong_score``;
3. rules+classifier: a weak rule hit escalates when the classifier gives it at least
   ``support_score``, or when the message is short (``short_message_words`` words or fewer);
4. history: risk in the last ``HISTORY_TURNS`` user turns plus some signal now escalates, so
   "I have the pills ready" after "I don't want to be here anymore" is caught; so does a
   person whose risk was raised earlier (``prior_risk``) when this turn carries any signal,
   however long ago that was ("I've made up my mind" three turns after a crisis), and a
   conversation window (those turns and this one, joined) the classifier scores at or above
   its threshold. After such risk, the pack's ``after_risk`` phrases count as a signal of
   their own: sudden calm ("I feel calmer now") is a warning sign there, and ordinary talk
   elsewhere;
5. guard: an optional guard model (``domains.guard.SafetyGuard``) asked last; its failure
   escalates.

For reviews a star rating moves the classifier score first (``RATING_NUDGE``: 1-2 stars up,
4-5 stars down), and a review the review layers let pass is also read for a person in crisis
(``person_in_crisis``: the counseling pack's rules and classifier, confident verdicts on personal
risk only), because someone may say in a review what they would say to a counselor. Every screen reads the normalised text (``domains.text.normalise``): look-alike letters
folded, mojibake repaired, spaced and leetspeak spellings joined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domains.classifier import SafetyClassifier, load_classifier
from domains.guard import SafetyGuard
from domains.output_check import check_output
from domains.results import Layer, OutputCheck, ScreenResult
from domains.rules import RuleResult, after_risk_cue, match_rules
from domains.safety_encoder import SentenceEncoder
from domains.schema import DomainName, DomainPack, load_pack
from domains.text import InvalidInputError, sentences, validate_user_text

__all__ = [
    "HISTORY_TURNS",
    "InvalidInputError",
    "OutputCheck",
    "ScreenRequest",
    "ScreenResult",
    "check_output",
    "screen",
    "screen_message",
]

HISTORY_TURNS = 2  # earlier user turns the screen reads besides the current one
STRONG_RULE_SCORE = 0.95
# Counseling categories that mean the writer is at risk; harm to others and abuse have their own
# review categories (and "I'll kill the courier" is usually a figure of speech in a review).
PERSONAL_RISK = frozenset({
    "wish_to_be_dead", "suicidal_ideation", "plan_or_means", "suicidal_intent", "preparatory_behaviour",
    "perceived_burdensomeness", "calm_after_decision", "hopelessness", "self_harm",
    "overdose_or_medical_emergency", "command_hallucinations",
})
# A review is read by the counseling classifier only at this score or above (or a strong rule).
# Measured with the round-8 heads (before the sleep rows) on the dev sets (shipped, fresh..fresh5: 599 ordinary reviews,
# 32 reviews written in crisis, 609 counseling rows of personal risk): 0.6 adds 5 false
# escalations and catches 31 of 32 and 0.90; 0.5 adds 27; 0.7 adds 3 and catches 26 and 0.83.
REVIEW_CRISIS_SCORE = 0.6
# A sentence of a review read on its own (six words or more) needs more: short sentences are the
# learned layer's weak spot ("Can't thank them enough." scores 0.82). On the same dev sets, reading
# sentences at 0.6 and four words caught 1 more of the 32 reviews in crisis (and a card-fraud review
# for a wrong reason) and added 4 false escalations; at 0.75 and six words, 1 more and 1 false
# escalation (and on fresh6, 1 more of 16 and none).
SENTENCE_CRISIS_SCORE = 0.75
SENTENCE_MIN_WORDS = 6
# Star ratings nudge the customer-service score a little; they never decide alone.
RATING_NUDGE: dict[int, float] = {1: 0.06, 2: 0.03, 3: 0.0, 4: -0.03, 5: -0.06}


class ScreenRequest(BaseModel):
    """One user turn to screen, with what the screen may know about the person so far."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    domain: DomainName
    text: str
    history: tuple[str, ...] = Field(
        default=(),
        description=f"earlier user turns, OLDEST FIRST; the screen reads the last {HISTORY_TURNS}",
    )
    rating: int | None = Field(default=None, ge=1, le=5, strict=True)
    prior_risk: bool = Field(
        default=False, description="risk was raised earlier for this person (thread or store)"
    )

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, value: object) -> str:
        return validate_user_text(value)

    @field_validator("history", mode="before")
    @classmethod
    def _history(cls, value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise InvalidInputError(f"history must be a list of str, got {type(value).__name__}")
        for item in value:
            if not isinstance(item, str):
                raise InvalidInputError(f"history items must be str, got {type(item).__name__}")
        kept = [validate_user_text(t) for t in value if t.strip()]
        return tuple(kept[-HISTORY_TURNS:])


@dataclass(frozen=True)
class _Turn:
    rules: RuleResult
    category: str
    score: float

    @property
    def risky(self) -> bool:
        return bool(self.rules.strong)

    @property
    def vetoed(self) -> bool:
        """Only negated or idiomatic risk in this turn."""
        return self.rules.has_veto and not self.rules.active


@dataclass
class _Decision:
    escalate: bool
    category: str
    score: float
    layer: Layer = "none"
    reasons: list[str] = field(default_factory=list)


def _verdict(pack: DomainPack, clf: SafetyClassifier, turn: _Turn, nudge: float = 0.0) -> _Decision:
    """Single-message decision from rules and classifier."""
    settings = pack.classifier
    rules = turn.rules
    score = min(1.0, max(0.0, turn.score + nudge))
    if rules.strong:
        reason = f"strong rule: {rules.reason()}"
        return _Decision(True, rules.strong[0].category, max(score, STRONG_RULE_SCORE), "rules", [reason])
    if score >= clf.threshold:
        if turn.vetoed and score < settings.strong_score:
            reason = f"classifier {turn.category} {score:.2f} vetoed: {rules.reason()}"
            return _Decision(False, settings.safe_category, score, "none", [reason])
        weak_first = rules.active and score < settings.strong_score
        category = rules.active[0].category if weak_first else turn.category
        reason = f"classifier {turn.category} {score:.2f} >= {clf.threshold:.2f}"
        return _Decision(True, category, score, "classifier", [reason])
    words = len(rules.text.split())
    if rules.active and (score >= settings.support_score or words <= pack.risk_rules.short_message_words):
        reason = f"weak rule supported by classifier {score:.2f}: {rules.reason()}"
        return _Decision(True, rules.active[0].category, score, "rules+classifier", [reason])
    return _Decision(False, settings.safe_category, score)


def _with_history(
    pack: DomainPack, clf: SafetyClassifier, now: _Turn, earlier: list[_Turn],
    score_window: Callable[[], tuple[str, float]], prior_risk: bool,
) -> _Decision | None:
    """Escalation that needs the conversation: earlier risk, or the window as a whole.

    After earlier risk, a phrase of the pack's ``after_risk`` (sudden calm, thanks for
    everything) counts as a signal even when the classifier reads the turn as safe.
    ``score_window`` is called only once this turn carries a signal: the window is a whole extra
    encoder pass (about a third of the safety layer's time per turn), and without a signal now it
    cannot escalate.
    """
    at_risk = [t for t in earlier if t.risky or t.score >= clf.threshold]
    cue = after_risk_cue(pack.name, now.rules.text) if (at_risk or prior_risk) else None
    signal_now = bool(now.rules.active) or now.score >= pack.classifier.support_score or cue is not None
    if not signal_now or now.vetoed:
        return None
    category_now = now.rules.active[0].category if now.rules.active else cue[0] if cue else now.category
    added = f"signal {now.score:.2f}" if cue is None else f"{cue[0]} {cue[1]!r}"
    if at_risk:
        window = score_window()
        prior = at_risk[0]
        category = prior.rules.strong[0].category if prior.rules.strong else prior.category
        reason = f"earlier turn was at risk ({prior.rules.reason()}); this turn adds {added}"
        return _Decision(True, category_now if (now.rules.active or cue) else category,
                         max(now.score, window[1]), "history", [reason])
    if prior_risk:
        reason = f"risk was raised earlier for this person; this turn adds {added}"
        return _Decision(True, category_now, now.score, "history", [reason])
    window = score_window()
    if window[1] >= clf.threshold:
        reason = f"conversation window scores {window[0]} {window[1]:.2f} >= {clf.threshold:.2f}"
        return _Decision(True, window[0], window[1], "history", [reason])
    return None


def person_in_crisis(text: str, encoder: SentenceEncoder | None = None) -> _Decision | None:
    """The counseling screen's verdict on a review, when it is a confident one on personal risk.

    The review is read whole and sentence by sentence ("The shoes are fine. Honestly, I bought
    them for my funeral..." scores 0.58 whole and 0.89 for its second sentence); the first
    confident verdict counts (``REVIEW_CRISIS_SCORE`` whole, ``SENTENCE_CRISIS_SCORE`` a sentence).
    """
    pack, clf = load_pack("counseling"), load_classifier("counseling", "screen", encoder)
    pieces = [text, *sentences(text, SENTENCE_MIN_WORDS)]
    for i, (piece, scored) in enumerate(zip(pieces, clf.assess(pieces))):
        decision = _verdict(pack, clf, _Turn(match_rules("counseling", piece), *scored))
        whole = i == 0
        confident = decision.layer == "rules" or decision.score >= (REVIEW_CRISIS_SCORE if whole else SENTENCE_CRISIS_SCORE)
        if decision.escalate and decision.category in PERSONAL_RISK and confident:
            quoted = "" if whole else f" in {piece!r}"
            decision.reasons = [f"the writer may be in crisis ({decision.category}){quoted}: {decision.reasons[0]}"]
            decision.category = "person_in_crisis"
            decision.layer = "crisis"
            return decision
    return None


def screen(
    request: ScreenRequest, guard: SafetyGuard | None = None, encoder: SentenceEncoder | None = None
) -> ScreenResult:
    """Screen one user turn; see the module docstring for the layers.

    ``encoder`` is passed to the classifier (``domains.classifier.load_classifier``); the default
    is the safety encoder the head was trained on.
    """
    domain, text, past = request.domain, request.text, list(request.history)
    pack = load_pack(domain)
    clf = load_classifier(domain, "screen", encoder)
    texts = [text, *past]
    scores = clf.assess(texts)  # earlier turns were embedded when they were screened (memo)
    turns = [_Turn(match_rules(domain, t), *scores[i]) for i, t in enumerate(texts)]
    now = turns[0]

    nudge = RATING_NUDGE.get(request.rating, 0.0) if (request.rating and domain == "customer_service") else 0.0
    decision = _verdict(pack, clf, now, nudge)
    if nudge and (decision.escalate or decision.score >= pack.classifier.support_score):
        decision.reasons.append(f"rating {request.rating} adjusted the score by {nudge:+.2f}")

    if not decision.escalate and domain == "customer_service":
        decision = person_in_crisis(text, encoder) or decision

    if not decision.escalate and (past or request.prior_risk):
        def score_window() -> tuple[str, float]:
            return clf.assess([" ".join([*past, text])])[0] if past else (pack.classifier.safe_category, 0.0)

        decision = _with_history(pack, clf, now, turns[1:], score_window, request.prior_risk) or decision

    if not decision.escalate and guard is not None:
        verdict = guard.check_user_turn(text, past)
        if verdict.unsafe:
            decision = _Decision(True, "guard", 1.0, "guard", [verdict.reason(guard.categories)])

    if not decision.escalate:
        decision.category = pack.classifier.safe_category
        decision.reasons = decision.reasons or [
            f"below threshold ({decision.score:.2f} < {clf.threshold:.2f}); {now.rules.reason()}"
        ]
    return ScreenResult(
        escalate=decision.escalate,
        category=decision.category,
        score=round(min(1.0, max(0.0, decision.score)), 4),
        reasons=decision.reasons,
        layer=decision.layer,
    )


def screen_message(
    domain: str,
    text: str,
    history: list[str] | None = None,
    *,
    rating: int | None = None,
    prior_risk: bool = False,
    guard: SafetyGuard | None = None,
    encoder: SentenceEncoder | None = None,
) -> ScreenResult:
    """Screen one user message; ``history`` is the earlier user turns, oldest first.

    A thin wrapper over ``screen(ScreenRequest(...))`` that turns validation problems into
    ``InvalidInputError``.
    """
    load_pack(domain)  # an unknown domain is a PackError that names the known ones
    try:
        request = ScreenRequest(
            domain=domain,  # type: ignore[arg-type]
            text=text,
            history=history,  # type: ignore[arg-type]
            rating=rating,
            prior_risk=prior_risk,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] != "value_error":  # pydantic's own check: name the field and the value
            message = f"{'.'.join(map(str, problem['loc']))} {message.lower()}, got {problem['input']!r}"
        raise InvalidInputError(message) from exc
    return screen(request, guard, encoder)
