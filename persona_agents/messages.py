"""Validated chat turns: what the engine accepts from LangChain messages, dicts or the CLI.

Also home to what every layer above shares about text: the one cleaner (``clean_text``) and the
one message-length limit (``MAX_MESSAGE_CHARS``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import ftfy
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
# The project's one message-length limit: the most characters one person may write in one
# message (a chat message, a review, a counselor's answer). The agents and the safety screens
# (``domains.text.validate_user_text``, ``graphs.inputs``, ``graphs.review_input``) all read it
# from here, the lowest layer. 8,000 characters is about 2,000 English tokens, the default
# engine's whole prompt budget (``EngineConfig.max_input_tokens``): a longer message could not
# reach the model whole, and every screen reads the full text on every turn.
MAX_MESSAGE_CHARS = 8000
# A conversation turn the engine is handed may wrap a person's message in the caller's own
# framing (a review's stars and product, a system prompt built from a domain pack), so each turn
# gets room for that several times over; the engine's real bound is the token budget, checked
# when the prompt is built. This check only refuses absurd input before it is tokenized.
MAX_TURN_CHARS = 4 * MAX_MESSAGE_CHARS
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "system": "system", "user": "user", "assistant": "assistant"}


class InvalidMessageError(ValueError):
    """A message the engine cannot take; the text says which one and why."""


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def clean_text(text: str) -> str:
    """The project's one text cleaner, for everything a person or a model wrote.

    Lone surrogates are replaced, mojibake is repaired ("canâ€™t" -> "can’t", via ftfy's
    conservative ``fix_encoding``), and control characters are dropped except newlines and tabs.
    Letters, case and emoji are kept: this is still the text a person reads.
    """
    repaired = text.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    repaired = ftfy.fix_encoding(repaired)
    return "".join(
        ch for ch in repaired if ch in "\n\t" or unicodedata.category(ch) not in {"Cc", "Cs"}
    )


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # LangChain content blocks: keep the text parts
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                raise InvalidMessageError(f"{where}: only text content is supported")
        return "".join(parts)
    raise InvalidMessageError(f"{where}: content must be text, got {type(content).__name__}")


def to_turn(message: BaseMessage | Mapping[str, Any], index: int = 0, *, max_chars: int = MAX_TURN_CHARS) -> ChatTurn:
    where = f"message {index}"
    if isinstance(message, BaseMessage):
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
        else:
            raise InvalidMessageError(
                f"{where}: {type(message).__name__} is not supported (system, human and AI messages only)"
            )
        content = message.content
    elif isinstance(message, Mapping):
        raw_role = str(message.get("role", ""))
        if raw_role not in _ROLE_ALIASES:
            raise InvalidMessageError(f"{where}: unknown role {raw_role!r}; use one of {', '.join(ROLES)}")
        role, content = _ROLE_ALIASES[raw_role], message.get("content")
    else:
        raise InvalidMessageError(f"{where}: expected a message or a dict, got {type(message).__name__}")
    text = clean_text(_content_text(content, where)).strip()
    if not text:
        raise InvalidMessageError(f"{where} ({role}) is empty")
    if len(text) > max_chars:
        raise InvalidMessageError(f"{where} ({role}) has {len(text)} characters; the limit is {max_chars}")
    return ChatTurn(role=role, content=text)  # type: ignore[arg-type]


def to_turns(messages: Iterable[BaseMessage | Mapping[str, Any] | str], *, max_chars: int = MAX_TURN_CHARS) -> list[ChatTurn]:
    """Validate a conversation. A bare string is one user turn."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    turns = []
    for i, m in enumerate(messages):
        if isinstance(m, str):
            m = {"role": "user", "content": m}
        turns.append(to_turn(m, i, max_chars=max_chars))
    if not turns:
        raise InvalidMessageError("the conversation is empty")
    if all(t.role == "system" for t in turns):
        raise InvalidMessageError("the conversation has no user or assistant message")
    return turns
