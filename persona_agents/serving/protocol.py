"""The wire format: OpenAI chat completions plus PersonaFuse's ``persona_weights`` and routing.

Requests are pydantic models (unknown fields are refused, so typos fail loudly with a 400);
responses are plain dicts shaped like OpenAI's, with an extra ``persona`` object:
``{"persona_weights", "top_traits", "trait_scores", "routed"}``. The converters both ways
live here so the server and the client cannot drift apart.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from persona_agents.generation import GenerationParams
from persona_agents.traits import PersonaWeights

BASE_ONLY = "base"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send name, tool fields...

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]

    def as_turn(self) -> dict[str, Any]:
        return {"role": "system" if self.role == "developer" else self.role, "content": self.content}


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1, max_length=512)
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    # decoding fields left out (null) take GenerationParams' reply defaults
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    user: str | None = None
    # PersonaFuse extensions
    persona_weights: dict[str, float] | Literal["base"] | None = Field(
        None, description="weights over the ten experts, 'base' for no experts, null to route"
    )
    repetition_penalty: float | None = Field(None, ge=0.5, le=2.0)
    no_repeat_ngram_size: int | None = Field(None, ge=0, le=64, description="0 turns the n-gram rule off")
    word_run_limit: int | None = Field(None, ge=0, le=16, description="a three-word run occurs at most this often (a five-word run once); 0: off")
    end_at_sentence: bool | None = Field(None, description="cut a reply that runs out of tokens back to a sentence end")
    min_tokens: int = Field(0, ge=0, le=32_768)
    timeout: float | None = Field(None, gt=0, le=3600, description="seconds for this request, queueing included")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 16 or any(not s for s in stops)):
            raise ValueError("stop takes up to 16 non-empty strings")
        return stops

    @field_validator("persona_weights")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        if isinstance(value, dict):
            PersonaWeights.from_mapping(value)
        return value

    def generation_params(self) -> GenerationParams:
        """The request's ``GenerationParams``, built as ``ChatPersonaFuse`` builds its own."""
        return GenerationParams.from_options(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=self.stop,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            word_run_limit=self.word_run_limit,
            end_at_sentence=self.end_at_sentence,
            min_tokens=self.min_tokens,
            timeout=self.timeout,
        )


class RouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1, max_length=512)
    top_k: int = Field(2, ge=1, le=10)


# --- responses --------------------------------------------------------------------------------


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def persona_info(generation: Any) -> dict[str, Any]:
    weights = generation.weights
    return {
        "persona_weights": weights.as_dict() if weights else None,
        "top_traits": generation.top_traits,
        "trait_scores": weights.trait_scores() if weights else None,
        "routed": generation.routed,
    }


def usage(generation: Any) -> dict[str, int]:
    return {
        "prompt_tokens": generation.input_tokens,
        "completion_tokens": generation.output_tokens,
        "total_tokens": generation.input_tokens + generation.output_tokens,
    }


def completion(generation: Any, model: str) -> dict[str, Any]:
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": generation.text},
            "finish_reason": generation.finish_reason,
        }],
        "usage": usage(generation),
        "persona": persona_info(generation),
    }


def chunk(cid: str, model: str, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


def usage_chunk(cid: str, model: str, generation: Any) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [], "usage": usage(generation)}


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


# --- back to engine types (the client) ------------------------------------------------------------


def generation_from(text: str, finish_reason: str, usage_: dict[str, Any], persona: dict[str, Any]) -> Any:
    from persona_agents.engine import Generation

    mapping = persona.get("persona_weights")
    weights = PersonaWeights.from_mapping(mapping, normalize=True) if mapping else None
    return Generation(
        text=text,
        weights=weights,
        top_traits=list(persona.get("top_traits") or []),
        input_tokens=int(usage_.get("prompt_tokens", 0)),
        output_tokens=int(usage_.get("completion_tokens", 0)),
        finish_reason=finish_reason or "stop",
        routed=bool(persona.get("routed", False)),
    )
