"""ChatPersonaFuse on the tiny engine, plus LangChain's standard unit tests."""

from __future__ import annotations

import asyncio
import time

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_tests.unit_tests import ChatModelUnitTests

from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.config import EngineConfig
from persona_agents.engine import BASE_ONLY, GenerationParams, PersonaFuseEngine
from persona_agents.traits import EXPERT_NAMES, PersonaWeights

MESSAGES = [SystemMessage("Be kind."), HumanMessage("I failed my exam and feel awful")]
CALM = {"neuroticism_low": 0.7, "agreeableness_high": 0.3}


@pytest.fixture
def llm(tiny_engine: PersonaFuseEngine) -> ChatPersonaFuse:
    return ChatPersonaFuse(engine=tiny_engine, max_tokens=8)


def engine_text(engine: PersonaFuseEngine, weights: object = None, **params: object) -> str:
    return engine.generate(
        MESSAGES, persona_weights=weights, params=GenerationParams(max_new_tokens=8, **params)
    ).text


def test_invoke(llm: ChatPersonaFuse, tiny_engine: PersonaFuseEngine) -> None:
    reply = llm.invoke(MESSAGES)
    assert isinstance(reply, AIMessage)
    assert reply.content == engine_text(tiny_engine)
    usage = reply.usage_metadata
    assert usage is not None and usage["output_tokens"] == 8
    assert usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    meta = reply.response_metadata
    routed = tiny_engine.route(MESSAGES)
    assert meta["persona_weights"] == routed.weights.as_dict()
    assert sum(meta["persona_weights"].values()) == pytest.approx(1.0)
    assert meta["top_traits"] == routed.top_traits and len(meta["top_traits"]) == 2
    assert meta["trait_scores"] == routed.weights.trait_scores()
    assert meta["routed"] is True
    assert meta["finish_reason"] == "length"
    assert meta["model_name"] == "tiny-llama"


def test_invoke_with_a_string(llm: ChatPersonaFuse) -> None:
    assert isinstance(llm.invoke("hello").content, str)


def test_stream(llm: ChatPersonaFuse, tiny_engine: PersonaFuseEngine) -> None:
    chunks = list(llm.stream(MESSAGES))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.content for c in chunks) == engine_text(tiny_engine)
    assert all(c.usage_metadata is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.usage_metadata is not None and last.usage_metadata["output_tokens"] == 8
    assert last.response_metadata["top_traits"] == tiny_engine.route(MESSAGES).top_traits
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert merged.usage_metadata["output_tokens"] == 8
    assert merged.response_metadata["persona_weights"] is not None


async def test_ainvoke(llm: ChatPersonaFuse, tiny_engine: PersonaFuseEngine) -> None:
    reply = await llm.ainvoke(MESSAGES)
    assert reply.content == engine_text(tiny_engine)
    assert reply.usage_metadata["output_tokens"] == 8
    assert reply.response_metadata["top_traits"] == tiny_engine.route(MESSAGES).top_traits


async def test_astream(llm: ChatPersonaFuse, tiny_engine: PersonaFuseEngine) -> None:
    chunks = [c async for c in llm.astream(MESSAGES)]
    assert "".join(c.content for c in chunks) == engine_text(tiny_engine)
    assert chunks[-1].usage_metadata["output_tokens"] == 8
    assert (
        chunks[-1].response_metadata["persona_weights"]
        == tiny_engine.route(MESSAGES).weights.as_dict()
    )


async def test_astream_closed_early_does_not_hang(llm: ChatPersonaFuse) -> None:
    stream = llm.astream(MESSAGES, max_tokens=200)
    async for _ in stream:
        break
    await asyncio.wait_for(stream.aclose(), timeout=30)


def test_per_call_weights_override(llm: ChatPersonaFuse, tiny_engine: PersonaFuseEngine) -> None:
    reply = llm.invoke(MESSAGES, persona_weights=CALM)
    assert reply.response_metadata["persona_weights"] == PersonaWeights.from_mapping(CALM).as_dict()
    assert reply.response_metadata["top_traits"] == ["neuroticism_low", "agreeableness_high"]
    assert reply.response_metadata["routed"] is False
    assert reply.content == engine_text(tiny_engine, CALM)
    base = llm.invoke(MESSAGES, persona_weights=BASE_ONLY)
    assert base.response_metadata["persona_weights"] is None
    assert base.content == engine_text(tiny_engine, BASE_ONLY)
    assert base.content != reply.content


def test_bind_persona_weights(llm: ChatPersonaFuse, tiny_engine: PersonaFuseEngine) -> None:
    bound = llm.bind(persona_weights={"extraversion_high": 1.0})
    reply = bound.invoke(MESSAGES)
    assert reply.response_metadata["top_traits"][0] == "extraversion_high"
    assert reply.content == engine_text(tiny_engine, {"extraversion_high": 1.0})
    chunks = list(bound.stream(MESSAGES))
    assert chunks[-1].response_metadata["persona_weights"]["extraversion_high"] == 1.0


def test_constructor_persona_weights(tiny_engine: PersonaFuseEngine) -> None:
    fixed = ChatPersonaFuse(engine=tiny_engine, max_tokens=8, persona_weights=CALM)
    reply = fixed.invoke(MESSAGES)
    assert reply.response_metadata["routed"] is False
    assert reply.content == engine_text(tiny_engine, CALM)


def test_stop(llm: ChatPersonaFuse, tiny_engine: PersonaFuseEngine) -> None:
    # fixed weights whose greedy bytes from the random tiny model include printable ASCII
    full = engine_text(tiny_engine, CALM)
    index = next(i for i in range(1, len(full)) if full[i].isascii() and full[i].isalnum())
    stop = full[index]
    expected = full[:index].strip()
    assert llm.invoke(MESSAGES, stop=[stop], persona_weights=CALM).content == expected
    assert "".join(c.content for c in llm.stream(MESSAGES, stop=[stop], persona_weights=CALM)) == expected
    with_default = ChatPersonaFuse(engine=tiny_engine, max_tokens=8, stop_sequences=[stop], persona_weights=CALM)
    reply = with_default.invoke(MESSAGES)
    assert reply.content == expected
    assert reply.response_metadata["finish_reason"] == "stop"


def test_max_tokens_per_call(llm: ChatPersonaFuse) -> None:
    reply = llm.invoke(MESSAGES, max_tokens=3)
    assert reply.usage_metadata["output_tokens"] == 3


def test_unknown_call_option(llm: ChatPersonaFuse) -> None:
    with pytest.raises(TypeError, match="unexpected call options: frobnicate"):
        llm.invoke(MESSAGES, frobnicate=True)


def test_per_call_model_must_be_this_model(llm: ChatPersonaFuse) -> None:
    assert llm.invoke(MESSAGES, model="default").content  # naming its own model is fine
    with pytest.raises(ValueError, match="model='other-model' differs"):
        llm.invoke(MESSAGES, model="other-model")
    with pytest.raises(ValueError, match="model='other-model' differs"):
        list(llm.stream(MESSAGES, model="other-model"))


async def test_event_loop_is_not_blocked(tiny_engine: PersonaFuseEngine) -> None:
    slow = ChatPersonaFuse(engine=tiny_engine, max_tokens=60)
    started = time.perf_counter()
    await asyncio.to_thread(
        tiny_engine.generate, MESSAGES, params=GenerationParams(max_new_tokens=60)
    )
    single = time.perf_counter() - started
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    try:
        reply = await slow.ainvoke(MESSAGES)
        chunks = [c async for c in slow.astream(MESSAGES)]
    finally:
        done.set()
        await task
    assert reply.usage_metadata["output_tokens"] == 60
    assert chunks[-1].usage_metadata["output_tokens"] == 60
    # two generations of ~`single` seconds each; a blocked loop would tick once or twice
    assert ticks >= max(5, int(single / 0.005 * 0.5)), (ticks, single)


def test_streaming_true_uses_the_stream(
    tiny_engine: PersonaFuseEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    streaming = ChatPersonaFuse(engine=tiny_engine, max_tokens=8, streaming=True)
    calls: list[str] = []
    original = tiny_engine.stream

    def spy(*args: object, **kwargs: object):
        calls.append("stream")
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_engine, "stream", spy)
    reply = streaming.invoke(MESSAGES)
    assert calls == ["stream"]
    assert reply.content == engine_text(tiny_engine)
    assert reply.usage_metadata["output_tokens"] == 8
    assert reply.response_metadata["top_traits"] == tiny_engine.route(MESSAGES).top_traits


async def test_streaming_true_async(tiny_engine: PersonaFuseEngine) -> None:
    streaming = ChatPersonaFuse(engine=tiny_engine, max_tokens=8, streaming=True)
    reply = await streaming.ainvoke(MESSAGES, persona_weights=CALM)
    assert reply.content == engine_text(tiny_engine, CALM)
    assert reply.response_metadata["persona_weights"] == PersonaWeights.from_mapping(CALM).as_dict()


@pytest.mark.parametrize(
    "weights",
    [{"charm_high": 1.0}, {"openness_high": 2.0}, {"openness_high": -1.0, "openness_low": 2.0}],
)
def test_invalid_persona_weights_rejected(
    tiny_engine: PersonaFuseEngine, weights: dict[str, float]
) -> None:
    with pytest.raises(ValueError):
        ChatPersonaFuse(engine=tiny_engine, persona_weights=weights)
    llm = ChatPersonaFuse(engine=tiny_engine, max_tokens=4)
    with pytest.raises(ValueError):
        llm.invoke(MESSAGES, persona_weights=weights)


def test_engine_must_be_an_engine() -> None:
    with pytest.raises(ValueError, match="engine must be a PersonaFuseEngine or PersonaFuseClient"):
        ChatPersonaFuse(engine="not an engine")


def test_construction_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("constructing ChatPersonaFuse must not load a model")

    monkeypatch.setattr(PersonaFuseEngine, "load", classmethod(refuse))
    llm = ChatPersonaFuse(model="default", max_tokens=5, bundle="/nowhere")
    assert llm.engine is None
    assert llm._llm_type == "persona-fuse"
    assert llm._identifying_params["max_tokens"] == 5
    params = llm._get_ls_params(stop=["x"])
    assert params["ls_provider"] == "persona_agents" and params["ls_stop"] == ["x"]
    assert params["ls_model_name"] == "default"


def test_engine_settings_come_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    configs: list[EngineConfig] = []
    monkeypatch.setattr(PersonaFuseEngine, "shared", classmethod(lambda cls, config: configs.append(config) or "engine"))
    monkeypatch.setenv("PERSONA_AGENTS_BASE_MODEL", "org/bigger-model")
    monkeypatch.setenv("PERSONA_AGENTS_DEVICE", "cuda")
    monkeypatch.setenv("PERSONA_AGENTS_DTYPE", "bfloat16")
    ChatPersonaFuse(max_tokens=5).get_engine()
    ChatPersonaFuse(model="default", device="cpu", dtype="float32").get_engine()
    assert [(c.base_model, c.device, c.dtype) for c in configs] == [
        ("org/bigger-model", "cuda", "bfloat16"),
        ("default", "cpu", "float32"),
    ]


def test_invalid_messages_surface(llm: ChatPersonaFuse) -> None:
    with pytest.raises(ValueError, match="empty"):
        llm.invoke([HumanMessage("   ")])
    assert EXPERT_NAMES  # the ten experts exist


class TestChatPersonaFuseStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatPersonaFuse]:
        return ChatPersonaFuse

    @property
    def chat_model_params(self) -> dict:
        return {"model": "default"}

    @property
    def has_tool_calling(self) -> bool:
        return False
