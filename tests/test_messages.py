"""Turning LangChain messages, dicts and strings into validated chat turns."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from persona_agents.messages import (
    MAX_MESSAGE_CHARS,
    MAX_TURN_CHARS,
    ChatTurn,
    InvalidMessageError,
    clean_text,
    to_turn,
    to_turns,
)


def test_langchain_roles() -> None:
    turns = to_turns(
        [SystemMessage("be kind"), HumanMessage("hi"), AIMessage("hello!"), HumanMessage("bye")]
    )
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[2] == ChatTurn("assistant", "hello!")
    assert turns[0].as_dict() == {"role": "system", "content": "be kind"}


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("user", "user"),
        ("human", "user"),
        ("assistant", "assistant"),
        ("ai", "assistant"),
        ("system", "system"),
    ],
)
def test_dict_roles(role: str, expected: str) -> None:
    assert to_turn({"role": role, "content": "text"}).role == expected


def test_bare_strings_are_user_turns() -> None:
    assert to_turns("hello") == [ChatTurn("user", "hello")]
    assert to_turns(["a", {"role": "assistant", "content": "b"}]) == [
        ChatTurn("user", "a"),
        ChatTurn("assistant", "b"),
    ]


@pytest.mark.parametrize("role", ["tool", "User", "", "bot"])
def test_wrong_dict_role(role: str) -> None:
    with pytest.raises(InvalidMessageError, match=f"message 1: unknown role {role!r}"):
        to_turns([{"role": "user", "content": "x"}, {"role": role, "content": "y"}])


def test_unsupported_message_type() -> None:
    with pytest.raises(InvalidMessageError, match="message 0: ToolMessage is not supported"):
        to_turns([ToolMessage("result", tool_call_id="1")])
    with pytest.raises(InvalidMessageError, match="expected a message or a dict, got int"):
        to_turns([42])  # type: ignore[list-item]


@pytest.mark.parametrize("content", ["", "   ", "\n\t ", "\x00\x01"])
def test_empty_or_whitespace(content: str) -> None:
    with pytest.raises(InvalidMessageError, match=r"message 0 \(user\) is empty"):
        to_turns([HumanMessage(content)])


def test_missing_or_non_text_content() -> None:
    with pytest.raises(InvalidMessageError, match="content must be text, got NoneType"):
        to_turn({"role": "user"})
    with pytest.raises(InvalidMessageError, match="content must be text, got int"):
        to_turn({"role": "user", "content": 5})


def test_empty_conversation() -> None:
    with pytest.raises(InvalidMessageError, match="conversation is empty"):
        to_turns([])
    with pytest.raises(InvalidMessageError, match="no user or assistant message"):
        to_turns([SystemMessage("only a system prompt")])


def test_huge_message() -> None:
    at_limit = to_turn({"role": "user", "content": "a" * MAX_TURN_CHARS})
    assert len(at_limit.content) == MAX_TURN_CHARS
    with pytest.raises(
        InvalidMessageError,
        match=f"has {MAX_TURN_CHARS + 1} characters; the limit is {MAX_TURN_CHARS}",
    ):
        to_turn({"role": "user", "content": "a" * (MAX_TURN_CHARS + 1)})
    with pytest.raises(InvalidMessageError, match="the limit is 10"):
        to_turns(["x" * 11], max_chars=10)


def test_one_character_limit_for_what_a_person_writes() -> None:
    """The engine takes a longest person's message with a caller's framing around it; the agents'
    and screens' limit is the one ``MAX_MESSAGE_CHARS``."""
    from domains.text import InvalidInputError, validate_user_text
    from graphs.inputs import checked_text
    from graphs.review_input import ReviewInput

    longest = "a" * MAX_MESSAGE_CHARS
    framed = f"Review (1/5 stars) about {'p' * 200}: {longest}"
    assert to_turn({"role": "user", "content": framed}).content == framed
    assert validate_user_text(longest) == longest and checked_text(longest) == longest
    assert ReviewInput(text=longest).text == longest
    for check in (validate_user_text, checked_text, lambda text: ReviewInput(text=text)):
        with pytest.raises((InvalidInputError, ValueError), match=f"{MAX_MESSAGE_CHARS + 1} characters; the limit is {MAX_MESSAGE_CHARS}"):
            check(longest + "a")


def test_lone_surrogate_is_repaired() -> None:
    turn = to_turn(HumanMessage("bad \ud800 text"))
    assert "\ud800" not in turn.content
    assert turn.content.startswith("bad ") and turn.content.endswith(" text")
    turn.content.encode("utf-8")  # now valid unicode
    assert clean_text("\udfff") in ("", "?", "\ufffd")


def test_control_characters_stripped_but_newlines_and_tabs_kept() -> None:
    turn = to_turn({"role": "user", "content": "line1\x00\x07\x1b[31m\nline2\tend\x7f"})
    assert turn.content == "line1[31m\nline2\tend"


def test_content_blocks() -> None:
    message = HumanMessage(
        content=[{"type": "text", "text": "Hello "}, "there", {"type": "text", "text": "!"}]
    )
    assert to_turn(message).content == "Hello there!"
    with pytest.raises(InvalidMessageError, match="only text content is supported"):
        to_turn(HumanMessage(content=[{"type": "image_url", "image_url": {"url": "http://x"}}]))


def test_content_is_stripped() -> None:
    assert to_turn({"role": "user", "content": "  hi  \n"}).content == "hi"
