"""``persona-agents chat``: an interactive session with an agent, persisted in SQLite or Postgres.

Kill the process at any point; the same ``--thread`` resumes with nothing lost: a turn the
checkpoint shows as started but not finished is finished first (screened, answered or handed
to the human), and an escalation still waiting for the human is asked again. Every call goes
through ``graphs.threads``, which validates it and serialises writers on the thread, also
across processes sharing the database.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from langgraph.checkpoint.base import BaseCheckpointSaver

from domains.schema import DOMAINS
from domains.text import InvalidInputError
from graphs import threads
from graphs.persistence import describe_db, open_checkpointer
from persona_agents.config import home_dir


def default_db() -> Path:
    return home_dir() / "chat.sqlite"


def build_agent(domain: str, saver: BaseCheckpointSaver) -> Any:
    if domain == "counseling":
        from graphs.counseling import make_counseling_graph

        return make_counseling_graph(checkpointer=saver)
    from graphs.customer_service import make_customer_service_graph

    return make_customer_service_graph(checkpointer=saver)


def send_line(domain: str, agent: Any, thread: str, line: str) -> dict[str, Any]:
    if domain == "counseling":
        return threads.send_message(agent, thread, line)
    # a review: a JSON object, or plain text without a rating
    return threads.send_review(agent, thread, line if line.lstrip().startswith("{") else {"text": line})


def _print_turn(result: dict[str, Any], out: TextIO) -> None:
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
        back = read("hand the conversation back to the agent? [y/N]> ").strip().lower() in {"y", "yes"}
        return {"message": message, "return_to_agent": back}
    print(f"  category: {payload['analysis']['screen']['category']}; policy check: {payload['policy_check']}", file=out)
    print(f"  draft: {payload['draft']}", file=out)
    action = read("action [approve/edit/reject]> ").strip().lower()
    if action == "edit":
        return {"action": action, "reply": read("reply to publish> ")}
    return {"action": action}


def _show(result: dict[str, Any] | None, out: TextIO) -> None:
    if not result:
        return
    _print_turn(result, out)
    reply = _last_reply(result)
    if reply:
        print(reply, file=out, flush=True)


def run_chat(domain: str, thread: str, db: Path | str, *, show_history: bool = True, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """``db``: a SQLite file or a ``postgresql://`` URL (``graphs.persistence.open_checkpointer``)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; use {' or '.join(DOMAINS)}")

    def read(prompt: str) -> str:
        print(prompt, end="", file=out, flush=True)
        line = stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    with open_checkpointer(db) as saver:
        agent = build_agent(domain, saver)
        config = {"configurable": {"thread_id": thread}}
        history = agent.get_state(config).values.get("messages", [])
        print(f"{domain} agent, thread {thread!r} in {describe_db(db)} ({len(history)} messages so far). Ctrl-D to leave.", file=out)
        if show_history:
            for message in history:
                who = "you" if message.type == "human" else (message.name or "agent")
                print(f"{who}> {message.content}", file=out)
        finished = threads.finish_unfinished(agent, thread)  # a turn a crash cut short
        if finished is not None:
            print("  [finished the turn that was interrupted]", file=out)
            _show(finished, out)
        try:
            while True:
                pending = threads.pending_question(agent, thread)
                try:
                    if pending is not None:
                        result = threads.resume(agent, thread, _ask_operator(domain, pending, read, out))
                    else:
                        line = read("you> ")
                        if line.strip() in {"/quit", "/exit"}:
                            break
                        result = send_line(domain, agent, thread, line)
                except InvalidInputError as exc:
                    print(f"! {'answer' if pending is not None else 'input'} rejected: {exc}", file=out)
                    continue
                _show(result, out)
        except (EOFError, KeyboardInterrupt):
            print("", file=out)
    return 0
