"""Small helpers for the decision log every node writes to."""

from __future__ import annotations

from graphs.state import Decision


def decision(turn: int, node: str, what: str, reason: str) -> Decision:
    return Decision(turn=turn, node=node, decision=what, reason=reason)
