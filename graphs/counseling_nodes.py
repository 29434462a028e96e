"""The counseling agent's nodes, in the order a turn runs them, then its routers.

Each node takes the state, LangGraph's ``runtime`` (``Runtime[Context]``) and the graph's
``setup`` (bound by the builder; see ``graphs.setup``) and returns a partial update. Nodes that
add to the conversation return ``posted(update)`` (``graphs.conversation``). Every node records
the stage the turn goes on with, and the routers follow it, so a restart takes the same path.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import uuid4

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from domains.output_check import check_output
from domains.schema import crisis_reply, resolve_locale
from domains.screening import screen_message
from domains.text import InvalidInputError
from graphs.answers import parse_counselor_answer
from graphs.context import Context, ContextError
from graphs.conversation import posted, settled, take_new_message
from graphs.decisions import decide
from graphs.inputs import last_turns
from graphs.model import CRISIS_PERSONA, STRICT_PERSONA, draft_reply, fixed_persona, persona_for
from graphs.people import risk_event
from graphs.setup import GraphSetup, Run
from graphs.stages import open_stage, turn_of
from graphs.state import IDLE, CounselingState, Risk

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


def intake(state: CounselingState, runtime: Runtime[Context], *, setup: GraphSetup) -> list[Any]:
    """Take the input's one new message into the conversation, or refuse the whole input."""
    turn, stage = turn_of(state), open_stage(state)
    messages = state.get("messages", [])
    try:
        if stage:
            raise InvalidInputError(WAITING_FOR_COUNSELOR if stage == "escalate" else UNFINISHED_TURN)
        run = setup.run(runtime)
        message = take_new_message(messages, count_tokens=run.count_tokens(), max_tokens=setup.max_message_tokens)
        locale = _turn_locale(state, run)
    except (InvalidInputError, ContextError) as exc:
        # Nothing of the input joins the conversation; the locale goes back to the accepted one.
        return posted({
            "messages": [],  # posting nothing drops the queued entries: none joins the conversation
            "locale": state.get("accepted_locale"),
            "error": str(exc),
            "decisions": [decide(runtime, DOMAIN, turn, "intake", "rejected_input", str(exc))],
        })
    if run.person is not None:
        run.person.remember_locale(locale)
    return posted({
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
        "decisions": [run.decide(turn + 1, "intake", "accepted", f"{len(str(message.content))} characters")],
    })


def screen(state: CounselingState, runtime: Runtime[Context], *, setup: GraphSetup) -> dict[str, Any]:
    """Screen the new message with the earlier user turns and any earlier risk of this person."""
    run = setup.run(runtime)
    turn = state["turn"]
    users = [m for m in settled(state["messages"]) if isinstance(m, HumanMessage)]
    text = str(users[-1].content)
    earlier = [str(m.content) for m in users[:-1]]  # oldest first; screening keeps the last few
    risk: Risk = dict(state.get("risk") or {"raised": False, "events": []})  # type: ignore[assignment]
    remembered = _remembered_risk(run)  # a note for the log when the store says this person was at risk
    try:
        result = screen_message(
            DOMAIN, text, history=earlier, prior_risk=bool(risk.get("raised")) or remembered is not None, guard=run.guard
        )
        escalate, category, score = result.escalate, result.category, result.score
        reasons = [f"[{result.layer}] {r}" for r in result.reasons]
    except Exception as exc:  # fail closed: a broken screen must not let a crisis through
        escalate, category, score, reasons = True, "screening_error", 1.0, [f"screening failed: {exc}"]
    if remembered and not risk.get("raised"):
        reasons.append(remembered)
    if not escalate:
        return {
            "crisis_now": False,
            "stage": "escalate" if state.get("handoff") == "human" else "route",
            "decisions": [run.decide(turn, "screen", "no_risk", "; ".join(reasons) or category)],
        }
    if run.person is not None:
        try:
            run.person.record_risk(risk_event(run.thread_id, turn, category, score))
        except Exception as exc:  # the escalation goes on; the log says what was not remembered
            reasons.append(f"could not record this in the store: {exc}")
    events = list(risk.get("events", [])) + [{"turn": turn, "category": category, "score": score, "evidence": reasons}]
    risk.update(
        raised=True,
        category=category,
        score=score,
        evidence=reasons,
        raised_at_turn=risk.get("raised_at_turn", turn),
        events=events,  # type: ignore[typeddict-item]
    )
    return {
        "risk": risk,
        "crisis_now": True,
        "handoff": "human",
        "stage": "crisis_reply",
        "decisions": [run.decide(turn, "screen", f"crisis:{category}", "; ".join(reasons))],
    }


def send_crisis_reply(state: CounselingState, runtime: Runtime[Context], *, setup: GraphSetup) -> list[Any]:
    """The pack's fixed crisis message for the locale: never the model's words."""
    run = setup.run(runtime)
    reply = crisis_reply(run.pack, state.get("locale"))
    message = AIMessage(content=reply, id=str(uuid4()), name="crisis_protocol", response_metadata={"author": "crisis_protocol"})
    return posted({
        "messages": [message],
        "stage": "escalate",
        "decisions": [run.decide(state["turn"], "crisis_reply", "sent_fixed_protocol", f"locale {state.get('locale')}")],
    })


def escalate(state: CounselingState, runtime: Runtime[Context], *, setup: GraphSetup) -> list[Any]:
    """Ask the human counselor (``interrupt``) until they give a valid answer, then post it."""
    risk = state.get("risk") or {}
    payload = {
        "type": "counselor_escalation",
        "turn": state["turn"],
        "risk_category": risk.get("category"),
        "score": risk.get("score"),
        "evidence": risk.get("evidence", []),
        "new_risk_this_turn": bool(state.get("crisis_now")),
        "locale": state.get("locale"),
        "last_turns": last_turns(settled(state["messages"]), 6),
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
    message = AIMessage(content=answer.message, id=str(uuid4()), name="human_counselor", response_metadata={"author": "human_counselor"})
    return posted({
        "error": None,  # an input rejected while the human was being asked is behind us
        "messages": [message],
        "handoff": handoff,
        "stage": IDLE,
        "decisions": [decide(runtime, DOMAIN, state["turn"], "escalate", "human_replied", f"next turn answered by the {handoff}")],
    })


def route(state: CounselingState, runtime: Runtime[Context], *, setup: GraphSetup) -> dict[str, Any]:
    """Choose the persona: calm and warm once risk was raised, else the context's or the router's."""
    run = setup.run(runtime)
    turn = state["turn"]
    fixed = run.context.persona_weights()
    if (state.get("risk") or {}).get("raised"):
        persona = fixed_persona(CRISIS_PERSONA, "crisis_override")
        reason = "risk was raised on this conversation: calm, warm persona"
    elif fixed is not None:
        persona = fixed_persona(fixed, "context")
        reason = f"fixed by the run's context: {', '.join(persona['top_traits'])}"
    else:
        persona = persona_for(run.model(), settled(state["messages"]))
        reason = f"router: {', '.join(persona['top_traits'])}" if persona["top_traits"] else "model has no persona experts"
    run.chose_persona(turn, "route", persona)
    return {"persona": persona, "stage": "generate", "decisions": [run.decide(turn, "route", persona["source"], reason)]}


def generate(state: CounselingState, runtime: Runtime[Context], config: RunnableConfig, *, setup: GraphSetup) -> dict[str, Any]:
    """A provisional draft; after a blocked one, a stricter prompt and persona."""
    run = setup.run(runtime)
    attempts = state.get("draft_attempts", 0) + 1
    strict = state.get("draft_blocked", False)
    prompt = run.pack.prompts.persona + ("\n\n" + run.pack.prompts.strict_regeneration if strict else "")
    persona = fixed_persona(STRICT_PERSONA, "strict_override") if strict else state["persona"]
    if strict:
        run.chose_persona(state["turn"], "generate", persona)
    draft = draft_reply(run.model(), prompt, settled(state["messages"]), persona, config)
    return {
        "draft": str(draft.content),
        "draft_attempts": attempts,
        "persona": persona,
        "stage": "check_output",
        "decisions": [run.decide(state["turn"], "generate", "strict_draft" if strict else "draft", f"attempt {attempts}")],
    }


def check_draft(state: CounselingState, runtime: Runtime[Context], *, setup: GraphSetup) -> dict[str, Any]:
    """The output check; a blocked draft is written again once, then replaced by the fallback."""
    run = setup.run(runtime)
    user_text = next((str(m.content) for m in reversed(settled(state["messages"])) if isinstance(m, HumanMessage)), None)
    result = check_output(DOMAIN, state["draft"] or " ", guard=run.guard, user_text=user_text)
    if not result.block:
        return {
            "draft_blocked": False,
            "stage": "respond",
            "decisions": [run.decide(state["turn"], "check_output", "allowed", "no layer blocked it")],
        }
    again = state.get("draft_attempts", 0) < MAX_DRAFTS
    return {
        "draft_blocked": True,
        "stage": "generate" if again else "respond",
        "decisions": [run.decide(state["turn"], "check_output", f"blocked:{result.category}",
                                 f"[{result.layer}] " + "; ".join(result.reasons))],
    }


def respond(state: CounselingState, runtime: Runtime[Context], *, setup: GraphSetup) -> list[Any]:
    """Post the reply that stands (the checked draft or the fallback): the message apps show."""
    blocked = state.get("draft_blocked", False)
    text = FALLBACK_REPLY if blocked or not state.get("draft") else state["draft"]
    persona = state.get("persona") or {}
    message = AIMessage(
        content=text,
        id=str(uuid4()),
        name="agent",
        response_metadata={"author": "fallback" if blocked else "agent", "persona": dict(persona)},
    )
    return posted({
        "messages": [message],
        "stage": IDLE,
        "decisions": [decide(runtime, DOMAIN, state["turn"], "respond", "fallback" if blocked else "sent_draft",
                             "draft blocked twice" if blocked else "draft passed the output check")],
    })


# --- routers: each follows the stage the node just recorded ----------------------------------------


def after_intake(state: CounselingState) -> Literal[
    "screen", "crisis_reply", "escalate", "route", "generate", "check_output", "respond", "__end__"
]:
    """A new turn, back into the open one, or the end (a refused input with nothing open)."""
    return open_stage(state) or END  # type: ignore[return-value]


def after_screen(state: CounselingState) -> Literal["crisis_reply", "escalate", "route"]:
    return _stage(state, ("crisis_reply", "escalate", "route"))  # type: ignore[return-value]


def after_check(state: CounselingState) -> Literal["generate", "respond"]:
    return _stage(state, ("generate", "respond"))  # type: ignore[return-value]


def _stage(state: CounselingState, allowed: tuple[str, ...]) -> str:
    stage = state.get("stage")
    if stage not in allowed:
        raise ValueError(f"stage {stage!r} cannot follow here; expected one of {', '.join(allowed)}")
    return stage  # type: ignore[return-value]


# --- helpers ----------------------------------------------------------------------------------------


def _turn_locale(state: CounselingState, run: Run) -> str:
    """The input's locale (or the thread's), else the context's, else the person's remembered one."""
    sent = state.get("locale")
    if isinstance(sent, str):
        return resolve_locale(run.pack, sent)
    if run.context.locale:
        return resolve_locale(run.pack, run.context.locale)
    remembered = run.person.locale() if run.person is not None else None
    return resolve_locale(run.pack, remembered)


def _remembered_risk(run: Run) -> str | None:
    """A note for the screen's reasons when the store has a recent risk event of this person."""
    if run.person is None:
        return None
    try:
        remembered = run.person.recent_risk()
    except Exception as exc:  # fail closed: an unreadable history counts as risk
        return f"[store] this person's risk history could not be read ({exc}); treated as earlier risk"
    if remembered is None:
        return None
    return f"[store] this person was at risk on {remembered['at'][:10]} ({remembered['category']}) in another conversation"
