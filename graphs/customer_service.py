"""The review-response agent.

    intake -> analyse -> route -> draft -> policy_check --(escalated or flagged)--> approval (human) -> finalize -> END
                                                       --(clean)------------------------------------> finalize -> END

Input: ``{"review": {"text", "rating", "product", "business", "channel", "locale"}}`` (a dict
or a JSON string). A review that reports an injury, a health problem, a legal threat,
discrimination, harassment by staff or a data leak is escalated; so is any draft the policy
check flags (unauthorised compensation, admissions of liability, personal data, abuse).
A human approves, edits or rejects through ``interrupt()`` / ``Command(resume=...)``.
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

from domains.output_check import check_output
from domains.reviews import analyse_review
from domains.schema import DomainPack, load_pack
from domains.text import InvalidInputError
from graphs.decisions import decision
from graphs.model import generate, lazy_model, persona_for
from graphs.review_input import ReviewInput, parse_review, review_context
from graphs.state import CustomerServiceState

DOMAIN = "customer_service"
ACTIONS = ("approve", "edit", "reject")


def build_customer_service_graph(model: BaseChatModel | None = None, pack: DomainPack | None = None) -> StateGraph:
    """The uncompiled review-response graph. ``model`` defaults to the embedded PersonaFuse model."""
    pack = pack or load_pack(DOMAIN)
    get_model = lazy_model(model)

    def intake(state: CustomerServiceState) -> dict[str, Any]:
        turn = state.get("turn", 0) + 1
        try:
            review = parse_review(state.get("review"), pack)
        except InvalidInputError as exc:
            # The input already overwrote "review": put the last accepted review back.
            return {
                "review": state.get("accepted_review"),
                "error": str(exc),
                "decisions": [decision(turn - 1, "intake", "rejected_input", str(exc))],
            }
        return {
            "turn": turn,
            "error": None,
            "review": review.model_dump(),
            "accepted_review": review.model_dump(),
            "draft": "",
            "check": {},
            "approval": {},
            "final_reply": "",
            "messages": [HumanMessage(content=review.as_message())],
            "decisions": [decision(turn, "intake", "accepted", f"rating {review.rating}, locale {review.locale}")],
        }

    def analyse(state: CustomerServiceState) -> dict[str, Any]:
        review = ReviewInput.model_validate(state["review"])
        try:
            analysis = analyse_review(review.text, review.rating).model_dump()
            screen = analysis["screen"]
        except Exception as exc:  # fail closed: an unscreened review goes to a human
            screen = {"escalate": True, "category": "screening_error", "score": 1.0, "reasons": [f"screening failed: {exc}"]}
            analysis = {"sentiment": "neutral", "aspects": [], "screen": screen}
        what = f"escalate:{screen['category']}" if screen["escalate"] else "respond"
        reason = "; ".join(screen["reasons"]) or f"sentiment {analysis['sentiment']}"
        return {"analysis": analysis, "escalated": screen["escalate"], "decisions": [decision(state["turn"], "analyse", what, reason)]}

    def route(state: CustomerServiceState) -> dict[str, Any]:
        persona = persona_for(get_model(), [state["messages"][-1]])
        reason = f"router: {', '.join(persona['top_traits'])}" if persona["top_traits"] else "model has no persona experts"
        return {"persona": persona, "decisions": [decision(state["turn"], "route", persona["source"], reason)]}

    def draft(state: CustomerServiceState, config: RunnableConfig) -> dict[str, Any]:
        review = ReviewInput.model_validate(state["review"])
        system = f"{pack.prompts.persona}\n\n{review_context(review)}"
        reply = generate(get_model(), system, [HumanMessage(review.text)], state["persona"], config)
        return {"draft": str(reply.content), "decisions": [decision(state["turn"], "draft", "drafted", f"{len(str(reply.content))} characters")]}

    def policy_check(state: CustomerServiceState) -> dict[str, Any]:
        result = check_output(DOMAIN, state["draft"] or " ").model_dump()
        what = f"blocked:{result['category']}" if result["block"] else "allowed"
        return {"check": result, "decisions": [decision(state["turn"], "policy_check", what, "; ".join(result["reasons"]) or "no rule matched")]}

    def after_intake(state: CustomerServiceState) -> Literal["analyse", "approval", "__end__"]:
        if not state.get("error"):
            return "analyse"
        # A rejected input must not drop a draft still waiting for approval: new input on an
        # interrupted thread discards the pending interrupt, so ask the human again.
        check = state.get("check") or {}
        waiting = bool(check) and not state.get("final_reply") and bool(state.get("escalated") or check.get("block"))
        return "approval" if waiting else END

    def after_check(state: CustomerServiceState) -> Literal["approval", "finalize"]:
        return "approval" if state.get("escalated") or state["check"].get("block") else "finalize"

    def approval(state: CustomerServiceState) -> dict[str, Any]:
        payload = {
            "type": "review_approval",
            "turn": state["turn"],
            "review": state["review"],
            "analysis": state["analysis"],
            "draft": state["draft"],
            "policy_check": state["check"],
            "suggested_holding_reply": pack.escalation_reply,
            "resume_with": {"action": "approve | edit | reject", "reply": "the reply to publish (for edit)"},
        }
        answer = interrupt(payload)
        action, reply, problem = _parse_approval(answer, state)
        while problem:
            answer = interrupt({**payload, "error": problem})
            action, reply, problem = _parse_approval(answer, state)
        if action == "reject":
            reply = pack.escalation_reply or ""
        human_check = check_output(DOMAIN, reply).model_dump() if action == "edit" else None
        note = f"; policy check on the human's text: {'blocked' if human_check['block'] else 'clean'}" if human_check else ""
        return {
            "error": None,  # an input rejected while the human was being asked is behind us
            "approval": {"action": action, "reply": reply, "policy_check_of_edit": human_check},
            "decisions": [decision(state["turn"], "approval", action, f"human decision{note}")],
        }

    def finalize(state: CustomerServiceState) -> dict[str, Any]:
        approval_result = state.get("approval") or {}
        text = approval_result.get("reply") or state["draft"]
        author = "human_approved" if approval_result else "agent"
        return {
            "final_reply": text,
            "messages": [AIMessage(content=text, name="agent", response_metadata={"author": author, "persona": dict(state.get("persona") or {})})],
            "decisions": [decision(state["turn"], "finalize", "published", author)],
        }

    builder = StateGraph(CustomerServiceState)
    builder.add_node("intake", intake)
    builder.add_node("analyse", analyse)
    builder.add_node("route", route)
    builder.add_node("draft", draft)
    builder.add_node("policy_check", policy_check)
    builder.add_node("approval", approval)
    builder.add_node("finalize", finalize)
    builder.add_edge(START, "intake")
    builder.add_conditional_edges("intake", after_intake)
    builder.add_edge("analyse", "route")
    builder.add_edge("route", "draft")
    builder.add_edge("draft", "policy_check")
    builder.add_conditional_edges("policy_check", after_check)
    builder.add_edge("approval", "finalize")
    builder.add_edge("finalize", END)
    return builder


def _parse_approval(answer: Any, state: CustomerServiceState) -> tuple[str, str, str | None]:
    """(action, reply, problem) from a resume value: 'approve', 'reject', an edited reply, or a dict."""
    if isinstance(answer, str):
        answer = {"action": answer} if answer in ACTIONS else {"action": "edit", "reply": answer}
    if not isinstance(answer, dict):
        return "", "", f"resume with {{'action': 'approve'|'edit'|'reject', 'reply': ...}}, got {type(answer).__name__}"
    action = answer.get("action")
    if action not in ACTIONS:
        return "", "", f"unknown action {action!r}; use approve, edit or reject"
    if action == "approve":
        if state["check"].get("block"):
            return "", "", "the draft failed the policy check; edit it or reject it"
        return action, state["draft"], None
    reply = answer.get("reply", "")
    if action == "edit" and (not isinstance(reply, str) or not reply.strip()):
        return "", "", "an edit needs a non-empty 'reply'"
    return action, reply.strip() if isinstance(reply, str) else "", None


def make_customer_service_graph(
    model: BaseChatModel | None = None, checkpointer: BaseCheckpointSaver | None = None, pack: DomainPack | None = None
) -> CompiledStateGraph:
    """The review-response agent for apps: your model (default PersonaFuse) and your checkpointer."""
    return build_customer_service_graph(model, pack).compile(checkpointer=checkpointer, name="customer_service")


builder = build_customer_service_graph()
graph = builder.compile(name="customer_service")  # for `langgraph dev`, which brings its own persistence
