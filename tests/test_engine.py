"""The engine on the tiny model: generation, streaming, stops, batching, truncation, threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import torch

from persona_agents.config import EngineConfig
from persona_agents.engine import BASE_ONLY, GenerationParams, PersonaFuseEngine, cut_at_stop
from persona_agents.messages import ChatTurn, InvalidMessageError, to_turns
from persona_agents.traits import EXPERT_NAMES, PersonaWeights

# the raw distribution (no repetition rules, no sentence cut): comparable with transformers' generate
GREEDY8 = GenerationParams.raw(max_new_tokens=8)
GREEDY24 = GenerationParams.raw(max_new_tokens=24)
ONE_HOT = [PersonaWeights.one_hot(name) for name in EXPERT_NAMES]


class ForcedTokens:
    """Makes the model emit ``pattern`` cyclically (greedy), to get readable, spaced output."""

    def __init__(
        self, engine: PersonaFuseEngine, pattern: str, eos_after: int | None = None
    ) -> None:
        self.ids = [
            engine.tokenizer.convert_tokens_to_ids(t) for t in engine.tokenizer.tokenize(pattern)
        ]
        self.eos_id = engine.tokenizer.eos_token_id
        self.eos_after = eos_after
        self.calls = 0
        self.handle = engine.model.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple, output: object) -> object:
        step = self.calls
        self.calls += 1
        token = (
            self.eos_id
            if self.eos_after is not None and step >= self.eos_after
            else self.ids[step % len(self.ids)]
        )
        logits = output.logits  # type: ignore[attr-defined]
        logits[:, -1, :] = -1e4
        logits[:, -1, token] = 1e4
        return output

    def remove(self) -> None:
        self.handle.remove()


@pytest.fixture
def forced(tiny_engine: PersonaFuseEngine) -> Iterator[type[ForcedTokens]]:
    made: list[ForcedTokens] = []

    def make(pattern: str, eos_after: int | None = None) -> ForcedTokens:
        hook = ForcedTokens(tiny_engine, pattern, eos_after)
        made.append(hook)
        return hook

    yield make  # type: ignore[misc]
    for hook in made:
        hook.remove()


def stream_all(
    engine: PersonaFuseEngine, messages: object, **kwargs: object
) -> tuple[list[str], object]:
    pieces = list(engine.stream(messages, **kwargs))
    assert pieces[-1].final is not None
    assert all(p.final is None for p in pieces[:-1])
    return [p.text for p in pieces[:-1] if p.text], pieces[-1].final


def test_generate_returns_text_and_usage(tiny_engine: PersonaFuseEngine) -> None:
    result = tiny_engine.generate("Hello there", params=GREEDY8)
    assert isinstance(result.text, str) and result.text
    assert result.output_tokens == 8
    assert result.finish_reason == "length"
    prompt = tiny_engine.prompt_ids(to_turns("Hello there"))
    assert result.input_tokens == len(prompt)
    assert result.routed is True
    assert sum(result.weights.values) == pytest.approx(1.0)
    assert result.top_traits == result.weights.top_traits()
    as_dict = result.as_dict()
    assert as_dict["usage"] == {"input_tokens": len(prompt), "output_tokens": 8}
    assert as_dict["persona_weights"] == result.weights.as_dict()


def test_prompt_has_default_system_prompt_and_generation_prompt(
    tiny_engine: PersonaFuseEngine,
) -> None:
    text = tiny_engine.tokenizer.decode(tiny_engine.prompt_ids(to_turns("Hi")))
    assert text.startswith(
        f"<|im_start|>system\n{tiny_engine.config.default_system_prompt}<|im_end|>"
    )
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    own = tiny_engine.tokenizer.decode(
        tiny_engine.prompt_ids(to_turns([{"role": "system", "content": "S"}, "Hi"]))
    )
    assert (
        own.startswith("<|im_start|>system\nS<|im_end|>")
        and tiny_engine.config.default_system_prompt not in own
    )


@pytest.mark.parametrize(
    "weights", [None, BASE_ONLY, ONE_HOT[4]], ids=["routed", "base", "one-hot"]
)
def test_stream_joins_to_generate_text(tiny_engine: PersonaFuseEngine, weights: object) -> None:
    expected = tiny_engine.generate("I failed my exam", persona_weights=weights, params=GREEDY24)
    texts, final = stream_all(
        tiny_engine, "I failed my exam", persona_weights=weights, params=GREEDY24
    )
    assert "".join(texts) == expected.text
    assert final.text == expected.text
    assert final.output_tokens == expected.output_tokens == 24
    assert final.weights == expected.weights
    assert final.finish_reason == "length"


@pytest.mark.parametrize("n", [9, 10])
def test_stream_of_spaced_words(tiny_engine: PersonaFuseEngine, forced, n: int) -> None:
    forced("ab ")
    params = GenerationParams.raw(max_new_tokens=n)
    texts, final = stream_all(tiny_engine, "hi", persona_weights=ONE_HOT[0], params=params)
    assert len(texts) >= 2  # really streamed, word by word
    expected = "ab ab ab" if n == 9 else "ab ab ab a"
    assert final.text == expected
    assert "".join(texts) == expected  # no trailing whitespace left in the stream either


@pytest.mark.parametrize("weights", [None, BASE_ONLY], ids=["routed", "base"])
def test_stop_sequences_cut_generate_and_stream(
    tiny_engine: PersonaFuseEngine, weights: object
) -> None:
    full = tiny_engine.generate("Hello there", persona_weights=weights, params=GREEDY24).text
    # the stop string: the first printable ASCII character after the start of the greedy text
    index = next(i for i in range(1, len(full)) if full[i].isascii() and full[i].isalnum())
    stop = full[index]
    expected = full[:index].strip()
    params = GenerationParams.raw(max_new_tokens=24, stop=(stop,))
    stopped = tiny_engine.generate("Hello there", persona_weights=weights, params=params)
    assert stopped.text == expected
    assert stop not in stopped.text
    assert stopped.finish_reason == "stop"
    assert stopped.output_tokens < 24
    texts, final = stream_all(tiny_engine, "Hello there", persona_weights=weights, params=params)
    assert "".join(texts) == expected
    assert final.text == expected and final.finish_reason == "stop"


def test_stop_sequence_in_spaced_stream(tiny_engine: PersonaFuseEngine, forced) -> None:
    forced("one two three ")
    params = GenerationParams(max_new_tokens=40, stop=("three",))
    result = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=params)
    assert result.text == "one two"
    assert result.output_tokens < 40  # generation really stopped at the stop string
    assert result.finish_reason == "stop"
    forced("one two three ")
    texts, final = stream_all(tiny_engine, "hi", persona_weights=BASE_ONLY, params=params)
    assert "".join(texts) == "one two"
    assert final.text == "one two" and final.finish_reason == "stop"


def test_end_of_sequence_finishes_with_stop(tiny_engine: PersonaFuseEngine, forced) -> None:
    forced("hey ", eos_after=3)
    result = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=GREEDY24)
    assert result.text == "hey"
    assert result.output_tokens == 4  # three tokens plus the end-of-sequence token
    assert result.finish_reason == "stop"


@pytest.mark.parametrize("n", [1, 5, 13])
def test_max_new_tokens_respected(tiny_engine: PersonaFuseEngine, n: int) -> None:
    params = GenerationParams(max_new_tokens=n)
    result = tiny_engine.generate("Tell me something", persona_weights=ONE_HOT[1], params=params)
    assert result.output_tokens == n
    assert result.finish_reason == "length"
    *_, final = stream_all(
        tiny_engine, "Tell me something", persona_weights=ONE_HOT[1], params=params
    )
    assert final.output_tokens == n and final.finish_reason == "length"


def test_seed_gives_repeatable_sampling(tiny_engine: PersonaFuseEngine) -> None:
    def sample(seed: int) -> str:
        params = GenerationParams(max_new_tokens=16, temperature=1.0, seed=seed)
        return tiny_engine.generate("Hello", persona_weights=ONE_HOT[2], params=params).text

    first, again, other = sample(123), sample(123), sample(124)
    assert first == again
    assert first != other
    *_, streamed = stream_all(
        tiny_engine,
        "Hello",
        persona_weights=ONE_HOT[2],
        params=GenerationParams(max_new_tokens=16, temperature=1.0, seed=123),
    )
    assert streamed.text == first


def test_generate_batch_rows_equal_individual_generation(tiny_engine: PersonaFuseEngine) -> None:
    conversations = [
        "Hi",
        "My order arrived broken and nobody answers my emails",
        [
            {"role": "user", "content": "I failed"},
            {"role": "assistant", "content": "Oh no."},
            {"role": "user", "content": "Help"},
        ],
    ]
    weights = [ONE_HOT[0], None, PersonaWeights.uniform()]
    tokenizer = tiny_engine.tokenizer
    batch = tiny_engine.generate_batch(conversations, weights, params=GREEDY8)
    assert len(batch) == 3
    for conv, w, row in zip(conversations, weights, batch):
        single = tiny_engine.generate(conv, persona_weights=w, params=GREEDY8)
        assert tokenizer.encode(row.text) == tokenizer.encode(single.text)
        assert row.text == single.text
        assert (row.input_tokens, row.output_tokens) == (single.input_tokens, single.output_tokens)
        assert row.weights == single.weights
    assert batch[1].routed and not batch[0].routed


def test_generate_batch_validation(tiny_engine: PersonaFuseEngine) -> None:
    assert tiny_engine.generate_batch([]) == []
    with pytest.raises(ValueError, match="one entry per conversation"):
        tiny_engine.generate_batch(["a", "b"], [None])
    # base-only and persona rows share a batch (the base row has zero weights)
    mixed = tiny_engine.generate_batch(["a", "b"], [BASE_ONLY, ONE_HOT[2]], params=GREEDY8)
    assert mixed[0].text == tiny_engine.generate("a", persona_weights=BASE_ONLY, params=GREEDY8).text
    assert mixed[1].text == tiny_engine.generate("b", persona_weights=ONE_HOT[2], params=GREEDY8).text


def test_base_only_differs_from_persona(tiny_engine: PersonaFuseEngine) -> None:
    base = tiny_engine.generate("Hello there", persona_weights=BASE_ONLY, params=GREEDY24)
    assert base.weights is None and base.top_traits == [] and not base.routed
    assert base.as_dict()["persona_weights"] is None
    with tiny_engine.mixer.active(None), torch.inference_mode():
        ids = torch.tensor([tiny_engine.prompt_ids(to_turns("Hello there"))])
        plain = tiny_engine.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False
        )
    assert (
        base.text
        == tiny_engine.tokenizer.decode(plain[0, ids.shape[1] :], skip_special_tokens=True).strip()
    )
    persona_texts = {
        tiny_engine.generate("Hello there", persona_weights=w, params=GREEDY24).text
        for w in ONE_HOT[:3]
    }
    assert base.text not in persona_texts


def test_weights_as_mapping_and_sequence(tiny_engine: PersonaFuseEngine) -> None:
    a = tiny_engine.generate("Hello", persona_weights={"agreeableness_high": 1.0}, params=GREEDY8)
    b = tiny_engine.generate("Hello", persona_weights=list(ONE_HOT[6].values), params=GREEDY8)
    assert EXPERT_NAMES[6] == "agreeableness_high"
    assert a.text == b.text and a.weights == b.weights == ONE_HOT[6]
    with pytest.raises(ValueError, match="persona_weights must be weights"):
        tiny_engine.generate("Hello", persona_weights="cheerful", params=GREEDY8)
    with pytest.raises(ValueError, match="must sum to 1"):
        tiny_engine.generate("Hello", persona_weights={"agreeableness_high": 2.0}, params=GREEDY8)


def test_closing_a_stream_early_stops_the_worker(tiny_engine: PersonaFuseEngine, forced) -> None:
    hook = forced("go ")
    params = GenerationParams.raw(max_new_tokens=5000)
    stream = tiny_engine.stream("hi", persona_weights=ONE_HOT[0], params=params)
    first = next(stream)
    assert first.text and "go go".startswith(first.text)  # a word or, with per-token streamers, less
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 5
    assert hook.calls < 1000  # cancelled long before max_new_tokens
    # the engine is usable afterwards
    assert tiny_engine.generate("hi", persona_weights=ONE_HOT[0], params=GREEDY8).output_tokens == 8


def test_stream_error_is_raised_to_the_consumer(
    tiny_engine: PersonaFuseEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("device on fire")

    handle = tiny_engine.model.register_forward_hook(broken)
    with pytest.raises(RuntimeError, match="device on fire"):
        list(tiny_engine.stream("hi", params=GREEDY8))
    with pytest.raises(RuntimeError, match="device on fire"):
        tiny_engine.generate("hi", params=GREEDY8)
    handle.remove()
    # the scheduler survived the failure
    assert tiny_engine.generate("hi", params=GREEDY8).output_tokens == 8


def test_long_history_drops_the_oldest_turns(tiny_engine: PersonaFuseEngine) -> None:
    tiny_engine.config = EngineConfig(base_model="tiny-llama", device="cpu", max_input_tokens=300)
    history: list[dict[str, str]] = [{"role": "system", "content": "SYS"}]
    for i in range(12):
        history.append({"role": "user", "content": f"user turn {i:02d} " + "x" * 20})
        history.append({"role": "assistant", "content": f"assistant turn {i:02d} " + "y" * 20})
    history.append({"role": "user", "content": "the latest question"})
    ids = tiny_engine.prompt_ids(to_turns(history))
    assert len(ids) <= 300
    prompt = tiny_engine.tokenizer.decode(ids)
    assert prompt.startswith("<|im_start|>system\nSYS<|im_end|>")
    assert prompt.endswith(
        "<|im_start|>user\nthe latest question<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "user turn 00" not in prompt and "assistant turn 00" not in prompt
    assert "assistant turn 11" in prompt
    kept = [i for i in range(12) if f"user turn {i:02d}" in prompt]
    assert kept and kept == list(range(kept[0], 12))  # a contiguous suffix: the oldest went first
    # generation uses the same truncated prompt
    result = tiny_engine.generate(history, persona_weights=ONE_HOT[0], params=GREEDY8)
    assert result.input_tokens == len(ids)


def test_single_message_over_budget_is_an_error(tiny_engine: PersonaFuseEngine) -> None:
    tiny_engine.config = EngineConfig(base_model="tiny-llama", device="cpu", max_input_tokens=100)
    with pytest.raises(InvalidMessageError, match="limit is 100; shorten the message"):
        tiny_engine.generate("z" * 400, params=GREEDY8)


def test_route(tiny_engine: PersonaFuseEngine) -> None:
    routed = tiny_engine.route("I am thrilled!", top_k=3)
    assert len(routed.top_traits) == 3
    assert tiny_engine.generate("I am thrilled!", params=GREEDY8).weights == routed.weights


def test_concurrent_generations_match_sequential(tiny_engine: PersonaFuseEngine) -> None:
    jobs = [("Hello there", ONE_HOT[k]) for k in (0, 3, 6, 9)] + [("I feel sad", None)]
    expected = [tiny_engine.generate(m, persona_weights=w, params=GREEDY24).text for m, w in jobs]
    assert len(set(expected)) >= 3
    results: dict[int, list[str]] = {i: [] for i in range(len(jobs))}
    barrier = threading.Barrier(len(jobs))

    def worker(i: int) -> None:
        barrier.wait()
        message, weights = jobs[i]
        for step in range(3):
            if step == 1:
                pieces = list(tiny_engine.stream(message, persona_weights=weights, params=GREEDY24))
                results[i].append(pieces[-1].final.text)
            else:
                results[i].append(
                    tiny_engine.generate(message, persona_weights=weights, params=GREEDY24).text
                )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    for i, texts in results.items():
        assert texts == [expected[i]] * 3, jobs[i]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 40_000}, "max_new_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 6.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"repetition_penalty": 3.0}, "repetition_penalty"),
        ({"max_time": 0}, "max_time"),
        ({"stop": ("",)}, "stop sequences"),
        ({"stop": (None,)}, "stop sequences"),
    ],
)
def test_generation_params_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationParams(**kwargs)  # type: ignore[arg-type]


def test_cut_at_stop() -> None:
    assert cut_at_stop("hello world. bye", ["bye", "."]) == ("hello world", True)
    assert cut_at_stop("hello", ["x"]) == ("hello", False)
    assert cut_at_stop("hello", []) == ("hello", False)


def test_empty_message_is_rejected(tiny_engine: PersonaFuseEngine) -> None:
    with pytest.raises(InvalidMessageError, match="empty"):
        tiny_engine.generate("   ", params=GREEDY8)
    with pytest.raises(InvalidMessageError):
        list(
            tiny_engine.stream([ChatTurn("user", "x").as_dict() | {"role": "tool"}], params=GREEDY8)
        )
