"""The counseling agent.

    intake -> screen --(risk now)--------> crisis_reply -> escalate (human) -> END
                     --(human owns it)---> escalate (human) -> END
                     --(no risk)---------> route -> generate -> check_output --(blocked, once)--> generate
                                                                             --(ok / fallback)--> respond -> END

Input (``CounselingInput``): ``{"messages": [{"role": "user", "content": "text"}], "locale": "en-GB"}``;
nothing else a caller sends is written to state. The new message waits at the end of the
conversation until intake checks it (characters and model tokens) and accepts it, or removes it
and reports why in ``error`` (``graphs.conversation``). While a turn is open, input is refused: a
turn waiting for the counselor is answered only by ``Command(resume=...)``, and a turn cut short
by a crash goes on where it stopped (``graphs.threads.finish_unfinished`` or ``invoke(None, config)``).

Per run (``context=Context(...)``, ``graphs.context``): locale, pack, model settings, a fixed
persona and ``user_id``. With a store and a ``user_id``, a person who was at risk in the last 30
days (in any thread) is screened with that in mind (``graphs.people``).

A person at risk gets the domain pack's fixed crisis reply (never the model's words) and a
human counselor through ``interrupt()``; the human's answer (``graphs.answers.CounselorAnswer``)
resumes the thread. Risk, once raised, stays on the thread, and from then on the agent speaks
with a calm, warm persona whatever the router says. Every decision is logged in state and sent
as a custom stream event (``graphs.events``).
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
from graphs import counseling_nodes as nodes
from graphs.context import Context
from graphs.counseling_nodes import DOMAIN, FALLBACK_REPLY, MAX_DRAFTS
from graphs.limits import DEFAULT_MAX_MESSAGE_TOKENS
from graphs.setup import GraphSetup
from graphs.state import CounselingInput, CounselingOutput, CounselingState

__all__ = ["FALLBACK_REPLY", "MAX_DRAFTS", "build_counseling_graph", "make_counseling_graph"]


def build_counseling_graph(
    model: BaseChatModel | None = None,
    pack: DomainPack | None = None,
    *,
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
    guard: SafetyGuard | None = None,
) -> StateGraph:
    """The uncompiled counseling graph. ``model`` defaults to a PersonaFuse model chosen by the
    run's context (the embedded one when the context says nothing).

    ``max_message_tokens`` limits a user message in the model's tokens (when the model can
    count them offline; see ``graphs.limits``), besides the character limit. ``guard`` adds a
    guard model as the last layer of the screen and of the output check.
    """
    setup = GraphSetup(DOMAIN, model=model, pack=pack, guard=guard, max_message_tokens=max_message_tokens)
    builder = StateGraph(
        CounselingState, context_schema=Context, input_schema=CounselingInput, output_schema=CounselingOutput
    )
    builder.add_node("intake", partial(nodes.intake, setup=setup))
    builder.add_node("screen", partial(nodes.screen, setup=setup))
    builder.add_node("crisis_reply", partial(nodes.send_crisis_reply, setup=setup))
    builder.add_node("escalate", partial(nodes.escalate, setup=setup))
    builder.add_node("route", partial(nodes.route, setup=setup))
    builder.add_node("generate", partial(nodes.generate, setup=setup))
    builder.add_node("check_output", partial(nodes.check_draft, setup=setup))
    builder.add_node("respond", partial(nodes.respond, setup=setup))

    builder.add_edge(START, "intake")  # every input is checked first
    builder.add_conditional_edges("intake", nodes.after_intake)  # a new turn, back into the open one, or the end
    builder.add_conditional_edges("screen", nodes.after_screen)  # crisis, the human's thread, or the agent
    builder.add_edge("crisis_reply", "escalate")  # the fixed reply, then the counselor
    builder.add_edge("escalate", END)
    builder.add_edge("route", "generate")
    builder.add_edge("generate", "check_output")
    builder.add_conditional_edges("check_output", nodes.after_check)  # one stricter retry, then respond
    builder.add_edge("respond", END)
    return builder


def make_counseling_graph(
    model: BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    pack: DomainPack | None = None,
    *,
    max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
    guard: SafetyGuard | None = None,
    store: BaseStore | None = None,
) -> CompiledStateGraph:
    """The counseling agent for apps: your model (default PersonaFuse), your checkpointer, an
    optional guard, and an optional store that remembers people across threads."""
    builder = build_counseling_graph(model, pack, max_message_tokens=max_message_tokens, guard=guard)
    return builder.compile(checkpointer=checkpointer, store=store, name="counseling")


builder = build_counseling_graph()
graph = builder.compile(name="counseling")  # for `langgraph dev`, which brings its own persistence and store
