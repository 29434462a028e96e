"""How long a user message may be: in characters, and in the chat model's tokens.

Characters alone are not enough: 7,000 emoji pass an 8,000-character limit but need over
20,000 tokens. The token count comes from the graph's model when it can count
(``custom_get_token_ids``, a model class with its own ``get_num_tokens``/``get_token_ids``,
or PersonaFuse's tokenizer); LangChain's default counter downloads GPT-2's tokenizer, which
these machines cannot, so other models fall back to characters.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.language_models import BaseChatModel, BaseLanguageModel

MAX_MESSAGE_CHARS = 8000
DEFAULT_MAX_MESSAGE_TOKENS = 2048  # the default PersonaFuse model's prompt budget

TokenCounter = Callable[[str], int]


def token_counter(model: BaseChatModel) -> TokenCounter | None:
    """A function counting ``model``'s tokens in a text, or None when the model cannot count offline."""
    if model.custom_get_token_ids is not None:
        return model.get_num_tokens
    cls = type(model)
    if cls.get_num_tokens is not BaseLanguageModel.get_num_tokens or cls.get_token_ids is not BaseLanguageModel.get_token_ids:
        return model.get_num_tokens
    from persona_agents.chat_model import ChatPersonaFuse

    if isinstance(model, ChatPersonaFuse):
        def count(text: str) -> int:
            tokenizer = model.get_engine().tokenizer
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        return count
    return None
