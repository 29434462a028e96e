"""``make demo``: both agents on the embedded default model, with the routed persona per turn."""

from __future__ import annotations

import time
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.config import EngineConfig
from persona_agents.engine import PersonaFuseEngine
from persona_agents.traits import TRAITS

COUNSELING_TURNS: tuple[str, ...] = (
    "I failed my driving test this morning and I feel like such an idiot.",
    "Honestly, tell me straight: what should I do differently next time? Give me a plan.",
    "Some days I just don't want to be here anymore.",
)
REVIEWS: tuple[dict[str, Any], ...] = (
    {"text": "Best anniversary dinner ever! The staff made it so special, we'll be back!!", "rating": 5},
    {"text": "I was charged twice for the same order and nobody answers the support line.", "rating": 2},
    {"text": "The space heater caught fire after an hour and burned my hand.", "rating": 1},
)
DEMO_COUNSELOR = "I'm a counselor on the team and I'm here with you now. Are you somewhere safe at the moment?"


def _persona_line(persona: dict[str, Any]) -> str:
    weights = persona.get("weights") or {}
    if not weights:
        return "  persona: (none)"
    scores = {t: weights[f"{t}_high"] - weights[f"{t}_low"] for t in TRAITS}
    detail = "  ".join(f"{t[:5]} {v:+.2f}" for t, v in scores.items())
    return f"  persona: {', '.join(persona.get('top_traits', []))} [{persona.get('source')}]   ({detail})"


def _counseling(model: ChatPersonaFuse) -> None:
    from graphs.counseling import make_counseling_graph

    print("=== Counseling agent ===")
    agent = make_counseling_graph(model, InMemorySaver())
    config = {"configurable": {"thread_id": "demo-counseling"}}
    for text in COUNSELING_TURNS:
        print(f"user> {text}")
        started = time.perf_counter()
        result = agent.invoke({"messages": [text], "locale": "en-US"}, config)
        if "__interrupt__" in result:
            payload = result["__interrupt__"][0].value
            print(f"  screen: CRISIS ({payload['risk_category']}, score {payload['score']:.2f}) -> fixed protocol, model not called")
            print(f"crisis protocol> {result['messages'][-1].content}\n")
            print("  [escalated to a human counselor through interrupt(); the demo answers as the human]")
            result = agent.invoke(Command(resume={"message": DEMO_COUNSELOR}), config)
            print(f"human counselor> {result['messages'][-1].content}")
        else:
            print(_persona_line(result.get("persona") or {}))
            print(f"agent> {result['messages'][-1].content}")
        print(f"  [{time.perf_counter() - started:.1f} s]\n")


def _reviews(model: ChatPersonaFuse) -> None:
    from graphs.customer_service import make_customer_service_graph

    print("=== Review-response agent ===")
    agent = make_customer_service_graph(model, InMemorySaver())
    for index, review in enumerate(REVIEWS):
        config = {"configurable": {"thread_id": f"demo-review-{index}"}}
        print(f"review ({review['rating']}/5)> {review['text']}")
        started = time.perf_counter()
        result = agent.invoke({"review": review}, config)
        print(_persona_line(result.get("persona") or {}))
        if "__interrupt__" in result:
            payload = result["__interrupt__"][0].value
            screen = payload["analysis"]["screen"]
            why = screen["category"] if screen["escalate"] else f"policy check: {payload['policy_check']['category']}"
            print(f"  ESCALATED ({why}); model draft held for approval: {payload['draft']}")
            result = agent.invoke(Command(resume="reject"), config)
            print("  [the demo's human rejects the draft and publishes the pack's holding reply]")
        print(f"reply> {result['final_reply']}")
        print(f"  [{time.perf_counter() - started:.1f} s]\n")


def run_demo(config: EngineConfig, *, max_tokens: int | None = None) -> int:
    """Both agents on one engine; replies use the reply defaults of ``GenerationParams`` (120
    new tokens, no loops, ending on a sentence) unless ``max_tokens`` is given."""
    print("Loading the PersonaFuse engine (the first run converts the base model, about 30 s)...", flush=True)
    started = time.perf_counter()
    engine = PersonaFuseEngine.shared(config)
    manifest = engine.bundle.manifest
    print(f"base model: {engine.model_name}   bundle: {engine.bundle.path}   ({time.perf_counter() - started:.1f} s)")
    if manifest.untrained_parts:
        print(f"NOTE: this bundle's {' and '.join(manifest.untrained_parts)} are UNTRAINED: no real persona effect.")
    print()
    model = ChatPersonaFuse(engine=engine) if max_tokens is None else ChatPersonaFuse(engine=engine, max_tokens=max_tokens)
    _counseling(model)
    _reviews(model)
    return 0
