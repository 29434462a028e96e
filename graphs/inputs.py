"""Validating what users send the graphs: the new message, before it touches the history."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from domains.text import InvalidInputError, validate_user_text
from graphs.limits import TokenCounter
from persona_agents.messages import MAX_MESSAGE_CHARS

__all__ = ["MAX_MESSAGE_CHARS", "NO_NEW_MESSAGE", "InvalidInputError", "checked_text", "last_turns", "new_user_message"]

NO_NEW_MESSAGE = "no new message: send {'messages': [{'role': 'user', 'content': 'your text'}]}"
_USER_ROLES = {"user", "human"}
_MESSAGE_KEYS = {"role", "type", "content", "id"}
# Fields of LangChain's message JSON that clients send empty ({"name": null, "example": false, ...})
_EMPTY_OK = {"name", "additional_kwargs", "response_metadata", "example"}


def checked_text(
    raw: Any, *, what: str = "message", max_chars: int = MAX_MESSAGE_CHARS,
    count_tokens: TokenCounter | None = None, max_tokens: int | None = None,
) -> str:
    """Cleaned visible text within the character and token limits, else ``InvalidInputError``."""
    if isinstance(raw, list):  # LangChain content blocks: text only
        if not all(isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)) for b in raw):
            raise InvalidInputError(f"the {what} may contain text only")
        raw = "".join(b if isinstance(b, str) else b["text"] for b in raw)
    if not isinstance(raw, str):
        raise InvalidInputError(f"the {what} must be a string, got {type(raw).__name__}")
    try:
        text = validate_user_text(raw, max_chars=max_chars).strip()  # cleaned by clean_text in there
    except InvalidInputError as exc:  # name what was refused: a message, a review, a counselor's reply
        raise InvalidInputError(str(exc).replace("user text", f"the {what}", 1)) from None
    if not text:
        raise InvalidInputError(f"the {what} has no visible text")
    if count_tokens is not None and max_tokens is not None:
        try:
            tokens = count_tokens(text)
        except Exception:  # the character limit still holds; see graphs.limits
            tokens = 0
        if tokens > max_tokens:
            raise InvalidInputError(f"the {what} is {tokens} tokens; the limit is {max_tokens}")
    return text


def new_user_message(
    raw: Any, history_ids: Collection[str | None], *, count_tokens: TokenCounter | None = None, max_tokens: int | None = None
) -> HumanMessage:
    """The person's new message from a string, a ``{"role": "user", "content": ...}`` dict (or
    ``"type": "human"``) or a HumanMessage, cleaned. Other roles, removals, unknown fields and
    ids already in the history are refused."""
    if raw is None:
        raise InvalidInputError(NO_NEW_MESSAGE)
    message_id: Any = None
    if isinstance(raw, BaseMessage):
        if not isinstance(raw, HumanMessage):
            raise InvalidInputError(f"only the person's own message can be sent, got a {raw.type} message")
        content, message_id = raw.content, raw.id
    elif isinstance(raw, dict):
        role = raw.get("role", raw.get("type"))
        if not isinstance(role, str) or role not in _USER_ROLES:
            raise InvalidInputError(f"only the person's own message can be sent (role 'user'), got role {role!r}")
        if extra := {k for k in set(raw) - _MESSAGE_KEYS if not (k in _EMPTY_OK and not raw[k])}:
            raise InvalidInputError(f"unknown message fields: {', '.join(sorted(map(str, extra)))}")
        content, message_id = raw.get("content"), raw.get("id")
    else:
        content = raw
    if message_id is not None and (not isinstance(message_id, str) or not message_id or len(message_id) > 200):
        raise InvalidInputError("a message id must be a non-empty string of at most 200 characters")
    if message_id is not None and message_id in history_ids:
        raise InvalidInputError(f"message id {message_id!r} is already in this conversation; history cannot be rewritten")
    text = checked_text(content, count_tokens=count_tokens, max_tokens=max_tokens)
    return HumanMessage(content=text, id=message_id) if message_id else HumanMessage(content=text)


def last_turns(messages: Sequence[BaseMessage], count: int) -> list[dict[str, Any]]:
    out = []
    for m in messages[-count:]:
        role = "user" if isinstance(m, HumanMessage) else (m.name or "assistant") if isinstance(m, AIMessage) else m.type
        out.append({"role": role, "content": str(m.content)})
    return out
