"""The PersonaFuse engine: base model + bundle loaded once, routing and generation.

Thread-safe and asyncio-friendly: callers prepare their request (validate, route, template)
in their own thread, then a :class:`~persona_agents.scheduler.BatchScheduler` serves every
concurrent request in one batch, each row with its own persona weights (see
``persona_agents/decoding.py`` for how rows join, leave and stay exact).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from persona_agents.base_model import base_model_identity, load_base_model
from persona_agents.bundle import BundleError, PersonaFuseBundle
from persona_agents.config import EngineConfig, default_bundle_dir
from persona_agents.decoding import Row
from persona_agents.encoder import TextEncoder, shared_encoder
from persona_agents.generation import Generation, GenerationParams
from persona_agents.messages import ChatTurn, InvalidMessageError, to_turns
from persona_agents.mixer import ExpertMixer
from persona_agents.router import RouteResult
from persona_agents.scheduler import BatchScheduler, Request, RequestCancelled
from persona_agents.sentences import trim_to_sentence
from persona_agents.streaming import StreamAssembler, StreamPiece, cut_at_stop
from persona_agents.traits import PersonaWeights

log = logging.getLogger(__name__)

BASE_ONLY = "base"  # persona_weights=BASE_ONLY runs the base model without experts
WeightsLike = PersonaWeights | Mapping[str, float] | Sequence[float] | str | None


@dataclass
class Prepared:
    """A validated, routed and templated request, ready for the scheduler."""

    prompt: list[int]
    weights: PersonaWeights | None
    routed: bool
    params: GenerationParams


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
        self._scheduler: BatchScheduler | None = None
        self._scheduler_lock = threading.Lock()

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

    def _generation(self, new_ids: list[int], prepared: Prepared, reason: str) -> Generation:
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, prepared.params.stop)
        if not stopped and reason == "length" and prepared.params.end_at_sentence:
            text = trim_to_sentence(text)  # the budget ran out mid-sentence
        weights = prepared.weights
        return Generation(
            text=text.strip(),
            weights=weights,
            top_traits=weights.top_traits() if weights else [],
            input_tokens=len(prepared.prompt),
            output_tokens=len(new_ids),
            finish_reason="stop" if stopped else reason,
            routed=prepared.routed,
        )

    # --- requests -----------------------------------------------------------------------------
    def prepare(self, messages: Any, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> Prepared:
        """Validate, route and template a request (runs in the caller's thread)."""
        params = params or GenerationParams()
        turns = to_turns(messages)
        weights, routed = self._resolve_weights(turns, persona_weights)
        return Prepared(self.prompt_ids(turns), weights, routed, params)

    @property
    def scheduler(self) -> BatchScheduler:
        if self._scheduler is None:
            with self._scheduler_lock:
                if self._scheduler is None:
                    self._scheduler = BatchScheduler(
                        self.model, self.mixer, self.tokenizer, _eos_ids(self.model, self.tokenizer),
                        max_batch_size=self.config.max_batch_size, max_wait=self.config.max_batch_wait_ms / 1000,
                    )
        return self._scheduler

    def submit(self, prepared: Prepared, *, stream: bool = False, loop: asyncio.AbstractEventLoop | None = None) -> Request:
        """Queue a prepared request; wait on ``request.future`` or read ``request.tokens()``."""
        p = prepared.params
        row = Row(
            prompt=prepared.prompt,
            weights=None if prepared.weights is None else prepared.weights.values,
            max_new_tokens=p.max_new_tokens, min_new_tokens=p.min_new_tokens, temperature=p.temperature,
            top_p=p.top_p, repetition_penalty=p.repetition_penalty, no_repeat_ngram_size=p.no_repeat_ngram_size,
            word_run_limit=p.word_run_limit, seed=p.seed,
        )
        request = Request(row, p.stop, lambda ids, reason: self._generation(ids, prepared, reason),
                          max_time=p.max_time, stream=stream, loop=loop)
        return self.scheduler.submit(request)

    # --- generation ---------------------------------------------------------------------------
    def generate(self, messages: Any, *, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> Generation:
        request = self.submit(self.prepare(messages, persona_weights, params))
        try:
            return request.future.result()
        finally:
            request.cancel()  # a caller interrupted while waiting frees its row

    async def agenerate(self, messages: Any, *, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> Generation:
        request = self.submit(await self.aprepare(messages, persona_weights, params))
        try:
            return await asyncio.wrap_future(request.future)
        finally:
            request.cancel()  # a cancelled task frees its row at the next step

    def generate_batch(
        self,
        conversations: Sequence[Any],
        persona_weights: Sequence[WeightsLike] | None = None,
        *,
        params: GenerationParams | None = None,
    ) -> list[Generation]:
        """Generate for several conversations at once, each row with its own weights."""
        if not conversations:
            return []
        persona_weights = list(persona_weights) if persona_weights is not None else [None] * len(conversations)
        if len(persona_weights) != len(conversations):
            raise ValueError("persona_weights must have one entry per conversation")
        prepared = [self.prepare(c, w, params) for c, w in zip(conversations, persona_weights)]
        requests = [self.submit(p) for p in prepared]
        try:
            return [r.future.result() for r in requests]
        finally:
            for r in requests:
                r.cancel()

    def stream(self, messages: Any, *, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> Iterator[StreamPiece]:
        """Yield text as it is generated; the last piece carries the whole :class:`Generation`.

        With ``end_at_sentence`` (the default) text is released a sentence at a time, so nothing
        shown has to be taken back when the token budget cuts the reply.

        Closing the iterator early cancels the request at the next decode step.
        """
        prepared = self.prepare(messages, persona_weights, params)
        request = self.submit(prepared, stream=True)
        assembler = StreamAssembler(self.tokenizer, prepared.params.stop, sentences=prepared.params.end_at_sentence)
        try:
            for token in request.tokens():
                if text := assembler.feed([token]):
                    yield StreamPiece(text)
            final = request.future.result()
            if tail := assembler.finish(final.text):
                yield StreamPiece(tail)
            yield StreamPiece("", final)
        finally:
            request.cancel()

    async def aprepare(self, messages: Any, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> Prepared:
        """:meth:`prepare` off the event loop (routing runs the encoder)."""
        return await asyncio.to_thread(self.prepare, messages, persona_weights, params)

    async def astream(self, messages: Any, *, persona_weights: WeightsLike = None, params: GenerationParams | None = None) -> AsyncIterator[StreamPiece]:
        async for piece in self.astream_prepared(await self.aprepare(messages, persona_weights, params)):
            yield piece

    async def astream_prepared(self, prepared: Prepared) -> AsyncIterator[StreamPiece]:
        """Stream a request prepared already (the server validates before it answers 200)."""
        request = self.submit(prepared, stream=True, loop=asyncio.get_running_loop())
        assembler = StreamAssembler(self.tokenizer, prepared.params.stop, sentences=prepared.params.end_at_sentence)
        try:
            async for token in request.atokens():
                if text := assembler.feed([token]):
                    yield StreamPiece(text)
            final = await asyncio.wrap_future(request.future)
            if tail := assembler.finish(final.text):
                yield StreamPiece(tail)
            yield StreamPiece("", final)
        finally:
            request.cancel()


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


__all__ = [
    "BASE_ONLY", "Generation", "GenerationParams", "PersonaFuseEngine", "Prepared", "RequestCancelled",
    "StreamPiece", "cut_at_stop",
]
