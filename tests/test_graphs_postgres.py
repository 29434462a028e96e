"""The agents' threads on a real PostgreSQL server, across processes.

Each step runs in a process of its own (tests/postgres_driver.py, tests/crash_driver.py: the real
graphs and screen, a fake chat model); this process only reads the thread back or takes the next
step. The server is the session's private one (``postgres_url``, tests/conftest.py).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from domains.schema import crisis_reply, load_pack
from graphs import threads
from graphs.apps import chat as chat_cli
from graphs.counseling import make_counseling_graph
from graphs.customer_service import make_customer_service_graph
from graphs.persistence import describe_db, open_checkpointer
from tests.fakes import Replies

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "postgres_driver.py"
CRASH_DRIVER = ROOT / "tests" / "crash_driver.py"
CRISIS = "I want to kill myself tonight"
COUNSELOR = "This is Sam from the support team. I'm here with you now. Are you safe right now?"
CRISIS_REPLY = crisis_reply(load_pack("counseling"))
DRIVER_REPLY = "I'm listening. Tell me more."  # crash_driver's canned reply
FLAGGED_DRAFT = "We will refund you in full and send a $50 voucher"

pytestmark = pytest.mark.postgres


def thread_id(name: str) -> str:
    return f"{name}-{uuid.uuid4()}"  # the server is shared by the session


def step(mode: str, action: str, domain: str, db: str, thread: str, payload: Any, replies: list[str] | None = None) -> dict[str, Any]:
    """One step in a new process; returns the thread's state it printed."""
    done = subprocess.run(
        [sys.executable, str(DRIVER), mode, action, domain, db, thread, json.dumps(payload)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DRIVER_REPLIES": json.dumps(replies or [])},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pid"] != os.getpid()
    return result


def read_state(db: str, thread: str, domain: str = "counseling") -> Any:
    """The thread as a third process (this one) sees it on the server."""
    with open_checkpointer(db) as saver:
        make = make_counseling_graph if domain == "counseling" else make_customer_service_graph
        graph = make(GenericFakeChatModel(messages=Replies()), saver)
        return graph.get_state({"configurable": {"thread_id": thread}})


def assert_waiting_for_counselor(state: Any) -> None:
    assert state.next == ("escalate",)
    question = state.interrupts[0].value
    assert question["type"] == "counselor_escalation" and question["risk_category"] == "suicidal_ideation"
    assert question["new_risk_this_turn"] is True
    values = state.values
    assert [(m.type, m.name, m.content) for m in values["messages"]] == [("human", None, CRISIS), ("ai", "crisis_protocol", CRISIS_REPLY)]
    assert values["handoff"] == "human" and values["risk"]["raised"] is True
    assert values["risk"]["category"] == "suicidal_ideation" and values["risk"]["raised_at_turn"] == 1


def assert_counselor_answered(result: dict[str, Any]) -> None:
    assert result["next"] == [] and result["interrupts"] == []
    assert result["messages"] == [
        ["human", None, CRISIS],
        ["ai", "crisis_protocol", CRISIS_REPLY],
        ["ai", "human_counselor", COUNSELOR],
    ]
    assert result["handoff"] == "human"  # the human keeps the conversation (return_to_agent False)
    assert result["risk"]["raised"] is True and result["risk"]["category"] == "suicidal_ideation"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_crisis_turn_escalated_in_one_process_is_answered_in_another(postgres_url: str, mode: str) -> None:
    """sync: graphs.threads on PostgresSaver; async: astream / ainvoke on AsyncPostgresSaver."""
    thread = thread_id(f"crisis-{mode}")
    sent = step(mode, "send", "counseling", postgres_url, thread, CRISIS)  # no model reply is canned
    assert sent["next"] == ["escalate"] and sent["interrupts"][0]["type"] == "counselor_escalation"
    if mode == "async":
        assert sent["streamed_nodes"] == ["intake", "screen", "crisis_reply", "__interrupt__"]
    assert_waiting_for_counselor(read_state(postgres_url, thread))  # and a third process sees it

    answered = step(mode, "resume", "counseling", postgres_url, thread, {"message": COUNSELOR, "return_to_agent": False})
    assert_counselor_answered(answered)

    # The thread keeps the crisis: the next harmless line goes to the human again, not the model.
    with open_checkpointer(postgres_url) as saver:
        graph = make_counseling_graph(GenericFakeChatModel(messages=Replies()), saver)
        out = threads.send_message(graph, thread, "ok. work was long today")
        assert out["__interrupt__"][0].value["type"] == "counselor_escalation"
        assert out["__interrupt__"][0].value["new_risk_this_turn"] is False
        assert out["risk"]["raised"] is True and out["turn"] == 2
        with pytest.raises(threads.ThreadStateError):  # and nothing skips the counselor
            threads.send_message(graph, thread, "hello?")


def test_review_approval_persisted_and_resumed_in_another_process(postgres_url: str) -> None:
    """Drafted and held for approval in a process of its own; approved (edited) in this one."""
    thread = thread_id("review")
    review = {"text": "My order arrived late and cold", "rating": 2}
    sent = step("sync", "send", "customer_service", postgres_url, thread, review, replies=[FLAGGED_DRAFT])
    assert sent["next"] == ["approval"]
    question = sent["interrupts"][0]
    assert question["type"] == "review_approval" and question["draft"] == FLAGGED_DRAFT
    assert question["policy_check"]["block"] is True and question["policy_check"]["category"] == "unauthorised_compensation"

    edited = "Sorry about the wait. Please contact us so we can make it right."
    with open_checkpointer(postgres_url) as saver:
        graph = make_customer_service_graph(GenericFakeChatModel(messages=Replies()), saver)
        assert threads.pending_question(graph, thread)["draft"] == FLAGGED_DRAFT
        with pytest.raises(threads.InvalidInputError, match="failed the policy check"):
            threads.resume(graph, thread, "approve")  # refused; still pending
        out = threads.resume(graph, thread, {"action": "edit", "reply": edited})
    assert out["final_reply"] == edited and out["approval"]["action"] == "edit"
    state = read_state(postgres_url, thread, "customer_service")
    assert state.next == () and state.values["messages"][-1].content == edited
    assert all(FLAGGED_DRAFT not in str(m.content) for m in state.values["messages"])


def test_crisis_turn_killed_during_screening_is_finished_on_restart(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 mid-turn on Postgres; the chat CLI on the same URL in this process finishes it."""
    thread = thread_id("killed")
    crashed = subprocess.run(
        [sys.executable, str(CRASH_DRIVER), "counseling", postgres_url, thread, "screen"],
        input=f"{CRISIS}\n", capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert "crisis_protocol>" not in crashed.stdout
    assert read_state(postgres_url, thread).next == ("screen",)  # accepted, not yet screened

    model = GenericFakeChatModel(messages=itertools.repeat(DRIVER_REPLY))
    monkeypatch.setattr(chat_cli, "build_agent", lambda domain, saver: make_counseling_graph(model, saver))
    out = io.StringIO()
    assert chat_cli.run_chat("counseling", thread, postgres_url, show_history=False, stdin=io.StringIO(""), out=out) == 0
    text = out.getvalue()
    assert "[finished the turn that was interrupted]" in text and "=== ESCALATION: waiting for a human ===" in text
    assert_waiting_for_counselor(read_state(postgres_url, thread))  # 0 lost, 0 duplicated


def test_two_processes_on_one_thread_are_serialised_by_the_server(postgres_url: str) -> None:
    """Without the advisory lock the second writer finds the first's turn open and is refused."""
    thread = thread_id("race")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CRASH_DRIVER_SLOW": "1.5"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(CRASH_DRIVER), "counseling", postgres_url, thread],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        )
        for _ in range(2)
    ]
    for proc in procs:  # both connected and waiting for input: now send both lines at once
        banner = proc.stdout.readline()  # type: ignore[union-attr]
        assert "messages so far" in banner, (banner, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
    for proc, line in zip(procs, ["first writer", "second writer"]):
        proc.stdin.write(f"{line}\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1000:] for o in outputs]
    assert not any("rejected" in o[0] for o in outputs), [o[0] for o in outputs]
    values = read_state(postgres_url, thread).values
    pairs = [(m.type, m.content) for m in values["messages"]]
    assert sorted(c for t, c in pairs if t == "human") == ["first writer", "second writer"]
    assert [t for t, _ in pairs] == ["human", "ai", "human", "ai"]
    assert values["turn"] == 2


def test_chat_cli_on_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`persona-agents chat --db postgresql://...`: escalate, answer as the human, resume later."""
    canned = Replies()

    def build_agent(domain: str, saver: Any) -> Any:
        return make_counseling_graph(GenericFakeChatModel(messages=canned), saver)

    monkeypatch.setattr(chat_cli, "build_agent", build_agent)
    thread = thread_id("cli")

    def chat(lines: list[str]) -> str:
        out = io.StringIO()
        stdin = io.StringIO("".join(f"{line}\n" for line in lines))
        assert chat_cli.run_chat("counseling", thread, postgres_url, stdin=stdin, out=out) == 0
        return out.getvalue()

    out = chat([CRISIS])  # stdin ends at the counselor's prompt
    assert "(0 messages so far)" in out and f"in {describe_db(postgres_url)}" in out
    assert f"crisis_protocol> {CRISIS_REPLY}" in out and out.count("=== ESCALATION") == 1
    out = chat([COUNSELOR, "n"])  # a new session: the escalation is asked again
    assert "(2 messages so far)" in out
    assert f"human_counselor> {COUNSELOR}" in out
    assert "[risk on this conversation: suicidal_ideation since turn 1]" in out
    out = chat([])
    assert "(3 messages so far)" in out and "ESCALATION" not in out
    assert canned.calls == 0


def test_chat_command_names_an_unreachable_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from graphs.apps.cli import main
    from persona_agents.cli import EXIT_BAD_INPUT

    url = f"postgresql://alice:s3cret@/agents?host={tmp_path}"  # no server on that socket
    assert main(["chat", "--domain", "counseling", "--db", url]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("persona-agents: error: --db cannot connect to postgresql://alice:***@/agents"), err
    assert "s3cret" not in err and "Traceback" not in err
    assert main(["chat", "--domain", "counseling", "--db", "mysql://root@db/agents"]) == EXIT_BAD_INPUT
    assert "unknown database scheme 'mysql://'" in capsys.readouterr().err


def test_a_returning_person_is_screened_with_last_threads_crisis_in_mind(postgres_url: str) -> None:
    """Thread one: a crisis, remembered in the PostgresStore. Thread two, on fresh connections (as
    a new process would open them): a warning sign that alone would pass escalates for that person
    only."""
    from graphs.context import Context
    from graphs.persistence import open_store

    sudden_calm = "I feel much calmer now"  # a warning sign after a crisis; alone far below the threshold
    user = f"person-{uuid.uuid4().hex[:8]}"
    model = GenericFakeChatModel(messages=itertools.repeat("I'm listening."))
    with open_checkpointer(postgres_url) as saver, open_store(postgres_url) as store:
        graph = make_counseling_graph(model, saver, store=store)
        first = {"configurable": {"thread_id": thread_id("returning-1")}}
        assert "__interrupt__" in graph.invoke({"messages": ["I want to kill myself tonight"]}, first, context=Context(user_id=user))

    with open_checkpointer(postgres_url) as saver, open_store(postgres_url) as store:
        graph = make_counseling_graph(model, saver, store=store)
        again = graph.invoke({"messages": [sudden_calm]}, {"configurable": {"thread_id": thread_id("returning-2")}},
                             context=Context(user_id=user))
        stranger = graph.invoke({"messages": [sudden_calm]}, {"configurable": {"thread_id": thread_id("stranger")}},
                                context=Context(user_id=f"{user}-other"))
    assert again["__interrupt__"][0].value["type"] == "counselor_escalation"
    assert "__interrupt__" not in stranger and not stranger["risk"].get("raised")
