"""The ``messages`` channel: who may add what to a conversation, and how a caller's input gets in.

A caller sends new messages under ``messages``, as Studio's chat does; LangGraph writes them
straight into this channel before any node runs. So the channel, not a node, is the boundary:

- **Queued writes** (a caller's input; an operator's plain ``update_state``) can only queue.
  Each item becomes a *pending* entry at the end of the conversation: the cleaned message if it
  passes ``graphs.inputs.new_user_message`` (a user/human text message, a new id, within the
  character limit), else an empty *refused* entry that carries the reason. An item that repeats
  a message already in the conversation (same id, role and text: clients that resend the whole
  conversation) is skipped. ``RemoveMessage``, other roles, reused ids and LangGraph's
  ``Overwrite`` (``{"__overwrite__": ...}``) become refused entries: they change nothing else.
- **Posted writes** come from nodes: a step that writes ``messages`` twice, once with the
  update and once with ``SIGNATURE`` (``posted(update)`` builds the pair). A posted write
  settles the queue (every pending entry is dropped) and appends its human/AI text messages as
  accepted. A caller's input writes each key once per step, so it can never post.
- Nothing removes, replaces or reorders an accepted message.

Intake, the node every input runs into first, settles the queue in the same turn: it posts the
input's one new message (``take_new_message``) with the id the caller gave it, or posts nothing
and reports the reason in ``error``. Other nodes read ``settled(messages)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Self
from uuid import uuid4

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    convert_to_messages,
)
from langgraph.channels.base import BaseChannel
from langgraph.channels.binop import _get_overwrite
from langgraph.types import Command

from domains.text import InvalidInputError
from graphs.inputs import NO_NEW_MESSAGE, checked_text, new_user_message
from graphs.limits import TokenCounter
from persona_agents.messages import clean_text

SIGNATURE = {"persona_agents": "posted_by_node"}
MARK = "persona_agents_intake"  # additional_kwargs key of a pending entry: {"status", "error"}
EntryStatus = Literal["pending", "refused"]

_KINDS = {"user": "human", "human": "human", "assistant": "ai", "ai": "ai"}


def posted(update: dict[str, Any]) -> list[Any]:
    """A node's update with its ``messages`` posted (accepted), not queued for intake."""
    return [update, Command(update={"messages": SIGNATURE})]


def status(message: BaseMessage) -> EntryStatus | None:
    """An entry's status while intake has not settled it ("pending" or "refused"), else None."""
    mark = message.additional_kwargs.get(MARK)
    return mark.get("status") if isinstance(mark, dict) else None


def pending(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The entries a caller queued that intake has not settled yet."""
    return [m for m in messages if status(m)]


def settled(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation itself: every accepted message, oldest first."""
    return [m for m in messages if not status(m)]


def take_new_message(
    messages: Sequence[BaseMessage], *, count_tokens: TokenCounter | None = None, max_tokens: int | None = None
) -> HumanMessage:
    """The input's one new message, ready to post (its id, its cleaned text within the token
    limit), or ``InvalidInputError`` with the reason the input is refused."""
    entries = pending(messages)
    if not entries:
        raise InvalidInputError(NO_NEW_MESSAGE)
    for entry in entries:
        if status(entry) == "refused":
            raise InvalidInputError(str(entry.additional_kwargs[MARK].get("error") or "the message was refused"))
    if len(entries) > 1:
        raise InvalidInputError(f"send one new message at a time; this input has {len(entries)}")
    text = checked_text(entries[0].content, count_tokens=count_tokens, max_tokens=max_tokens)
    return HumanMessage(content=text, id=entries[0].id)


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))
        for b in content
    ):
        return "".join(b if isinstance(b, str) else b["text"] for b in content)
    return None


def _is_resend(raw: Any, known: dict[str | None, BaseMessage]) -> bool:
    if isinstance(raw, BaseMessage):
        kind, content, message_id = raw.type, raw.content, raw.id
    elif isinstance(raw, dict):
        role = raw.get("role", raw.get("type"))
        kind = _KINDS.get(role) if isinstance(role, str) else None
        content, message_id = raw.get("content"), raw.get("id")
    else:
        return False
    earlier = known.get(message_id) if isinstance(message_id, str) else None
    return (
        earlier is not None and not status(earlier) and earlier.type == kind
        and _text(content) is not None and _text(content) == _text(earlier.content)
    )


def _entry(raw: Any, ids: set[str | None]) -> HumanMessage:
    try:
        if _get_overwrite(raw)[0]:
            raise InvalidInputError("the conversation cannot be overwritten; send only the new message")
        message = new_user_message(raw, ids)
    except Exception as exc:  # InvalidInputError, or anything a malformed item raises: refused either way
        reason = str(exc) if isinstance(exc, InvalidInputError) else f"malformed message ({type(exc).__name__})"
        mark = {"status": "refused", "error": clean_text(reason)}
        return HumanMessage(content="", id=str(uuid4()), additional_kwargs={MARK: mark})
    return HumanMessage(content=message.content, id=message.id or str(uuid4()), additional_kwargs={MARK: {"status": "pending"}})


def _queue(history: list[AnyMessage], value: Any) -> list[AnyMessage]:
    if value is None:
        return history
    out = list(history)
    known: dict[str | None, BaseMessage] = {m.id: m for m in out}
    for raw in value if isinstance(value, list) else [value]:
        if _is_resend(raw, known):
            continue
        entry = _entry(raw, set(known))
        known[entry.id] = entry
        out.append(entry)
    return out


def _as_message(item: Any) -> BaseMessage | None:
    if isinstance(item, BaseMessage):
        return item
    try:
        return convert_to_messages([item])[0]
    except Exception:  # not a message at all: a posted write ignores it
        return None


def _post(history: list[AnyMessage], value: Any) -> list[AnyMessage]:
    out = settled(history)
    for item in value if isinstance(value, list) else [value]:
        message = _as_message(item)
        if not isinstance(message, (HumanMessage, AIMessage)) or _text(message.content) is None:
            continue
        if message.id is not None and any(m.id == message.id for m in out):
            continue  # never replaces a message
        extra = {k: v for k, v in message.additional_kwargs.items() if k != MARK}
        out.append(message.model_copy(update={"id": message.id or str(uuid4()), "additional_kwargs": extra}))
    return out


def _is_signature(value: Any) -> bool:
    return isinstance(value, dict) and value == SIGNATURE


class Conversation(BaseChannel[list[AnyMessage], Any, list[AnyMessage]]):
    """The channel behind ``messages``; see the module docstring for the rules."""

    __slots__ = ("value",)

    def __init__(self, typ: Any = list, key: str = "") -> None:
        super().__init__(typ, key)
        self.value: list[AnyMessage] = []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Conversation)

    __hash__ = BaseChannel.__hash__

    @property
    def ValueType(self) -> Any:  # noqa: N802 - LangGraph's name
        return list[AnyMessage]

    @property
    def UpdateType(self) -> Any:  # noqa: N802 - LangGraph's name
        return Any

    def copy(self) -> Self:
        new = self.__class__(self.typ, self.key)
        new.value = list(self.value)
        return new

    def from_checkpoint(self, checkpoint: Any) -> Self:
        new = self.__class__(self.typ, self.key)
        if isinstance(checkpoint, list):
            new.value = list(checkpoint)
        return new

    def update(self, values: Sequence[Any]) -> bool:
        """Apply one step's writes: posted when the step also wrote the signature, else queued."""
        if not values:
            return False
        is_posted = len(values) >= 2 and any(_is_signature(v) for v in values)
        for value in values:
            if not _is_signature(value):
                self.value = _post(self.value, value) if is_posted else _queue(self.value, value)
        return True

    def get(self) -> list[AnyMessage]:
        return self.value

    def is_available(self) -> bool:
        return True

    def checkpoint(self) -> list[AnyMessage]:
        return self.value
