"""How long a user message may be in the chat model's tokens, beside the character limit
(``persona_agents.messages.MAX_MESSAGE_CHARS``, the project's one).

Characters alone are not enough: 7,000 emoji pass an 8,000-character limit but need over
20,000 tokens. The token count comes from the graph's model when it can count offline
(``custom_get_token_ids``, a model class with its own ``get_num_tokens``/``get_token_ids``, or
PersonaFuse's tokenizer, loaded on its own so a crisis turn never waits for the model);
LangChain's default counter downloads GPT-2's tokenizer, which these machines cannot, so other
models fall back to characters. A counter that fails also falls back to characters: a message
must never be refused (and a crisis never missed) because the model could not be loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLanguageModel

DEFAULT_MAX_MESSAGE_TOKENS = 2048  # the default PersonaFuse model's prompt budget

TokenCounter = Callable[[str], int]


@functools.lru_cache(maxsize=4)
def _base_tokenizer(base_model: str) -> Any:
    from transformers import AutoTokenizer

    from persona_agents.base_model import resolve_base_model

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model))


def _persona_fuse_counter(model: Any) -> TokenCounter:
    """PersonaFuse's own tokenizer: the loaded engine's, else the base model's tokenizer alone."""

    def count(text: str) -> int:
        if model is not None and model.engine is not None:
            tokenizer = model.engine.tokenizer
        else:
            from persona_agents.config import EngineConfig

            name = model.model_name if model is not None else None
            tokenizer = _base_tokenizer(EngineConfig.from_env(base_model=name).base_model)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def token_counter(model: BaseChatModel | None) -> TokenCounter | None:
    """A function counting ``model``'s tokens in a text (None: the default PersonaFuse model),
    or None when the model cannot count offline."""
    from persona_agents.chat_model import ChatPersonaFuse

    if model is None or isinstance(model, ChatPersonaFuse):
        return _persona_fuse_counter(model)
    if model.custom_get_token_ids is not None:
        return model.get_num_tokens
    cls = type(model)
    if cls.get_num_tokens is not BaseLanguageModel.get_num_tokens or cls.get_token_ids is not BaseLanguageModel.get_token_ids:
        return model.get_num_tokens
    return None
