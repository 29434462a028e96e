"""Graph state for both agents. Everything a decision depends on is recorded here."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


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


class CounselingState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    locale: str | None
    turn: int
    risk: Risk
    handoff: Literal["agent", "human"]  # who answers the next turn
    crisis_now: bool
    persona: Persona
    draft: str
    draft_attempts: int
    draft_blocked: bool
    error: str | None
    decisions: Annotated[list[Decision], operator.add]


class Review(TypedDict, total=False):
    text: str
    rating: int | None
    product: str | None
    business: str | None
    channel: str | None
    locale: str | None


class CustomerServiceState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    review: Review | str
    accepted_review: Review  # the last review intake accepted (restored when an input is rejected)
    turn: int
    analysis: dict[str, Any]
    escalated: bool
    persona: Persona
    draft: str
    check: dict[str, Any]
    approval: dict[str, Any]
    final_reply: str
    error: str | None
    decisions: Annotated[list[Decision], operator.add]
