"""Both agents on the real default model (ChatPersonaFuse: SmolLM2-135M + the shipped bundle).

The graphs are built without a model, so they use their own default (``graphs.model.default_model``);
only the reply length is cut to keep the run short on a CPU. The chat CLI is driven as a real
process, killed with SIGKILL while an escalation waits for the human, and started again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import graphs.model
from domains.schema import crisis_reply, load_pack
from graphs.counseling import make_counseling_graph
from graphs.customer_service import make_customer_service_graph
from persona_agents.chat_model import ChatPersonaFuse

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 24
CRISIS = "I want to kill myself tonight"
COUNSELOR = "This is Sam, a counselor. I'm here with you now."
ESCALATION_PROMPT = "counselor (you, as the human)> "
WAIT = 150.0


@pytest.fixture
def short_default_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ChatPersonaFuse]]:
    """The graphs' default model with shorter replies; records each model the graphs create."""
    made: list[ChatPersonaFuse] = []
    original = graphs.model.default_model

    def default_model() -> ChatPersonaFuse:
        model = original().model_copy(update={"max_tokens": MAX_TOKENS})
        made.append(model)
        return model

    monkeypatch.setattr(graphs.model, "default_model", default_model)
    yield made


def test_counseling_turn_end_to_end(short_default_model: list[ChatPersonaFuse]) -> None:
    graph = make_counseling_graph(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "it-counseling"}}
    result = graph.invoke({"messages": ["I had a rough day at work"]}, cfg)
    assert len(short_default_model) == 1
    assert short_default_model[0].get_engine().model_name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "__interrupt__" not in result and result["error"] is None
    reply = result["messages"][-1]
    assert reply.type == "ai" and str(reply.content).strip()
    steps = [(d["node"], d["decision"]) for d in result["decisions"]]
    assert steps[:4] == [("intake", "accepted"), ("screen", "no_risk"), ("route", "router"), ("generate", "draft")]
    assert steps[-1][0] == "respond"
    persona = result["persona"]
    assert sum(persona["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(persona["weights"]) == 10 and persona["top_traits"]
    assert sum(reply.response_metadata["persona"]["weights"].values()) == pytest.approx(1.0, abs=1e-5)


def test_counseling_crisis_interrupts_and_resumes(short_default_model: list[ChatPersonaFuse]) -> None:
    graph = make_counseling_graph(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "it-crisis"}}
    result = graph.invoke({"messages": [CRISIS], "locale": "en-GB"}, cfg)
    assert short_default_model == []  # the model was never even created
    assert result["messages"][-1].content == crisis_reply(load_pack("counseling"), "en-GB")
    assert result["__interrupt__"][0].value["type"] == "counselor_escalation"
    result = graph.invoke(Command(resume=COUNSELOR), cfg)
    assert result["messages"][-1].content == COUNSELOR
    assert result["messages"][-1].name == "human_counselor"
    assert graph.get_state(cfg).next == ()


def test_customer_service_flagged_review_awaits_approval(short_default_model: list[ChatPersonaFuse]) -> None:
    graph = make_customer_service_graph(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "it-review"}}
    review = {"text": "the heater caught fire and burned my arm", "rating": 1, "product": "Space heater"}
    result = graph.invoke({"review": review}, cfg)
    assert len(short_default_model) == 1
    payload = result["__interrupt__"][0].value
    assert payload["type"] == "review_approval"
    assert payload["analysis"]["screen"]["category"] == "product_safety_injury"
    draft = payload["draft"]
    assert draft.strip()
    assert graph.get_state(cfg).next == ("approval",)
    assert result["final_reply"] == ""
    if payload["policy_check"]["block"]:  # a draft that failed the policy check cannot be approved
        result = graph.invoke(Command(resume="approve"), cfg)
        assert "failed the policy check" in result["__interrupt__"][0].value["error"]
        edited = "We're very sorry. Our safety team will contact you today."
        result = graph.invoke(Command(resume={"action": "edit", "reply": edited}), cfg)
        assert result["final_reply"] == edited
    else:
        result = graph.invoke(Command(resume="approve"), cfg)
        assert result["final_reply"] == draft
        assert result["approval"]["action"] == "approve"
    assert result["messages"][-1].content == result["final_reply"]
    assert graph.get_state(cfg).next == ()


# --- the CLI as a real process --------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_AGENTS_") or k == "PERSONA_AGENTS_HOME"}
    env["PERSONA_AGENTS_DEVICE"] = "cpu"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Chat:
    """``persona-agents chat`` in a child process; stdout is collected by a reader thread."""

    def __init__(self, db: Path, thread: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphs.apps.cli", "chat", "--domain", "counseling", "--thread", thread, "--db", str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=cli_env(),
        )
        self._out = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            with self._lock:
                self._out.extend(chunk)

    @property
    def output(self) -> str:
        with self._lock:
            return self._out.decode("utf-8", "replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output
            if out.count(text) >= count:
                return out
            if self.proc.poll() is not None:
                self._reader.join(5)
                if self.output.count(text) >= count:
                    return self.output
                stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
                pytest.fail(f"chat exited ({self.proc.returncode}) before {text!r}:\n{self.output}\n{stderr}")
            time.sleep(0.1)
        pytest.fail(f"no {text!r} within {timeout}s:\n{self.output}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def test_chat_killed_during_escalation_resumes(tmp_path: Path) -> None:
    db = tmp_path / "chat.sqlite"
    reply = crisis_reply(load_pack("counseling"))
    first = Chat(db, "k1")
    try:
        first.wait_for("you> ")
        first.send(CRISIS)
        out = first.wait_for(ESCALATION_PROMPT)
        assert f"crisis_protocol> {reply}" in out
        assert "risk: suicidal_ideation" in out
        first.proc.kill()  # SIGKILL: no chance to clean up
        assert first.proc.wait(10) == -9
    finally:
        first.close()

    second = Chat(db, "k1")
    try:
        out = second.wait_for(ESCALATION_PROMPT)
        assert "(2 messages so far)" in out
        assert f"you> {CRISIS}\n" in out
        assert f"crisis_protocol> {reply}\n" in out
        assert out.index("crisis_protocol>") < out.index("=== ESCALATION: waiting for a human ===")
        second.send(COUNSELOR)
        second.wait_for("hand the conversation back to the agent? [y/N]> ")
        second.send("n")
        out = second.wait_for(f"human_counselor> {COUNSELOR}")
        second.wait_for("you> ", count=1)
        assert second.proc.stdin is not None
        second.proc.stdin.close()  # Ctrl-D
        assert second.proc.wait(30) == 0
    finally:
        second.close()

    third = Chat(db, "k1")  # and it is all still there
    try:
        out = third.wait_for("you> ")
        assert "(3 messages so far)" in out and f"human_counselor> {COUNSELOR}\n" in out
        assert "ESCALATION" not in out
    finally:
        third.close()


def run_cli(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "graphs.apps.cli", *args], capture_output=True, text=True, timeout=WAIT, env=cli_env(), cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_screen_and_check_output_print_json() -> None:
    screen = run_cli("screen", "--domain", "counseling", "--message", CRISIS, "--json")
    assert set(screen) == {"escalate", "category", "score", "reasons", "layer"}
    assert screen["escalate"] is True and screen["category"] == "suicidal_ideation"
    check = run_cli("check-output", "--domain", "counseling", "--message", "Just double your dose tonight.", "--json")
    assert set(check) == {"block", "category", "reasons", "layer"}
    assert check["block"] is True and check["category"] == "medication_advice"
