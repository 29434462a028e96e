"""Graph state for both agents. Everything a decision depends on is recorded here.

Each graph has a narrow input schema: the only keys a caller's input can write. Every other
field is written by the graph's nodes; the graphs are compiled with ``input_schema=...``, so
any other key in an input (``risk``, ``handoff``, ``messages``, ...) is never written. The
reducers in ``graphs.reducers`` keep the protected fields valid even against operator tools
(``Command(update=...)``, ``update_state``): history is append-only, risk stays raised.

``typing_extensions.TypedDict`` (not ``typing.TypedDict``): pydantic needs it on Python 3.11
to build the JSON schemas that ``langgraph dev`` shows in Studio.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from typing_extensions import TypedDict

from graphs.reducers import (
    append_decisions,
    append_only_messages,
    keep_risk_raised,
    one_of,
    valid_turn,
)

IDLE = "idle"  # ``stage`` between turns: nothing is owed to anyone


class Decision(TypedDict):
    """One recorded decision: which node, what it decided, and why."""

    turn: int
    node: str
    decision: str
    reason: str


class Risk(TypedDict, total=False):
    """Risk on a counseling conversation. Once raised it stays raised."""

    raised: bool
    category: str
    score: float
    evidence: list[str]
    raised_at_turn: int
    events: list[dict[str, Any]]


class Persona(TypedDict, total=False):
    weights: dict[str, float]
    top_traits: list[str]
    source: Literal["router", "crisis_override", "strict_override", "none"]


COUNSELING_STAGES = ("screen", "crisis_reply", "escalate", "route", "generate", "check_output", "respond", IDLE)
REVIEW_STAGES = ("analyse", "route", "draft", "policy_check", "approval", "finalize", IDLE)


class CounselingInput(TypedDict, total=False):
    """What a caller may send the counseling agent: one new user message, and a locale."""

    message: str
    """The person's new message (a string). Intake validates it, then appends it to ``messages``."""
    locale: str | None
    """Optional locale such as "en-GB"; picks the crisis resources. Kept for later turns."""


class CounselingState(CounselingInput, total=False):
    messages: Annotated[list[AnyMessage], append_only_messages]
    """The conversation. Append-only: written by the nodes, never by a caller's input."""
    accepted_locale: str
    """The resolved locale of the last accepted turn (restored when an input is rejected)."""
    turn: Annotated[int, valid_turn]
    stage: Annotated[str, one_of(*COUNSELING_STAGES)]
    """The node the open turn goes on with; "idle" when the turn is finished (crash recovery)."""
    risk: Annotated[Risk, keep_risk_raised]
    handoff: Annotated[str, one_of("agent", "human")]
    """Who answers the next turn: "agent" or "human"."""
    crisis_now: bool
    persona: Persona
    draft: str
    draft_attempts: int
    draft_blocked: bool
    error: str | None
    decisions: Annotated[list[Decision], append_decisions]


class Review(TypedDict, total=False):
    text: str
    rating: int | None
    product: str | None
    business: str | None
    channel: str | None
    locale: str | None


class CustomerServiceInput(TypedDict, total=False):
    """What a caller may send the review agent: one new review."""

    review: Review | str
    """The review: an object with ``text`` and optional ``rating`` (1-5), ``product``,
    ``business``, ``channel``, ``locale``; or the same as a JSON string."""


class CustomerServiceState(CustomerServiceInput, total=False):
    messages: Annotated[list[AnyMessage], append_only_messages]
    accepted_review: Review
    """The validated review of the current (or last) turn."""
    turn: Annotated[int, valid_turn]
    stage: Annotated[str, one_of(*REVIEW_STAGES)]
    """The node the open turn goes on with; "idle" when the turn is finished (crash recovery)."""
    analysis: dict[str, Any]
    escalated: bool
    persona: Persona
    draft: str
    check: dict[str, Any]
    approval: dict[str, Any]
    final_reply: str
    error: str | None
    decisions: Annotated[list[Decision], append_decisions]
