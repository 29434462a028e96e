"""``persona-agents chat``/``screen``/``check-output`` in-process, with fake models and a tmp SQLite db."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from domains.schema import crisis_reply, load_pack
from graphs.apps import chat as chat_app
from graphs.apps.chat import run_chat
from graphs.apps.checks import run_check_output, run_screen
from tests.fakes import Replies

CRISIS = "I want to kill myself tonight"
COUNSELOR = "This is Sam from the support team. I'm here with you now."
CRISIS_REPLY = crisis_reply(load_pack("counseling"))


@pytest.fixture
def replies(monkeypatch: pytest.MonkeyPatch) -> Replies:
    """Every agent run_chat builds uses a fake model drawing from this list."""
    canned = Replies()

    def build_agent(domain: str, saver: Any) -> Any:
        model = GenericFakeChatModel(messages=canned)
        if domain == "counseling":
            from graphs.counseling import make_counseling_graph

            return make_counseling_graph(model, saver)
        from graphs.customer_service import make_customer_service_graph

        return make_customer_service_graph(model, saver)

    monkeypatch.setattr(chat_app, "build_agent", build_agent)
    return canned


def chat(domain: str, db: Path, lines: list[str], thread: str = "t1", **kwargs: Any) -> str:
    out = io.StringIO()
    assert run_chat(domain, thread, db, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), out=out, **kwargs) == 0
    return out.getvalue()


def test_crisis_then_operator_then_history_on_restart(tmp_path: Path, replies: Replies) -> None:
    db = tmp_path / "chat.sqlite"
    out = chat("counseling", db, [CRISIS, COUNSELOR, "n"])
    assert "(0 messages so far)" in out
    assert f"crisis_protocol> {CRISIS_REPLY}" in out
    assert "=== ESCALATION: waiting for a human ===" in out
    assert "risk: suicidal_ideation" in out
    assert f"human_counselor> {COUNSELOR}" in out
    assert "[risk on this conversation: suicidal_ideation since turn 1]" in out
    assert out.index("crisis_protocol>") < out.index("=== ESCALATION") < out.index("human_counselor>")
    assert replies.calls == 0

    # a new session on the same db and thread: the conversation is still there
    out = chat("counseling", db, [])
    assert "(3 messages so far)" in out
    assert f"you> {CRISIS}\n" in out
    assert f"crisis_protocol> {CRISIS_REPLY}\n" in out
    assert f"human_counselor> {COUNSELOR}\n" in out
    assert "ESCALATION" not in out  # nothing is pending any more
    assert out.rstrip().endswith("you>")

    # --quiet does not print the history; another thread is empty
    assert "human_counselor>" not in chat("counseling", db, [], show_history=False)
    assert "(0 messages so far)" in chat("counseling", db, [], thread="other")


def test_pending_escalation_survives_a_restart(tmp_path: Path, replies: Replies) -> None:
    db = tmp_path / "chat.sqlite"
    out = chat("counseling", db, [CRISIS])  # stdin ends at the counselor prompt
    assert out.count("=== ESCALATION") == 1
    assert "human_counselor>" not in out

    out = chat("counseling", db, [COUNSELOR, "y"])
    assert "(2 messages so far)" in out
    assert out.index(f"crisis_protocol> {CRISIS_REPLY}") < out.index("=== ESCALATION")
    assert f"human_counselor> {COUNSELOR}" in out

    with sqlite3.connect(str(db)) as connection:  # persisted in the file, not only in memory
        assert connection.execute("select count(*) from checkpoints where thread_id = 't1'").fetchone()[0] > 0


def test_empty_operator_answer_is_refused_and_asked_again(tmp_path: Path, replies: Replies) -> None:
    out = chat("counseling", tmp_path / "c.sqlite", [CRISIS, "", "n", COUNSELOR, "n"])
    assert out.count("=== ESCALATION") == 2
    assert "! answer rejected: message: the counselor's message is empty or whitespace only" in out
    assert f"human_counselor> {COUNSELOR}" in out


def test_normal_turn_and_rejected_input(tmp_path: Path, replies: Replies) -> None:
    replies.replies = ["That sounds like a long day. What happened?"]
    out = chat("counseling", tmp_path / "c.sqlite", ["   ", "I had a rough day at work"])
    assert "! input rejected: the message is empty or whitespace only" in out
    assert "agent> That sounds like a long day. What happened?" in out
    assert replies.calls == 1


def test_customer_service_flagged_draft_needs_an_edit(tmp_path: Path, replies: Replies) -> None:
    replies.replies = ["We will refund you in full and send a $50 voucher"]
    review = json.dumps({"text": "My order arrived late and cold", "rating": 2})
    edited = "Sorry about the wait. Please contact us so we can make it right."
    out = chat("customer_service", tmp_path / "cs.sqlite", [review, "approve", "edit", edited])
    assert "policy check: {'block': True, 'category': 'unauthorised_compensation'" in out
    assert "! answer rejected: the draft failed the policy check; edit it or reject it" in out
    assert f"agent> {edited}" in out
    assert "agent> We will refund" not in out


def test_customer_service_plain_text_review(tmp_path: Path, replies: Replies) -> None:
    replies.replies = ["Thank you for the kind words!"]
    out = chat("customer_service", tmp_path / "cs.sqlite", ["Great coffee, friendly staff"])
    assert "agent> Thank you for the kind words!" in out
    assert "ESCALATION" not in out


def test_unknown_domain_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown domain"):
        run_chat("legal", "t", tmp_path / "x.sqlite", stdin=io.StringIO(""), out=io.StringIO())


def test_screen_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_screen("counseling", CRISIS, None, True) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"escalate", "category", "score", "reasons", "layer"}
    assert result["escalate"] is True and result["category"] == "suicidal_ideation"
    assert 0.9 <= result["score"] <= 1.0 and result["reasons"]

    assert run_screen("counseling", "this traffic is killing me", None, True) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["escalate"] is False and result["category"] == "safe"

    assert run_screen("customer_service", "the heater caught fire and burned my arm", 1, True) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["escalate"] is True and result["category"] == "product_safety_injury"


def test_screen_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    run_screen("counseling", CRISIS, None, False)
    assert capsys.readouterr().out.startswith("ESCALATE  category=suicidal_ideation")


def test_check_output_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check_output("counseling", "You should stop taking your antidepressants", True) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"block", "category", "reasons", "layer"}
    assert result["block"] is True and result["category"] == "medication_advice"
    assert run_check_output("customer_service", "Thanks for visiting!", True) == 0
    assert json.loads(capsys.readouterr().out) == {"block": False, "category": "ok", "reasons": [], "layer": "none"}


# --- argument validation (issue 13): clear errors, no tracebacks -----------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["generate", "--message", "hi", "--weights", "5"], "--weights must be a JSON object"),
        (["generate", "--message", "hi", "--weights", '"calm"'], "--weights must be a JSON object"),
        (["generate", "--message", "hi", "--weights", "[1, 2]"], "10 values"),
        (["generate", "--message", "hi", "--weights", "{not json"], "Expecting"),
        (["generate", "--message", "hi", "--device", "cuda"], "--device"),
        (["generate", "--message", "hi", "--device", "tpu"], "unknown device"),
    ],
)
@pytest.mark.parametrize("cli", ["persona_agents.cli", "graphs.apps.cli"])
def test_generate_arguments_are_checked_before_loading(
    cli: str, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    import torch

    from persona_agents.cli import EXIT_BAD_INPUT

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert importlib.import_module(cli).main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("persona-agents: error:") and expected in err
    assert "Traceback" not in err


ENGINE_COMMANDS = {"generate", "route", "train", "synth", "serve"}
APP_COMMANDS = {"demo", "chat", "screen", "check-output"}


def _commands(parser: Any) -> dict[str, Any]:
    import argparse

    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_the_console_script_is_the_full_command() -> None:
    """``persona-agents`` runs graphs.apps.cli: every engine command with the same flags, plus the apps."""
    import tomllib

    from graphs.apps import cli as app_cli
    from persona_agents import cli as engine_cli

    scripts = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"persona-agents": "graphs.apps.cli:main"}
    engine, full = _commands(engine_cli.build_parser()), _commands(app_cli.build_parser())
    assert set(engine) == ENGINE_COMMANDS and set(full) == ENGINE_COMMANDS | APP_COMMANDS
    for name in ENGINE_COMMANDS:
        assert [a.option_strings for a in full[name]._actions] == [a.option_strings for a in engine[name]._actions], name
    screen = {a.dest: a for a in full["screen"]._actions}
    assert screen["domain"].choices == ("counseling", "customer_service") and screen["domain"].required


def test_chat_db_must_be_a_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from graphs.apps.cli import main
    from persona_agents.cli import EXIT_BAD_INPUT

    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello, not a database\n")
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    for db, expected in ((tmp_path, "is a folder"), (text_file, "is not a SQLite database"), (damaged, "--db")):
        assert main(["chat", "--domain", "counseling", "--db", str(db)]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith("persona-agents: error:") and expected in err, err
    assert text_file.read_text() == "hello, not a database\n"  # left alone


def test_chat_finishes_a_turn_left_unfinished(tmp_path: Path, replies: Replies) -> None:
    """A crash left the turn after screening: the restart finishes it before asking for input."""
    import sqlite3 as sqlite

    from langgraph.checkpoint.sqlite import SqliteSaver

    from graphs.counseling import build_counseling_graph

    db = tmp_path / "c.sqlite"
    with sqlite.connect(str(db), check_same_thread=False) as connection:
        builder = build_counseling_graph(GenericFakeChatModel(messages=iter([])))
        stopped = builder.compile(checkpointer=SqliteSaver(connection), interrupt_before=["generate"])
        stopped.invoke({"messages": ["I had a rough day at work"]}, {"configurable": {"thread_id": "t1"}})
    replies.replies = ["That sounds tiring. What happened?"]
    out = chat("counseling", db, [])
    assert "[finished the turn that was interrupted]" in out
    assert "agent> That sounds tiring. What happened?" in out
    assert replies.calls == 1
    assert "(1 messages so far)" in out
