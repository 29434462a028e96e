"""The serving arms of ``evals.bench``: concurrency through the scheduler and the HTTP server.

- ``concurrent8_speedup``: 8 concurrent ``ChatPersonaFuse.invoke`` calls (8 threads, 8
  different persona mixtures) served together by the batching scheduler, against the same 8
  calls one by one (greedy: both produce the same tokens, checked);
- ``server_overhead``: one request through ``persona-agents serve`` over HTTP (the client,
  a child process holding the same model) against the same request in-process, exactly
  ``new_tokens`` tokens each.

Modes are interleaved (the order rotates every repeat); medians are reported.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from typing import Any

from evals.common import progress
from evals.metrics import median, ratio

SERVING_TARGETS = {"concurrent8_speedup": (">=", 3.0), "server_overhead": ("<=", 1.10)}


def concurrent_calls(llm: Any, conversations: Sequence[str], weights: Sequence[Any]) -> list[Any]:
    """One thread per conversation, all released at once; the replies in order."""
    replies: list[Any] = [None] * len(conversations)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(conversations))

    def call(i: int) -> None:
        barrier.wait()
        try:
            replies[i] = llm.invoke(conversations[i], persona_weights=weights[i].as_dict())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(conversations))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return replies


def run_concurrency(engine: Any, conversations: Sequence[str], weights: Sequence[Any], *, repeats: int,
                    new_tokens: int) -> dict[str, Any]:
    from persona_agents.chat_model import ChatPersonaFuse

    llm = ChatPersonaFuse(engine=engine, max_tokens=new_tokens)
    texts: dict[str, list[str]] = {}
    tokens: dict[str, list[int]] = {}

    def run(mode: str) -> float:
        gc.collect()
        start = time.perf_counter()
        if mode == "concurrent8":
            replies = concurrent_calls(llm, conversations, weights)
        else:
            replies = [llm.invoke(c, persona_weights=w.as_dict()) for c, w in zip(conversations, weights)]
        elapsed = time.perf_counter() - start
        texts[mode] = [r.content for r in replies]
        tokens[mode] = [r.usage_metadata["output_tokens"] for r in replies]
        return elapsed

    run("concurrent8")  # warm-up
    timings: dict[str, list[float]] = {"concurrent8": [], "one_by_one8": []}
    for r in progress(range(repeats), desc="concurrency repeats", unit="repeat"):
        modes = ("concurrent8", "one_by_one8") if r % 2 == 0 else ("one_by_one8", "concurrent8")
        for mode in modes:
            timings[mode].append(run(mode))
    sizes = list(engine.scheduler.batch_sizes)
    return {
        "concurrent8_speedup": ratio(median(timings["one_by_one8"]), median(timings["concurrent8"])),
        "concurrent8_s": median(timings["concurrent8"]),
        "one_by_one8_s": median(timings["one_by_one8"]),
        "concurrent8_same_replies": texts["concurrent8"] == texts["one_by_one8"],
        "concurrent8_tokens": tokens["concurrent8"],
        "scheduler_max_batch": max(sizes) if sizes else None,
        "timings_s": timings,
    }


def run_server_overhead(engine: Any, conversation: str, weights: Any, *, repeats: int, new_tokens: int,
                        bundle: str | None) -> dict[str, Any]:
    from persona_agents.client import PersonaFuseClient
    from persona_agents.generation import GenerationParams
    from persona_agents.serving.process import ServerProcess

    params = GenerationParams(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    args = ["--bundle", bundle] if bundle else []
    timings: dict[str, list[float]] = {"in_process": [], "http": []}
    with ServerProcess(args) as server:
        client = PersonaFuseClient(server.url)
        calls = {
            "in_process": lambda: engine.generate(conversation, persona_weights=weights, params=params),
            "http": lambda: client.generate(conversation, persona_weights=weights, params=params),
        }
        outputs = {mode: call() for mode, call in calls.items()}  # warm-up both sides
        for r in progress(range(repeats), desc="server repeats", unit="repeat"):
            for mode in (("in_process", "http") if r % 2 == 0 else ("http", "in_process")):
                gc.collect()
                start = time.perf_counter()
                outputs[mode] = calls[mode]()
                timings[mode].append(time.perf_counter() - start)
        client.close()
    return {
        "server_overhead": ratio(median(timings["http"]), median(timings["in_process"])),
        "server_http_s": median(timings["http"]),
        "server_in_process_s": median(timings["in_process"]),
        "server_same_reply": outputs["http"].text == outputs["in_process"].text,
        "server_tokens": [outputs["http"].output_tokens, outputs["in_process"].output_tokens],
        "timings_s": timings,
    }


def run_serving_bench(engine: Any, conversations: Sequence[str], weights: Sequence[Any], *, repeats: int,
                      new_tokens: int, bundle: str | None) -> dict[str, Any]:
    concurrency = run_concurrency(engine, conversations, weights, repeats=repeats, new_tokens=new_tokens)
    server = run_server_overhead(engine, conversations[0], weights[0], repeats=repeats, new_tokens=new_tokens,
                                 bundle=bundle)
    out = {k: v for k, v in {**concurrency, **server}.items() if k != "timings_s"}
    out["serving_timings_s"] = {**concurrency["timings_s"], **server["timings_s"]}
    out["serving_targets"] = {
        f"{key} {op} {bound}": None if out[key] is None else (out[key] <= bound if op == "<=" else out[key] >= bound)
        for key, (op, bound) in SERVING_TARGETS.items()
    }
    return out
