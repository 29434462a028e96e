"""``ChatPersonaFuse``: the PersonaFuse engine as a LangChain chat model.

Data flow: ``_call_options`` turns LangChain call options into persona weights and
``GenerationParams``; the backend (an in-process :class:`PersonaFuseEngine`, or a
:class:`~persona_agents.client.PersonaFuseClient` when ``base_url`` is set) generates or streams
``StreamPiece``s; ``_chunk`` and ``_result`` turn them into messages with usage and routing
metadata. Both backends have the same methods, so everything else is shared.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from persona_agents.client import PersonaFuseClient
from persona_agents.config import EngineConfig
from persona_agents.engine import BASE_ONLY, PersonaFuseEngine
from persona_agents.generation import DEFAULT_PARAMS, Generation, GenerationParams
from persona_agents.router import RouteResult
from persona_agents.streaming import StreamPiece
from persona_agents.traits import PersonaWeights

# call options (and fields) that set decoding, named as GenerationParams.from_options names them
_DECODING_OPTIONS = ("max_tokens", "temperature", "top_p", "seed", "repetition_penalty", "no_repeat_ngram_size",
                     "word_run_limit", "end_at_sentence")


class ChatPersonaFuse(BaseChatModel):
    """A local causal LM with ten Big-Five persona experts mixed per turn by a router.

    Example:
        .. code-block:: python

            from persona_agents import ChatPersonaFuse

            llm = ChatPersonaFuse()   # reply defaults: 120 tokens, no loops, ends on a sentence
            reply = llm.invoke("I failed my exam and feel awful")
            reply.response_metadata["top_traits"]   # e.g. ['agreeableness_high', 'neuroticism_low']
            llm.invoke("Hi!", persona_weights={"extraversion_high": 1.0})  # fixed persona

    The model is loaded on first use and shared by every instance with the same settings.
    Pass ``engine=`` to use an engine you built yourself (tests, custom models), or
    ``base_url=`` to use a model served by ``persona-agents serve``:

        .. code-block:: python

            llm = ChatPersonaFuse(base_url="http://127.0.0.1:8000", max_tokens=80)
            llm.route("I failed my exam").top_traits   # routing alone, in-process or remote

    Concurrent calls (threads or asyncio tasks) are served together in one batch.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model_name: str = Field("default", alias="model", description="base model: 'default', a hub id or a path")
    bundle: str | None = Field(None, description="PersonaFuse bundle folder; None for the shipped default")
    device: str = "auto"
    dtype: str = "auto"
    # decoding: the defaults are GenerationParams' reply defaults (persona_agents/generation.py)
    max_tokens: int = Field(DEFAULT_PARAMS.max_new_tokens, ge=1, le=32_768, description="maximum new tokens per reply")
    temperature: float = Field(DEFAULT_PARAMS.temperature, ge=0.0, le=5.0)
    top_p: float = Field(DEFAULT_PARAMS.top_p, gt=0.0, le=1.0)
    repetition_penalty: float = Field(DEFAULT_PARAMS.repetition_penalty, ge=0.5, le=2.0,
                                      description=">1 discourages repeating tokens of the prompt and reply")
    no_repeat_ngram_size: int = Field(DEFAULT_PARAMS.no_repeat_ngram_size, ge=0, le=64,
                                      description="no run of this many tokens twice in a reply; 0 turns it off")
    word_run_limit: int = Field(DEFAULT_PARAMS.word_run_limit, ge=0, le=16,
                                description="a run of three words occurs at most this often in a reply, and a run of five words once; 0 turns the guard off")
    end_at_sentence: bool = Field(DEFAULT_PARAMS.end_at_sentence,
                                  description="a reply that runs out of tokens ends at its last complete sentence")
    seed: int | None = None
    stop: list[str] | None = Field(None, alias="stop_sequences")
    persona_weights: dict[str, float] | None = Field(
        None, description="fixed weights over the ten experts; None routes every turn"
    )
    timeout: float | None = Field(None, gt=0, description="wall-clock limit per generation, seconds")
    max_retries: int = Field(0, ge=0, description="accepted for interface parity; local inference is not retried")
    streaming: bool = False
    base_url: str | None = Field(None, description="a PersonaFuse server's URL; None runs the model in-process")
    api_key: str | None = Field(None, exclude=True, description="sent as a bearer token to base_url")
    engine: Any = Field(None, exclude=True, description="a PersonaFuseEngine (or client) to use instead of loading one")

    _engine_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("persona_weights")
    @classmethod
    def _valid_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            PersonaWeights.from_mapping(value)
        return value

    @field_validator("engine")
    @classmethod
    def _valid_engine(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, (PersonaFuseEngine, PersonaFuseClient)):
            raise ValueError(f"engine must be a PersonaFuseEngine or PersonaFuseClient, got {type(value).__name__}")
        return value

    # --- LangChain identity ---------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "persona-fuse"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "bundle": self.bundle,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "word_run_limit": self.word_run_limit,
            "end_at_sentence": self.end_at_sentence,
            "seed": self.seed,
            "persona_weights": self.persona_weights,
            "base_url": self.base_url,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="persona_agents",
            ls_model_name=str(kwargs.get("model", self.model_name)),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        stop = stop or self.stop
        if stop:
            params["ls_stop"] = list(stop)
        return params

    # --- plumbing -------------------------------------------------------------------------
    def get_engine(self) -> PersonaFuseEngine | PersonaFuseClient:
        """The backend: the shared in-process engine, or a client of ``base_url``."""
        if self.engine is None:
            with self._engine_lock:
                if self.engine is None:
                    if self.base_url:
                        backend: Any = PersonaFuseClient(self.base_url, api_key=self.api_key,
                                                         timeout=None if self.timeout is None else self.timeout + 60)
                    else:
                        # Only settings given to this instance override PERSONA_AGENTS_* (field defaults do not).
                        given = self.model_fields_set
                        config = EngineConfig.from_env(
                            base_model=self.model_name if "model_name" in given else None,
                            bundle=self.bundle,
                            device=self.device if "device" in given else None,
                            dtype=self.dtype if "dtype" in given else None,
                        )
                        backend = PersonaFuseEngine.shared(config)
                    object.__setattr__(self, "engine", backend)
        return self.engine

    def route(self, messages: Sequence[Any] | str, top_k: int = 2) -> RouteResult:
        """The router's persona weights for a conversation, without generating."""
        return self.get_engine().route(_routable(messages), top_k)

    async def aroute(self, messages: Sequence[Any] | str, top_k: int = 2) -> RouteResult:
        engine = await asyncio.to_thread(self.get_engine)
        if isinstance(engine, PersonaFuseClient):
            return await engine.aroute(_routable(messages), top_k)
        return await asyncio.to_thread(engine.route, _routable(messages), top_k)

    def _call_options(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> tuple[Any, GenerationParams]:
        unknown = set(kwargs) - {"persona_weights", "model", *_DECODING_OPTIONS}
        if unknown:
            raise TypeError(f"ChatPersonaFuse got unexpected call options: {', '.join(sorted(unknown))}")
        model = kwargs.get("model")
        if model is not None and model not in (self.model_name, self.get_engine().model_name):
            # One engine holds one base model; generating with it under another name would
            # misreport the model in traces (``_get_ls_params`` reads the same kwarg).
            raise ValueError(
                f"call option model={model!r} differs from this ChatPersonaFuse's model "
                f"{self.model_name!r}; make another ChatPersonaFuse(model=...) to use another base model"
            )
        weights = kwargs.get("persona_weights", self.persona_weights)
        options = {name: kwargs.get(name, getattr(self, name)) for name in _DECODING_OPTIONS}
        params = GenerationParams.from_options(
            **options, stop=stop if stop is not None else self.stop, timeout=self.timeout
        )
        return weights, params

    def _metadata(self, generation: Generation) -> dict[str, Any]:
        weights = generation.weights
        return {
            "model_name": self.get_engine().model_name,
            "persona_weights": weights.as_dict() if weights else None,
            "top_traits": generation.top_traits,
            "trait_scores": weights.trait_scores() if weights else None,
            "routed": generation.routed,
            "finish_reason": generation.finish_reason,
        }

    @staticmethod
    def _usage(generation: Generation) -> UsageMetadata:
        return UsageMetadata(
            input_tokens=generation.input_tokens,
            output_tokens=generation.output_tokens,
            total_tokens=generation.input_tokens + generation.output_tokens,
        )

    def _result(self, generation: Generation) -> ChatResult:
        message = AIMessage(
            content=generation.text,
            usage_metadata=self._usage(generation),
            response_metadata=self._metadata(generation),
        )
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name})

    def _chunk(self, piece: StreamPiece) -> ChatGenerationChunk:
        if piece.final is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=piece.text))
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=piece.text,
                usage_metadata=self._usage(piece.final),
                response_metadata=self._metadata(piece.final),
                chunk_position="last",
            ),
            generation_info={"finish_reason": piece.final.finish_reason},
        )

    # --- sync -----------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = list(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))
            return self._result(_final_generation(chunks))
        weights, params = self._call_options(stop, kwargs)
        return self._result(self.get_engine().generate(messages, persona_weights=weights, params=params))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        weights, params = self._call_options(stop, kwargs)
        for piece in self.get_engine().stream(messages, persona_weights=weights, params=params):
            chunk = self._chunk(piece)
            if run_manager and piece.text:
                run_manager.on_llm_new_token(piece.text, chunk=chunk)
            yield chunk

    # --- async: the engine's scheduler (or the server) does the work; the loop only waits --------
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = [c async for c in self._astream(messages, stop=stop, run_manager=run_manager, **kwargs)]
            return self._result(_final_generation(chunks))
        weights, params = self._call_options(stop, kwargs)
        engine = self.engine or await asyncio.to_thread(self.get_engine)
        return self._result(await engine.agenerate(messages, persona_weights=weights, params=params))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        weights, params = self._call_options(stop, kwargs)
        engine = self.engine or await asyncio.to_thread(self.get_engine)
        pieces = engine.astream(messages, persona_weights=weights, params=params)
        try:
            async for piece in pieces:
                chunk = self._chunk(piece)
                if run_manager and piece.text:
                    await run_manager.on_llm_new_token(piece.text, chunk=chunk)
                yield chunk
        finally:
            await pieces.aclose()  # a consumer that left early cancels the request


def _routable(messages: Sequence[Any] | str) -> Any:
    """The messages the router reads (tool messages and the like are skipped)."""
    if isinstance(messages, str):
        return messages
    return [m for m in messages if not isinstance(m, BaseMessage) or isinstance(m, (HumanMessage, AIMessage, SystemMessage))]


def _final_generation(chunks: list[ChatGenerationChunk]) -> Generation:
    """Rebuild a Generation from streamed chunks (used when ``streaming=True``)."""
    text = "".join(c.text for c in chunks)
    last = chunks[-1].message
    meta, usage = last.response_metadata, last.usage_metadata or {}
    weights = PersonaWeights.from_mapping(meta["persona_weights"]) if meta.get("persona_weights") else None
    return Generation(
        text=text,
        weights=weights,
        top_traits=list(meta.get("top_traits") or []),
        input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)),
        finish_reason=str(meta.get("finish_reason", "stop")),
        routed=bool(meta.get("routed", False)),
    )


__all__ = ["BASE_ONLY", "ChatPersonaFuse"]
