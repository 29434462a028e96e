"""Test doubles shared by the agent tests."""

from __future__ import annotations


class Replies:
    """An iterator of canned model replies that counts how often the model asked for one.

    Feed it to ``GenericFakeChatModel(messages=...)``; a call beyond the canned replies fails
    the test, which is how tests prove a path never reached the model.
    """

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls = 0

    def __iter__(self) -> Replies:
        return self

    def __next__(self) -> str:
        self.calls += 1
        if not self.replies:
            raise AssertionError("the chat model was called but no reply was expected")
        return self.replies.pop(0)
