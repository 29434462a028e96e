"""Graph state for both agents: what a caller sends, what the graph keeps, what it returns.

Each graph has a narrow input schema (the only keys a caller's input can write), a full state
that extends it with everything the nodes write, and an output schema (what ``invoke`` returns).
The graphs are compiled with ``input_schema=``, so any other key in an input (``risk``,
``handoff``, ``stage``, ...) is never written. The protected fields use channels no write can
get around (``graphs.reducers.Guarded``; ``graphs.conversation.Conversation`` for ``messages``):
history is append-only and a caller's new messages wait for intake; risk stays raised.

``typing_extensions.TypedDict`` (not ``typing.TypedDict``): pydantic needs it on Python 3.11
to build the JSON schemas that ``langgraph dev`` shows in Studio; ``documented`` turns the
docstring under each field into its description there.
"""

from __future__ import annotations

from typing import Annotated, Literal

from langchain_core.messages import AnyMessage
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from graphs.conversation import Conversation
from graphs.reducers import append_decisions, guarded, keep_risk_raised, one_of, valid_turn

IDLE = "idle"  # ``stage`` between turns: nothing is owed to anyone

COUNSELING_STAGES = ("screen", "crisis_reply", "escalate", "route", "generate", "check_output", "respond", IDLE)
REVIEW_STAGES = ("analyse", "route", "draft", "policy_check", "approval", "finalize", IDLE)


# --- results the nodes record -------------------------------------------------------------------


class Decision(TypedDict):
    """One recorded decision: which node, what it decided, and why."""

    turn: int
    node: str
    decision: str
    reason: str


class RiskEvent(TypedDict):
    """One turn on which the screen escalated."""

    turn: int
    category: str
    score: float
    evidence: list[str]


class Risk(TypedDict, total=False):
    """Risk on a counseling conversation. Once raised it stays raised."""

    raised: bool
    category: str
    score: float
    evidence: list[str]
    raised_at_turn: int
    events: list[RiskEvent]


class Persona(TypedDict, total=False):
    """The persona a reply was written with."""

    weights: dict[str, float]
    top_traits: list[str]
    source: Literal["router", "context", "crisis_override", "strict_override", "none"]


class Screen(TypedDict, total=False):
    """A safety screen's verdict (``domains.results.ScreenResult``)."""

    escalate: bool
    category: str
    score: float
    reasons: list[str]
    layer: str


class Analysis(TypedDict):
    """What the review analysis found (``domains.results.ReviewAnalysis``)."""

    sentiment: Literal["positive", "neutral", "negative"]
    aspects: list[str]
    screen: Screen


class Check(TypedDict, total=False):
    """The output/policy check of a drafted or edited reply (``domains.results.OutputCheck``)."""

    block: bool
    category: str
    reasons: list[str]
    layer: str


class Approval(TypedDict):
    """The approver's decision on a drafted public reply."""

    action: Literal["approve", "edit", "reject"]
    reply: str
    policy_check_of_edit: Check | None


class Review(TypedDict, total=False):
    """A customer review and what is known about it."""

    text: str
    rating: int | None
    product: str | None
    business: str | None
    channel: str | None
    locale: str | None


# --- protected field types (one channel object each, shared by every schema that names the key) ---

Messages = Annotated[list[AnyMessage], Conversation()]
Turn = Annotated[int, guarded(int, valid_turn)]
Decisions = Annotated[list[Decision], guarded(list, append_decisions)]
RiskField = Annotated[Risk, guarded(dict, keep_risk_raised)]
Handoff = Annotated[str, guarded(str, one_of("agent", "human"))]
CounselingStage = Annotated[str, guarded(str, one_of(*COUNSELING_STAGES))]
ReviewStage = Annotated[str, guarded(str, one_of(*REVIEW_STAGES))]


documented = with_config(ConfigDict(use_attribute_docstrings=True))


# --- counseling -----------------------------------------------------------------------------------


@documented
class CounselingInput(TypedDict, total=False):
    """What a caller may send the counseling agent: the person's new message, and a locale."""

    messages: Messages
    """New messages join the conversation only through intake: one user message per input."""
    locale: str | None
    """Optional locale such as "en-GB"; picks the crisis resources. Kept for later turns."""


@documented
class CounselingState(CounselingInput, total=False):
    """Everything the counseling agent keeps on a thread."""

    accepted_locale: str
    """The resolved locale of the last accepted turn (restored when an input is rejected)."""
    turn: Turn
    """Accepted turns so far; never goes backwards."""
    stage: CounselingStage
    """The node the open turn goes on with; "idle" when the turn is finished (crash recovery)."""
    risk: RiskField
    """Risk on this conversation; once raised it stays raised."""
    handoff: Handoff
    """Who answers the next turn: "agent" or "human"."""
    crisis_now: bool
    """Whether this turn's screen escalated."""
    persona: Persona
    """The persona of the current (or last) reply."""
    draft: str
    """The model's provisional reply, before the output check."""
    draft_attempts: int
    """Drafts written this turn (at most ``MAX_DRAFTS``)."""
    draft_blocked: bool
    """Whether the output check blocked the latest draft."""
    error: str | None
    """Why the last input was rejected; None when it was accepted."""
    decisions: Decisions
    """Every decision of every turn, in order."""


@documented
class CounselingOutput(TypedDict, total=False):
    """What ``invoke`` returns for a counseling turn."""

    messages: Messages
    """The conversation."""
    locale: str | None
    """The locale the turn was answered in."""
    turn: Turn
    """Accepted turns so far."""
    handoff: Handoff
    """Who answers the next turn: "agent" or "human"."""
    risk: RiskField
    """Risk on this conversation."""
    persona: Persona
    """The persona of the last reply."""
    error: str | None
    """Why the input was rejected; None when it was accepted."""
    decisions: Decisions
    """Every decision so far."""


# --- reviews --------------------------------------------------------------------------------------


@documented
class CustomerServiceInput(TypedDict, total=False):
    """What a caller may send the review agent: one new review."""

    review: Review | str
    """The review: an object with ``text`` and optional ``rating`` (1-5), ``product``,
    ``business``, ``channel``, ``locale``; or the same as a JSON string."""


@documented
class CustomerServiceState(CustomerServiceInput, total=False):
    """Everything the review agent keeps on a thread."""

    messages: Messages
    """Each review and the reply published for it; append-only."""
    accepted_review: Review
    """The validated review of the current (or last) turn."""
    turn: Turn
    """Accepted reviews so far; never goes backwards."""
    stage: ReviewStage
    """The node the open turn goes on with; "idle" when the turn is finished (crash recovery)."""
    analysis: Analysis
    """Sentiment, aspects and the safety screen of the review."""
    escalated: bool
    """Whether the screen sends this review to a human."""
    persona: Persona
    """The persona of the draft."""
    draft: str
    """The model's provisional reply, before the policy check and any approval."""
    check: Check
    """The policy check of the draft."""
    approval: Approval
    """The human's decision, when one was asked."""
    final_reply: str
    """The published reply; empty until published."""
    error: str | None
    """Why the last input was rejected; None when it was accepted."""
    decisions: Decisions
    """Every decision of every turn, in order."""


@documented
class CustomerServiceOutput(TypedDict, total=False):
    """What ``invoke`` returns for a review turn."""

    messages: Messages
    """Each review and the reply published for it."""
    turn: Turn
    """Accepted reviews so far."""
    accepted_review: Review
    """The validated review."""
    analysis: Analysis
    """Sentiment, aspects and the safety screen."""
    escalated: bool
    """Whether a human was asked."""
    persona: Persona
    """The persona of the draft."""
    draft: str
    """The provisional reply (what the approver sees)."""
    check: Check
    """The policy check of the draft."""
    approval: Approval
    """The human's decision, when one was asked."""
    final_reply: str
    """The published reply; empty until published."""
    error: str | None
    """Why the input was rejected; None when it was accepted."""
    decisions: Decisions
    """Every decision so far."""
