"""The counseling agent.

    intake -> screen --(risk now)--------> crisis_reply -> escalate (human) -> END
                     --(human owns it)---> escalate (human) -> END
                     --(no risk)---------> route -> generate -> check_output --(blocked, once)--> generate
                                                                             --(ok / fallback)--> respond -> END

Input: ``{"message": "text", "locale": "en-GB"}`` (``CounselingInput``); nothing else a caller
sends is written to state. Intake validates the message (characters and model tokens) before
it is appended to the history, and refuses any input while a turn is open: a turn waiting for
the counselor is answered only by ``Command(resume=...)``, and a turn cut short by a crash goes
on where it stopped (``graphs.threads.finish_unfinished`` or ``invoke(None, config)``).

A person at risk gets the domain pack's fixed crisis reply (never the model's words) and a
human counselor through ``interrupt()``; the human's answer (``graphs.answers.CounselorAnswer``)
resumes the thread. Risk, once raised, stays on the thread, and from then on the agent speaks
with a calm, warm persona whatever the router says. Every decision is logged in state.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt

from domains.guard import SafetyGuard
from domains.output_check import check_output
from domains.schema import DomainPack, crisis_reply, load_pack, resolve_locale
from domains.screening import screen_message
from domains.text import InvalidInputError
from graphs.answers import parse_counselor_answer
from graphs.decisions import decision
from graphs.inputs import last_turns, new_user_message
from graphs.limits import DEFAULT_MAX_MESSAGE_TOKENS, token_counter
from graphs.model import (
    CRISIS_PERSONA,
    STRICT_PERSONA,
    fixed_persona,
    generate,
    lazy_model,
    persona_for,
)
from graphs.stages import open_stage, turn_of
from graphs.state import IDLE, CounselingInput, CounselingState, Risk

DOMAIN = "counseling"
MAX_DRAFTS = 2  # the first draft and one stricter regeneration
FALLBACK_REPLY = (
    "I want to be careful to get this right. Could you tell me a little more about how you are feeling "
    "right now? Talking things through with someone you trust, or with a professional, can really help too."
)
WAITING_FOR_COUNSELOR = (
    "a human counselor is answering this conversation; the pending question can only be answered "
    "with Command(resume={'message': ..., 'return_to_agent': true|false})"
)
UNFINISHED_TURN = "the previous turn was not finished; it is being finished now: send the message again afterwards"


def build_counseling_graph(
    model: BaseChatModel | None = None,
    pack: DomainPack | None = None,
    *,
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
    guard: SafetyGuard | None = None,
) -> StateGraph:
    """The uncompiled counseling graph. ``model`` defaults to the embedded PersonaFuse model.

    ``max_message_tokens`` limits a user message in the model's tokens (when the model can
    count them offline; see ``graphs.limits``), besides the character limit. ``guard`` adds a
    guard model as the last layer of the screen and of the output check.
    """
    pack = pack or load_pack(DOMAIN)
    get_model = lazy_model(model)
    count_tokens = token_counter(model)  # without creating the model: see graphs.limits

    def intake(state: CounselingState) -> dict[str, Any]:
        turn = turn_of(state)
        stage = open_stage(state)
        history = state.get("messages", [])
        try:
            if stage:
                raise InvalidInputError(WAITING_FOR_COUNSELOR if stage == "escalate" else UNFINISHED_TURN)
            message = new_user_message(
                state.get("message"),
                {m.id for m in history},
                count_tokens=count_tokens,
                max_tokens=max_message_tokens,
            )
        except InvalidInputError as exc:
            # Nothing of the input reaches the history; the locale goes back to the accepted one.
            return {
                "message": None,
                "locale": state.get("accepted_locale"),
                "error": str(exc),
                "decisions": [decision(turn, "intake", "rejected_input", str(exc))],
            }
        locale = resolve_locale(pack, state.get("locale") if isinstance(state.get("locale"), str) else None)
        return {
            "message": None,
            "messages": [message],
            "locale": locale,
            "accepted_locale": locale,
            "turn": turn + 1,
            "stage": "screen",
            "error": None,
            "crisis_now": False,
            "draft": "",
            "draft_attempts": 0,
            "draft_blocked": False,
            "decisions": [decision(turn + 1, "intake", "accepted", f"{len(str(message.content))} characters")],
        }

    def screen(state: CounselingState) -> dict[str, Any]:
        turn = state["turn"]
        users = [m for m in state["messages"] if isinstance(m, HumanMessage)]
        text = str(users[-1].content)
        earlier = [str(m.content) for m in users[:-1]]  # oldest first; screening keeps the last few
        risk: Risk = dict(state.get("risk") or {"raised": False, "events": []})  # type: ignore[assignment]
        try:
            result = screen_message(DOMAIN, text, history=earlier, prior_risk=bool(risk.get("raised")), guard=guard)
            escalate, category, score = result.escalate, result.category, result.score
            reasons = [f"[{result.layer}] {r}" for r in result.reasons]
        except Exception as exc:  # fail closed: a broken screen must not let a crisis through
            escalate, category, score, reasons = True, "screening_error", 1.0, [f"screening failed: {exc}"]
        if not escalate:
            return {
                "crisis_now": False,
                "stage": "escalate" if state.get("handoff") == "human" else "route",
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
            "stage": "crisis_reply",
            "decisions": [decision(turn, "screen", f"crisis:{category}", "; ".join(reasons))],
        }

    def crisis_reply_node(state: CounselingState) -> dict[str, Any]:
        reply = crisis_reply(pack, state.get("locale"))
        return {
            "messages": [AIMessage(content=reply, name="crisis_protocol", response_metadata={"author": "crisis_protocol"})],
            "stage": "escalate",
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
        question = payload
        while True:  # ask again rather than post an empty or malformed reply
            try:
                answer = parse_counselor_answer(interrupt(question))
                break
            except InvalidInputError as exc:
                question = {**payload, "error": str(exc)}
        handoff = "agent" if answer.return_to_agent else "human"
        return {
            "error": None,  # an input rejected while the human was being asked is behind us
            "messages": [AIMessage(content=answer.message, name="human_counselor", response_metadata={"author": "human_counselor"})],
            "handoff": handoff,
            "stage": IDLE,
            "decisions": [decision(state["turn"], "escalate", "human_replied", f"next turn answered by the {handoff}")],
        }

    def route(state: CounselingState) -> dict[str, Any]:
        turn = state["turn"]
        if (state.get("risk") or {}).get("raised"):
            persona = fixed_persona(CRISIS_PERSONA, "crisis_override")
            reason = "risk was raised on this conversation: calm, warm persona"
        else:
            persona = persona_for(get_model(), state["messages"])
            reason = f"router: {', '.join(persona['top_traits'])}" if persona["top_traits"] else "model has no persona experts"
        return {"persona": persona, "stage": "generate", "decisions": [decision(turn, "route", persona["source"], reason)]}

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
            "stage": "check_output",
            "decisions": [decision(state["turn"], "generate", "strict_draft" if strict else "draft", f"attempt {attempts}")],
        }

    def check(state: CounselingState) -> dict[str, Any]:
        user_text = next((str(m.content) for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), None)
        result = check_output(DOMAIN, state["draft"] or " ", guard=guard, user_text=user_text)
        if not result.block:
            return {
                "draft_blocked": False,
                "stage": "respond",
                "decisions": [decision(state["turn"], "check_output", "allowed", "no layer blocked it")],
            }
        again = state.get("draft_attempts", 0) < MAX_DRAFTS
        return {
            "draft_blocked": True,
            "stage": "generate" if again else "respond",
            "decisions": [decision(state["turn"], "check_output", f"blocked:{result.category}", f"[{result.layer}] " + "; ".join(result.reasons))],
        }

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
            "stage": IDLE,
            "decisions": [
                decision(state["turn"], "respond", "fallback" if blocked else "sent_draft",
                         "draft blocked twice" if blocked else "draft passed the output check")
            ],
        }

    # Routers follow the stage the node just recorded, so a restart takes the same path.
    def after_intake(state: CounselingState) -> Literal[
        "screen", "crisis_reply", "escalate", "route", "generate", "check_output", "respond", "__end__"
    ]:
        return open_stage(state) or END  # type: ignore[return-value]

    def after_screen(state: CounselingState) -> Literal["crisis_reply", "escalate", "route"]:
        return state["stage"]  # type: ignore[return-value]

    def after_check(state: CounselingState) -> Literal["generate", "respond"]:
        return state["stage"]  # type: ignore[return-value]

    builder = StateGraph(CounselingState, input_schema=CounselingInput)
    builder.add_node("intake", intake)
    builder.add_node("screen", screen)
    builder.add_node("crisis_reply", crisis_reply_node)
    builder.add_node("escalate", escalate)
    builder.add_node("route", route)
    builder.add_node("generate", generate_node)
    builder.add_node("check_output", check)
    builder.add_node("respond", respond)
    builder.add_edge(START, "intake")
    builder.add_conditional_edges("intake", after_intake)  # a new turn, or back into the open one
    builder.add_conditional_edges("screen", after_screen)
    builder.add_edge("crisis_reply", "escalate")
    builder.add_edge("escalate", END)
    builder.add_edge("route", "generate")
    builder.add_edge("generate", "check_output")
    builder.add_conditional_edges("check_output", after_check)
    builder.add_edge("respond", END)
    return builder


def make_counseling_graph(
    model: BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    pack: DomainPack | None = None,
    *,
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
    guard: SafetyGuard | None = None,
) -> CompiledStateGraph:
    """The counseling agent for apps: your model (default PersonaFuse), your checkpointer, an optional guard."""
    builder = build_counseling_graph(model, pack, max_message_tokens=max_message_tokens, guard=guard)
    return builder.compile(checkpointer=checkpointer, name="counseling")


builder = build_counseling_graph()
graph = builder.compile(name="counseling")  # for `langgraph dev`, which brings its own persistence
