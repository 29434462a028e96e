"""The counseling agent.

    intake -> screen --(risk now)--------> crisis_reply -> escalate (human) -> END
                     --(human owns it)---> escalate (human) -> END
                     --(no risk)---------> route -> generate -> check_output --(blocked, once)--> generate
                                                                             --(ok / fallback)--> respond -> END

A person at risk gets the domain pack's fixed crisis reply (never the model's words) and a
human counselor through ``interrupt()``; the human's message resumes the thread through
``Command(resume=...)``. Risk, once raised, stays on the thread, and from then on the agent
speaks with a calm, warm persona whatever the router says. Every decision is logged in state.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt

from domains.output_check import check_output
from domains.schema import DomainPack, crisis_reply, load_pack, resolve_locale
from domains.screening import screen_message
from domains.text import InvalidInputError
from graphs.decisions import decision
from graphs.inputs import human_text, last_turns
from graphs.model import (
    CRISIS_PERSONA,
    STRICT_PERSONA,
    fixed_persona,
    generate,
    lazy_model,
    persona_for,
)
from graphs.state import CounselingState, Risk

DOMAIN = "counseling"
MAX_DRAFTS = 2  # the first draft and one stricter regeneration
HISTORY_FOR_SCREENING = 3
FALLBACK_REPLY = (
    "I want to be careful to get this right. Could you tell me a little more about how you are feeling "
    "right now? Talking things through with someone you trust, or with a professional, can really help too."
)


def build_counseling_graph(model: BaseChatModel | None = None, pack: DomainPack | None = None) -> StateGraph:
    """The uncompiled counseling graph. ``model`` defaults to the embedded PersonaFuse model."""
    pack = pack or load_pack(DOMAIN)
    get_model = lazy_model(model)

    def intake(state: CounselingState) -> dict[str, Any]:
        turn = state.get("turn", 0) + 1
        messages = state.get("messages", [])
        try:
            text = human_text(messages)
        except InvalidInputError as exc:
            # Drop the bad message so the thread stays as it was before this turn.
            removal = [RemoveMessage(id=messages[-1].id)] if messages and messages[-1].id else []
            return {
                "messages": removal,
                "error": str(exc),
                "decisions": [decision(turn - 1, "intake", "rejected_input", str(exc))],
            }
        return {
            "turn": turn,
            "error": None,
            "crisis_now": False,
            "draft": "",
            "draft_attempts": 0,
            "draft_blocked": False,
            "messages": [HumanMessage(content=text, id=messages[-1].id)],
            "locale": resolve_locale(pack, state.get("locale")),
            "decisions": [decision(turn, "intake", "accepted", f"{len(text)} characters")],
        }

    def screen(state: CounselingState) -> dict[str, Any]:
        turn = state["turn"]
        messages = state["messages"]
        text = messages[-1].content
        earlier = [m.content for m in messages[:-1] if isinstance(m, HumanMessage)][-HISTORY_FOR_SCREENING:]
        try:
            result = screen_message(DOMAIN, text, history=earlier[::-1])
            escalate, category, score, reasons = result.escalate, result.category, result.score, result.reasons
        except Exception as exc:  # fail closed: a broken screen must not let a crisis through
            escalate, category, score, reasons = True, "screening_error", 1.0, [f"screening failed: {exc}"]
        risk: Risk = dict(state.get("risk") or {"raised": False, "events": []})  # type: ignore[assignment]
        if not escalate:
            return {
                "crisis_now": False,
                "decisions": [decision(turn, "screen", "no_risk", "; ".join(reasons) or category)],
            }
        events = list(risk.get("events", [])) + [{"turn": turn, "category": category, "score": score, "evidence": reasons}]
        risk.update(
            raised=True,
            category=category,
            score=score,
            evidence=reasons,
            raised_at_turn=risk.get("raised_at_turn", turn),
            events=events,
        )
        return {
            "risk": risk,
            "crisis_now": True,
            "handoff": "human",
            "decisions": [decision(turn, "screen", f"crisis:{category}", "; ".join(reasons))],
        }

    def after_intake(state: CounselingState) -> Literal["screen", "escalate", "__end__"]:
        if not state.get("error"):
            return "screen"
        # A rejected input must not drop an escalation still waiting for the counselor: new input
        # on an interrupted thread discards the pending interrupt, so ask the human again.
        messages = state.get("messages", [])
        waiting = state.get("handoff") == "human" and bool(messages) and messages[-1].name != "human_counselor"
        return "escalate" if waiting else END

    def after_screen(state: CounselingState) -> Literal["crisis_reply", "escalate", "route"]:
        if state.get("crisis_now"):
            return "crisis_reply"
        if state.get("handoff") == "human":
            return "escalate"
        return "route"

    def crisis_reply_node(state: CounselingState) -> dict[str, Any]:
        reply = crisis_reply(pack, state.get("locale"))
        return {
            "messages": [AIMessage(content=reply, name="crisis_protocol", response_metadata={"author": "crisis_protocol"})],
            "decisions": [decision(state["turn"], "crisis_reply", "sent_fixed_protocol", f"locale {state.get('locale')}")],
        }

    def escalate(state: CounselingState) -> dict[str, Any]:
        risk = state.get("risk") or {}
        payload = {
            "type": "counselor_escalation",
            "turn": state["turn"],
            "risk_category": risk.get("category"),
            "score": risk.get("score"),
            "evidence": risk.get("evidence", []),
            "new_risk_this_turn": bool(state.get("crisis_now")),
            "locale": state.get("locale"),
            "last_turns": last_turns(state["messages"], 6),
            "resume_with": {"message": "your reply to the person", "return_to_agent": False},
        }
        answer = interrupt(payload)
        message, return_to_agent, problem = _parse_counselor_answer(answer)
        while problem:  # ask again rather than post an empty or malformed reply
            answer = interrupt({**payload, "error": problem})
            message, return_to_agent, problem = _parse_counselor_answer(answer)
        handoff = "agent" if return_to_agent else "human"
        return {
            "error": None,  # an input rejected while the human was being asked is behind us
            "messages": [AIMessage(content=message, name="human_counselor", response_metadata={"author": "human_counselor"})],
            "handoff": handoff,
            "decisions": [
                decision(state["turn"], "escalate", "human_replied", f"next turn answered by the {handoff}")
            ],
        }

    def route(state: CounselingState) -> dict[str, Any]:
        turn = state["turn"]
        if (state.get("risk") or {}).get("raised"):
            persona = fixed_persona(CRISIS_PERSONA, "crisis_override")
            reason = "risk was raised on this conversation: calm, warm persona"
        else:
            persona = persona_for(get_model(), state["messages"])
            reason = f"router: {', '.join(persona['top_traits'])}" if persona["top_traits"] else "model has no persona experts"
        return {"persona": persona, "decisions": [decision(turn, "route", persona["source"], reason)]}

    def generate_node(state: CounselingState, config: RunnableConfig) -> dict[str, Any]:
        attempts = state.get("draft_attempts", 0) + 1
        strict = state.get("draft_blocked", False)
        prompt = pack.prompts.persona + ("\n\n" + pack.prompts.strict_regeneration if strict else "")
        persona = fixed_persona(STRICT_PERSONA, "strict_override") if strict else state["persona"]
        draft = generate(get_model(), prompt, state["messages"], persona, config)
        return {
            "draft": str(draft.content),
            "draft_attempts": attempts,
            "persona": persona,
            "decisions": [decision(state["turn"], "generate", "strict_draft" if strict else "draft", f"attempt {attempts}")],
        }

    def check(state: CounselingState) -> dict[str, Any]:
        result = check_output(DOMAIN, state["draft"] or " ")
        if not result.block:
            return {"draft_blocked": False, "decisions": [decision(state["turn"], "check_output", "allowed", "no rule matched")]}
        return {
            "draft_blocked": True,
            "decisions": [decision(state["turn"], "check_output", f"blocked:{result.category}", "; ".join(result.reasons))],
        }

    def after_check(state: CounselingState) -> Literal["generate", "respond"]:
        if state.get("draft_blocked") and state.get("draft_attempts", 0) < MAX_DRAFTS:
            return "generate"
        return "respond"

    def respond(state: CounselingState) -> dict[str, Any]:
        blocked = state.get("draft_blocked", False)
        text = FALLBACK_REPLY if blocked or not state.get("draft") else state["draft"]
        persona = state.get("persona") or {}
        return {
            "messages": [
                AIMessage(
                    content=text,
                    name="agent",
                    response_metadata={"author": "fallback" if blocked else "agent", "persona": dict(persona)},
                )
            ],
            "decisions": [
                decision(state["turn"], "respond", "fallback" if blocked else "sent_draft",
                         "draft blocked twice" if blocked else "draft passed the output check")
            ],
        }

    builder = StateGraph(CounselingState)
    builder.add_node("intake", intake)
    builder.add_node("screen", screen)
    builder.add_node("crisis_reply", crisis_reply_node)
    builder.add_node("escalate", escalate)
    builder.add_node("route", route)
    builder.add_node("generate", generate_node)
    builder.add_node("check_output", check)
    builder.add_node("respond", respond)
    builder.add_edge(START, "intake")
    builder.add_conditional_edges("intake", after_intake)
    builder.add_conditional_edges("screen", after_screen)
    builder.add_edge("crisis_reply", "escalate")
    builder.add_edge("escalate", END)
    builder.add_edge("route", "generate")
    builder.add_edge("generate", "check_output")
    builder.add_conditional_edges("check_output", after_check)
    builder.add_edge("respond", END)
    return builder


def _parse_counselor_answer(answer: Any) -> tuple[str, bool, str | None]:
    """(message, return_to_agent, problem) from a resume value: a string or a dict."""
    if isinstance(answer, str):
        message, return_to_agent = answer, False
    elif isinstance(answer, dict):
        message, return_to_agent = answer.get("message", ""), bool(answer.get("return_to_agent", False))
    else:
        return "", False, f"resume with a string or {{'message': ..., 'return_to_agent': bool}}, got {type(answer).__name__}"
    if not isinstance(message, str) or not message.strip():
        return "", False, "the counselor's message is empty"
    return message.strip(), return_to_agent, None


def make_counseling_graph(
    model: BaseChatModel | None = None, checkpointer: BaseCheckpointSaver | None = None, pack: DomainPack | None = None
) -> CompiledStateGraph:
    """The counseling agent for apps: your model (default PersonaFuse) and your checkpointer."""
    return build_counseling_graph(model, pack).compile(checkpointer=checkpointer, name="counseling")


builder = build_counseling_graph()
graph = builder.compile(name="counseling")  # for `langgraph dev`, which brings its own persistence
