"""The review agent's nodes, in the order a turn runs them, then its routers.

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
from domains.reviews import analyse_review, suggested_holding_reply
from domains.schema import crisis_reply, load_pack
from domains.text import InvalidInputError
from graphs.answers import parse_approval
from graphs.context import Context, ContextError
from graphs.conversation import posted, settled
from graphs.decisions import decide
from graphs.inputs import checked_text
from graphs.model import draft_reply, fixed_persona, persona_for
from graphs.review_input import ReviewInput, parse_review, review_context
from graphs.setup import GraphSetup
from graphs.stages import open_stage, turn_of
from graphs.state import IDLE, Analysis, Approval, Check, CustomerServiceState

DOMAIN = "customer_service"
PERSON_IN_CRISIS = "person_in_crisis"  # domains.screening: a review whose writer may be in crisis
WAITING_FOR_APPROVAL = (
    "a human is reviewing the reply to the previous review; answer with "
    "Command(resume={'action': 'approve'|'edit'|'reject', 'reply': ...}) before sending a new review"
)
UNFINISHED_TURN = "the previous review's turn was not finished; it is being finished now: send the review again afterwards"


def intake(state: CustomerServiceState, runtime: Runtime[Context], *, setup: GraphSetup) -> list[Any]:
    """Take the new review (consuming ``review``), or refuse the input."""
    turn, stage = turn_of(state), open_stage(state)
    try:
        if stage:
            raise InvalidInputError(WAITING_FOR_APPROVAL if stage == "approval" else UNFINISHED_TURN)
        run = setup.run(runtime)
        fallback = run.context.locale or (run.person.locale() if run.person is not None else None)
        review = parse_review(state.get("review"), run.pack, default_locale=fallback)
        checked_text(review.text, what="review", count_tokens=run.count_tokens(), max_tokens=setup.max_message_tokens)
    except (InvalidInputError, ContextError) as exc:
        return posted({
            "messages": [],  # posting nothing drops any entries an operator queued
            "review": None,
            "error": str(exc),
            "decisions": [decide(runtime, DOMAIN, turn, "intake", "rejected_input", str(exc))],
        })
    if run.person is not None and review.locale:
        run.person.remember_locale(review.locale)
    return posted({
        "review": None,  # consumed: an input without a new review finds nothing to answer
        "accepted_review": review.model_dump(),
        "turn": turn + 1,
        "stage": "analyse",
        "error": None,
        "draft": "",
        "check": {},
        "approval": {},
        "final_reply": "",
        "messages": [HumanMessage(content=review.as_message(), id=str(uuid4()))],
        "decisions": [run.decide(turn + 1, "intake", "accepted", f"rating {review.rating}, locale {review.locale}")],
    })


def analyse(state: CustomerServiceState, runtime: Runtime[Context], *, setup: GraphSetup) -> dict[str, Any]:
    """Sentiment, aspects and the safety screen; a review the screen flags goes to a human."""
    run = setup.run(runtime)
    review = ReviewInput.model_validate(state["accepted_review"])
    try:
        analysis: Analysis = analyse_review(review.text, review.rating, guard=run.guard).model_dump()  # type: ignore[assignment]
        screen = analysis["screen"]
    except Exception as exc:  # fail closed: an unscreened review goes to a human
        screen = {"escalate": True, "category": "screening_error", "score": 1.0, "reasons": [f"screening failed: {exc}"]}
        analysis = Analysis(sentiment="neutral", aspects=[], screen=screen)  # type: ignore[typeddict-item]
    what = f"escalate:{screen['category']}" if screen["escalate"] else "respond"
    layer = f"[{screen.get('layer', 'none')}] " if screen["escalate"] else ""
    reason = layer + "; ".join(screen["reasons"]) or f"sentiment {analysis['sentiment']}"
    return {
        "analysis": analysis,
        "escalated": screen["escalate"],
        "stage": "route",
        "decisions": [run.decide(state["turn"], "analyse", what, reason)],
    }


def route(state: CustomerServiceState, runtime: Runtime[Context], *, setup: GraphSetup) -> dict[str, Any]:
    """Choose the persona: the run's context's, else the router's reading of the review."""
    run = setup.run(runtime)
    fixed = run.context.persona_weights()
    if fixed is not None:
        persona = fixed_persona(fixed, "context")
        reason = f"fixed by the run's context: {', '.join(persona['top_traits'])}"
    else:
        persona = persona_for(run.model(), settled(state["messages"])[-1:])
        reason = f"router: {', '.join(persona['top_traits'])}" if persona["top_traits"] else "model has no persona experts"
    run.chose_persona(state["turn"], "route", persona)
    return {"persona": persona, "stage": "draft", "decisions": [run.decide(state["turn"], "route", persona["source"], reason)]}


def _writer_in_crisis(state: CustomerServiceState) -> bool:
    return state["analysis"]["screen"]["category"] == PERSON_IN_CRISIS


def draft(state: CustomerServiceState, runtime: Runtime[Context], config: RunnableConfig, *, setup: GraphSetup) -> dict[str, Any]:
    """A provisional reply to the review; for a writer in crisis, the counseling pack's fixed
    crisis message (never the model's words), which a human still approves."""
    run = setup.run(runtime)
    review = ReviewInput.model_validate(state["accepted_review"])
    if _writer_in_crisis(state):
        text = crisis_reply(load_pack("counseling"), review.locale)
        return {
            "draft": text,
            "stage": "policy_check",
            "decisions": [run.decide(state["turn"], "draft", "crisis_protocol", "the writer may be in crisis: the fixed crisis message, model not called")],
        }
    system = f"{run.pack.prompts.persona}\n\n{review_context(review)}"
    reply = draft_reply(run.model(), system, [HumanMessage(review.text)], state["persona"], config)
    return {
        "draft": str(reply.content),
        "stage": "policy_check",
        "decisions": [run.decide(state["turn"], "draft", "drafted", f"{len(str(reply.content))} characters")],
    }


def policy_check(state: CustomerServiceState, runtime: Runtime[Context], *, setup: GraphSetup) -> dict[str, Any]:
    """The policy check of the draft; an escalated review or a flagged draft needs a human."""
    run = setup.run(runtime)
    review_text = str(state["accepted_review"].get("text") or "") or None
    domain = "counseling" if _writer_in_crisis(state) else DOMAIN  # the crisis message lists counseling resources
    result: Check = check_output(domain, state["draft"] or " ", guard=run.guard, user_text=review_text).model_dump()  # type: ignore[assignment]
    what = f"blocked:{result['category']}" if result["block"] else "allowed"
    needs_human = bool(state.get("escalated") or result["block"])
    return {
        "check": result,
        "stage": "approval" if needs_human else "finalize",
        "decisions": [run.decide(state["turn"], "policy_check", what, "; ".join(result["reasons"]) or "no rule matched")],
    }


def approval(state: CustomerServiceState, runtime: Runtime[Context], *, setup: GraphSetup) -> dict[str, Any]:
    """Ask a human (``interrupt``) to approve, edit or reject, until the answer is valid."""
    run = setup.run(runtime)
    payload = {
        "type": "review_approval",
        "turn": state["turn"],
        "review": state["accepted_review"],
        "analysis": state["analysis"],
        "draft": state["draft"],
        "policy_check": state["check"],
        "suggested_holding_reply": (
            state["draft"] if _writer_in_crisis(state)
            else suggested_holding_reply(
                run.pack, escalated=bool(state.get("escalated")), sentiment=state["analysis"]["sentiment"]
            )
        ),
        "resume_with": {"action": "approve | edit | reject", "reply": "the reply to publish (for edit)"},
    }
    question = payload
    while True:  # ask again rather than publish a malformed or refused answer
        try:
            answer = parse_approval(interrupt(question))
            if answer.action == "approve" and state["check"].get("block"):
                raise InvalidInputError("the draft failed the policy check; edit it or reject it")
            break
        except InvalidInputError as exc:
            question = {**payload, "error": str(exc)}
    reply = {"approve": state["draft"], "edit": answer.reply or "", "reject": payload["suggested_holding_reply"] or ""}[answer.action]
    human_check: Check | None = check_output(DOMAIN, reply).model_dump() if answer.action == "edit" else None  # type: ignore[assignment]
    note = f"; policy check on the human's text: {'blocked' if human_check['block'] else 'clean'}" if human_check else ""
    return {
        "error": None,  # an input rejected while the human was being asked is behind us
        "approval": Approval(action=answer.action, reply=reply, policy_check_of_edit=human_check),
        "stage": "finalize",
        "decisions": [run.decide(state["turn"], "approval", answer.action, f"human decision{note}")],
    }


def finalize(state: CustomerServiceState, runtime: Runtime[Context], *, setup: GraphSetup) -> list[Any]:
    """Publish the reply that stands (the draft, or the human's choice): the message apps show."""
    approved = state.get("approval") or {}
    text = approved.get("reply") or state["draft"]
    author = "human_approved" if approved else "agent"
    message = AIMessage(
        content=text, id=str(uuid4()), name="agent",
        response_metadata={"author": author, "persona": dict(state.get("persona") or {})},
    )
    return posted({
        "final_reply": text,
        "stage": IDLE,
        "messages": [message],
        "decisions": [decide(runtime, DOMAIN, state["turn"], "finalize", "published", author)],
    })


# --- routers: each follows the stage the node just recorded ----------------------------------------


def after_intake(state: CustomerServiceState) -> Literal[
    "analyse", "route", "draft", "policy_check", "approval", "finalize", "__end__"
]:
    """A new turn, back into the open one, or the end (a refused input with nothing open)."""
    return open_stage(state) or END  # type: ignore[return-value]


def after_check(state: CustomerServiceState) -> Literal["approval", "finalize"]:
    stage = state.get("stage")
    if stage not in ("approval", "finalize"):
        raise ValueError(f"stage {stage!r} cannot follow the policy check; expected approval or finalize")
    return stage  # type: ignore[return-value]
