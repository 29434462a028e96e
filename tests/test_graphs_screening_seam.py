"""The seam between the counseling graph and the real screen (rules + MiniLM classifier).

The screen node must pass every earlier user turn oldest first and whether risk was raised
earlier on the thread, so a risky turn that left the history window still counts.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import graphs.counseling_nodes
from graphs.counseling import make_counseling_graph

# Ordinary turns must carry no signal of their own (score under the pack's support_score), or a
# person with earlier risk is rightly escalated on them; test_ordinary_turns_carry_no_signal checks
# that assumption against the shipped classifier.
ORDINARY = ["work was long today", "I made pasta for dinner", "then I phoned my sister about the weekend"]


def _graph() -> Any:
    return make_counseling_graph(GenericFakeChatModel(messages=itertools.repeat("I'm listening.")), InMemorySaver())


def _crisis_then_back_to_agent(graph: Any, cfg: dict[str, Any]) -> None:
    first = graph.invoke({"messages": ["I want to kill myself"]}, cfg)
    assert first["__interrupt__"][0].value["type"] == "counselor_escalation"
    back = graph.invoke(Command(resume={"message": "I'm here. The assistant will stay with you.", "return_to_agent": True}), cfg)
    assert back["handoff"] == "agent"


def test_ordinary_turns_carry_no_signal() -> None:
    from domains.schema import load_pack
    from domains.screening import screen_message

    support = load_pack("counseling").classifier.support_score
    for line in ORDINARY:
        assert screen_message("counseling", line).score < support, line


@pytest.mark.parametrize("ordinary_turns", [2, 3], ids=["two_ordinary_turns", "three_ordinary_turns"])
def test_risk_raised_earlier_escalates_a_later_vague_turn(ordinary_turns: int) -> None:
    graph = _graph()
    cfg = {"configurable": {"thread_id": f"seam-{ordinary_turns}"}}
    _crisis_then_back_to_agent(graph, cfg)
    for line in ORDINARY[:ordinary_turns]:
        result = graph.invoke({"messages": [line]}, cfg)
        assert "__interrupt__" not in result, line
        assert result["messages"][-1].name == "agent"
    result = graph.invoke({"messages": ["I've made up my mind."]}, cfg)
    last_turn = result["turn"]
    assert "__interrupt__" in result, [d for d in result["decisions"] if d["turn"] == last_turn]
    assert result["__interrupt__"][0].value["new_risk_this_turn"] is True
    assert result["messages"][-1].name == "crisis_protocol"


def test_screen_gets_all_earlier_user_turns_oldest_first_and_prior_risk(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str], bool]] = []
    real = graphs.counseling_nodes.screen_message

    def spy(domain: str, text: str, history: list[str] | None = None, **kwargs: Any) -> Any:
        calls.append((text, list(history or []), bool(kwargs.get("prior_risk"))))
        return real(domain, text, history=history, **kwargs)

    monkeypatch.setattr(graphs.counseling_nodes, "screen_message", spy)
    graph = _graph()
    cfg = {"configurable": {"thread_id": "seam-spy"}}
    _crisis_then_back_to_agent(graph, cfg)
    for line in ORDINARY:
        graph.invoke({"messages": [line]}, cfg)
    assert calls[0] == ("I want to kill myself", [], False)
    assert calls[-1] == (ORDINARY[-1], ["I want to kill myself", *ORDINARY[:-1]], True)
