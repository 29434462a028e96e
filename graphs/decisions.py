"""The decision log every node writes to; each entry is also a custom stream event."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graphs.events import decision_event
from graphs.state import Decision


def decision(turn: int, node: str, what: str, reason: str) -> Decision:
    return Decision(turn=turn, node=node, decision=what, reason=reason)


def decide(runtime: Runtime[Any], graph: str, turn: int, node: str, what: str, reason: str) -> Decision:
    """A decision-log entry, sent at once as a ``{"kind": "decision", ...}`` custom event."""
    entry = decision(turn, node, what, reason)
    runtime.stream_writer(decision_event(graph, entry))
    return entry
