"""The PersonaFuse HTTP server: an OpenAI-compatible FastAPI app over one batching engine.

Endpoints:

- ``POST /v1/chat/completions``: OpenAI chat completions (``stream`` with server-sent events,
  ``usage``), plus ``persona_weights`` in the request and a ``persona`` object (weights, top
  traits, trait scores, routed) in the response and in the last streamed chunk;
- ``POST /v1/route``: the router's weights for a conversation, without generating;
- ``GET /v1/models``; ``GET /health`` (the process is up); ``GET /ready`` (the model is loaded).

Bad input gets a 400 (413 for a body over ``max_body_bytes``) in OpenAI's error shape. The
engine loads in the background at start-up, so ``/health`` answers at once and ``/ready``
turns 200 when requests can be served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persona_agents.serving import protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1_000_000


def replica_id() -> str:
    """Which process answered (several run behind Ray Serve). A function, not a constant: Ray
    pickles the app's routes with the values of the globals they read."""
    return f"{socket.gethostname()}:{os.getpid()}"


def replica_header() -> dict[str, str]:
    return {"x-persona-replica": replica_id()}


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with a 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # no declared length (chunked): read the body here, up to the limit, then replay it
        messages: list[Message] = []
        seen, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            messages.append(message)
            more = message.get("more_body", False)

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = protocol.error_body(f"the request body is larger than {self.max_bytes} bytes")
        await JSONResponse(body, status_code=413)(scope, receive, send)


def _default_engine() -> Any:
    from persona_agents.config import EngineConfig
    from persona_agents.engine import PersonaFuseEngine

    return PersonaFuseEngine.shared(EngineConfig.from_env())


def create_app(engine: Any = None, *, engine_factory: Callable[[], Any] | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The app for ``engine``, or for the engine ``engine_factory`` builds at start-up."""
    state: dict[str, Any] = {"engine": engine, "error": None}

    async def load() -> None:
        try:
            state["engine"] = await asyncio.to_thread(engine_factory or _default_engine)
        except Exception as exc:  # /ready reports it; requests get a 503
            log.exception("the engine failed to load")
            state["error"] = f"{type(exc).__name__}: {exc}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(load()) if state["engine"] is None else None
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(title="PersonaFuse", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    def ready_engine() -> Any:
        if state["engine"] is None:
            raise _NotReady(state["error"] or "the model is still loading")
        return state["engine"]

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Any, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return JSONResponse(protocol.error_body("the request body is not valid JSON"), status_code=400)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else str(first.get("msg", "invalid request"))
        return JSONResponse(protocol.error_body(message, param=where or None), status_code=400)

    @app.exception_handler(ValueError)
    async def bad_value(request: Any, exc: ValueError) -> JSONResponse:  # InvalidMessageError, bad weights
        return JSONResponse(protocol.error_body(str(exc)), status_code=400)

    @app.exception_handler(_NotReady)
    async def not_ready(request: Any, exc: _NotReady) -> JSONResponse:
        return JSONResponse(protocol.error_body(str(exc), kind="unavailable"), status_code=503)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if state["engine"] is None:
            return JSONResponse({"status": "loading" if state["error"] is None else "failed", "error": state["error"]},
                                status_code=503)
        return JSONResponse({"status": "ready", "model": state["engine"].model_name, "replica": replica_id()})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        name = ready_engine().model_name
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "persona-agents"}]}

    @app.post("/v1/route")
    async def route(body: protocol.RouteRequest) -> dict[str, Any]:
        engine = ready_engine()
        result = await asyncio.to_thread(engine.route, [m.as_turn() for m in body.messages], body.top_k)
        return result.as_dict()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: protocol.ChatCompletionRequest) -> Any:
        engine = ready_engine()
        params = body.generation_params()
        prepared = await engine.aprepare([m.as_turn() for m in body.messages], body.persona_weights, params)
        if not body.stream:
            request = engine.submit(prepared)
            try:
                generation = await asyncio.wrap_future(request.future)
            finally:
                request.cancel()
            return JSONResponse(protocol.completion(generation, engine.model_name), headers=replica_header())
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _sse(engine, prepared, include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", **replica_header()})

    return app


class _NotReady(Exception):
    pass


async def _sse(engine: Any, prepared: Any, include_usage: bool) -> AsyncIterator[str]:
    cid, model = protocol.completion_id(), engine.model_name

    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data)}\n\n"

    yield event(protocol.chunk(cid, model, {"role": "assistant", "content": ""}))
    try:
        async for piece in engine.astream_prepared(prepared):
            if piece.final is None:
                yield event(protocol.chunk(cid, model, {"content": piece.text}))
                continue
            final = piece.final
            yield event(protocol.chunk(cid, model, {}, final.finish_reason, persona=protocol.persona_info(final)))
            if include_usage:
                yield event(protocol.usage_chunk(cid, model, final))
    except Exception as exc:  # the status line has gone out: report the error in the stream
        log.exception("streaming failed")
        yield event(protocol.error_body(str(exc), kind="server_error"))
    yield "data: [DONE]\n\n"


def serve(host: str, port: int, *, engine_factory: Callable[[], Any] | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, log_level: str = "warning") -> None:
    """Run the server in this process until interrupted."""
    import uvicorn

    app = create_app(engine_factory=engine_factory, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
