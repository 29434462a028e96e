"""kill -9 at every checkpoint of a turn, then a restart: nothing lost, nothing answered twice.

Each crash runs ``persona-agents chat`` (tests/crash_driver.py: the real CLI and the real
screen, a fake chat model) on a SQLite file in a subprocess that SIGKILLs itself at a chosen
point. The restart is the same CLI, in this process, on the same file.
"""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langgraph.checkpoint.sqlite import SqliteSaver

from graphs import threads
from graphs.apps import chat as chat_app
from graphs.counseling import make_counseling_graph

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "crash_driver.py"
CRISIS = "I want to kill myself tonight"
ORDINARY = "I had a rough day at work"
REPLY = "I'm listening. Tell me more."  # the driver's canned reply
CRISIS_CHECKPOINTS = 5  # input, after __start__, after intake, after screen, after crisis_reply


def run_driver(db: Path, lines: list[str], crash_at: str = "", thread: str = "t1", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DRIVER), "counseling", str(db), thread, crash_at],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=180,
    )


def restart(db: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str] | None = None, thread: str = "t1") -> str:
    """The chat CLI again, on the same file, with a fake model answering REPLY."""
    model = GenericFakeChatModel(messages=itertools.repeat(REPLY))
    monkeypatch.setattr(chat_app, "build_agent", lambda domain, saver: make_counseling_graph(model, saver))
    out = io.StringIO()
    stdin = io.StringIO("".join(f"{line}\n" for line in lines or []))
    assert chat_app.run_chat("counseling", thread, db, show_history=False, stdin=stdin, out=out) == 0
    return out.getvalue()


def inspect(db: Path, thread: str = "t1") -> tuple[Any, Any]:
    import sqlite3

    connection = sqlite3.connect(str(db), check_same_thread=False)
    graph = make_counseling_graph(GenericFakeChatModel(messages=iter([])), SqliteSaver(connection))
    return graph, graph.get_state({"configurable": {"thread_id": thread}})


def test_the_driver_counts_the_checkpoints_of_a_crisis_turn(tmp_path: Path) -> None:
    done = run_driver(tmp_path / "c.sqlite", [CRISIS])
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split()[1] for line in done.stderr.splitlines() if line.startswith("put ")] == [
        str(n) for n in range(1, CRISIS_CHECKPOINTS + 1)
    ]


@pytest.mark.parametrize("crash_at", [*(f"put:{n}" for n in range(1, CRISIS_CHECKPOINTS + 1)), "screen"])
def test_crisis_turn_survives_kill_9(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str) -> None:
    db = tmp_path / "c.sqlite"
    crashed = run_driver(db, [CRISIS], crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    if crash_at.startswith("put:"):  # killed by the driver, not by anything else
        assert f"SIGKILL after {crash_at.replace(':', ' ')}" in crashed.stderr, crashed.stderr[-2000:]
    assert "crisis_protocol>" not in crashed.stdout  # killed before the turn was answered

    out = restart(db, monkeypatch)  # stdin ends at the counselor's prompt
    assert "[finished the turn that was interrupted]" in out, (out, crashed.stderr[-3000:])
    assert "=== ESCALATION: waiting for a human ===" in out and "risk: suicidal_ideation" in out

    graph, state = inspect(db)
    messages = state.values["messages"]
    assert [(m.type, m.name, m.content) for m in messages][:1] == [("human", None, CRISIS)]
    assert [m.name for m in messages] == [None, "crisis_protocol"]  # 0 lost, 0 duplicated
    assert state.next == ("escalate",) and state.interrupts[0].value["type"] == "counselor_escalation"
    assert state.values["risk"]["raised"] is True
    screens = [d for d in state.values["decisions"] if d["node"] == "screen"]
    assert [d["decision"] for d in screens] == ["crisis:suicidal_ideation"]
    # the next harmless line cannot skip the counselor
    with pytest.raises(threads.ThreadStateError):
        threads.send_message(graph, "t1", "work was long today")
    assert len(graph.get_state({"configurable": {"thread_id": "t1"}}).values["messages"]) == 2


@pytest.mark.parametrize("crash_at", ["generate", "put:6"])  # put:6: the draft is checkpointed
def test_ordinary_turn_killed_during_or_after_generation_is_answered_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    db = tmp_path / "c.sqlite"
    crashed = run_driver(db, [ORDINARY], crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    out = restart(db, monkeypatch, ["work was long today"])
    assert "[finished the turn that was interrupted]" in out
    _, state = inspect(db)
    assert [(m.type, m.content) for m in state.values["messages"]] == [
        ("human", ORDINARY), ("ai", REPLY), ("human", "work was long today"), ("ai", REPLY)
    ]
    assert state.next == ()


def test_two_processes_on_one_thread_are_serialised(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    run_driver(db, [])  # create the database before the race
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CRASH_DRIVER_SLOW": "1.5"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(DRIVER), "counseling", str(db), "t1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        )
        for _ in range(2)
    ]
    for proc in procs:  # both have opened the thread and wait for input: now send both lines at once
        banner = proc.stdout.readline()  # type: ignore[union-attr]
        assert "messages so far" in banner, (banner, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
    for proc, line in zip(procs, ["first writer", "second writer"]):
        proc.stdin.write(f"{line}\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1000:] for o in outputs]
    assert not any("rejected" in o[0] for o in outputs), [o[0] for o in outputs]
    _, state = inspect(db)
    pairs = [(m.type, m.content) for m in state.values["messages"]]
    assert sorted(c for t, c in pairs if t == "human") == ["first writer", "second writer"]
    assert [t for t, _ in pairs] == ["human", "ai", "human", "ai"]
    assert [c for t, c in pairs if t == "ai"] == [REPLY, REPLY]
    assert state.values["turn"] == 2 and state.next == ()
