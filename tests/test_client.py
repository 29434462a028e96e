"""ChatPersonaFuse(base_url=...) against a live server on the tiny engine: the same replies,
usage and routing metadata as in-process; plain OpenAI clients work too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.client import PersonaFuseClient
from persona_agents.engine import PersonaFuseEngine
from persona_agents.serving.app import create_app
from tests.live_server import live_server

MESSAGES = [SystemMessage("Be kind."), HumanMessage("I failed my exam and feel awful")]
CALM = {"neuroticism_low": 0.7, "agreeableness_high": 0.3}


@pytest.fixture
def url(tiny_engine: PersonaFuseEngine) -> Iterator[str]:
    with live_server(create_app(tiny_engine)) as base_url:
        yield base_url


@pytest.fixture
def local(tiny_engine: PersonaFuseEngine) -> ChatPersonaFuse:
    return ChatPersonaFuse(engine=tiny_engine, max_tokens=10)


@pytest.fixture
def remote(url: str) -> ChatPersonaFuse:
    return ChatPersonaFuse(base_url=url, max_tokens=10)


def same_reply(a: AIMessage, b: AIMessage) -> None:
    assert a.content == b.content
    assert a.usage_metadata == b.usage_metadata
    meta_a, meta_b = a.response_metadata, b.response_metadata
    for key in ("top_traits", "routed", "finish_reason", "model_name"):
        assert meta_a[key] == meta_b[key], key
    assert meta_a["persona_weights"] == pytest.approx(meta_b["persona_weights"])
    assert meta_a["trait_scores"] == pytest.approx(meta_b["trait_scores"])


def test_invoke_matches_in_process(local: ChatPersonaFuse, remote: ChatPersonaFuse) -> None:
    same_reply(remote.invoke(MESSAGES), local.invoke(MESSAGES))
    same_reply(remote.invoke(MESSAGES, persona_weights=CALM), local.invoke(MESSAGES, persona_weights=CALM))
    same_reply(remote.invoke("hello", persona_weights="base"), local.invoke("hello", persona_weights="base"))
    assert remote.get_engine().model_name == "tiny-llama"


def test_stream_matches_in_process(local: ChatPersonaFuse, remote: ChatPersonaFuse) -> None:
    chunks = list(remote.stream(MESSAGES, persona_weights=CALM))
    assert len(chunks) >= 2
    assert all(c.usage_metadata is None for c in chunks[:-1])
    joined = chunks[0]
    for c in chunks[1:]:
        joined += c
    expected = local.invoke(MESSAGES, persona_weights=CALM)
    assert joined.content == expected.content
    assert joined.usage_metadata == expected.usage_metadata
    assert chunks[-1].response_metadata["top_traits"] == expected.response_metadata["top_traits"]


async def test_async_matches_in_process(local: ChatPersonaFuse, remote: ChatPersonaFuse) -> None:
    expected = await local.ainvoke(MESSAGES)
    same_reply(await remote.ainvoke(MESSAGES), expected)
    chunks = [c async for c in remote.astream(MESSAGES)]
    assert "".join(c.content for c in chunks) == expected.content
    assert chunks[-1].usage_metadata == expected.usage_metadata
    streaming = ChatPersonaFuse(base_url=remote.base_url, max_tokens=10, streaming=True)
    same_reply(await streaming.ainvoke(MESSAGES), expected)


def test_route_in_process_and_remote(local: ChatPersonaFuse, remote: ChatPersonaFuse) -> None:
    here, there = local.route(MESSAGES), remote.route(MESSAGES)
    assert here.top_traits == there.top_traits
    assert here.weights.values == pytest.approx(there.weights.values)
    assert local.route("I got the job!", top_k=3).top_traits == remote.route("I got the job!", top_k=3).top_traits


async def test_aroute(local: ChatPersonaFuse, remote: ChatPersonaFuse) -> None:
    assert (await remote.aroute(MESSAGES)).top_traits == (await local.aroute(MESSAGES)).top_traits


def test_a_string_stop_is_one_stop_string(local: ChatPersonaFuse, remote: ChatPersonaFuse) -> None:
    full = local.invoke(MESSAGES, persona_weights="base", max_tokens=24).content
    stop = full[2:5]
    for llm in (local, remote):
        reply = llm.invoke(MESSAGES, persona_weights="base", max_tokens=24, stop=stop)
        assert reply.content == full[: full.find(stop)].strip()
        assert reply.content == llm.invoke(MESSAGES, persona_weights="base", max_tokens=24, stop=[stop]).content


def test_errors_surface_as_value_errors(remote: ChatPersonaFuse) -> None:
    with pytest.raises(ValueError, match="empty"):
        remote.invoke([HumanMessage("   ")])
    with pytest.raises(ValueError):
        remote.invoke(MESSAGES, persona_weights={"charm_high": 1.0})

    class Unchecked(PersonaFuseClient):  # a body the client would not send: the server's own check
        def _body(self, *args: object) -> dict:
            return {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}

    with pytest.raises(ValueError, match="max_tokens"):
        Unchecked(remote.base_url).generate("x")


def test_construction_contacts_nobody() -> None:
    llm = ChatPersonaFuse(base_url="http://127.0.0.1:9", max_tokens=5)
    assert llm.engine is None and llm._identifying_params["base_url"] == "http://127.0.0.1:9"


def test_openai_client_works_against_the_server(url: str, local: ChatPersonaFuse) -> None:
    """What ``init_chat_model("openai:persona-fuse", base_url=...)`` builds."""
    openai = pytest.importorskip("langchain_openai")
    llm = openai.ChatOpenAI(model="persona-fuse", base_url=f"{url}/v1", api_key="unused", max_tokens=10, temperature=0)
    reply = llm.invoke(MESSAGES)
    assert reply.content == local.invoke(MESSAGES).content
    assert reply.usage_metadata["output_tokens"] == 10
    chunks = list(llm.stream(MESSAGES))
    assert "".join(c.content for c in chunks) == reply.content
