"""The HTTP server on the tiny engine: OpenAI-shaped completions and streams, routing,
health and readiness, clear 4xx errors, and concurrent requests batched together."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from persona_agents.engine import BASE_ONLY, GenerationParams, PersonaFuseEngine
from persona_agents.serving.app import create_app
from persona_agents.traits import EXPERT_NAMES, PersonaWeights
from tests.live_server import live_server

USER = [{"role": "user", "content": "I failed my exam and feel awful"}]


@pytest.fixture
def client(tiny_engine: PersonaFuseEngine) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_engine, max_body_bytes=20_000)) as test_client:
        yield test_client


def events(response: httpx.Response) -> list[object]:
    lines = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_completion_matches_the_engine(client: TestClient, tiny_engine: PersonaFuseEngine) -> None:
    response = client.post("/v1/chat/completions", json={"messages": USER, "max_tokens": 8, "model": "anything"})
    assert response.status_code == 200
    body = response.json()
    expected = tiny_engine.generate(USER, params=GenerationParams(max_new_tokens=8))
    assert body["object"] == "chat.completion" and body["model"] == "tiny-llama"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": expected.text}
    assert choice["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": expected.input_tokens, "completion_tokens": 8,
                             "total_tokens": expected.input_tokens + 8}
    persona = body["persona"]
    assert persona["persona_weights"] == expected.weights.as_dict()
    assert persona["top_traits"] == expected.top_traits and persona["routed"] is True
    assert persona["trait_scores"] == expected.weights.trait_scores()


@pytest.mark.parametrize("weights", [BASE_ONLY, {"extraversion_high": 1.0}], ids=["base", "fixed"])
def test_persona_weights_field(client: TestClient, tiny_engine: PersonaFuseEngine, weights: object) -> None:
    body = client.post("/v1/chat/completions", json={"messages": USER, "max_tokens": 8, "persona_weights": weights}).json()
    expected = tiny_engine.generate(USER, persona_weights=weights, params=GenerationParams(max_new_tokens=8))
    assert body["choices"][0]["message"]["content"] == expected.text
    assert body["persona"]["routed"] is False
    if weights == BASE_ONLY:
        assert body["persona"]["persona_weights"] is None and body["persona"]["top_traits"] == []
    else:
        assert body["persona"]["persona_weights"]["extraversion_high"] == 1.0


def test_stream_with_usage(client: TestClient, tiny_engine: PersonaFuseEngine) -> None:
    request = {"messages": USER, "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True},
               "persona_weights": {"agreeableness_high": 1.0}}
    response = client.post("/v1/chat/completions", json=request)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    chunks = events(response)
    expected = tiny_engine.generate(USER, persona_weights={"agreeableness_high": 1.0}, params=GenerationParams(max_new_tokens=12))
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == expected.text
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(final) == 1 and final[0]["choices"][0]["finish_reason"] == "length"
    assert final[0]["persona"]["top_traits"][0] == "agreeableness_high"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12
    assert len({c["id"] for c in chunks}) == 1
    # without include_usage there is no usage chunk
    plain = events(client.post("/v1/chat/completions", json={**request, "stream_options": None}))
    assert all("usage" not in c for c in plain)


def test_stop_as_one_string(client: TestClient, tiny_engine: PersonaFuseEngine) -> None:
    full = tiny_engine.generate(USER, persona_weights=BASE_ONLY, params=GenerationParams(max_new_tokens=24)).text
    stop = full[3:5]
    body = client.post("/v1/chat/completions", json={"messages": USER, "max_tokens": 24, "stop": stop,
                                                      "persona_weights": "base"}).json()
    assert body["choices"][0]["message"]["content"] == full[: full.find(stop)].strip()
    assert body["choices"][0]["finish_reason"] == "stop"


def test_route_health_ready_models(client: TestClient, tiny_engine: PersonaFuseEngine) -> None:
    routed = client.post("/v1/route", json={"messages": USER, "top_k": 3}).json()
    assert routed == tiny_engine.route(USER, top_k=3).as_dict()
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert (ready["status"], ready["model"]) == ("ready", "tiny-llama") and ready["replica"].endswith(f":{os.getpid()}")
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny-llama"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "   "}]}, "empty"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
        ({"messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"messages": USER, "temperature": 9}, "temperature"),
        ({"messages": USER, "n": 2}, "n"),
        ({"messages": USER, "persona_weights": {"charm_high": 1.0}}, "unknown expert"),
        ({"messages": USER, "persona_weights": {"openness_high": 2.0}}, "sum to 1"),
        ({"messages": USER, "persona_weights": "cheerful"}, "persona_weights"),
        ({"messages": USER, "frobnicate": 1}, "frobnicate"),
        ({"messages": USER, "stop": [""]}, "stop"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "no user"),
    ],
)
def test_bad_input_is_a_400_that_says_why(client: TestClient, body: dict, message: str) -> None:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_bad_stream_input_fails_before_the_stream(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": " "}], "stream": True})
    assert response.status_code == 400 and "empty" in response.json()["error"]["message"]


def test_not_json_and_too_large(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    huge = {"messages": [{"role": "user", "content": "x" * 30_000}]}
    response = client.post("/v1/chat/completions", json=huge)
    assert response.status_code == 413 and "20000 bytes" in response.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no content-length: the limit counts the streamed body
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"}]}'

    response = client.post("/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_ready_only_once_the_engine_loaded(tiny_engine: PersonaFuseEngine) -> None:
    gate = threading.Event()

    def slow_factory() -> PersonaFuseEngine:
        gate.wait(30)
        return tiny_engine

    with TestClient(create_app(engine_factory=slow_factory)) as test_client:
        assert test_client.get("/health").status_code == 200
        assert test_client.get("/ready").status_code == 503
        response = test_client.post("/v1/chat/completions", json={"messages": USER})
        assert response.status_code == 503 and "loading" in response.json()["error"]["message"]
        gate.set()
        deadline = time.monotonic() + 30
        while test_client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert test_client.get("/ready").status_code == 200


def test_concurrent_http_requests_share_a_batch(tiny_engine: PersonaFuseEngine) -> None:
    weights = [PersonaWeights.one_hot(name) for name in EXPERT_NAMES[:8]]
    params = GenerationParams(max_new_tokens=40, min_new_tokens=40)
    expected = [tiny_engine.generate(USER, persona_weights=w, params=params).text for w in weights]
    tiny_engine.scheduler.batch_sizes.clear()
    replies: list[str] = [""] * 8
    with live_server(create_app(tiny_engine)) as url:
        barrier = threading.Barrier(8)

        def call(i: int) -> None:
            barrier.wait()
            body = {"messages": USER, "max_tokens": 40, "min_tokens": 40, "persona_weights": weights[i].as_dict()}
            replies[i] = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]["content"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert replies == expected
    assert max(tiny_engine.scheduler.batch_sizes) >= 4


def test_a_client_that_hangs_up_cancels_its_stream(tiny_engine: PersonaFuseEngine) -> None:
    body = {"messages": USER, "max_tokens": 30_000, "min_tokens": 30_000, "stream": True, "persona_weights": "base"}
    with live_server(create_app(tiny_engine)) as url:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            assert tiny_engine.scheduler.running
        deadline = time.monotonic() + 20  # the row leaves the batch and the worker goes idle
        while tiny_engine.scheduler.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not tiny_engine.scheduler.running
