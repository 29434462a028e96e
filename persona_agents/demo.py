"""``make demo``: a short conversation on the default model, with the routed weights per turn."""

from __future__ import annotations

import time

from persona_agents.config import EngineConfig
from persona_agents.engine import GenerationParams, PersonaFuseEngine

DEMO_TURNS: tuple[str, ...] = (
    "I failed my driving test this morning and I feel like an idiot.",
    "Honestly, what should I do differently next time? Give me a plan.",
    "Thanks. Different topic: we're throwing a surprise party for my sister on Saturday!",
    "Give me some unusual theme ideas, nothing boring.",
)


def _trait_line(scores: dict[str, float]) -> str:
    return "  ".join(f"{trait[:5]} {score:+.2f}" for trait, score in scores.items())


def run_demo(config: EngineConfig, *, max_tokens: int = 80) -> int:
    print("Loading the PersonaFuse engine (the first run converts the base model, ~30 s)...", flush=True)
    started = time.perf_counter()
    engine = PersonaFuseEngine.load(config)
    manifest = engine.bundle.manifest
    print(f"base model: {engine.model_name}   bundle: {engine.bundle.path}   ({time.perf_counter() - started:.1f} s)")
    untrained = manifest.untrained_parts
    if untrained:
        print(f"NOTE: this bundle's {' and '.join(untrained)} are UNTRAINED: routing and persona have no real effect yet.")
    print()
    history: list[dict[str, str]] = []
    params = GenerationParams(max_new_tokens=max_tokens)
    for turn in DEMO_TURNS:
        history.append({"role": "user", "content": turn})
        route = engine.route(history)
        print(f"user> {turn}")
        print(f"  persona: {', '.join(route.top_traits)}   ({_trait_line(route.trait_scores)})")
        tick = time.perf_counter()
        generation = engine.generate(history, persona_weights=route.weights, params=params)
        elapsed = time.perf_counter() - tick
        print(f"agent> {generation.text}")
        print(f"  [{generation.output_tokens} tokens in {elapsed:.1f} s]\n")
        history.append({"role": "assistant", "content": generation.text})
    return 0
