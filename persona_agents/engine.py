"""The PersonaFuse engine: base model + bundle loaded once, routing and generation.

Thread-safe: every forward pass runs inside ``ExpertMixer.active``, which holds a lock, so a
request never runs with another request's weights. On a 2-core CPU serialising generations
costs nothing; on a GPU, :meth:`generate_batch` serves many conversations in one batch, each
row with its own weights.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from persona_agents.base_model import base_model_identity, load_base_model
from persona_agents.bundle import BundleError, PersonaFuseBundle
from persona_agents.config import EngineConfig, default_bundle_dir
from persona_agents.encoder import TextEncoder, shared_encoder
from persona_agents.messages import ChatTurn, InvalidMessageError, to_turns
from persona_agents.mixer import ExpertMixer
from persona_agents.router import RouteResult
from persona_agents.traits import PersonaWeights

log = logging.getLogger(__name__)

BASE_ONLY = "base"  # persona_weights=BASE_ONLY runs the base model without experts
WeightsLike = PersonaWeights | Mapping[str, float] | Sequence[float] | str | None


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    max_time: float | None = None  # wall-clock seconds per generation

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
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty strings")


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


@dataclass
class StreamPiece:
    """A piece of streamed text; the last piece carries the finished :class:`Generation`."""

    text: str
    final: Generation | None = None


class _CancelOnEvent(StoppingCriteria):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text up to the earliest stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class PersonaFuseEngine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        bundle: PersonaFuseBundle,
        encoder: TextEncoder,
        config: EngineConfig | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.model = model.eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.bundle = bundle
        self.router = bundle.make_router(encoder)
        self.mixer = ExpertMixer(model, bundle.experts)
        self.model_name = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def load(cls, config: EngineConfig | None = None) -> PersonaFuseEngine:
        config = config or EngineConfig.from_env()
        bundle_path = Path(config.bundle) if config.bundle else default_bundle_dir()
        bundle = PersonaFuseBundle.load(bundle_path)
        expected = base_model_identity(config.base_model)
        if config.check_base_model and bundle.manifest.base_model != expected:
            raise BundleError(
                f"bundle {bundle_path} was trained for base model {bundle.manifest.base_model!r}, "
                f"not {expected!r}; train a bundle for this base model or pass check_base_model=False"
            )
        model, tokenizer = load_base_model(config)
        engine = cls(model, tokenizer, bundle, shared_encoder(config.encoder_device), config)
        engine.model_name = expected
        for part in bundle.manifest.untrained_parts:
            log.warning("bundle %s: the %s are untrained (no persona effect)", bundle_path, part)
        return engine

    _shared: dict[EngineConfig, PersonaFuseEngine] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, config: EngineConfig | None = None) -> PersonaFuseEngine:
        """One engine per configuration in this process (models are loaded once)."""
        config = config or EngineConfig.from_env()
        with cls._shared_lock:
            engine = cls._shared.get(config)
            if engine is None:
                engine = cls._shared[config] = cls.load(config)
            return engine

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- routing ------------------------------------------------------------------------------
    def route(self, messages: Any, top_k: int = 2) -> RouteResult:
        return self.router.route(to_turns(messages), top_k=top_k)

    def _resolve_weights(self, turns: list[ChatTurn], persona_weights: WeightsLike) -> tuple[PersonaWeights | None, bool]:
        if persona_weights is None:
            return self.router.route(turns).weights, True
        if isinstance(persona_weights, str):
            if persona_weights != BASE_ONLY:
                raise ValueError(f"persona_weights must be weights, a mapping, None or {BASE_ONLY!r}")
            return None, False
        return PersonaWeights.coerce(persona_weights), False

    # --- prompting ----------------------------------------------------------------------------
    def prompt_ids(self, turns: list[ChatTurn]) -> list[int]:
        """Chat-templated prompt, dropping the oldest turns if it exceeds the input budget."""
        turns = list(turns)
        if turns[0].role != "system" and self.config.default_system_prompt:
            turns.insert(0, ChatTurn("system", self.config.default_system_prompt))
        while True:
            ids = self.tokenizer.apply_chat_template(
                [t.as_dict() for t in turns], add_generation_prompt=True, tokenize=True, return_dict=False
            )
            if isinstance(ids, Mapping):  # some tokenizers return a BatchEncoding regardless
                ids = ids["input_ids"]
            if len(ids) <= self.config.max_input_tokens:
                return list(ids)
            droppable = [i for i, t in enumerate(turns[:-1]) if t.role != "system"]
            if not droppable:
                raise InvalidMessageError(
                    f"the prompt needs {len(ids)} tokens but the limit is {self.config.max_input_tokens}; "
                    "shorten the message"
                )
            del turns[droppable[0]]

    def _generate_kwargs(self, params: GenerationParams, cancel: threading.Event | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": params.temperature > 0,
        }
        if params.temperature > 0:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = params.repetition_penalty
        if params.max_time is not None:
            kwargs["max_time"] = params.max_time
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if cancel is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_CancelOnEvent(cancel)])
        return kwargs

    def _generation(
        self, new_ids: list[int], prompt: list[int], weights: PersonaWeights | None, routed: bool, params: GenerationParams
    ) -> Generation:
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, params.stop)
        ended = bool(new_ids) and new_ids[-1] in _eos_ids(self.model, self.tokenizer)
        return Generation(
            text=text.strip(),
            weights=weights,
            top_traits=weights.top_traits() if weights else [],
            input_tokens=len(prompt),
            output_tokens=len(new_ids),
            finish_reason="stop" if stopped or ended or len(new_ids) < params.max_new_tokens else "length",
            routed=routed,
        )

    # --- generation ---------------------------------------------------------------------------
    def generate(self, messages: Any, *, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> Generation:
        return self.generate_batch([messages], [persona_weights], params=params)[0]

    def generate_batch(
        self,
        conversations: Sequence[Any],
        persona_weights: Sequence[WeightsLike] | None = None,
        *,
        params: GenerationParams | None = None,
    ) -> list[Generation]:
        """Generate for several conversations in one batch, each row with its own weights."""
        params = params or GenerationParams()
        if not conversations:
            return []
        persona_weights = list(persona_weights) if persona_weights is not None else [None] * len(conversations)
        if len(persona_weights) != len(conversations):
            raise ValueError("persona_weights must have one entry per conversation")
        turns_list = [to_turns(c) for c in conversations]
        resolved = [self._resolve_weights(t, w) for t, w in zip(turns_list, persona_weights)]
        if len({w is None for w, _ in resolved}) > 1:
            raise ValueError("a batch cannot mix base-only rows with persona rows; send them separately")
        prompts = [self.prompt_ids(t) for t in turns_list]
        input_ids, attention = self._left_pad(prompts)
        row_weights = None if resolved[0][0] is None else torch.tensor([w.values for w, _ in resolved])
        with self.mixer.active(row_weights), torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.model.generate(
                input_ids=input_ids, attention_mask=attention, **self._generate_kwargs(params, None)
            )
        results = []
        for row, (prompt, (weights, routed)) in enumerate(zip(prompts, resolved)):
            new_ids = _strip_padding(output[row, input_ids.shape[1] :].tolist(), self.tokenizer.pad_token_id, self.model, self.tokenizer)
            results.append(self._generation(new_ids, prompt, weights, routed, params))
        return results

    def stream(self, messages: Any, *, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> Iterator[StreamPiece]:
        """Yield text as it is generated; the last piece carries the whole :class:`Generation`.

        Generation runs in a worker thread feeding a ``TextIteratorStreamer``. Closing the
        iterator early cancels the worker at the next token.
        """
        params = params or GenerationParams()
        turns = to_turns(messages)
        weights, routed = self._resolve_weights(turns, persona_weights)
        prompt = self.prompt_ids(turns)
        input_ids = torch.tensor([prompt], device=self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                with self.mixer.active(None if weights is None else torch.tensor(weights.values)), torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    out = self.model.generate(
                        input_ids=input_ids,
                        attention_mask=torch.ones_like(input_ids),
                        streamer=streamer,
                        **self._generate_kwargs(params, cancel),
                    )
                outcome["ids"] = out[0, input_ids.shape[1] :].tolist()
            except BaseException as exc:  # surfaced in the consumer
                outcome["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, name="persona-fuse-generate", daemon=True)
        worker.start()
        holdback = max((len(s) for s in params.stop), default=1) - 1
        emitted, buffer, stopped = "", "", False
        try:
            for piece in streamer:
                if stopped:
                    continue
                buffer += piece
                cut, found = cut_at_stop(buffer, params.stop)
                if found:
                    stopped = True
                    cancel.set()
                    ready, buffer = cut.rstrip(), ""
                else:
                    # keep the last holdback characters: a stop string may be arriving a token at a time
                    split = max(0, len(buffer) - holdback)
                    ready, buffer = buffer[:split], buffer[split:]
                    # hold trailing whitespace back until more text follows: the final text is stripped
                    kept = ready.rstrip()
                    ready, buffer = kept, ready[len(kept) :] + buffer
                if ready:
                    if not emitted:
                        ready = ready.lstrip()
                    if ready:
                        emitted += ready
                        yield StreamPiece(ready)
            worker.join()
            if "error" in outcome:
                raise outcome["error"]
            if buffer and not stopped:
                tail = (buffer if emitted else buffer.lstrip()).rstrip()
                if tail:
                    emitted += tail
                    yield StreamPiece(tail)
            yield StreamPiece("", self._generation(outcome.get("ids", []), prompt, weights, routed, params))
        finally:
            cancel.set()  # a consumer that left early stops the worker at its next token
            worker.join()

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        return ids.to(self.device), mask.to(self.device)


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _strip_padding(ids: list[int], pad_id: int | None, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Generated ids up to and including the first end-of-sequence (rows that ended early are padded)."""
    eos = _eos_ids(model, tokenizer)
    for i, token in enumerate(ids):
        if token in eos:
            return ids[: i + 1]
    return ids
