"""The review-response agent.

    intake -> analyse -> route -> draft -> policy_check --(escalated or flagged)--> approval (human) -> finalize -> END
                                                       --(clean)------------------------------------> finalize -> END

Input: ``{"review": {"text", "rating", "product", "business", "channel", "locale"}}`` (a dict
or a JSON string; ``CustomerServiceInput``); nothing else a caller sends is written to state.
Intake consumes the review (``review`` is empty again afterwards; the validated one is
``accepted_review``), so an input without a new review publishes nothing. While a turn is open
(a draft waiting for approval, or a turn cut short by a crash) new reviews are refused.

A review that reports an injury, a health problem, a legal threat, discrimination, harassment
by staff or a data leak is escalated; so is any draft the policy check flags (unauthorised
compensation, admissions of liability, personal data, abuse). A human approves, edits or
rejects through ``interrupt()`` / ``Command(resume=...)`` (``graphs.answers.ApprovalAnswer``).
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
from domains.reviews import analyse_review
from domains.schema import DomainPack, load_pack
from domains.text import InvalidInputError
from graphs.answers import ACTIONS, parse_approval
from graphs.decisions import decision
from graphs.inputs import checked_text
from graphs.limits import DEFAULT_MAX_MESSAGE_TOKENS, token_counter
from graphs.model import generate, lazy_model, persona_for
from graphs.review_input import ReviewInput, parse_review, review_context
from graphs.stages import open_stage, turn_of
from graphs.state import IDLE, CustomerServiceInput, CustomerServiceState

DOMAIN = "customer_service"
__all__ = ["ACTIONS", "build_customer_service_graph", "make_customer_service_graph"]
WAITING_FOR_APPROVAL = (
    "a human is reviewing the reply to the previous review; answer with "
    "Command(resume={'action': 'approve'|'edit'|'reject', 'reply': ...}) before sending a new review"
)
UNFINISHED_TURN = "the previous review's turn was not finished; it is being finished now: send the review again afterwards"


def build_customer_service_graph(
    model: BaseChatModel | None = None,
    pack: DomainPack | None = None,
    *,
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
    guard: SafetyGuard | None = None,
) -> StateGraph:
    """The uncompiled review-response graph. ``model`` defaults to the embedded PersonaFuse model.

    ``guard`` adds a guard model as the last layer of the review screen and of the policy check.
    """
    pack = pack or load_pack(DOMAIN)
    get_model = lazy_model(model)
    count_tokens = token_counter(model)  # without creating the model: see graphs.limits

    def intake(state: CustomerServiceState) -> dict[str, Any]:
        turn = turn_of(state)
        stage = open_stage(state)
        try:
            if stage:
                raise InvalidInputError(WAITING_FOR_APPROVAL if stage == "approval" else UNFINISHED_TURN)
            review = parse_review(state.get("review"), pack)
            checked_text(review.text, what="review", count_tokens=count_tokens, max_tokens=max_message_tokens)
        except InvalidInputError as exc:
            return {
                "review": None,
                "error": str(exc),
                "decisions": [decision(turn, "intake", "rejected_input", str(exc))],
            }
        return {
            "review": None,  # consumed: an input without a new review finds nothing to answer
            "accepted_review": review.model_dump(),
            "turn": turn + 1,
            "stage": "analyse",
            "error": None,
            "draft": "",
            "check": {},
            "approval": {},
            "final_reply": "",
            "messages": [HumanMessage(content=review.as_message())],
            "decisions": [decision(turn + 1, "intake", "accepted", f"rating {review.rating}, locale {review.locale}")],
        }

    def analyse(state: CustomerServiceState) -> dict[str, Any]:
        review = ReviewInput.model_validate(state["accepted_review"])
        try:
            analysis = analyse_review(review.text, review.rating, guard=guard).model_dump()
            screen = analysis["screen"]
        except Exception as exc:  # fail closed: an unscreened review goes to a human
            screen = {"escalate": True, "category": "screening_error", "score": 1.0, "reasons": [f"screening failed: {exc}"]}
            analysis = {"sentiment": "neutral", "aspects": [], "screen": screen}
        what = f"escalate:{screen['category']}" if screen["escalate"] else "respond"
        layer = f"[{screen.get('layer', 'none')}] " if screen["escalate"] else ""
        reason = layer + "; ".join(screen["reasons"]) or f"sentiment {analysis['sentiment']}"
        return {
            "analysis": analysis,
            "escalated": screen["escalate"],
            "stage": "route",
            "decisions": [decision(state["turn"], "analyse", what, reason)],
        }

    def route(state: CustomerServiceState) -> dict[str, Any]:
        persona = persona_for(get_model(), [state["messages"][-1]])
        reason = f"router: {', '.join(persona['top_traits'])}" if persona["top_traits"] else "model has no persona experts"
        return {"persona": persona, "stage": "draft", "decisions": [decision(state["turn"], "route", persona["source"], reason)]}

    def draft(state: CustomerServiceState, config: RunnableConfig) -> dict[str, Any]:
        review = ReviewInput.model_validate(state["accepted_review"])
        system = f"{pack.prompts.persona}\n\n{review_context(review)}"
        reply = generate(get_model(), system, [HumanMessage(review.text)], state["persona"], config)
        return {
            "draft": str(reply.content),
            "stage": "policy_check",
            "decisions": [decision(state["turn"], "draft", "drafted", f"{len(str(reply.content))} characters")],
        }

    def policy_check(state: CustomerServiceState) -> dict[str, Any]:
        review_text = str(state["accepted_review"].get("text") or "") or None
        result = check_output(DOMAIN, state["draft"] or " ", guard=guard, user_text=review_text).model_dump()
        what = f"blocked:{result['category']}" if result["block"] else "allowed"
        needs_human = bool(state.get("escalated") or result["block"])
        return {
            "check": result,
            "stage": "approval" if needs_human else "finalize",
            "decisions": [decision(state["turn"], "policy_check", what, "; ".join(result["reasons"]) or "no rule matched")],
        }

    def approval(state: CustomerServiceState) -> dict[str, Any]:
        payload = {
            "type": "review_approval",
            "turn": state["turn"],
            "review": state["accepted_review"],
            "analysis": state["analysis"],
            "draft": state["draft"],
            "policy_check": state["check"],
            "suggested_holding_reply": pack.escalation_reply,
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
        reply = {"approve": state["draft"], "edit": answer.reply or "", "reject": pack.escalation_reply or ""}[answer.action]
        human_check = check_output(DOMAIN, reply).model_dump() if answer.action == "edit" else None
        note = f"; policy check on the human's text: {'blocked' if human_check['block'] else 'clean'}" if human_check else ""
        return {
            "error": None,  # an input rejected while the human was being asked is behind us
            "approval": {"action": answer.action, "reply": reply, "policy_check_of_edit": human_check},
            "stage": "finalize",
            "decisions": [decision(state["turn"], "approval", answer.action, f"human decision{note}")],
        }

    def finalize(state: CustomerServiceState) -> dict[str, Any]:
        approval_result = state.get("approval") or {}
        text = approval_result.get("reply") or state["draft"]
        author = "human_approved" if approval_result else "agent"
        return {
            "final_reply": text,
            "stage": IDLE,
            "messages": [AIMessage(content=text, name="agent", response_metadata={"author": author, "persona": dict(state.get("persona") or {})})],
            "decisions": [decision(state["turn"], "finalize", "published", author)],
        }

    # Routers follow the stage the node just recorded, so a restart takes the same path.
    def after_intake(state: CustomerServiceState) -> Literal[
        "analyse", "route", "draft", "policy_check", "approval", "finalize", "__end__"
    ]:
        return open_stage(state) or END  # type: ignore[return-value]

    def after_check(state: CustomerServiceState) -> Literal["approval", "finalize"]:
        return state["stage"]  # type: ignore[return-value]

    builder = StateGraph(CustomerServiceState, input_schema=CustomerServiceInput)
    builder.add_node("intake", intake)
    builder.add_node("analyse", analyse)
    builder.add_node("route", route)
    builder.add_node("draft", draft)
    builder.add_node("policy_check", policy_check)
    builder.add_node("approval", approval)
    builder.add_node("finalize", finalize)
    builder.add_edge(START, "intake")
    builder.add_conditional_edges("intake", after_intake)  # a new turn, or back into the open one
    builder.add_edge("analyse", "route")
    builder.add_edge("route", "draft")
    builder.add_edge("draft", "policy_check")
    builder.add_conditional_edges("policy_check", after_check)
    builder.add_edge("approval", "finalize")
    builder.add_edge("finalize", END)
    return builder


def make_customer_service_graph(
    model: BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    pack: DomainPack | None = None,
    *,
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
    guard: SafetyGuard | None = None,
) -> CompiledStateGraph:
    """The review-response agent for apps: your model (default PersonaFuse), your checkpointer, an optional guard."""
    builder = build_customer_service_graph(model, pack, max_message_tokens=max_message_tokens, guard=guard)
    return builder.compile(checkpointer=checkpointer, name="customer_service")


builder = build_customer_service_graph()
graph = builder.compile(name="customer_service")  # for `langgraph dev`, which brings its own persistence
