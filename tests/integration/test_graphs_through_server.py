"""Both agents end to end against ``persona-agents serve`` (the default model in a child process
on a free port, stopped by PID), talking to it only through ``ChatPersonaFuse(base_url=...)``:
routing, generation and async runs all go over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.counseling import make_counseling_graph
from graphs.customer_service import make_customer_service_graph
from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.serving.process import ServerProcess

pytestmark = pytest.mark.integration

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as running:
        yield running


@pytest.fixture
def remote(server: ServerProcess) -> ChatPersonaFuse:
    return ChatPersonaFuse(base_url=server.url, max_tokens=24, repetition_penalty=1.15)


def steps(result: dict) -> list[tuple[str, str]]:
    return [(d["node"], d["decision"]) for d in result["decisions"]]


def test_counseling_turns_through_the_server(remote: ChatPersonaFuse) -> None:
    graph = make_counseling_graph(remote, InMemorySaver())
    cfg = {"configurable": {"thread_id": "served-counseling"}}
    result = graph.invoke({"messages": ["I had a rough day at work"]}, cfg)
    assert "__interrupt__" not in result and result["error"] is None
    assert steps(result)[:4] == [("intake", "accepted"), ("screen", "no_risk"), ("route", "router"), ("generate", "draft")]
    reply = result["messages"][-1]
    assert reply.type == "ai" and str(reply.content).strip()
    persona = result["persona"]
    assert persona["source"] == "router" and len(persona["weights"]) == 10
    assert persona["top_traits"] == remote.route([m for m in result["messages"] if m.type == "human"]).top_traits
    assert remote.get_engine().model_name == MODEL
    second = graph.invoke({"messages": ["My manager shouted at me in front of everyone"]}, cfg)
    assert len([m for m in second["messages"] if m.type == "ai"]) == 2


async def test_review_graph_through_the_server_async(remote: ChatPersonaFuse) -> None:
    graph = make_customer_service_graph(remote, InMemorySaver())
    cfg = {"configurable": {"thread_id": "served-review"}}
    review = {"text": "The coffee was cold and the staff ignored me for twenty minutes.", "rating": 2, "product": "Cafe"}
    result = await graph.ainvoke({"review": review}, cfg)
    decided = steps(result)
    assert decided[0] == ("intake", "accepted")
    assert ("route", "router") in decided and ("draft", "drafted") in decided
    draft = result["draft"] if "__interrupt__" in result else result["final_reply"]
    assert str(draft).strip()
    assert sum(result["persona"]["weights"].values()) == pytest.approx(1.0, abs=1e-5)
