"""LangChain's standard integration tests for ChatPersonaFuse on the real default model.

The model is SmolLM2-135M-Instruct with the shipped PersonaFuse bundle, run in-process (on the
CPU here). The instances take their engine settings from ``PERSONA_AGENTS_*``, so the same
suite checks a bundle trained for another base model (``PERSONA_AGENTS_BASE_MODEL``,
``PERSONA_AGENTS_BUNDLE``, ``PERSONA_AGENTS_DEVICE``). Every test instance shares one engine
(``PersonaFuseEngine.shared`` keys it by settings), so the model is loaded once per session. Replies are cut to ``MAX_TOKENS`` new tokens: the
standard tests check the shape of results (messages, chunks, usage, stop handling), not
their quality, and short replies keep the suite quick on two shared CPU cores.

What ChatPersonaFuse does not support is declared below, so LangChain skips those tests
itself: no tool calling, no structured output or JSON mode, text-only inputs, and no per-call
``model=`` override (one engine holds one base model; see the property's note).
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_tests.integration_tests import ChatModelIntegrationTests

from persona_agents.chat_model import ChatPersonaFuse

pytestmark = pytest.mark.integration

MAX_TOKENS = 8


class TestChatPersonaFuseIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatPersonaFuse]:
        return ChatPersonaFuse

    @property
    def chat_model_params(self) -> dict:
        return {"max_tokens": MAX_TOKENS}

    # --- capabilities, declared so the matching standard tests skip themselves ------------
    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # The base model is loaded once per engine; switching it per call would mean loading
        # another model mid-request, so a per-call ``model=`` is refused (see test below).
        return False

    @property
    def enable_vcr_tests(self) -> bool:
        return False  # no HTTP to record: the model runs in-process


# --- checks the standard suite leaves out, on the same real model ---------------------------


@pytest.fixture(scope="module")
def llm() -> ChatPersonaFuse:
    return ChatPersonaFuse(max_tokens=MAX_TOKENS)


def test_stream_usage_counts_the_streamed_tokens(llm: ChatPersonaFuse) -> None:
    chunks = list(llm.stream("Hello"))
    merged: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    usage = merged.usage_metadata
    assert usage is not None
    assert 1 <= usage["output_tokens"] <= MAX_TOKENS
    assert usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert sum(1 for c in chunks if c.usage_metadata) == 1  # usage is counted once
    assert merged.response_metadata["finish_reason"] in {"stop", "length"}


def test_stop_sequence_cuts_the_reply(llm: ChatPersonaFuse) -> None:
    full = llm.invoke("Hello", max_tokens=16).content
    assert isinstance(full, str) and full.strip()
    words = full.split()
    stop = words[1] if len(words) > 1 else words[0][1:]
    cut = llm.invoke("Hello", max_tokens=16, stop=[stop])
    assert stop not in cut.content
    assert full.startswith(cut.content)
    assert cut.response_metadata["finish_reason"] == "stop"


def test_model_override_is_refused(llm: ChatPersonaFuse) -> None:
    with pytest.raises(ValueError, match="model"):
        llm.invoke("Hello", model="some-org/another-model")
