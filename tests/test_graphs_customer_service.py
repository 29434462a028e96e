"""The review-response graph with fake chat models: no real LLM, InMemorySaver persistence."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessageChunk
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from domains.schema import load_pack, resolve_locale
from graphs.customer_service import make_customer_service_graph
from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.config import EngineConfig
from persona_agents.engine import PersonaFuseEngine
from tests.fakes import Replies

PACK = load_pack("customer_service")
THANKS = "Thank you so much for the kind words! We're glad you enjoyed your visit."
SORRY = "We're so sorry to hear this. Our team would like to look into it with you."
REFUND = "We will refund you in full and send a $50 voucher"
INJURY = {"text": "the heater caught fire and burned my arm", "rating": 1, "product": "Space heater"}
GOOD = {"text": "Great coffee, friendly staff", "rating": 5, "business": "Bean There"}
_threads = itertools.count()


def build(*replies: str) -> tuple[Any, Replies]:
    canned = Replies(*replies)
    graph = make_customer_service_graph(GenericFakeChatModel(messages=canned), InMemorySaver())
    return graph, canned


def config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"cs-{next(_threads)}"}}


def decisions(result: dict[str, Any], turn: int) -> list[tuple[str, str]]:
    return [(d["node"], d["decision"]) for d in result["decisions"] if d["turn"] == turn]


def test_clean_five_star_review_is_published_without_a_human() -> None:
    graph, canned = build(THANKS)
    cfg = config()
    result = graph.invoke({"review": GOOD}, cfg)
    assert "__interrupt__" not in result
    assert canned.calls == 1
    assert result["final_reply"] == THANKS
    assert result["escalated"] is False
    assert result["check"]["block"] is False
    assert result["analysis"]["sentiment"] == "positive"
    assert result["accepted_review"]["locale"] == PACK.default_locale
    assert "review" not in result  # not part of the output
    assert graph.get_state(cfg).values["review"] is None  # the input is consumed
    assert decisions(result, 1) == [
        ("intake", "accepted"),
        ("analyse", "respond"),
        ("route", "none"),
        ("draft", "drafted"),
        ("policy_check", "allowed"),
        ("finalize", "published"),
    ]
    assert [m.type for m in result["messages"]] == ["human", "ai"]
    assert result["messages"][0].content == "Review (5/5 stars): Great coffee, friendly staff"
    assert result["messages"][-1].response_metadata["author"] == "agent"
    assert graph.get_state(cfg).next == ()


def test_review_as_a_json_string_is_accepted() -> None:
    graph, _ = build(THANKS)
    result = graph.invoke({"review": json.dumps(GOOD)}, config())
    assert result["final_reply"] == THANKS
    assert result["accepted_review"]["rating"] == 5


def escalated_injury(graph: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    result = graph.invoke({"review": INJURY}, cfg)
    payload = result["__interrupt__"][0].value
    assert payload["type"] == "review_approval"
    assert payload["analysis"]["screen"]["category"] == "product_safety_injury"
    assert payload["draft"] == SORRY
    assert payload["suggested_holding_reply"] == PACK.escalation_reply
    assert result["escalated"] is True
    assert result.get("final_reply") == ""
    assert graph.get_state(cfg).next == ("approval",)
    return result


def test_injury_review_escalates_and_reject_publishes_the_holding_reply() -> None:
    graph, _ = build(SORRY)
    cfg = config()
    result = escalated_injury(graph, cfg)
    assert ("analyse", "escalate:product_safety_injury") in decisions(result, 1)
    result = graph.invoke(Command(resume="reject"), cfg)
    assert "__interrupt__" not in result
    assert result["final_reply"] == PACK.escalation_reply
    assert result["approval"]["action"] == "reject"
    assert result["messages"][-1].content == PACK.escalation_reply
    assert result["messages"][-1].response_metadata["author"] == "human_approved"
    assert decisions(result, 1)[-2:] == [("approval", "reject"), ("finalize", "published")]


def test_edit_publishes_the_humans_reply() -> None:
    graph, _ = build(SORRY)
    cfg = config()
    escalated_injury(graph, cfg)
    edited = "We're very sorry. Our safety team will call you today."
    result = graph.invoke(Command(resume={"action": "edit", "reply": f"  {edited} "}), cfg)
    assert result["final_reply"] == edited
    assert result["approval"]["policy_check_of_edit"]["block"] is False
    assert result["messages"][-1].content == edited


def test_approve_a_clean_draft_of_an_escalated_review() -> None:
    graph, _ = build(SORRY)
    cfg = config()
    escalated_injury(graph, cfg)
    result = graph.invoke(Command(resume="approve"), cfg)
    assert result["final_reply"] == SORRY
    assert result["approval"]["action"] == "approve"


def test_refund_promise_is_flagged_and_cannot_be_approved() -> None:
    graph, canned = build(REFUND)
    cfg = config()
    result = graph.invoke({"review": {"text": "My order arrived late and cold", "rating": 2}}, cfg)
    assert canned.calls == 1
    assert result["escalated"] is False  # the review itself is ordinary...
    assert result["check"]["block"] is True  # ...the draft is not
    assert result["check"]["category"] == "unauthorised_compensation"
    assert ("policy_check", "blocked:unauthorised_compensation") in decisions(result, 1)
    payload = result["__interrupt__"][0].value
    assert payload["type"] == "review_approval"
    assert payload["policy_check"]["block"] is True
    assert payload["draft"] == REFUND
    # approving a draft that failed the policy check is refused: asked again
    result = graph.invoke(Command(resume="approve"), cfg)
    assert result["__interrupt__"][0].value["error"] == "the draft failed the policy check; edit it or reject it"
    assert result.get("final_reply") == ""
    result = graph.invoke(Command(resume={"action": "edit", "reply": ""}), cfg)
    assert "non-empty" in result["__interrupt__"][0].value["error"]
    result = graph.invoke(Command(resume="Approve this"), cfg)  # a stray string is never published
    assert "unknown action" in result["__interrupt__"][0].value["error"]
    result = graph.invoke(Command(resume={"action": "publish"}), cfg)
    assert "unknown action" in result["__interrupt__"][0].value["error"]
    result = graph.invoke(Command(resume={"action": "edit", "reply": "Sorry for the wait. Please contact us so we can help."}), cfg)
    assert result["final_reply"] == "Sorry for the wait. Please contact us so we can help."
    assert REFUND not in [m.content for m in result["messages"]]


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        ({"text": "Lovely stay, the staff were wonderful", "rating": 5}, PACK.thanks_reply),
        ({"text": "My order arrived late and cold", "rating": 2}, PACK.holding_reply),
    ],
)
def test_rejecting_a_blocked_draft_offers_a_reply_that_fits_the_review(review: dict[str, Any], expected: str | None) -> None:
    """A happy reviewer whose draft was blocked is thanked, not told that a senior team member will call."""
    graph, _ = build(REFUND)
    cfg = config()
    result = graph.invoke({"review": review}, cfg)
    assert result["escalated"] is False and result["check"]["block"] is True
    assert expected and expected != PACK.escalation_reply
    assert result["__interrupt__"][0].value["suggested_holding_reply"] == expected
    result = graph.invoke(Command(resume="reject"), cfg)
    assert result["final_reply"] == expected


def test_idiom_review_is_not_escalated() -> None:
    graph, _ = build(THANKS)
    result = graph.invoke({"review": {"text": "the wings nearly killed me lol, so spicy", "rating": 5}}, config())
    assert "__interrupt__" not in result
    assert result["escalated"] is False
    assert result["final_reply"] == THANKS


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        ('{"text": "great", "rating": 5', "not valid JSON"),
        ({"rating": 4}, "text"),
        ({"text": "Lovely", "rating": 9}, "rating"),
        ({"text": "Lovely", "rating": "five"}, "rating"),
        ({"text": "", "rating": 3}, "text"),
        ({"text": "a" * 100_000}, "8000"),
        ({"text": "\x00\x01\x02"}, "text"),
        ({"text": "ok", "stars": 5}, "stars"),
        (["not", "an", "object"], "object"),
        (None, "no review"),
    ],
)
def test_bad_review_is_rejected_and_the_thread_is_unchanged(review: Any, expected: str) -> None:
    graph, canned = build(THANKS, THANKS)
    cfg = config()
    graph.invoke({"review": GOOD}, cfg)
    before = graph.get_state(cfg).values
    result = graph.invoke({"review": review}, cfg)
    assert isinstance(result["error"], str) and expected in result["error"]
    assert result["decisions"][-1]["decision"] == "rejected_input"
    after = graph.get_state(cfg).values
    for key in ("messages", "turn", "final_reply", "draft", "analysis", "check", "approval", "accepted_review"):
        assert after[key] == before[key], key
    assert graph.get_state(cfg).next == ()
    assert canned.calls == 1
    result = graph.invoke({"review": {"text": "Second visit, still great", "rating": 5}}, cfg)
    assert result["error"] is None and result["turn"] == 2 and result["final_reply"] == THANKS


@pytest.mark.parametrize("locale", ["xx-YY", "gibberish!", None])
def test_unknown_locale_gets_a_sensible_default(locale: Any) -> None:
    graph, _ = build(THANKS)
    result = graph.invoke({"review": {**GOOD, "locale": locale}}, config())
    assert result["accepted_review"]["locale"] == resolve_locale(PACK, locale)
    assert result["accepted_review"]["locale"] in {PACK.default_locale, "international"}
    assert result["final_reply"] == THANKS


def test_known_locale_is_normalised() -> None:
    graph, _ = build(THANKS)
    result = graph.invoke({"review": {**GOOD, "locale": "en_gb"}}, config())
    assert result["accepted_review"]["locale"] == "en-GB"


@pytest.fixture
def roomy_tiny_engine(tiny_model: Any, tiny_tokenizer: Any, tiny_bundle: Any, fake_encoder: Any) -> Iterator[Any]:
    """The conftest tiny engine with room for the review prompt (one token per byte)."""
    engine = PersonaFuseEngine(
        tiny_model, tiny_tokenizer, tiny_bundle, fake_encoder, EngineConfig(base_model="tiny-llama", device="cpu", max_input_tokens=1536)
    )
    engine.model_name = "tiny-llama"
    yield engine
    engine.mixer.remove()


def test_draft_streams_token_by_token(roomy_tiny_engine: Any) -> None:
    graph = make_customer_service_graph(ChatPersonaFuse(engine=roomy_tiny_engine, max_tokens=8), InMemorySaver())
    chunks = [
        chunk
        for chunk, meta in graph.stream({"review": GOOD}, config(), stream_mode="messages")
        if meta.get("langgraph_node") == "draft" and isinstance(chunk, AIMessageChunk)
    ]
    assert len(chunks) > 1


def test_bad_review_while_awaiting_approval_keeps_the_approval() -> None:
    graph, canned = build(SORRY)
    cfg = config()
    first = escalated_injury(graph, cfg)
    result = graph.invoke({"review": "{not json"}, cfg)
    assert "a human is reviewing" in result["error"]
    assert graph.get_state(cfg).next == ("approval",)
    assert result["__interrupt__"][0].value == first["__interrupt__"][0].value
    assert result["accepted_review"] == first["accepted_review"]
    result = graph.invoke(Command(resume="approve"), cfg)
    assert result["error"] is None
    assert result["final_reply"] == SORRY
    assert canned.calls == 1


def test_bad_review_after_publishing_does_not_reopen_the_approval() -> None:
    graph, _ = build(SORRY)
    cfg = config()
    escalated_injury(graph, cfg)
    graph.invoke(Command(resume="reject"), cfg)
    result = graph.invoke({"review": {"text": ""}}, cfg)
    assert result["error"]
    assert "__interrupt__" not in result
    assert result["final_reply"] == PACK.escalation_reply
