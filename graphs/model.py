"""How the graphs talk to their chat model: which model, routing, fixed personas, generation.

The graphs are built for ``ChatPersonaFuse``; any other LangChain chat model also works,
without persona routing (the decision log says so). Drafts are generated with the tag
``PROVISIONAL_DRAFT_TAG``: an app streaming ``stream_mode="messages"`` drops those tokens and
shows the reply the respond/finalize node emits once the draft has passed its check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graphs.state import Persona
from persona_agents.chat_model import ChatPersonaFuse
from persona_agents.generation import DEFAULT_PARAMS
from persona_agents.traits import PersonaWeights

# A person at risk gets a calm, warm voice whatever the router says.
CRISIS_PERSONA = PersonaWeights.from_mapping({"agreeableness_high": 0.5, "neuroticism_low": 0.5})
# A regenerated draft leans further toward careful, warm and calm.
STRICT_PERSONA = PersonaWeights.from_mapping(
    {"agreeableness_high": 0.4, "neuroticism_low": 0.4, "conscientiousness_high": 0.2}
)


PROVISIONAL_DRAFT_TAG = "persona_agents:provisional_draft"


def default_model() -> ChatPersonaFuse:
    """The embedded default PersonaFuse model (loaded on first use, shared per process)."""
    return ChatPersonaFuse()  # the reply defaults of GenerationParams


def configured_model(
    base_model: str | None, bundle: str | None, temperature: float | None, max_new_tokens: int | None
) -> ChatPersonaFuse:
    """A PersonaFuse model with a run's settings (a setting left at None keeps the reply
    defaults of ``GenerationParams``); the weights behind it are loaded once per base model and
    bundle in the process (``PersonaFuseEngine.shared``)."""
    return ChatPersonaFuse(
        model=base_model or "default",
        bundle=bundle,
        temperature=DEFAULT_PARAMS.temperature if temperature is None else temperature,
        max_tokens=max_new_tokens or DEFAULT_PARAMS.max_new_tokens,
    )


def persona_for(model: BaseChatModel, messages: Sequence[BaseMessage]) -> Persona:
    if not isinstance(model, ChatPersonaFuse):
        return Persona(weights={}, top_traits=[], source="none")
    route = model.route([m for m in messages if isinstance(m, (HumanMessage, AIMessage, SystemMessage))])
    return Persona(weights=route.weights.as_dict(), top_traits=route.top_traits, source="router")


def fixed_persona(weights: PersonaWeights, source: str) -> Persona:
    """A persona that does not come from the router (crisis, strict retry, the run's context)."""
    return Persona(weights=weights.as_dict(), top_traits=weights.top_traits(), source=source)  # type: ignore[typeddict-item]


def draft_reply(
    model: BaseChatModel, system_prompt: str, history: Sequence[BaseMessage], persona: Persona, config: RunnableConfig | None
) -> AIMessage:
    """One provisional draft (tagged ``PROVISIONAL_DRAFT_TAG``); the persona weights go to
    PersonaFuse models only."""
    kwargs: dict[str, Any] = {}
    if isinstance(model, ChatPersonaFuse) and persona.get("weights"):
        kwargs["persona_weights"] = persona["weights"]
    messages = [SystemMessage(system_prompt), *[m for m in history if not isinstance(m, SystemMessage)]]
    reply = model.with_config(tags=[PROVISIONAL_DRAFT_TAG]).invoke(messages, config=config, **kwargs)
    if not isinstance(reply, AIMessage):
        raise TypeError(f"the chat model returned {type(reply).__name__}, not an AIMessage")
    return reply
