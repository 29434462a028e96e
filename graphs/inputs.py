"""Validating what users send the graphs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from domains.text import InvalidInputError, validate_user_text
from persona_agents.messages import clean_text

MAX_MESSAGE_CHARS = 8000


def human_text(messages: Sequence[BaseMessage]) -> str:
    """The latest message's text, if it is a valid human message; else ``InvalidInputError``."""
    if not messages:
        raise InvalidInputError("no message to answer")
    last = messages[-1]
    if not isinstance(last, HumanMessage):
        raise InvalidInputError(f"the latest message must come from the user, got a {type(last).__name__}")
    content = last.content
    if isinstance(content, list):
        content = "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, (str, dict)))
    text = validate_user_text(content, max_chars=MAX_MESSAGE_CHARS)
    text = clean_text(text).strip()
    if not text:
        raise InvalidInputError("the message has no visible text")
    return text


def last_turns(messages: Sequence[BaseMessage], count: int) -> list[dict[str, Any]]:
    out = []
    for m in messages[-count:]:
        role = "user" if isinstance(m, HumanMessage) else (m.name or "assistant") if isinstance(m, AIMessage) else m.type
        out.append({"role": role, "content": str(m.content)})
    return out
