"""graphs.threads: validation before invoking, serialised writers, unfinished turns."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from domains.text import InvalidInputError
from graphs import threads
from graphs.counseling import build_counseling_graph, make_counseling_graph
from graphs.customer_service import make_customer_service_graph


class SlowReplies:
    """Replies that take a while, so two writers overlap."""

    def __iter__(self) -> SlowReplies:
        return self

    def __next__(self) -> str:
        time.sleep(0.3)
        return "I'm listening."


def test_send_message_validates_before_invoking() -> None:
    graph = make_counseling_graph(GenericFakeChatModel(messages=iter([])), InMemorySaver())
    for bad, expected in [(None, "must be a string"), ("", "empty"), ("\x00\x00", "empty|no visible text"), ("a" * 9000, "9000 characters")]:
        with pytest.raises(InvalidInputError, match=expected):
            threads.send_message(graph, "t", bad)
    with pytest.raises(InvalidInputError, match="locale"):
        threads.send_message(graph, "t", "hi", locale=["en"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="thread_id"):
        threads.send_message(graph, "", "hi")
    assert graph.get_state({"configurable": {"thread_id": "t"}}).values == {}


def test_graph_without_checkpointer_is_refused() -> None:
    graph = build_counseling_graph(GenericFakeChatModel(messages=iter([]))).compile()
    with pytest.raises(threads.ThreadStateError, match="checkpointer"):
        threads.send_message(graph, "t", "hi")


def test_review_helper() -> None:
    graph = make_customer_service_graph(GenericFakeChatModel(messages=iter(["Thanks!"])), InMemorySaver())
    assert threads.send_review(graph, "r", {"text": "Great coffee", "rating": 5})["final_reply"] == "Thanks!"
    with pytest.raises(InvalidInputError, match="rating"):
        threads.send_review(graph, "r", {"text": "Great coffee", "rating": 9})
    with pytest.raises(InvalidInputError, match="must be an object"):
        threads.send_review(graph, "r", 5)  # type: ignore[arg-type]


def test_two_writers_in_one_process_are_serialised() -> None:
    graph = make_counseling_graph(GenericFakeChatModel(messages=SlowReplies()), InMemorySaver())
    errors: list[BaseException] = []

    def send(text: str) -> None:
        try:
            threads.send_message(graph, "shared", text)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=send, args=(f"message {i}",)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    values = graph.get_state({"configurable": {"thread_id": "shared"}}).values
    assert sorted(m.content for m in values["messages"] if m.type == "human") == [f"message {i}" for i in range(4)]
    assert [m.type for m in values["messages"]] == ["human", "ai"] * 4
    assert values["turn"] == 4


def test_sqlite_thread_lock_is_a_file_lock(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    connection = sqlite3.connect(str(db), check_same_thread=False)
    graph = make_counseling_graph(GenericFakeChatModel(messages=itertools.repeat("ok")), SqliteSaver(connection))
    with threads.thread_lock(graph, "t1"):
        assert list((tmp_path / "c.sqlite.locks").glob("*.lock"))
        other = make_counseling_graph(GenericFakeChatModel(messages=itertools.repeat("ok")), SqliteSaver(sqlite3.connect(str(db), check_same_thread=False)))
        with pytest.raises(threads.ThreadStateError, match="busy in another process"):
            with threads.thread_lock(other, "t1", timeout=0.2):
                pass  # a second open file description: what another process would hold
    with threads.thread_lock(other, "t1", timeout=0.2):
        pass


def test_unfinished_turn_is_finished_once_before_the_next_message() -> None:
    saver = InMemorySaver()
    builder = build_counseling_graph(GenericFakeChatModel(messages=iter(["Thanks for telling me. What would help most right now?", "I hear you. How has the rest of your day been?"])))
    stopped = builder.compile(checkpointer=saver, interrupt_before=["generate"])  # a crash before generation
    cfg: dict[str, Any] = {"configurable": {"thread_id": "t"}}
    stopped.invoke({"messages": ["first"]}, cfg)
    graph = builder.compile(checkpointer=saver)
    assert graph.get_state(cfg).next == ("generate",)
    result = threads.send_message(graph, "t", "second")
    assert [m.content for m in result["messages"]] == ["first", "Thanks for telling me. What would help most right now?", "second", "I hear you. How has the rest of your day been?"]
    assert threads.finish_unfinished(graph, "t") is None


class DiesBeforeCheckpoint(InMemorySaver):
    """A saver whose process 'dies' (KeyboardInterrupt) just before its ``at``-th checkpoint."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.puts, self.at = 0, at

    def put(self, *args: Any, **kwargs: Any) -> Any:
        self.puts += 1
        if self.puts == self.at:
            raise KeyboardInterrupt(f"died before checkpoint {self.puts}")
        return super().put(*args, **kwargs)


@pytest.mark.parametrize("at", [2, 3, 4, 5])  # before the checkpoint after __start__, intake, screen, crisis_reply
def test_a_step_whose_writes_were_saved_but_not_checkpointed_is_finished(at: int) -> None:
    """The race behind kill -9 right after a checkpoint: the next task's writes may already be on disk."""
    saver = DiesBeforeCheckpoint(at)
    graph = make_counseling_graph(GenericFakeChatModel(messages=iter([])), saver)
    cfg: dict[str, Any] = {"configurable": {"thread_id": "t"}}
    with pytest.raises(KeyboardInterrupt):
        graph.invoke({"messages": ["I want to kill myself tonight"]}, cfg, durability="sync")
    saver.at = 0
    state = graph.get_state(cfg)
    assert state.next == () and state.tasks  # nothing left to run, by ``next`` alone
    assert threads.finish_unfinished(graph, "t") is not None
    state = graph.get_state(cfg)
    assert state.next == ("escalate",) and [m.name for m in state.values["messages"]] == [None, "crisis_protocol"]
    assert threads.finish_unfinished(graph, "t") is None
