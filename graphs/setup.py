"""What a graph was built with (``GraphSetup``), and one run's view of it (``Run``).

``make_*_graph(model, checkpointer, pack, guard=..., max_message_tokens=...)`` fixes a
``GraphSetup``; the nodes receive it bound (``functools.partial``) next to LangGraph's
``runtime``. Each node asks ``setup.run(runtime)`` for what this run uses:

- the pack: ``Context.pack`` (or ``PERSONA_AGENTS_<DOMAIN>_PACK``), else the graph's ``pack``,
  else the shipped one. Screening always uses the domain's own rules and classifiers;
- the model: the graph's ``model`` when it was given one, as given; otherwise a PersonaFuse
  model with the context's settings, made once per setting and kept (the weights behind it
  are loaded once per process);
- the person (``graphs.people``): only with both a store and ``Context.user_id``;
- ``decide(...)`` and ``chose_persona(...)``, which also send the custom stream events.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.config import get_config
from langgraph.runtime import Runtime

from domains.guard import SafetyGuard
from domains.schema import DOMAINS, DomainPack, PackError, load_pack, parse_pack
from graphs import model as models
from graphs.context import Context, ContextError, context_of
from graphs.decisions import decide
from graphs.events import persona_event
from graphs.limits import DEFAULT_MAX_MESSAGE_TOKENS, TokenCounter, token_counter
from graphs.people import Person
from graphs.state import Decision, Persona


@dataclass
class GraphSetup:
    """The graph-wide defaults a run's ``Context`` refines."""

    domain: str
    model: BaseChatModel | None = None
    pack: DomainPack | None = None
    guard: SafetyGuard | None = None
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS
    _models: dict[tuple[Any, ...], BaseChatModel] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self, runtime: Runtime[Context]) -> Run:
        return Run(self, runtime, context_of(runtime.context))

    def pack_for(self, context: Context) -> DomainPack:
        reference = context.pack_reference(self.domain)
        if reference is None:
            return self.pack or load_pack(self.domain)
        return _pack_from(reference, self.domain)

    def model_for(self, context: Context) -> BaseChatModel:
        if self.model is not None:
            return self.model
        settings = context.model_settings()
        with self._lock:
            if settings not in self._models:
                # looked up on the module at call time, so tests can swap in a smaller default
                made = models.default_model() if settings == (None, None, None, None) else models.configured_model(*settings)
                self._models[settings] = made
            return self._models[settings]

    def token_counter_for(self, context: Context) -> TokenCounter | None:
        base_model, bundle, *_ = context.model_settings()
        if self.model is not None or (base_model is None and bundle is None):
            return token_counter(self.model)  # None: the default model's tokenizer, without the model
        return token_counter(self.model_for(context))


@dataclass
class Run:
    """One run of a graph: its setup, LangGraph's runtime and the resolved context."""

    setup: GraphSetup
    runtime: Runtime[Context]
    context: Context

    @cached_property
    def pack(self) -> DomainPack:
        return self.setup.pack_for(self.context)

    @property
    def guard(self) -> SafetyGuard | None:
        return self.setup.guard

    def model(self) -> BaseChatModel:
        return self.setup.model_for(self.context)

    def count_tokens(self) -> TokenCounter | None:
        return self.setup.token_counter_for(self.context)

    @cached_property
    def person(self) -> Person | None:
        """The person's items in the store; None without a store or a ``user_id``."""
        if self.runtime.store is None or self.context.user_id is None:
            return None
        return Person(self.runtime.store, self.context.user_id)

    @property
    def thread_id(self) -> str | None:
        try:
            thread = get_config().get("configurable", {}).get("thread_id")
        except RuntimeError:  # called outside a run
            return None
        return str(thread) if thread is not None else None

    def decide(self, turn: int, node: str, what: str, reason: str) -> Decision:
        """A decision-log entry, also sent as a custom stream event."""
        return decide(self.runtime, self.setup.domain, turn, node, what, reason)

    def chose_persona(self, turn: int, node: str, persona: Persona) -> None:
        self.runtime.stream_writer(persona_event(self.setup.domain, turn, node, persona))


def _pack_from(reference: str, domain: str) -> DomainPack:
    """A pack by name (a shipped domain) or by path, for ``domain``; errors name ``context.pack``."""
    try:
        if reference in DOMAINS:
            pack = load_pack(reference)
        else:
            path = Path(reference).expanduser().resolve()
            if not path.is_file():
                raise ContextError(f"context.pack: no pack file at {path}")
            pack = _pack_file(str(path), path.stat().st_mtime_ns)
    except PackError as exc:
        raise ContextError(f"context.pack: {exc}") from None
    if pack.name != domain:
        raise ContextError(f"context.pack: the {domain} graph needs a {domain!r} pack, got {pack.name!r}")
    return pack


@lru_cache(maxsize=16)
def _pack_file(path: str, mtime_ns: int) -> DomainPack:  # the mtime is part of the key: an edited file is read again
    return parse_pack(Path(path).read_text(encoding="utf-8"), source=path)
