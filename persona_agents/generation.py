"""What a generation request asks for and what it returns (no torch: the client uses these too)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from persona_agents.traits import PersonaWeights


@dataclass(frozen=True)
class GenerationParams:
    """What one generation request asks for. The defaults are the reply defaults of every
    caller that does not choose (the engine, ``ChatPersonaFuse``, the server, the graphs, the
    evals); they are set here and nowhere else.

    - ``max_new_tokens=120``: a reply of three to five sentences (about 65-85 words);
    - ``word_run_limit=2``: no run of three words (case and punctuation ignored,
      ``persona_agents.repetition``) appears more than twice in a reply, so no four-word run
      does either, and no run of five words comes back at all (a sentence said twice); the
      word that would break the rule may not start (the model says something else), and a
      token that would still complete such a run is refused and the next best taken (a sampled
      row draws again). It acts on words, so a model cannot loop around it by changing one
      token ("it's a wake-up call, and it's a wake up call");
    - ``end_at_sentence=True``: a reply that runs out of tokens (or of ``max_time``) is cut back
      to its last complete sentence (``persona_agents.sentences.trim_to_sentence``; a reply
      without any sentence end is kept whole, so a reply is never emptied). Streams then hold
      back the sentence in progress, so nothing shown is taken back;
    - ``repetition_penalty=1.0`` and ``no_repeat_ngram_size=0``: both rules exist, both are off.
      The penalty divides the logits of every token already in the prompt or the reply
      (transformers' rule); the n-gram rule bans a token that would repeat a run of that many
      tokens of the reply (runs without a letter, such as the digits of "1800 247 247", are
      exempt). On the quality sets (greedy, 22 rows per domain), penalty 1.15 with 4-token
      n-grams kept the model from echoing the person's words (routed reflection 0.59 -> 0.18,
      complaints addressed 0.50 -> 0.14); 4-token n-grams with the guard (then on four-word runs)
      blocked one more counseling draft and left two fewer reviews passing every check than the
      guard alone.

    Without these rules (the old defaults) 14-59% of the default model's greedy replies on the
    quality sets (per domain and arm) repeat a four-word run three times or more, and 12 of 32
    on a sweep of temperatures and personas (``python -m evals.quality.sweep --messages 4``);
    with them, none, and none repeats a three-word phrase three times or a five-word run twice.
    :meth:`raw` turns every rule off (benches, exactness tests against transformers).
    """

    max_new_tokens: int = 120
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    max_time: float | None = None  # wall-clock seconds per request, waiting included
    min_new_tokens: int = 0  # end-of-sequence is suppressed before this many tokens (benches)
    no_repeat_ngram_size: int = 0  # 0: off
    word_run_limit: int = 2  # 0: off
    end_at_sentence: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 32_768:
            raise ValueError(f"max_new_tokens must be within 1..32768, got {self.max_new_tokens}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature must be within 0..5, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be within (0, 1], got {self.top_p}")
        if not 0.5 <= self.repetition_penalty <= 2.0:
            raise ValueError(f"repetition_penalty must be within 0.5..2, got {self.repetition_penalty}")
        if self.max_time is not None and self.max_time <= 0:
            raise ValueError("max_time must be positive")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError("min_new_tokens must be within 0..max_new_tokens")
        if isinstance(self.no_repeat_ngram_size, bool) or not 0 <= self.no_repeat_ngram_size <= 64:
            raise ValueError(f"no_repeat_ngram_size must be within 0..64 (0: off), got {self.no_repeat_ngram_size}")
        if self.no_repeat_ngram_size == 1:
            raise ValueError("no_repeat_ngram_size 1 would forbid every token after its first use; use 0 or >= 2")
        if isinstance(self.word_run_limit, bool) or not 0 <= self.word_run_limit <= 16:
            raise ValueError(f"word_run_limit must be within 0..16 (0: off), got {self.word_run_limit}")
        if not isinstance(self.end_at_sentence, bool):
            raise ValueError(f"end_at_sentence must be true or false, got {self.end_at_sentence!r}")
        if isinstance(self.stop, str):
            raise ValueError("stop must be a tuple of strings, not one string")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty strings")

    @classmethod
    def raw(cls, **overrides: Any) -> GenerationParams:
        """The model's own distribution: no repetition rules, no sentence cut."""
        return cls(**{"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "word_run_limit": 0, "end_at_sentence": False,
                      **overrides})

    @classmethod
    def from_options(
        cls,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        repetition_penalty: float | None = None,
        no_repeat_ngram_size: int | None = None,
        word_run_limit: int | None = None,
        end_at_sentence: bool | None = None,
        min_tokens: int | None = None,
        timeout: float | None = None,
    ) -> GenerationParams:
        """Params from options named as chat APIs name them (``max_tokens``, ``min_tokens``,
        ``timeout``); an option left at None keeps the default. ``ChatPersonaFuse`` and the
        server's ``ChatCompletionRequest`` both build their params here."""
        stops = () if stop is None else (stop,) if isinstance(stop, str) else tuple(stop)
        given = {
            "max_new_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
            "repetition_penalty": repetition_penalty, "no_repeat_ngram_size": no_repeat_ngram_size,
            "word_run_limit": word_run_limit, "end_at_sentence": end_at_sentence, "max_time": timeout,
        }
        params = cls(seed=seed, stop=stops, **{k: v for k, v in given.items() if v is not None})
        if min_tokens:
            params = replace(params, min_new_tokens=min(min_tokens, params.max_new_tokens))
        return params


DEFAULT_PARAMS = GenerationParams()


@dataclass
class Generation:
    text: str
    weights: PersonaWeights | None  # None: the base model alone
    top_traits: list[str]
    input_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" or "length"
    routed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "persona_weights": self.weights.as_dict() if self.weights else None,
            "top_traits": self.top_traits,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "finish_reason": self.finish_reason,
            "routed": self.routed,
        }
