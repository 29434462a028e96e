"""How the graphs talk to their chat model: routing, fixed personas and generation.

The graphs are built for ``ChatPersonaFuse``; any other LangChain chat model also works,
without persona routing (the decision log says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graphs.state import Persona
from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.traits import PersonaWeights

# A person at risk gets a calm, warm voice whatever the router says.
CRISIS_PERSONA = PersonaWeights.from_mapping({"agreeableness_high": 0.5, "neuroticism_low": 0.5})
# A regenerated draft leans further toward careful, warm and calm.
STRICT_PERSONA = PersonaWeights.from_mapping(
    {"agreeableness_high": 0.4, "neuroticism_low": 0.4, "conscientiousness_high": 0.2}
)


def default_model() -> ChatPersonaFuse:
    """The embedded default PersonaFuse model (loaded on first use, shared per process)."""
    return ChatPersonaFuse()  # the reply defaults of GenerationParams


def lazy_model(model: BaseChatModel | None) -> Callable[[], BaseChatModel]:
    """The graph's model, created on first use (so importing a graph module loads nothing)."""
    cache: dict[str, BaseChatModel] = {}

    def get() -> BaseChatModel:
        if "model" not in cache:
            cache["model"] = model or default_model()
        return cache["model"]

    return get


def persona_for(model: BaseChatModel, messages: Sequence[BaseMessage]) -> Persona:
    if not isinstance(model, ChatPersonaFuse):
        return Persona(weights={}, top_traits=[], source="none")
    route = model.route([m for m in messages if isinstance(m, (HumanMessage, AIMessage, SystemMessage))])
    return Persona(weights=route.weights.as_dict(), top_traits=route.top_traits, source="router")


def fixed_persona(weights: PersonaWeights, source: str) -> Persona:
    return Persona(weights=weights.as_dict(), top_traits=weights.top_traits(), source=source)  # type: ignore[typeddict-item]


def generate(
    model: BaseChatModel, system_prompt: str, history: Sequence[BaseMessage], persona: Persona, config: RunnableConfig | None
) -> AIMessage:
    """One reply; the persona weights go to PersonaFuse models only."""
    kwargs: dict[str, Any] = {}
    if isinstance(model, ChatPersonaFuse) and persona.get("weights"):
        kwargs["persona_weights"] = persona["weights"]
    messages = [SystemMessage(system_prompt), *[m for m in history if not isinstance(m, SystemMessage)]]
    reply = model.invoke(messages, config=config, **kwargs)
    if not isinstance(reply, AIMessage):
        raise TypeError(f"the chat model returned {type(reply).__name__}, not an AIMessage")
    return reply
