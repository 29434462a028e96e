"""Per-run settings of both agents: ``graph.invoke(input, config, context=Context(...))``.

The graphs are compiled with ``context_schema=Context``, so Studio (``langgraph dev``) shows
these fields for each run, and nodes read them through ``runtime.context``. A field left unset
falls back to the environment variable ``PERSONA_AGENTS_<FIELD>`` (``PERSONA_AGENTS_BASE_MODEL``
and ``PERSONA_AGENTS_BUNDLE`` are the same variables the engine reads), then to the graph's
default. ``user_id`` is the exception: one variable shared by every run would merge different
people's risk histories, so it has no fallback.

Values are checked when the context is made; errors name the field (and the variable).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from persona_agents.traits import PersonaWeights

ENV_PREFIX = "PERSONA_AGENTS_"
MAX_LOCALE_CHARS = 64
MAX_USER_ID_CHARS = 200
_NO_ENV = {"user_id", "pack"}  # pack: per domain, see ``pack_env_var``


class ContextError(ValueError):
    """A context field (or the environment variable behind it) has an unusable value."""


def pack_env_var(domain: str) -> str:
    """The variable naming a graph's pack when the context does not: one per domain."""
    return f"{ENV_PREFIX}{domain.upper()}_PACK"


@dataclass(kw_only=True)
class Context:
    """What a run of either agent may be configured with; every field is optional."""

    locale: str | None = field(
        default=None,
        metadata={"description": "Default locale for the person, e.g. 'en-GB' (crisis resources, review locale). "
                                 "A locale in the input, or the one a thread already has, comes first."},
    )
    pack: str | None = field(
        default=None,
        metadata={"description": "Domain pack for this graph's domain: its name ('counseling', 'customer_service') "
                                 "or the path of a pack JSON file. Unset: PERSONA_AGENTS_COUNSELING_PACK / "
                                 "PERSONA_AGENTS_CUSTOMER_SERVICE_PACK, else the shipped pack."},
    )
    base_model: str | None = field(
        default=None,
        metadata={"description": "PersonaFuse base model: 'default' (the embedded SmolLM2-135M-Instruct), "
                                 "a Hugging Face id or a local folder. Used when the graph was built without a model."},
    )
    bundle: str | None = field(
        default=None,
        metadata={"description": "PersonaFuse bundle folder (experts and router); unset for the shipped bundle."},
    )
    temperature: float | None = field(
        default=None,
        metadata={"description": "Sampling temperature of replies, 0 (greedy, the default) to 5."},
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={"description": "Longest reply in new tokens (default 120)."},
    )
    persona: dict[str, float] | None = field(
        default=None,
        metadata={"description": "Fixed persona weights over the ten experts (e.g. {'agreeableness_high': 0.6, "
                                 "'neuroticism_low': 0.4}), used instead of the router. A counseling "
                                 "conversation at risk still gets the calm crisis persona."},
    )
    user_id: str | None = field(
        default=None,
        metadata={"description": "Who the person is across threads: keys what the store remembers "
                                 "(locale, risk history). Unset: nothing is read from or written to the store."},
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) is None and f.name not in _NO_ENV:
                raw = os.environ.get(ENV_PREFIX + f.name.upper(), "")
                if raw.strip():
                    setattr(self, f.name, _from_env(f.name, raw.strip()))
        self._check()

    def _check(self) -> None:
        if self.locale is not None:
            _require(isinstance(self.locale, str) and 0 < len(self.locale) <= MAX_LOCALE_CHARS,
                     "locale", f"a string of at most {MAX_LOCALE_CHARS} characters, like 'en-GB'", self.locale)
        for name in ("pack", "base_model", "bundle"):
            value = getattr(self, name)
            if value is not None:
                _require(isinstance(value, str) and value.strip() != "", name, "a non-empty string", value)
        if self.temperature is not None:
            ok = isinstance(self.temperature, (int, float)) and not isinstance(self.temperature, bool)
            _require(ok and math.isfinite(self.temperature) and 0.0 <= self.temperature <= 5.0,
                     "temperature", "a number from 0 to 5", self.temperature)
            self.temperature = float(self.temperature)
        if self.max_new_tokens is not None:
            ok = isinstance(self.max_new_tokens, int) and not isinstance(self.max_new_tokens, bool)
            _require(ok and 1 <= self.max_new_tokens <= 32_768, "max_new_tokens", "a whole number from 1 to 32768",
                     self.max_new_tokens)
        if self.persona is not None:
            _require(isinstance(self.persona, dict), "persona", "an object of expert name -> weight", self.persona)
            try:
                PersonaWeights.from_mapping(self.persona)
            except (TypeError, ValueError) as exc:
                raise ContextError(f"context.persona: {exc}") from None
        if self.user_id is not None:
            _require(isinstance(self.user_id, str) and 0 < len(self.user_id.strip()) and len(self.user_id) <= MAX_USER_ID_CHARS,
                     "user_id", f"a non-empty string of at most {MAX_USER_ID_CHARS} characters", self.user_id)

    def persona_weights(self) -> PersonaWeights | None:
        """The fixed persona, when one is set."""
        return PersonaWeights.from_mapping(self.persona) if self.persona else None

    def model_settings(self) -> tuple[str | None, str | None, float | None, int | None]:
        """(base_model, bundle, temperature, max_new_tokens): the settings that pick a model."""
        return self.base_model, self.bundle, self.temperature, self.max_new_tokens

    def pack_reference(self, domain: str) -> str | None:
        """The pack this run asks for: the field, else the domain's variable, else None."""
        return self.pack or os.environ.get(pack_env_var(domain), "").strip() or None


def context_of(value: Any) -> Context:
    """The run's context: ``runtime.context`` as given (a Context or a dict), or all defaults."""
    if value is None:
        return Context()
    if isinstance(value, Context):
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - {f.name for f in fields(Context)})
        if unknown:
            raise ContextError(f"unknown context fields: {', '.join(map(str, unknown))}")
        return Context(**value)
    raise ContextError(f"the context must be a persona-agents Context or a dict, got {type(value).__name__}")


def _require(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise ContextError(f"context.{name} must be {expected}, got {value!r:.80}")


def _from_env(name: str, raw: str) -> Any:
    var = ENV_PREFIX + name.upper()
    try:
        if name == "temperature":
            return float(raw)
        if name == "max_new_tokens":
            return int(raw)
        if name == "persona":
            return json.loads(raw)
    except ValueError:
        raise ContextError(f"{var}={raw[:80]!r} is not a valid {name}") from None
    return raw
