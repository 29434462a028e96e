"""The three systems compared by evals.ei, built from the engine's own parts.

- ``base``: the base model alone (no experts), the engine's default system prompt.
- ``prompt_only``: the base model alone, with the poles the router picks for the item
  described in words in the system prompt (``evals.persona.POLE_DESCRIPTIONS``, the same
  prompt-only persona baseline ``evals.persona`` and ``evals.bench`` use).
- ``routed``: PersonaFuse. ``engine.route`` reads the item as the user turn and the experts are
  mixed with its weights through ``engine.mixer`` (what ``engine.generate`` does when no
  weights are given).

Every system's prompt is templated by ``engine.prompt_ids`` (chat template, default system
prompt when the conversation has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evals.ei.items import Item
from evals.persona import POLE_DESCRIPTIONS
from persona_agents.messages import to_turns
from persona_agents.router import RouteResult

SYSTEMS: tuple[str, ...] = ("base", "prompt_only", "routed")
SYSTEM_LABELS = {"base": "base model", "prompt_only": "prompt-only persona", "routed": "routed PersonaFuse"}


@dataclass(frozen=True)
class SystemInput:
    """What one system scores an item with: prompt tokens and expert weights (None = base model)."""

    prompt_ids: list[int]
    weights: tuple[float, ...] | None


def persona_system_prompt(default_system_prompt: str, route: RouteResult) -> str:
    """The default system prompt plus a sentence per routed top pole."""
    return " ".join([default_system_prompt, *(POLE_DESCRIPTIONS[pole] for pole in route.top_traits)]).strip()


def system_inputs(engine: Any, item: Item, route: RouteResult) -> dict[str, SystemInput]:
    """Each system's prompt tokens and weights for ``item``, routed as ``route``."""
    user = {"role": "user", "content": item.prompt}
    persona = persona_system_prompt(engine.config.default_system_prompt, route)
    plain_ids = engine.prompt_ids(to_turns([user]))
    return {
        "base": SystemInput(plain_ids, None),
        "prompt_only": SystemInput(engine.prompt_ids(to_turns([{"role": "system", "content": persona}, user])), None),
        "routed": SystemInput(plain_ids, route.weights.values),
    }


def route_item(engine: Any, item: Item, top_k: int) -> RouteResult:
    """The router's reading of the item, exactly as a chat turn with this text is routed."""
    return engine.route([{"role": "user", "content": item.prompt}], top_k=top_k)
