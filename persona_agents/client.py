"""A client for ``persona-agents serve`` with the engine's interface.

``PersonaFuseClient`` has the methods ``ChatPersonaFuse`` calls on an in-process engine
(``generate``, ``stream``, ``agenerate``, ``astream``, ``route``, ``model_name``), so the chat
model works the same whether the model lives in this process or behind a URL. Messages are
validated here first, so bad input fails the same way in both places.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from persona_agents.generation import Generation, GenerationParams
from persona_agents.messages import InvalidMessageError, to_turns
from persona_agents.router import RouteResult
from persona_agents.serving import protocol
from persona_agents.streaming import StreamPiece
from persona_agents.traits import PersonaWeights


class ServerError(RuntimeError):
    """The server failed a request (5xx) or broke the protocol."""


def _weights_json(weights: Any) -> Any:
    if weights is None or isinstance(weights, str):
        return weights
    return PersonaWeights.coerce(weights).as_dict()


def _raise_for(status: int, body: bytes) -> None:
    if status < 400:
        return
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode("utf-8", "replace")[:500]
    if status in (400, 413, 422):
        raise InvalidMessageError(message)  # a ValueError, as the in-process engine raises
    raise ServerError(f"server answered {status}: {message}")


class _Stream:
    """Server-sent events to StreamPieces (shared by the sync and async streams)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.finish_reason = "stop"
        self.persona: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}

    def on_line(self, line: str) -> StreamPiece | None:
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            return StreamPiece("", protocol.generation_from("".join(self.text), self.finish_reason, self.usage, self.persona))
        event = json.loads(data)
        if "error" in event:
            raise ServerError(event["error"].get("message", "stream failed"))
        if event.get("usage"):
            self.usage = event["usage"]
        for choice in event.get("choices", []):
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.persona = event.get("persona") or {}
            content = (choice.get("delta") or {}).get("content")
            if content:
                self.text.append(content)
                return StreamPiece(content)
        return None


class PersonaFuseClient:
    """Talks to a PersonaFuse server at ``base_url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(self, base_url: str, *, timeout: float | None = 600.0, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.Client | None = None
        self._model_name: str | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout, headers=self.headers)
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=self.headers)

    @property
    def model_name(self) -> str:
        if self._model_name is None:
            response = self.client.get("/v1/models")
            _raise_for(response.status_code, response.content)
            self._model_name = response.json()["data"][0]["id"]
        return self._model_name

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- request bodies ------------------------------------------------------------------------
    def _body(self, messages: Any, persona_weights: Any, params: GenerationParams | None, stream: bool) -> dict[str, Any]:
        params = params or GenerationParams()
        body: dict[str, Any] = {
            "messages": [t.as_dict() for t in to_turns(messages)],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "stop": list(params.stop) or None,
            "repetition_penalty": params.repetition_penalty,
            "no_repeat_ngram_size": params.no_repeat_ngram_size,
            "word_run_limit": params.word_run_limit,
            "end_at_sentence": params.end_at_sentence,
            "min_tokens": params.min_new_tokens,
            "timeout": params.max_time,
            "persona_weights": _weights_json(persona_weights),
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _generation(self, response: httpx.Response) -> Generation:
        _raise_for(response.status_code, response.content)
        data = response.json()
        self._model_name = self._model_name or data.get("model")
        choice = data["choices"][0]
        return protocol.generation_from(choice["message"]["content"], choice["finish_reason"], data["usage"], data["persona"])

    # --- the engine interface ----------------------------------------------------------------------
    def generate(self, messages: Any, *, persona_weights: Any = None, params: GenerationParams | None = None) -> Generation:
        response = self.client.post("/v1/chat/completions", json=self._body(messages, persona_weights, params, False))
        return self._generation(response)

    async def agenerate(self, messages: Any, *, persona_weights: Any = None, params: GenerationParams | None = None) -> Generation:
        async with self._async_client() as client:
            response = await client.post("/v1/chat/completions", json=self._body(messages, persona_weights, params, False))
        return self._generation(response)

    def stream(self, messages: Any, *, persona_weights: Any = None, params: GenerationParams | None = None) -> Iterator[StreamPiece]:
        body = self._body(messages, persona_weights, params, True)
        with self.client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                _raise_for(response.status_code, response.read())
            parser = _Stream()
            for line in response.iter_lines():
                if (piece := parser.on_line(line)) is not None:
                    yield piece
                    if piece.final is not None:
                        return
        raise ServerError("the stream ended without [DONE]")

    async def astream(self, messages: Any, *, persona_weights: Any = None, params: GenerationParams | None = None) -> AsyncIterator[StreamPiece]:
        body = self._body(messages, persona_weights, params, True)
        async with self._async_client() as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                _raise_for(response.status_code, await response.aread())
            parser = _Stream()
            async for line in response.aiter_lines():
                if (piece := parser.on_line(line)) is not None:
                    yield piece
                    if piece.final is not None:
                        return
        raise ServerError("the stream ended without [DONE]")

    def route(self, messages: Any, top_k: int = 2) -> RouteResult:
        body = {"messages": [t.as_dict() for t in to_turns(messages)], "top_k": top_k}
        response = self.client.post("/v1/route", json=body)
        _raise_for(response.status_code, response.content)
        return _route_result(response.json())

    async def aroute(self, messages: Any, top_k: int = 2) -> RouteResult:
        body = {"messages": [t.as_dict() for t in to_turns(messages)], "top_k": top_k}
        async with self._async_client() as client:
            response = await client.post("/v1/route", json=body)
        _raise_for(response.status_code, response.content)
        return _route_result(response.json())


def _route_result(data: Mapping[str, Any]) -> RouteResult:
    return RouteResult(PersonaWeights.from_mapping(data["persona_weights"], normalize=True), list(data["top_traits"]))


__all__: Sequence[str] = ["PersonaFuseClient", "ServerError"]
