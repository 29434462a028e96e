"""The reply defaults on the tiny engine: no loops, replies end on a sentence, overrides work.

``LoopingModel`` biases the tiny model toward continuing a phrase it has started (a character
model of "it is a wake up call and "), so the raw distribution loops like the 135M model does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from fastapi.testclient import TestClient

from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.engine import BASE_ONLY, GenerationParams, PersonaFuseEngine
from persona_agents.generation import DEFAULT_PARAMS
from persona_agents.repetition import WordRunGuard, repeated_run, words
from persona_agents.sentences import last_sentence_end, trim_to_sentence
from persona_agents.serving.protocol import ChatCompletionRequest

LOOP = "it is a wake up call and "


class PhraseBias:
    """A forward hook that adds ``strength`` to the character continuing the longest suffix of
    the reply so far that occurs in ``phrase`` (cyclically); the phrase's start when none does.
    ``forced=True`` makes the hook absolute (-1e4 elsewhere), to write an exact text."""

    def __init__(self, engine: PersonaFuseEngine, phrase: str, strength: float = 8.0, cyclic: bool = True) -> None:
        self.tokenizer = engine.tokenizer
        self.phrase = phrase
        self.cyclic = cyclic
        self.strength = strength
        self.reply: list[int] = []
        self.handle = engine.model.register_forward_hook(self._hook, with_kwargs=True)

    def _next_char(self) -> str | None:
        text = self.tokenizer.decode(self.reply)
        source = self.phrase * 2 if self.cyclic else self.phrase
        if source.startswith(text) and len(text) < len(source):
            return source[len(text)]
        for size in range(min(len(text), 6), 0, -1):
            at = source.find(text[-size:])
            if at >= 0 and at + size < len(source):
                return source[at + size]
        return self.phrase[0] if self.cyclic or not text else None

    def _hook(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: object) -> object:
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:
            self.reply = []  # a prefill: a new request starts
        else:
            self.reply.append(int(ids[0, -1]))
        char = self._next_char()
        if char is not None:
            token = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(char))[0]
            output.logits[:, -1, token] += self.strength  # type: ignore[attr-defined]
        return output

    def remove(self) -> None:
        self.handle.remove()


@pytest.fixture
def looping(tiny_engine: PersonaFuseEngine) -> Iterator[PhraseBias]:
    hook = PhraseBias(tiny_engine, LOOP)
    yield hook
    hook.remove()


def reply_ids(engine: PersonaFuseEngine, weights: object, params: GenerationParams) -> list[int]:
    request = engine.submit(engine.prepare("hi", weights, params))
    request.future.result(timeout=60)
    return request.row.generated


def letter_ngrams_repeat(tokenizer: object, ids: list[int], n: int) -> bool:
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    with_letters = [g for g in grams if any(tokenizer.decode([t]).isalpha() for t in g)]  # type: ignore[attr-defined]
    return len(with_letters) != len(set(with_letters))


# --- no loops -------------------------------------------------------------------------------


def test_the_biased_model_loops_raw_but_not_with_the_defaults(tiny_engine: PersonaFuseEngine, looping: PhraseBias) -> None:
    raw = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=GenerationParams.raw(max_new_tokens=120))
    assert repeated_run(raw.text) is not None, raw.text  # the bias really makes it loop
    for weights in (BASE_ONLY, None):
        reply = tiny_engine.generate("hi", persona_weights=weights, params=GenerationParams(max_new_tokens=120))
        assert repeated_run(reply.text) is None, reply.text
        assert reply.text.startswith("it is a wake up call and")  # the first time through is allowed



def test_the_token_ngram_rule_when_asked_for(tiny_engine: PersonaFuseEngine, looping: PhraseBias) -> None:
    params = GenerationParams.raw(max_new_tokens=120, no_repeat_ngram_size=4)
    ids = reply_ids(tiny_engine, BASE_ONLY, params)
    assert not letter_ngrams_repeat(tiny_engine.tokenizer, ids, 4)
    raw_ids = reply_ids(tiny_engine, BASE_ONLY, GenerationParams.raw(max_new_tokens=120))
    assert letter_ngrams_repeat(tiny_engine.tokenizer, raw_ids, 4)


def test_the_guard_stops_a_run_before_its_last_word(tiny_engine: PersonaFuseEngine, looping: PhraseBias) -> None:
    """The second "it is a wake up" (a five-word run) is stopped before "up" starts, so no word
    is mangled to dodge it."""
    reply = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=GenerationParams(max_new_tokens=80)).text
    twice = LOOP + "it is a wake "
    assert reply.startswith(twice), reply
    assert not reply[len(twice) :].lower().startswith("u"), reply
    assert sum(w.startswith("wa") for w in words(reply)) == 2, reply


def test_word_run_guard_rules() -> None:
    guard = WordRunGuard(2, run_words=4, echo_words=0)
    assert guard.forbidden_next("A b, c d. a b c d; A B C") == ({"d"}, True)  # case and punctuation ignored
    assert guard.forbidden_next("a b c d a b c d a b c ") == ({"d"}, False)
    assert guard.forbidden_next("a b c d a b c") == (set(), True)  # one earlier run: a second is allowed
    assert guard.ending_refused("a b c d a b c d a b c d") and not guard.ending_refused("a b c d a b c d a b c de")
    assert guard.refuses("a b c d a b c d a b c d", final=True)
    assert not guard.refuses("a b c d a b c d a b c d", final=False)  # "d" may still grow into "do"
    assert not guard.refuses("a b c d a b c d a b c do", final=True)
    phrases = WordRunGuard(2)  # the default: three-word runs
    assert phrases.forbidden_next("What's the plan? What's the plan? What's the ") == ({"plan"}, False)
    assert phrases.refuses("You're not alone, and you're not alone. You're not alone", final=True)
    assert not phrases.refuses("You're not alone, and you're not alone. You're not", final=True)
    assert phrases.forbidden_next("I'm so proud of you. I'm so proud of ") == ({"you"}, False)  # no sentence twice
    assert phrases.refuses("I'm so proud of you. I'm so proud of you.", final=True)
    assert not phrases.refuses("I'm so proud of you. I'm so proud of everything.", final=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_replies_do_not_loop_either(tiny_engine: PersonaFuseEngine, looping: PhraseBias, seed: int) -> None:
    params = GenerationParams(max_new_tokens=120, temperature=0.8, seed=seed)
    reply = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=params)
    assert repeated_run(reply.text) is None, reply.text


def test_the_chat_model_defaults_do_not_loop(tiny_engine: PersonaFuseEngine, looping: PhraseBias) -> None:
    llm = ChatPersonaFuse(engine=tiny_engine)
    assert repeated_run(str(llm.invoke("hi", persona_weights=BASE_ONLY).content)) is None
    streamed = "".join(str(c.content) for c in llm.stream("hi", persona_weights=BASE_ONLY))
    assert repeated_run(streamed) is None


def test_runs_without_letters_may_repeat(tiny_engine: PersonaFuseEngine) -> None:
    """A listed number such as 1800 247 247 repeats a 4-token run of digits: still writable
    under the token n-gram rule."""
    hook = PhraseBias(tiny_engine, "call 1800 247 247 now.", strength=1e4, cyclic=False)
    params = GenerationParams(max_new_tokens=22, no_repeat_ngram_size=4, repetition_penalty=1.3)
    try:
        reply = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=params)
    finally:
        hook.remove()
    assert reply.text == "call 1800 247 247 now."


# --- a reply that runs out of tokens ends on a sentence ---------------------------------------

SENTENCES = "Hello there. How are you today? I am fine and"


@pytest.fixture
def sentences(tiny_engine: PersonaFuseEngine) -> Iterator[PhraseBias]:
    hook = PhraseBias(tiny_engine, SENTENCES + " more words", strength=1e4, cyclic=False)
    yield hook
    hook.remove()


def test_a_reply_cut_by_its_budget_ends_at_its_last_sentence(tiny_engine: PersonaFuseEngine, sentences: PhraseBias) -> None:
    params = GenerationParams(max_new_tokens=len(SENTENCES))
    reply = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=params)
    assert reply.text == "Hello there. How are you today?"
    assert reply.finish_reason == "length" and reply.output_tokens == len(SENTENCES)
    pieces = list(tiny_engine.stream("hi", persona_weights=BASE_ONLY, params=params))
    shown = [p.text for p in pieces[:-1] if p.text]
    assert "".join(shown) == reply.text == pieces[-1].final.text
    assert shown[0] == "Hello there."  # released a sentence at a time, nothing taken back


def test_without_the_sentence_rule_the_cut_stays(tiny_engine: PersonaFuseEngine, sentences: PhraseBias) -> None:
    params = GenerationParams(max_new_tokens=len(SENTENCES), end_at_sentence=False)
    reply = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=params)
    assert reply.text == SENTENCES
    streamed = "".join(p.text for p in tiny_engine.stream("hi", persona_weights=BASE_ONLY, params=params))
    assert streamed == SENTENCES


def test_a_reply_without_a_sentence_end_is_kept_whole(tiny_engine: PersonaFuseEngine) -> None:
    hook = PhraseBias(tiny_engine, "no full stop in this reply at all", strength=1e4, cyclic=False)
    try:
        reply = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=GenerationParams(max_new_tokens=20))
        streamed = "".join(p.text for p in tiny_engine.stream("hi", persona_weights=BASE_ONLY,
                                                               params=GenerationParams(max_new_tokens=20)))
    finally:
        hook.remove()
    assert reply.text == "no full stop in this" == streamed


def test_a_reply_that_ends_by_itself_is_not_cut(tiny_engine: PersonaFuseEngine) -> None:
    hook = PhraseBias(tiny_engine, "Fine. And you", strength=1e4, cyclic=False)  # then end-of-sequence
    eos = tiny_engine.tokenizer.eos_token_id

    def stop_after_phrase(module: torch.nn.Module, args: tuple, output: object) -> object:
        if hook.tokenizer.decode(hook.reply) == "Fine. And you":
            output.logits[:, -1, eos] = 1e5  # type: ignore[attr-defined]
        return output

    handle = tiny_engine.model.register_forward_hook(stop_after_phrase)
    try:
        reply = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=GenerationParams(max_new_tokens=40))
    finally:
        handle.remove()
        hook.remove()
    assert reply.finish_reason == "stop" and reply.text == "Fine. And you"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("I hear you. That sounds hard. And when you", "I hear you. That sounds hard."),
        ("Really? Yes! Then the", "Really? Yes!"),
        ("He said \"stop.\" Then", "He said \"stop.\""),
        ("It costs 3.5 and", "It costs 3.5 and"),  # no sentence end: kept whole
        ("Ask Dr. Smith about the", "Ask Dr. Smith about the"),
        ("Some ideas:\n1. Rest.\n2. Talk to", "Some ideas:\n1. Rest."),
        ("Some ideas:\n1. Rest", "Some ideas:\n1. Rest"),
        ("First line\nSecond li", "First line"),
        ("Done.", "Done."),
        ("   ", ""),
    ],
)
def test_trim_to_sentence(text: str, kept: str) -> None:
    assert trim_to_sentence(text) == kept


def test_streaming_ends_are_never_taken_back() -> None:
    text = "Hello there. It costs 3.5 now. Ask Dr. Who! Ok\nNext"
    released = [last_sentence_end(text[:i], final=False) for i in range(len(text) + 1)]
    assert released == sorted(released)  # a prefix never loses an end it had
    assert all(text[:end] == text[:i][:end] for i, end in enumerate(released))
    assert last_sentence_end(text, final=True) >= released[-1]


# --- overrides ------------------------------------------------------------------------------


def test_raw_and_explicit_overrides_are_the_same_request() -> None:
    assert GenerationParams.raw(max_new_tokens=9) == GenerationParams(
        max_new_tokens=9, repetition_penalty=1.0, no_repeat_ngram_size=0, word_run_limit=0, end_at_sentence=False
    )
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        GenerationParams(no_repeat_ngram_size=1)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        GenerationParams(no_repeat_ngram_size=-2)
    with pytest.raises(ValueError, match="end_at_sentence"):
        GenerationParams(end_at_sentence="yes")  # type: ignore[arg-type]


def test_chat_model_and_server_share_the_defaults() -> None:
    llm = ChatPersonaFuse(engine=None)
    _, params = llm._call_options(None, {})
    assert params == DEFAULT_PARAMS
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    assert request.generation_params() == DEFAULT_PARAMS
    _, overridden = llm._call_options(["x"], {"max_tokens": 7, "no_repeat_ngram_size": 0, "end_at_sentence": False,
                                               "repetition_penalty": 1.0, "word_run_limit": 0})
    assert overridden == GenerationParams.raw(max_new_tokens=7, stop=("x",))
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 7, "stop": "x", "no_repeat_ngram_size": 0,
            "end_at_sentence": False, "repetition_penalty": 1.0, "word_run_limit": 0}
    assert ChatCompletionRequest.model_validate(body).generation_params() == overridden


def test_overrides_bring_the_loop_back(tiny_engine: PersonaFuseEngine, looping: PhraseBias) -> None:
    off = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "word_run_limit": 0, "end_at_sentence": False}
    raw = tiny_engine.generate("hi", persona_weights=BASE_ONLY, params=GenerationParams.raw(max_new_tokens=90)).text
    per_call = ChatPersonaFuse(engine=tiny_engine, max_tokens=90).invoke("hi", persona_weights=BASE_ONLY, **off)
    per_model = ChatPersonaFuse(engine=tiny_engine, max_tokens=90, **off).invoke("hi", persona_weights=BASE_ONLY)
    assert per_call.content == per_model.content == raw
    assert repeated_run(raw) is not None


def test_server_requests_take_the_defaults_and_overrides(tiny_engine: PersonaFuseEngine, looping: PhraseBias) -> None:
    from persona_agents.serving.app import create_app

    messages = [{"role": "user", "content": "hi"}]
    with TestClient(create_app(engine_factory=lambda: tiny_engine)) as client:
        default = client.post("/v1/chat/completions", json={"messages": messages, "persona_weights": "base"}).json()
        raw = client.post("/v1/chat/completions", json={
            "messages": messages, "persona_weights": "base", "max_tokens": 60, "repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0, "word_run_limit": 0, "end_at_sentence": False}).json()
        bad = client.post("/v1/chat/completions", json={"messages": messages, "no_repeat_ngram_size": 1})
    assert default["usage"]["completion_tokens"] == DEFAULT_PARAMS.max_new_tokens
    assert repeated_run(default["choices"][0]["message"]["content"]) is None
    assert raw["choices"][0]["message"]["content"] == tiny_engine.generate(
        "hi", persona_weights=BASE_ONLY, params=GenerationParams.raw(max_new_tokens=60)).text
    assert bad.status_code == 400 and "no_repeat_ngram_size" in bad.json()["error"]["message"]
