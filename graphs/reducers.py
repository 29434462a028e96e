"""Reducers that keep a thread's state valid whoever writes to it.

Nodes are the only intended writers of the protected fields, but ``Command(update=...)`` and
``graph.update_state`` (operator tools) go through these reducers too. Each reducer keeps the
previous value when the new one is malformed, so no write can leave a thread that raises on
every later call, and risk once raised stays raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.graph.message import add_messages

_MESSAGE_TYPES = (HumanMessage, AIMessage)


def _text_content(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))
        for b in content
    )


def append_only_messages(left: Sequence[AnyMessage] | None, right: Any) -> list[AnyMessage]:
    """Append new human/AI text messages; never remove, replace or reorder earlier ones.

    RemoveMessage, messages reusing an id already in the history, other message types and
    non-text content are dropped, so the conversation history can only grow.
    """
    history = list(left or [])
    items = right if isinstance(right, list) else [right]
    try:
        converted = add_messages([], [m for m in items if not isinstance(m, RemoveMessage)])
    except Exception:  # malformed dicts, unknown roles: nothing of this write is kept
        return history
    seen = {m.id for m in history}
    for message in converted:
        if not isinstance(message, _MESSAGE_TYPES) or isinstance(message, RemoveMessage):
            continue
        if message.id in seen or not _text_content(message.content):
            continue
        seen.add(message.id)
        history.append(message)
    return history


def keep_risk_raised(left: dict[str, Any] | None, right: Any) -> dict[str, Any]:
    """Risk is monotonic: a write that would lower or clear a raised risk is ignored."""
    left = left if isinstance(left, dict) else {}
    if not isinstance(right, dict):
        return left
    if left.get("raised") and right.get("raised") is not True:
        return left
    return dict(right)


def valid_turn(left: int | None, right: Any) -> int:
    """The turn counter accepts only non-negative whole numbers that do not go backwards."""
    left = left if isinstance(left, int) and not isinstance(left, bool) else 0
    if isinstance(right, int) and not isinstance(right, bool) and right >= left:
        return right
    return left


def append_decisions(left: list[dict[str, Any]] | None, right: Any) -> list[dict[str, Any]]:
    """The decision log only grows, and only by well-formed entries."""
    log = list(left or [])
    items = right if isinstance(right, list) else []
    keys = {"turn", "node", "decision", "reason"}
    log.extend(dict(d) for d in items if isinstance(d, dict) and keys <= set(d))
    return log


def one_of(*allowed: str) -> Any:
    """A reducer that keeps the previous value unless the new one is one of ``allowed``."""

    def reduce(left: str | None, right: Any) -> str | None:
        return right if isinstance(right, str) and right in allowed else left

    reduce.__name__ = f"one_of_{'_'.join(a.strip('_') for a in allowed)}"
    return reduce
