"""``persona-agents chat``: an interactive session with an agent, persisted in SQLite.

Kill the process at any point; the same ``--thread`` resumes with nothing lost, including an
escalation that is still waiting for the human.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from persona_agents.config import home_dir

DOMAINS = ("counseling", "customer_service")


def default_db() -> Path:
    return home_dir() / "chat.sqlite"


def build_agent(domain: str, saver: SqliteSaver) -> Any:
    if domain == "counseling":
        from graphs.counseling import make_counseling_graph

        return make_counseling_graph(checkpointer=saver)
    from graphs.customer_service import make_customer_service_graph

    return make_customer_service_graph(checkpointer=saver)


def user_input(domain: str, line: str) -> dict[str, Any]:
    if domain == "counseling":
        return {"messages": [{"role": "user", "content": line}]}
    # a review: a JSON object, or plain text without a rating
    return {"review": line if line.lstrip().startswith("{") else {"text": line}}


def _print_turn(result: dict[str, Any], out: TextIO) -> None:
    if result.get("error"):
        print(f"! input rejected: {result['error']}", file=out)
        return
    persona = result.get("persona") or {}
    if persona.get("top_traits"):
        print(f"  [persona: {', '.join(persona['top_traits'])} ({persona.get('source')})]", file=out)
    risk = result.get("risk") or {}
    if risk.get("raised"):
        print(f"  [risk on this conversation: {risk.get('category')} since turn {risk.get('raised_at_turn')}]", file=out)
    if result.get("escalated"):
        print(f"  [escalated: {result['analysis']['screen']['category']}]", file=out)


def _last_reply(result: dict[str, Any]) -> str | None:
    messages = result.get("messages") or []
    if messages and messages[-1].type == "ai":
        return f"{messages[-1].name or 'agent'}> {messages[-1].content}"
    return None


def _ask_operator(domain: str, payload: dict[str, Any], read: Any, out: TextIO) -> Any:
    print("\n=== ESCALATION: waiting for a human ===", file=out)
    if payload.get("error"):
        print(f"  (previous answer refused: {payload['error']})", file=out)
    if domain == "counseling":
        print(f"  risk: {payload.get('risk_category')} (score {payload.get('score')})", file=out)
        for reason in payload.get("evidence", [])[:3]:
            print(f"  evidence: {reason}", file=out)
        message = read("counselor (you, as the human)> ")
        back = read("hand the conversation back to the agent? [y/N]> ").strip().lower() == "y"
        return {"message": message, "return_to_agent": back}
    print(f"  category: {payload['analysis']['screen']['category']}; policy check: {payload['policy_check']}", file=out)
    print(f"  draft: {payload['draft']}", file=out)
    action = read("action [approve/edit/reject]> ").strip().lower()
    reply = read("reply to publish> ") if action == "edit" else ""
    return {"action": action, "reply": reply}


def run_chat(domain: str, thread: str, db: Path, *, show_history: bool = True, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; use {' or '.join(DOMAINS)}")
    db.parent.mkdir(parents=True, exist_ok=True)

    def read(prompt: str) -> str:
        print(prompt, end="", file=out, flush=True)
        line = stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    with sqlite3.connect(str(db), check_same_thread=False) as connection:
        agent = build_agent(domain, SqliteSaver(connection))
        config = {"configurable": {"thread_id": thread}}
        state = agent.get_state(config)
        history = state.values.get("messages", [])
        print(f"{domain} agent, thread {thread!r} in {db} ({len(history)} messages so far). Ctrl-D to leave.", file=out)
        if show_history:
            for message in history:
                who = "you" if message.type == "human" else (message.name or "agent")
                print(f"{who}> {message.content}", file=out)
        try:
            pending = [i.value for i in state.interrupts] if state.interrupts else []
            while True:
                if pending:
                    answer = _ask_operator(domain, pending[0], read, out)
                    result = agent.invoke(Command(resume=answer), config)
                else:
                    line = read("you> ")
                    if line.strip() in {"/quit", "/exit"}:
                        break
                    result = agent.invoke(user_input(domain, line), config)
                _print_turn(result, out)
                reply = _last_reply(result)
                if reply and not result.get("error"):
                    print(reply, file=out, flush=True)
                pending = [i.value for i in result.get("__interrupt__", [])]
        except (EOFError, KeyboardInterrupt):
            print("", file=out)
    return 0


def run_screen(domain: str, message: str, rating: int | None, as_json: bool) -> int:
    from domains.screening import screen_message

    result = screen_message(domain, message, rating=rating)
    if as_json:
        print(json.dumps(result.model_dump()))
    else:
        verdict = "ESCALATE" if result.escalate else "ok"
        print(f"{verdict}  category={result.category}  score={result.score:.2f}")
        for reason in result.reasons:
            print(f"  - {reason}")
    return 0


def run_check_output(domain: str, message: str, as_json: bool) -> int:
    from domains.output_check import check_output

    result = check_output(domain, message)
    if as_json:
        print(json.dumps(result.model_dump()))
    else:
        print(f"{'BLOCK' if result.block else 'allow'}  category={result.category}")
        for reason in result.reasons:
            print(f"  - {reason}")
    return 0
