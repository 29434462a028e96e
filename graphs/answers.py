"""The humans' answers that resume an interrupted thread, parsed strictly.

A wrong answer is never posted: the graph asks again with the problem in the new interrupt
payload (``payload["error"]``), and ``graphs.threads.resume`` raises ``InvalidInputError``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from domains.text import InvalidInputError
from graphs.inputs import checked_text

ACTIONS = ("approve", "edit", "reject")


class CounselorAnswer(BaseModel):
    """The human counselor's reply, and whether the agent answers the next turn."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="the counselor's reply to the person (same limits as user input)")
    return_to_agent: StrictBool = Field(False, description="true hands the next turn back to the agent")

    @field_validator("message", mode="before")
    @classmethod
    def _message(cls, value: Any) -> str:
        try:
            return checked_text(value, what="counselor's message")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None


class ApprovalAnswer(BaseModel):
    """The approver's decision on a drafted public reply."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "edit", "reject"]
    reply: str | None = Field(None, description="the reply to publish instead of the draft (edit only)")

    @field_validator("reply", mode="before")
    @classmethod
    def _reply(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None
        try:
            return checked_text(value, what="reply")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _edit_has_reply(self) -> ApprovalAnswer:
        if self.action == "edit" and not self.reply:
            raise ValueError("an edit needs a non-empty 'reply'")
        return self


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
    )


def parse_counselor_answer(answer: Any) -> CounselorAnswer:
    """A string (the message; the human keeps the thread) or ``{"message", "return_to_agent"}``."""
    if answer is None:
        raise InvalidInputError("resume with {'message': ..., 'return_to_agent': true|false}, got None")
    if isinstance(answer, str):
        answer = {"message": answer}
    if not isinstance(answer, dict):
        raise InvalidInputError(f"resume with a string or {{'message': ..., 'return_to_agent': bool}}, got {type(answer).__name__}")
    try:
        return CounselorAnswer.model_validate(answer)
    except ValidationError as exc:
        raise InvalidInputError(_problems(exc)) from None


def parse_approval(answer: Any) -> ApprovalAnswer:
    """``"approve"``/``"reject"`` (any case) or ``{"action": ..., "reply": ...}``.

    Any other string is refused: a stray word must never become the public reply.
    """
    if answer is None:
        raise InvalidInputError("resume with {'action': 'approve'|'edit'|'reject', 'reply': ...}, got None")
    if isinstance(answer, str):
        action = answer.strip().lower()
        if action not in ("approve", "reject"):
            raise InvalidInputError(
                f"unknown action {answer[:40]!r}; resume with 'approve', 'reject' or {{'action': 'edit', 'reply': ...}}"
            )
        answer = {"action": action}
    if not isinstance(answer, dict):
        raise InvalidInputError(f"resume with {{'action': 'approve'|'edit'|'reject', 'reply': ...}}, got {type(answer).__name__}")
    if isinstance(answer.get("action"), str) and answer["action"] not in ACTIONS:
        raise InvalidInputError(f"unknown action {answer['action'][:40]!r}; use approve, edit or reject")
    try:
        return ApprovalAnswer.model_validate(answer)
    except ValidationError as exc:
        raise InvalidInputError(_problems(exc)) from None
