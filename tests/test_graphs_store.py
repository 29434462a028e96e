"""The store: a person's locale and risk history outlive a thread (InMemoryStore here)."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from graphs import threads
from graphs.context import Context
from graphs.counseling import make_counseling_graph
from graphs.customer_service import make_customer_service_graph
from graphs.people import NAMESPACE, RISK_MEMORY, Person, now_utc, risk_event

CRISIS = "I want to kill myself tonight"
# Sudden calm is a warning sign when the person was at risk (the pack's after_risk cues); alone,
# the screen lets it pass. Messages that sit near the threshold made these tests flip between
# retrains ("I gave my guitar away to my brother" 0.38-0.41, "Thanks for everything, I feel much
# calmer now" 0.20-0.38, against thresholds of 0.35-0.40), so this one is far below it (about 0.1).
SUDDEN_CALM = "I feel much calmer now"
_ids = itertools.count()


class CountingStore(InMemoryStore):
    """An InMemoryStore that counts every operation it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.operations = 0

    def batch(self, ops: Any) -> Any:
        ops = list(ops)
        self.operations += len(ops)
        return super().batch(ops)


def agent(store: Any) -> Any:
    return make_counseling_graph(GenericFakeChatModel(messages=itertools.repeat("I'm listening.")), InMemorySaver(), store=store)


def thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"store-{next(_ids)}"}}


def remember_crisis(store: Any, user_id: str, days_ago: float) -> None:
    Person(store, user_id).record_risk(
        risk_event("an-earlier-thread", 2, "suicidal_ideation", 0.97, at=now_utc() - timedelta(days=days_ago))
    )


def screen_decision(result: dict[str, Any]) -> dict[str, Any]:
    return [d for d in result["decisions"] if d["node"] == "screen"][-1]


def test_the_message_alone_does_not_escalate() -> None:
    result = agent(None).invoke({"messages": [SUDDEN_CALM]}, thread())
    assert "__interrupt__" not in result and screen_decision(result)["decision"] == "no_risk"


def test_a_person_in_crisis_last_week_escalates_in_a_new_thread() -> None:
    store = InMemoryStore()
    remember_crisis(store, "sam", days_ago=7)
    result = agent(store).invoke({"messages": [SUDDEN_CALM]}, thread(), context=Context(user_id="sam"))
    payload = result["__interrupt__"][0].value
    assert payload["type"] == "counselor_escalation" and payload["new_risk_this_turn"] is True
    screen = screen_decision(result)
    assert screen["decision"].startswith("crisis:")
    assert "[history] risk was raised earlier for this person" in screen["reason"]
    assert "[store] this person was at risk on" in screen["reason"]
    assert result["risk"]["raised"] is True


def test_the_same_message_from_someone_else_does_not_escalate() -> None:
    store = InMemoryStore()
    remember_crisis(store, "sam", days_ago=7)
    result = agent(store).invoke({"messages": [SUDDEN_CALM]}, thread(), context=Context(user_id="alex"))
    assert "__interrupt__" not in result and screen_decision(result)["decision"] == "no_risk"
    assert "[store]" not in screen_decision(result)["reason"]


def test_risk_older_than_the_window_is_not_used() -> None:
    store = InMemoryStore()
    remember_crisis(store, "sam", days_ago=RISK_MEMORY.days + 10)
    result = agent(store).invoke({"messages": [SUDDEN_CALM]}, thread(), context=Context(user_id="sam"))
    assert "__interrupt__" not in result
    assert Person(store, "sam").recent_risk() is None and len(Person(store, "sam").risk_events()) == 1


def test_a_crisis_in_one_thread_is_remembered_in_the_next() -> None:
    store = InMemoryStore()
    graph, first, second = agent(store), thread(), thread()
    sam = Context(user_id="sam")
    graph.invoke({"messages": [CRISIS]}, first, context=sam)
    graph.invoke(Command(resume={"message": "I'm here with you.", "return_to_agent": True}), first, context=sam)
    events = Person(store, "sam").risk_events()
    assert [(e["thread_id"], e["turn"], e["category"]) for e in events] == [
        (first["configurable"]["thread_id"], 1, "suicidal_ideation")
    ]
    result = graph.invoke({"messages": [SUDDEN_CALM]}, second, context=sam)
    assert result["__interrupt__"][0].value["type"] == "counselor_escalation"
    assert len(Person(store, "sam").risk_events()) == 2
    # the helpers pass the context on too
    result = threads.send_message(graph, "store-helper", SUDDEN_CALM, context=sam)
    assert threads.pending_question(graph, "store-helper")["type"] == "counselor_escalation"


def test_without_a_user_id_the_store_is_never_touched() -> None:
    store = CountingStore()
    graph, cfg = agent(store), thread()
    before = store.operations
    graph.invoke({"messages": ["I had a rough day", ]}, cfg)
    graph.invoke({"messages": [CRISIS]}, thread())
    graph.invoke({"messages": [SUDDEN_CALM]}, cfg, context=Context(locale="en-GB"))
    assert store.operations == before == 0
    assert list(store.search(NAMESPACE)) == []


def test_a_person_s_locale_is_remembered_across_threads() -> None:
    store = InMemoryStore()
    graph = agent(store)
    sam = Context(user_id="sam")
    graph.invoke({"messages": ["hello"], "locale": "en_gb"}, thread(), context=sam)
    assert Person(store, "sam").locale() == "en-GB"
    result = graph.invoke({"messages": [CRISIS]}, thread(), context=sam)
    assert result["locale"] == "en-GB"
    assert "Samaritans" in result["messages"][-1].content
    assert agent(store).invoke({"messages": ["hello"]}, thread(), context=Context(user_id="alex"))["locale"] == "en-US"


def test_the_review_agent_remembers_a_reviewer_s_locale() -> None:
    store = InMemoryStore()
    graph = make_customer_service_graph(GenericFakeChatModel(messages=itertools.repeat("Thanks!")), InMemorySaver(), store=store)
    kim = Context(user_id="kim")
    graph.invoke({"review": {"text": "Great coffee", "rating": 5, "locale": "en-GB"}}, thread(), context=kim)
    result = graph.invoke({"review": {"text": "Still great", "rating": 5}}, thread(), context=kim)
    assert result["accepted_review"]["locale"] == "en-GB"


def test_stored_values_are_plain_json_and_events_are_not_counted_twice() -> None:
    store = InMemoryStore()
    person = Person(store, "sam")
    event = risk_event("t1", 3, "self_harm", 0.9)
    person.record_risk(event)
    person.record_risk(event)  # a replayed node
    person.remember_locale("en-GB")
    items = store.search(NAMESPACE)
    assert sorted(i.key for i in items) == ["profile", "risk"]
    assert all(json.loads(json.dumps(i.value)) == i.value for i in items)
    assert len(person.risk_events()) == 1 and person.recent_risk() == event


class BrokenStore(InMemoryStore):
    def batch(self, ops: Any) -> Any:
        raise ConnectionError("the store is down")


def test_an_unreadable_store_counts_as_earlier_risk_and_the_escalation_goes_on() -> None:
    result = agent(BrokenStore()).invoke({"messages": [SUDDEN_CALM]}, thread(), context=Context(user_id="sam"))
    assert result["__interrupt__"][0].value["type"] == "counselor_escalation"
    reason = screen_decision(result)["reason"]
    assert "risk history could not be read (the store is down)" in reason
    assert "could not record this in the store: the store is down" in reason
