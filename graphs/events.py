"""Custom stream events: what a UI can show while a turn runs (``stream_mode="custom"``).

Two shapes, both plain JSON:

    {"kind": "persona", "graph": "counseling", "turn": 3, "node": "route",
     "source": "router", "top_traits": ["agreeableness_high", "neuroticism_low"], "weights": {...}}
    {"kind": "decision", "graph": "counseling", "turn": 3, "node": "screen",
     "decision": "no_risk", "reason": "..."}

A persona event is sent whenever a reply's persona is chosen (the router, the run's context, the
crisis or strict-retry override); a decision event for every entry of the decision log (intake,
screen, escalation, output/policy check, approval, ...), as it is made.
"""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from graphs.state import Decision, Persona


class PersonaEvent(TypedDict):
    kind: Literal["persona"]
    graph: str
    turn: int
    node: str
    source: str
    top_traits: list[str]
    weights: dict[str, float]


class DecisionEvent(TypedDict):
    kind: Literal["decision"]
    graph: str
    turn: int
    node: str
    decision: str
    reason: str


def persona_event(graph: str, turn: int, node: str, persona: Persona) -> PersonaEvent:
    return PersonaEvent(
        kind="persona", graph=graph, turn=turn, node=node, source=str(persona.get("source", "none")),
        top_traits=list(persona.get("top_traits", [])), weights=dict(persona.get("weights", {})),
    )


def decision_event(graph: str, entry: Decision) -> DecisionEvent:
    return DecisionEvent(kind="decision", graph=graph, **entry)
