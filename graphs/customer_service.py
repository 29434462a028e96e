"""The review-response agent.

    intake -> analyse -> route -> draft -> policy_check --(escalated or flagged)--> approval (human) -> finalize -> END
                                                       --(clean)------------------------------------> finalize -> END

Input (``CustomerServiceInput``): ``{"review": {"text", "rating", "product", "business",
"channel", "locale"}}`` (a dict or a JSON string); nothing else a caller sends is written to
state. Intake consumes the review (``review`` is empty again afterwards; the validated one is
``accepted_review``), so an input without a new review publishes nothing. While a turn is open
(a draft waiting for approval, or a turn cut short by a crash) new reviews are refused.

Per run (``context=Context(...)``, ``graphs.context``): a default locale, pack, model settings
and a fixed persona; with a store and a ``user_id``, the reviewer's locale is remembered.

A review that reports an injury, a health problem, a legal threat, discrimination, harassment
by staff or a data leak is escalated; so is any draft the policy check flags (unauthorised
compensation, admissions of liability, personal data, abuse). A human approves, edits or
rejects through ``interrupt()`` / ``Command(resume=...)`` (``graphs.answers.ApprovalAnswer``).
"""

from __future__ import annotations

from functools import partial

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from domains.guard import SafetyGuard
from domains.schema import DomainPack
from graphs import review_nodes as nodes
from graphs.answers import ACTIONS
from graphs.context import Context
from graphs.limits import DEFAULT_MAX_MESSAGE_TOKENS
from graphs.review_nodes import DOMAIN
from graphs.setup import GraphSetup
from graphs.state import CustomerServiceInput, CustomerServiceOutput, CustomerServiceState

__all__ = ["ACTIONS", "build_customer_service_graph", "make_customer_service_graph"]


def build_customer_service_graph(
    model: BaseChatModel | None = None,
    pack: DomainPack | None = None,
    *,
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
    guard: SafetyGuard | None = None,
) -> StateGraph:
    """The uncompiled review-response graph. ``model`` defaults to a PersonaFuse model chosen by
    the run's context (the embedded one when the context says nothing).

    ``guard`` adds a guard model as the last layer of the review screen and of the policy check.
    """
    setup = GraphSetup(DOMAIN, model=model, pack=pack, guard=guard, max_message_tokens=max_message_tokens)
    builder = StateGraph(
        CustomerServiceState, context_schema=Context, input_schema=CustomerServiceInput, output_schema=CustomerServiceOutput
    )
    builder.add_node("intake", partial(nodes.intake, setup=setup))
    builder.add_node("analyse", partial(nodes.analyse, setup=setup))
    builder.add_node("route", partial(nodes.route, setup=setup))
    builder.add_node("draft", partial(nodes.draft, setup=setup))
    builder.add_node("policy_check", partial(nodes.policy_check, setup=setup))
    builder.add_node("approval", partial(nodes.approval, setup=setup))
    builder.add_node("finalize", partial(nodes.finalize, setup=setup))

    builder.add_edge(START, "intake")  # every input is checked first
    builder.add_conditional_edges("intake", nodes.after_intake)  # a new turn, back into the open one, or the end
    builder.add_edge("analyse", "route")
    builder.add_edge("route", "draft")
    builder.add_edge("draft", "policy_check")
    builder.add_conditional_edges("policy_check", nodes.after_check)  # a human when escalated or flagged
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
    store: BaseStore | None = None,
) -> CompiledStateGraph:
    """The review-response agent for apps: your model (default PersonaFuse), your checkpointer,
    an optional guard, and an optional store that remembers reviewers across threads."""
    builder = build_customer_service_graph(model, pack, max_message_tokens=max_message_tokens, guard=guard)
    return builder.compile(checkpointer=checkpointer, store=store, name="customer_service")


builder = build_customer_service_graph()
graph = builder.compile(name="customer_service")  # for `langgraph dev`, which brings its own persistence and store
