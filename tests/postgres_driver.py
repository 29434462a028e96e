"""One step of an agent thread in a process of its own, on any database graphs.persistence opens.

    python tests/postgres_driver.py sync|async send|resume DOMAIN DB THREAD PAYLOAD_JSON

``send`` sends PAYLOAD (counseling: the message text; customer_service: the review object),
``resume`` answers the pending question with PAYLOAD. ``sync`` goes through ``graphs.threads``
on ``open_checkpointer``; ``async`` uses the graph's async API on ``open_async_checkpointer``
(``astream`` to send, ``ainvoke`` to resume). The chat model is a fake answering the JSON list
in ``DRIVER_REPLIES`` (none by default: a model call then fails the step). Prints the thread's
state afterwards as one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langgraph.types import Command  # noqa: E402

from graphs import threads  # noqa: E402
from graphs.persistence import open_async_checkpointer, open_checkpointer  # noqa: E402
from tests.fakes import Replies  # noqa: E402


def make_graph(domain: str, saver: Any) -> Any:
    model = GenericFakeChatModel(messages=Replies(*json.loads(os.environ.get("DRIVER_REPLIES", "[]"))))
    if domain == "counseling":
        from graphs.counseling import make_counseling_graph

        return make_counseling_graph(model, saver)
    from graphs.customer_service import make_customer_service_graph

    return make_customer_service_graph(model, saver)


def summary(state: Any, streamed: list[str] | None = None) -> dict[str, Any]:
    values = state.values
    return {
        "pid": os.getpid(),
        "next": list(state.next),
        "interrupts": [i.value for i in state.interrupts],
        "messages": [[m.type, m.name, m.content] for m in values.get("messages", [])],
        "risk": values.get("risk"),
        "handoff": values.get("handoff"),
        "stage": values.get("stage"),
        "final_reply": values.get("final_reply"),
        "streamed_nodes": streamed,
    }


def run_sync(action: str, domain: str, db: str, thread: str, payload: Any) -> dict[str, Any]:
    with open_checkpointer(db) as saver:
        graph = make_graph(domain, saver)
        if action == "resume":
            threads.resume(graph, thread, payload)
        elif domain == "counseling":
            threads.send_message(graph, thread, payload)
        else:
            threads.send_review(graph, thread, payload)
        return summary(graph.get_state({"configurable": {"thread_id": thread}}))


async def run_async(action: str, domain: str, db: str, thread: str, payload: Any) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    async with open_async_checkpointer(db) as saver:
        graph = make_graph(domain, saver)
        streamed: list[str] = []
        if action == "resume":
            await graph.ainvoke(Command(resume=payload), config, durability="sync")
        else:
            graph_input = {"messages": [payload]} if domain == "counseling" else {"review": payload}
            async for update in graph.astream(graph_input, config, stream_mode="updates", durability="sync"):
                streamed.extend(update)
        return summary(await graph.aget_state(config), streamed)


def main() -> int:
    mode, action, domain, db, thread, payload = sys.argv[1:7]
    if mode not in {"sync", "async"} or action not in {"send", "resume"}:
        raise SystemExit(__doc__)
    value = json.loads(payload)
    result = run_sync(action, domain, db, thread, value) if mode == "sync" else asyncio.run(run_async(action, domain, db, thread, value))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
