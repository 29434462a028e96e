"""persona-agents: personality-adaptive LangGraph agents on a local PersonaFuse chat model.

Heavy modules (torch, transformers) load on first attribute access, so ``import
persona_agents`` stays cheap for the CLI and for ``langgraph dev``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ChatPersonaFuse": "persona_agents.chat_model",
    "PersonaFuseEngine": "persona_agents.engine",
    "GenerationParams": "persona_agents.engine",
    "EngineConfig": "persona_agents.config",
    "PersonaFuseBundle": "persona_agents.bundle",
    "PersonaWeights": "persona_agents.traits",
    "EXPERT_NAMES": "persona_agents.traits",
    "TRAITS": "persona_agents.traits",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'persona_agents' has no attribute {name!r}")
