"""Streaming: custom events (persona, decisions) and provisional draft tokens an app can drop."""

from __future__ import annotations

import itertools
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.context import Context
from graphs.counseling import FALLBACK_REPLY, make_counseling_graph
from graphs.customer_service import make_customer_service_graph
from graphs.model import PROVISIONAL_DRAFT_TAG, STRICT_PERSONA
from tests.fakes import Replies

CLEAN = "That sounds like a really hard day. I'm here to listen if you want to tell me more."
HARMFUL = "You should stop taking your antidepressants and double your dose"
CRISIS = "I want to kill myself tonight"
_ids = itertools.count()


def thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"stream-{next(_ids)}"}}


def stream(graph: Any, payload: Any, cfg: dict[str, Any], **kwargs: Any) -> tuple[list[Any], list[tuple[Any, dict[str, Any]]]]:
    """(custom events, (message, metadata) pairs) of one run."""
    events, messages = [], []
    for mode, item in graph.stream(payload, cfg, stream_mode=["custom", "messages"], **kwargs):
        (events if mode == "custom" else messages).append(item)
    return events, messages


def shown(messages: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
    """What an app shows: every streamed message except the provisional draft's tokens."""
    return [m for m, meta in messages if PROVISIONAL_DRAFT_TAG not in (meta.get("tags") or [])]


def test_one_event_per_decision_and_one_for_the_persona() -> None:
    graph = make_counseling_graph(GenericFakeChatModel(messages=iter([CLEAN])), InMemorySaver())
    cfg = thread()
    events, _ = stream(graph, {"messages": ["I had a rough day at work"]}, cfg, context=Context(persona={"agreeableness_high": 1.0}))
    decisions = [e for e in events if e["kind"] == "decision"]
    logged = graph.get_state(cfg).values["decisions"]
    assert [{k: e[k] for k in ("turn", "node", "decision", "reason")} for e in decisions] == logged
    assert all(e["graph"] == "counseling" for e in events)
    assert [e for e in events if e["kind"] == "persona"] == [{
        "kind": "persona", "graph": "counseling", "turn": 1, "node": "route", "source": "context",
        "top_traits": ["agreeableness_high", "openness_high"], "weights": graph.get_state(cfg).values["persona"]["weights"],
    }]
    assert [e["node"] for e in decisions] == ["intake", "screen", "route", "generate", "check_output", "respond"]


def test_escalation_events_arrive_before_the_interrupt_and_after_the_resume() -> None:
    graph = make_counseling_graph(GenericFakeChatModel(messages=iter([])), InMemorySaver())
    cfg = thread()
    events, messages = stream(graph, {"messages": [CRISIS]}, cfg)
    assert [(e["node"], e["decision"]) for e in events] == [
        ("intake", "accepted"), ("screen", "crisis:suicidal_ideation"), ("crisis_reply", "sent_fixed_protocol"),
    ]
    assert [m.name for m in shown(messages)] == ["crisis_protocol"]
    events, messages = stream(graph, Command(resume={"message": "I'm here.", "return_to_agent": False}), cfg)
    assert [(e["node"], e["decision"]) for e in events] == [("escalate", "human_replied")]
    assert [(m.name, m.content) for m in shown(messages)] == [("human_counselor", "I'm here.")]


def test_provisional_tokens_are_tagged_and_only_the_checked_reply_is_shown() -> None:
    canned = Replies(HARMFUL, CLEAN)
    graph = make_counseling_graph(GenericFakeChatModel(messages=canned), InMemorySaver())
    cfg = thread()
    events, messages = stream(graph, {"messages": ["My new medication makes me feel tired all day"]}, cfg)
    drafts = [(m, meta) for m, meta in messages if meta["langgraph_node"] == "generate"]
    assert len(drafts) > 2 and all(isinstance(m, AIMessageChunk) and PROVISIONAL_DRAFT_TAG in meta["tags"] for m, meta in drafts)
    assert "antidepressants" in "".join(str(m.content) for m, _ in drafts)  # the blocked draft was streamed...
    visible = shown(messages)
    assert [(type(m), m.content) for m in visible] == [(AIMessage, CLEAN)]  # ...but only the checked one is shown
    assert visible[0].id == graph.get_state(cfg).values["messages"][-1].id
    assert ("check_output", "blocked:medication_advice") in [(e["node"], e.get("decision")) for e in events]
    strict = [e for e in events if e["kind"] == "persona"][-1]
    assert (strict["node"], strict["source"], strict["weights"]) == ("generate", "strict_override", STRICT_PERSONA.as_dict())


def test_a_fallback_reply_is_shown_when_both_drafts_are_blocked() -> None:
    graph = make_counseling_graph(GenericFakeChatModel(messages=iter([HARMFUL, "Just double your dose tonight."])), InMemorySaver())
    _, messages = stream(graph, {"messages": ["My new medication makes me feel tired all day"]}, thread())
    assert [m.content for m in shown(messages)] == [FALLBACK_REPLY]


def test_review_draft_is_provisional_until_approved() -> None:
    graph = make_customer_service_graph(GenericFakeChatModel(messages=iter(["We're so sorry to hear this."])), InMemorySaver())
    cfg = thread()
    events, messages = stream(graph, {"review": {"text": "the heater caught fire and burned my arm", "rating": 1}}, cfg)
    assert all(PROVISIONAL_DRAFT_TAG in meta["tags"] for m, meta in messages if meta["langgraph_node"] == "draft")
    assert [m for m in shown(messages) if m.type == "ai"] == []  # nothing is published while a human decides
    assert ("analyse", "escalate:product_safety_injury") in [(e["node"], e.get("decision")) for e in events]
    assert [e["kind"] for e in events].count("persona") == 1
    events, messages = stream(graph, Command(resume="reject"), cfg)
    assert [(e["node"], e["decision"]) for e in events] == [("approval", "reject"), ("finalize", "published")]
    assert [m.content for m in shown(messages)] == [graph.get_state(cfg).values["final_reply"]]
