"""The batching scheduler on the tiny engine: concurrent rows equal solo runs, joining and
leaving between steps, streaming, cancellation, time limits, and a responsive event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.config import EngineConfig
from persona_agents.engine import BASE_ONLY, GenerationParams, PersonaFuseEngine, RequestCancelled
from persona_agents.messages import to_turns
from persona_agents.traits import EXPERT_NAMES, PersonaWeights

PROMPTS = [
    "Hi",
    "My order arrived broken and nobody answers my emails",
    "I failed my exam and feel awful about it",
    [{"role": "user", "content": "I failed"}, {"role": "assistant", "content": "Oh no."}, {"role": "user", "content": "Help"}],
    "What should I do this weekend in a new city?",
    "ok",
    "The sofa is lovely but the delivery was three weeks late, which is really not acceptable.",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a story"}],
]


def job(i: int) -> tuple[object, object, GenerationParams]:
    """Request i of 32: its own prompt, weights, length, penalty and stop settings."""
    k = i % len(EXPERT_NAMES)
    weights: object = [
        PersonaWeights.one_hot(EXPERT_NAMES[k]),
        PersonaWeights.one_hot(EXPERT_NAMES[k]).blend(PersonaWeights.uniform(), 0.5),
        BASE_ONLY,
        None,  # routed
    ][i % 4]
    length, stop = 4 + (i * 7) % 37, ("e",) if i % 5 == 0 else ()
    if i % 3 == 1:  # the reply defaults (word-run guard, sentence cut), here with every other rule on too
        params = GenerationParams(max_new_tokens=length, stop=stop, repetition_penalty=1.2, no_repeat_ngram_size=3)
    else:  # the raw distribution, comparable with transformers' generate
        params = GenerationParams.raw(max_new_tokens=length, repetition_penalty=1.3 if i % 3 == 0 else 1.0, stop=stop)
    return PROMPTS[i % len(PROMPTS)], weights, params


@pytest.fixture
def engine(tiny_engine: PersonaFuseEngine) -> PersonaFuseEngine:
    tiny_engine.config = tiny_engine.config.model_copy(update={"max_batch_size": 12, "max_batch_wait_ms": 20.0})
    return tiny_engine


def hf_alone(engine: PersonaFuseEngine, messages: object, weights: object, params: GenerationParams) -> str:
    """The same request through transformers' own generate, alone (an independent reference)."""
    turns = to_turns(messages)
    resolved, _ = engine._resolve_weights(turns, weights)
    ids = torch.tensor([engine.prompt_ids(turns)])
    with engine.mixer.active(None if resolved is None else torch.tensor(resolved.values)), torch.inference_mode():
        out = engine.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=params.max_new_tokens,
            do_sample=False, repetition_penalty=params.repetition_penalty, pad_token_id=engine.tokenizer.pad_token_id,
        )
    return engine.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_32_concurrent_requests_equal_each_served_alone(engine: PersonaFuseEngine) -> None:
    jobs = [job(i) for i in range(32)]
    alone = [engine.generate(m, persona_weights=w, params=p) for m, w, p in jobs]
    for (m, w, p), solo in zip(jobs, alone):
        if not p.stop and p == GenerationParams.raw(**{k: getattr(p, k) for k in ("max_new_tokens", "repetition_penalty")}):
            # the raw distribution served alone agrees with transformers' generate
            assert solo.text == hf_alone(engine, m, w, p)
    assert len({g.text for g in alone}) > 10
    engine.scheduler.batch_sizes.clear()

    results: list[object] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def worker(i: int) -> None:
        barrier.wait()
        message, weights, params = jobs[i]
        if i % 2:
            results[i] = engine.generate(message, persona_weights=weights, params=params)
        else:
            results[i] = list(engine.stream(message, persona_weights=weights, params=params))[-1].final

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    for i, (got, want) in enumerate(zip(results, alone)):
        assert got.text == want.text, (i, jobs[i])
        assert (got.output_tokens, got.finish_reason, got.weights) == (want.output_tokens, want.finish_reason, want.weights)
    sizes = list(engine.scheduler.batch_sizes)
    assert max(sizes) == 12  # really batched, up to max_batch_size
    assert len(set(sizes)) > 3  # rows left and joined between steps


def test_rows_join_a_running_batch(engine: PersonaFuseEngine) -> None:
    long = GenerationParams(max_new_tokens=300, min_new_tokens=300)
    first = engine.submit(engine.prepare("Tell me a long story", PersonaWeights.one_hot("openness_high"), long), stream=True)
    tokens = first.tokens()
    for _ in range(5):
        next(tokens)  # the first request is decoding
    late = engine.generate("Hi", persona_weights=BASE_ONLY, params=GenerationParams(max_new_tokens=6))
    assert late.text == engine.generate_batch(["Hi"], [BASE_ONLY], params=GenerationParams(max_new_tokens=6))[0].text
    assert not first.future.done()  # the late request finished while the long one ran
    assert first.future.result(timeout=60).output_tokens == 300
    alone = engine.generate("Tell me a long story", persona_weights=PersonaWeights.one_hot("openness_high"), params=long)
    assert first.future.result().text == alone.text


def test_sampled_rows_are_repeatable_in_a_batch(engine: PersonaFuseEngine) -> None:
    params = [GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=s) for s in range(6)]
    alone = [engine.generate("Hello", persona_weights=BASE_ONLY, params=p).text for p in params]
    together = engine.generate_batch(["Hello"] * 6, [BASE_ONLY] * 6, params=None) and [
        r.future.result().text for r in [engine.submit(engine.prepare("Hello", BASE_ONLY, p)) for p in params]
    ]
    assert together == alone
    assert len(set(alone)) > 1


def test_a_closed_stream_leaves_the_batch_and_others_go_on(engine: PersonaFuseEngine) -> None:
    endless = GenerationParams(max_new_tokens=5000, min_new_tokens=5000)
    other_params = GenerationParams(max_new_tokens=30)
    expected = engine.generate("Hello there", persona_weights=BASE_ONLY, params=other_params).text
    stream = engine.stream("hi", persona_weights=PersonaWeights.one_hot("openness_low"), params=endless)
    next(stream)
    other = engine.submit(engine.prepare("Hello there", BASE_ONLY, other_params))
    stream.close()
    assert other.future.result(timeout=60).text == expected
    deadline = time.monotonic() + 10
    while engine.scheduler.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not engine.scheduler.running  # the cancelled row is gone: the worker went idle


def test_cancel_before_start_and_time_limit(engine: PersonaFuseEngine) -> None:
    request = engine.submit(engine.prepare("hi", BASE_ONLY, GenerationParams(max_new_tokens=5000)))
    request.cancel()
    with pytest.raises(RequestCancelled):
        request.future.result(timeout=30)
    started = time.monotonic()
    limited = engine.generate("hi", persona_weights=BASE_ONLY,
                              params=GenerationParams(max_new_tokens=30_000, min_new_tokens=30_000, max_time=0.3))
    assert time.monotonic() - started < 10
    assert 0 < limited.output_tokens < 30_000 and limited.finish_reason == "length"


async def test_async_task_cancellation_frees_the_row(engine: PersonaFuseEngine) -> None:
    endless = GenerationParams(max_new_tokens=5000, min_new_tokens=5000)
    task = asyncio.create_task(engine.agenerate("hi", persona_weights=BASE_ONLY, params=endless))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    reply = await engine.agenerate("hi", persona_weights=BASE_ONLY, params=GenerationParams(max_new_tokens=4))
    assert reply.output_tokens == 4
    for _ in range(100):
        if not engine.scheduler.running:
            break
        await asyncio.sleep(0.05)
    assert not engine.scheduler.running


async def test_event_loop_heartbeat_stays_under_50ms_with_16_requests(engine: PersonaFuseEngine) -> None:
    llm = ChatPersonaFuse(engine=engine, max_tokens=60)
    period, worst, beats = 0.01, 0.0, 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal worst, beats
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(period)
            worst = max(worst, time.perf_counter() - before - period)
            beats += 1

    async def one(i: int) -> int:
        weights = PersonaWeights.one_hot(EXPERT_NAMES[i % 10]).as_dict()
        if i % 2:
            reply = await llm.ainvoke(f"request {i}: how are you?", persona_weights=weights)
            return reply.usage_metadata["output_tokens"]
        chunks = [c async for c in llm.astream(f"request {i}: how are you?", persona_weights=weights)]
        return chunks[-1].usage_metadata["output_tokens"]

    await asyncio.gather(one(0), one(1))  # warm-up: first-use costs (thread pool, templates) are not latency
    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    try:
        counts = await asyncio.gather(*(one(i) for i in range(16)))
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        await beat
    assert all(0 < c <= 60 for c in counts)
    assert beats >= 5, (beats, elapsed)
    assert worst < 0.050, f"the event loop stalled {worst * 1000:.1f} ms"


def test_batch_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_AGENTS_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("PERSONA_AGENTS_MAX_BATCH_WAIT_MS", "2.5")
    config = EngineConfig.from_env()
    assert (config.max_batch_size, config.max_batch_wait_ms) == (4, 2.5)
    with pytest.raises(ValueError):
        EngineConfig(max_batch_size=0)


def test_sliding_window_models_are_refused_clearly() -> None:
    from transformers import MistralConfig, MistralForCausalLM

    from persona_agents.decoding import check_supported

    tiny = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                intermediate_size=32)
    with pytest.raises(NotImplementedError, match="sliding-window"):
        check_supported(MistralForCausalLM(MistralConfig(sliding_window=8, **tiny)))
    check_supported(MistralForCausalLM(MistralConfig(sliding_window=None, **tiny)))
