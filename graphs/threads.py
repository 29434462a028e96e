"""The app-facing way to talk to a thread: validate, serialise, finish what a crash left, invoke.

    send_message(graph, thread_id, text, locale=None)   counseling: one new user message
    send_review(graph, thread_id, review)               customer service: one new review
    send_input(graph, thread_id, payload)               a raw input object, as an HTTP body would be
    resume(graph, thread_id, answer)                    the human's answer to the pending question
    finish_unfinished(graph, thread_id)                 finish a turn a crash cut short
    pending_question(graph, thread_id)                  the interrupt payload waiting, if any

Each call that runs the graph takes an optional ``context=Context(...)`` (``graphs.context``):
the run's settings, such as the ``user_id`` the store remembers the person by.

Every refusal raises ``InvalidInputError`` (a ``ValueError``; ``ThreadStateError`` when the
thread's state, not the value, is the problem) before anything is written: the thread is
unchanged. Calls on one thread are serialised: a lock per thread in this process and, across
processes, an ``flock`` on ``<db>.locks/<thread>.lock`` for a ``SqliteSaver`` on a file, an
advisory lock on the server for a ``PostgresSaver`` (``graphs.persistence``); the kernel or
the server drops either when a process dies, even by SIGKILL. Holding the lock, a call first
finishes any turn the checkpoint shows as started but not finished (``next`` non-empty, or a
step whose writes are saved but not yet applied; no pending interrupt), so nothing is lost and
nothing is answered twice. Runs use ``durability="sync"``: each step's checkpoint is on disk
before the next step starts.

``Command(update=...)`` and ``graph.update_state`` are operator tools that bypass the input
boundary: never expose them to end users.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from langgraph.errors import InvalidUpdateError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from domains.text import InvalidInputError
from graphs.answers import parse_approval, parse_counselor_answer
from graphs.context import Context
from graphs.inputs import checked_text
from graphs.persistence import postgres_thread_lock
from persona_agents.messages import clean_text

__all__ = [
    "InvalidInputError",
    "ThreadStateError",
    "finish_unfinished",
    "pending_question",
    "resume",
    "send_input",
    "send_message",
    "send_review",
    "thread_lock",
]

LOCK_TIMEOUT = 300.0  # seconds to wait for another writer on the same thread
MAX_LOCALE_CHARS = 64

_registry_lock = threading.Lock()
_thread_locks: dict[tuple[int, str], threading.Lock] = {}


class ThreadStateError(InvalidInputError):
    """The thread cannot take this request now (a human is being asked, nothing is pending...)."""


# --- serialising writers ----------------------------------------------------------------------


def _sqlite_file(checkpointer: Any) -> Path | None:
    connection = getattr(checkpointer, "conn", None)
    if not isinstance(connection, sqlite3.Connection):
        return None
    lock = getattr(checkpointer, "lock", None) or contextlib.nullcontext()
    with lock:
        rows = connection.execute("PRAGMA database_list").fetchall()
    path = next((row[2] for row in rows if row[1] == "main"), "")
    return Path(path) if path else None


def _config(graph: CompiledStateGraph, thread_id: str) -> dict[str, Any]:
    if not isinstance(thread_id, str) or not thread_id or len(thread_id) > 200:
        raise InvalidInputError("thread_id must be a non-empty string of at most 200 characters")
    if graph.checkpointer is None:
        raise ThreadStateError("the graph has no checkpointer: compile it with one to keep threads")
    return {"configurable": {"thread_id": thread_id}}


@contextlib.contextmanager
def thread_lock(graph: CompiledStateGraph, thread_id: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive use of one thread: in this process, and across processes sharing a SQLite file
    or a Postgres database."""
    key = (id(graph.checkpointer), thread_id)
    with _registry_lock:
        local = _thread_locks.setdefault(key, threading.Lock())
    if not local.acquire(timeout=timeout):
        raise ThreadStateError(f"thread {thread_id!r} is busy in this process")
    try:
        db = _sqlite_file(graph.checkpointer)
        if db is None:
            with postgres_thread_lock(graph.checkpointer, thread_id, timeout, busy=ThreadStateError):
                yield
            return
        folder = db.with_name(db.name + ".locks")
        folder.mkdir(exist_ok=True)
        name = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        with open(folder / f"{name}.lock", "a+b") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ThreadStateError(f"thread {thread_id!r} is busy in another process") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        local.release()


# --- unfinished turns -------------------------------------------------------------------------


def _finish(graph: CompiledStateGraph, config: dict[str, Any], context: Context | None) -> dict[str, Any] | None:
    """Run the rest of a started turn (the caller holds the thread lock)."""
    state = graph.get_state(config)
    # A step whose writes were saved but whose next checkpoint was not (a crash in between)
    # shows no ``next``, only its task with a result: ``invoke(None)`` applies them and goes on.
    if state.interrupts or not (state.next or state.tasks):
        return None
    try:
        return graph.invoke(None, config, context=context, durability="sync")
    except InvalidUpdateError:
        if state.next != ("__start__",):
            raise
        # A non-dict input reached the graph directly and was checkpointed: drop it. Intake then
        # finds no new input, refuses, and takes any open turn up again.
        graph.update_state(config, None, as_node="__start__")
        return graph.invoke(None, config, context=context, durability="sync")


def finish_unfinished(graph: CompiledStateGraph, thread_id: str, *, context: Context | None = None) -> dict[str, Any] | None:
    """Finish a turn that was accepted but not finished (a crash); None when there is none."""
    config = _config(graph, thread_id)
    with thread_lock(graph, thread_id):
        return _finish(graph, config, context)


def pending_question(graph: CompiledStateGraph, thread_id: str) -> dict[str, Any] | None:
    """The interrupt payload a human must answer on this thread, if any."""
    state = graph.get_state(_config(graph, thread_id))
    return state.interrupts[0].value if state.interrupts else None


# --- new input --------------------------------------------------------------------------------


def _input_keys(graph: CompiledStateGraph) -> frozenset[str]:
    schema = graph.builder.input_schema
    return frozenset(getattr(schema, "__required_keys__", set()) | getattr(schema, "__optional_keys__", set()))


def _repaired(value: Any) -> Any:
    """Every string through the project's one cleaner: lone surrogates above all, which the
    checkpointers cannot serialise, and LangGraph checkpoints the raw input before any node runs."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {_repaired(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_repaired(v) for v in value]
    return value


def _send(graph: CompiledStateGraph, thread_id: str, payload: dict[str, Any], context: Context | None) -> dict[str, Any]:
    config = _config(graph, thread_id)
    if extra := set(payload) - _input_keys(graph):
        refused = sorted(clean_text(str(k)) for k in extra)
        raise InvalidInputError(f"only {sorted(_input_keys(graph))} may be sent; refused: {refused}")
    payload = _repaired(payload)
    with thread_lock(graph, thread_id):
        _finish(graph, config, context)
        state = graph.get_state(config)
        if state.interrupts:
            raise ThreadStateError(
                f"a human must answer this thread first ({state.interrupts[0].value.get('type')}); "
                "use resume(graph, thread_id, answer)"
            )
        result = graph.invoke(payload, config, context=context, durability="sync")
    if result.get("error"):
        raise InvalidInputError(result["error"])
    return result


def send_message(
    graph: CompiledStateGraph, thread_id: str, text: str, *, locale: str | None = None, context: Context | None = None
) -> dict[str, Any]:
    """Send the person's new message to a counseling thread; returns the graph's output."""
    checked_text(text)  # the graph checks again, with the model's token limit
    if locale is not None and (not isinstance(locale, str) or len(locale) > MAX_LOCALE_CHARS):
        raise InvalidInputError(f"locale must be a string of at most {MAX_LOCALE_CHARS} characters, like 'en-GB'")
    payload: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    if locale is not None:
        payload["locale"] = locale
    return _send(graph, thread_id, payload, context)


def send_review(
    graph: CompiledStateGraph, thread_id: str, review: Mapping[str, Any] | str, *, context: Context | None = None
) -> dict[str, Any]:
    """Send a new review to a customer-service thread; returns the graph's output."""
    if not isinstance(review, (Mapping, str)):
        raise InvalidInputError(f"the review must be an object with a 'text', got {type(review).__name__}")
    return _send(graph, thread_id, {"review": dict(review) if isinstance(review, Mapping) else review}, context)


def send_input(graph: CompiledStateGraph, thread_id: str, payload: Any, *, context: Context | None = None) -> dict[str, Any]:
    """Send a raw input dict (as an HTTP body would); keys outside the input schema are refused."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError(f"the input must be an object, got {type(payload).__name__}")
    return _send(graph, thread_id, dict(payload), context)


# --- the human's answer -----------------------------------------------------------------------


def resume(graph: CompiledStateGraph, thread_id: str, answer: Any, *, context: Context | None = None) -> dict[str, Any]:
    """Answer the pending question; a refused answer raises and the question stays pending."""
    config = _config(graph, thread_id)
    if answer is None:
        raise InvalidInputError("a resume needs an answer, got None")
    with thread_lock(graph, thread_id):
        _finish(graph, config, context)
        state = graph.get_state(config)
        if not state.interrupts:
            raise ThreadStateError("nothing on this thread is waiting for an answer")
        question = state.interrupts[0].value
        kind = question.get("type") if isinstance(question, dict) else None
        if kind == "counselor_escalation":
            value: Any = parse_counselor_answer(answer).model_dump()
        elif kind == "review_approval":
            parsed = parse_approval(answer)
            if parsed.action == "approve" and (question.get("policy_check") or {}).get("block"):
                raise InvalidInputError("the draft failed the policy check; edit it or reject it")
            value = parsed.model_dump()
        else:
            raise ThreadStateError(f"unknown question type {kind!r}")
        result = graph.invoke(Command(resume=value), config, context=context, durability="sync")
    refused = [i.value.get("error") for i in result.get("__interrupt__", []) if isinstance(i.value, dict) and i.value.get("error")]
    if refused:
        raise InvalidInputError(refused[0])
    return result
