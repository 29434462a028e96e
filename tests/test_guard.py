"""The optional guard model layer: format parsing, fail-closed behaviour, wiring into the screens."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from domains.guard import SafetyGuard, parse_guard_answer
from domains.output_check import check_output
from domains.screening import screen_message


class RecordingGuardModel(BaseChatModel):
    """Answers with a fixed text and records the messages it was sent."""

    answer: str = "safe"
    seen: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "recording-guard"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.answer))])


class FailingModel(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "failing"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        raise ConnectionError("guard server down")


class HangingModel(BaseChatModel):
    release: Any = None

    @property
    def _llm_type(self) -> str:
        return "hanging"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.release.wait(5)
        return ChatResult(generations=[ChatGeneration(message=AIMessage("safe"))])


@pytest.mark.parametrize(
    ("answer", "unsafe", "codes", "error"),
    [
        ("safe", False, [], False),
        ("  Safe.\n", False, [], False),
        ("unsafe\nS11", True, ["S11"], False),
        ("unsafe\nS1,S11", True, ["S1", "S11"], False),
        ("unsafe", True, [], False),
        ("", True, [], True),
        ("I think this is fine", True, [], True),
    ],
)
def test_parse_llama_guard_format(answer: str, unsafe: bool, codes: list[str], error: bool) -> None:
    verdict = parse_guard_answer(answer)
    assert verdict.unsafe is unsafe
    assert verdict.codes == codes
    assert (verdict.error is not None) is error


def test_guard_flags_a_turn_the_other_layers_pass() -> None:
    model = RecordingGuardModel(answer="unsafe\nS11", seen=[])
    guard = SafetyGuard(model, timeout_s=5)
    result = screen_message("counseling", "I had pasta for dinner", guard=guard)
    assert result.escalate and result.layer == "guard"
    assert "S11 Suicide & Self-Harm" in result.reasons[0]
    # chat mode sends the conversation as chat messages for the served model's own template
    assert [m.type for m in model.seen[-1]] == ["human"]


def test_guard_is_not_asked_when_an_earlier_layer_escalates() -> None:
    model = RecordingGuardModel(answer="safe", seen=[])
    result = screen_message("counseling", "I want to kill myself", guard=SafetyGuard(model))
    assert result.escalate and result.layer == "rules"
    assert model.seen == []


def test_safe_guard_answer_changes_nothing() -> None:
    model = RecordingGuardModel(answer="safe", seen=[])
    result = screen_message("counseling", "I had pasta for dinner", guard=SafetyGuard(model))
    assert not result.escalate and result.layer == "none"
    assert len(model.seen) == 1


def test_guard_error_fails_closed_for_user_turns_and_drafts() -> None:
    guard = SafetyGuard(FailingModel(), timeout_s=5)
    turn = screen_message("counseling", "I had pasta for dinner", guard=guard)
    assert turn.escalate and turn.layer == "guard" and "guard server down" in turn.reasons[0]
    draft = check_output("customer_service", "Thank you for the kind words!", guard=guard)
    assert draft.block and draft.layer == "guard"


def test_guard_timeout_fails_closed() -> None:
    release = threading.Event()
    guard = SafetyGuard(HangingModel(release=release), timeout_s=0.2)
    try:
        result = screen_message("counseling", "I had pasta for dinner", guard=guard)
    finally:
        release.set()
    assert result.escalate and "no answer within 0.2 s" in result.reasons[0]


def test_escalate_on_limits_categories_but_not_failures() -> None:
    guard = SafetyGuard(FakeListChatModel(responses=["unsafe\nS8"]), escalate_on=["S11"])
    assert not screen_message("counseling", "I had pasta for dinner", guard=guard).escalate
    garbled = SafetyGuard(FakeListChatModel(responses=["maybe?"]), escalate_on=["S11"])
    assert screen_message("counseling", "I had pasta for dinner", guard=garbled).escalate


def test_policy_mode_writes_categories_into_the_prompt_and_asks_about_the_agent() -> None:
    model = RecordingGuardModel(answer="unsafe\nS6", seen=[])
    guard = SafetyGuard(model, mode="policy")
    result = check_output("counseling", "That sounds really hard.", guard=guard, user_text="hi")
    assert result.block and result.layer == "guard"
    prompt = str(model.seen[-1][0].content)
    assert "S11: Suicide & Self-Harm." in prompt and "last Agent message" in prompt
    assert "User: hi" in prompt and "Agent: That sounds really hard." in prompt


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout_s": 0}, {"mode": "loud"}, {"escalate_on": ["S99"]}],
)
def test_bad_guard_settings_are_clear_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SafetyGuard(FakeListChatModel(responses=["safe"]), **kwargs)


# --- the guard in the graphs ------------------------------------------------------------------


def test_counseling_graph_escalates_on_the_guard_and_logs_the_layer() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.counseling import make_counseling_graph

    model = GenericFakeChatModel(messages=iter(["a reply that should never be generated"]))
    guard = SafetyGuard(FakeListChatModel(responses=["unsafe\nS11"]))
    graph = make_counseling_graph(model, InMemorySaver(), guard=guard)
    cfg = {"configurable": {"thread_id": "guard-1"}}
    result = graph.invoke({"messages": ["I had pasta for dinner"]}, cfg)
    assert "__interrupt__" in result
    screen = [d for d in result["decisions"] if d["node"] == "screen"][-1]
    assert screen["decision"] == "crisis:guard" and screen["reason"].startswith("[guard]")


def test_counseling_graph_blocks_a_draft_the_guard_flags() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.counseling import FALLBACK_REPLY, make_counseling_graph

    drafts = iter(["That sounds like a long day.", "Tell me more about your day?"])
    # user turn safe, first draft unsafe, regenerated draft unsafe: the fallback is sent
    guard = SafetyGuard(FakeListChatModel(responses=["safe", "unsafe\nS6", "unsafe\nS6"]))
    graph = make_counseling_graph(GenericFakeChatModel(messages=drafts), InMemorySaver(), guard=guard)
    result = graph.invoke({"messages": ["I had pasta for dinner"]}, {"configurable": {"thread_id": "guard-2"}})
    assert result["messages"][-1].content == FALLBACK_REPLY
    checks = [d for d in result["decisions"] if d["node"] == "check_output"]
    assert [c["decision"] for c in checks] == ["blocked:guard", "blocked:guard"]
    assert all(c["reason"].startswith("[guard]") for c in checks)


def test_review_graph_sends_a_review_to_a_human_when_the_guard_fails() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.customer_service import make_customer_service_graph

    model = GenericFakeChatModel(messages=iter(["Thank you for the lovely review!"]))
    graph = make_customer_service_graph(model, InMemorySaver(), guard=SafetyGuard(FailingModel()))
    result = graph.invoke({"review": {"text": "Lovely coffee, friendly staff", "rating": 5}}, {"configurable": {"thread_id": "guard-3"}})
    assert "__interrupt__" in result
    analyse = [d for d in result["decisions"] if d["node"] == "analyse"][-1]
    assert analyse["decision"] == "escalate:guard" and "failed closed" in analyse["reason"]
