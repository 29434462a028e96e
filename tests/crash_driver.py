"""Run ``persona-agents chat`` with a fake model, and SIGKILL it at a chosen point.

    python tests/crash_driver.py DOMAIN DB THREAD [CRASH_AT] < lines

DB: a SQLite file or a ``postgresql://`` URL.
CRASH_AT: ``put:N`` kills the process right after its N-th checkpoint is on disk (0 never);
``screen`` kills it during screening; ``generate`` during the model call.
``CRASH_DRIVER_SLOW=<seconds>`` makes every model call that slow. Each checkpoint
write is logged to stderr as ``put <n> next=<nodes>`` so tests can count them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: E402

import graphs.counseling  # noqa: E402
import graphs.counseling_nodes  # noqa: E402
from graphs.apps import chat as chat_app  # noqa: E402

REPLY = "I'm listening. Tell me more."


def die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Replies:
    """Endless canned replies; kills the process on a model call when asked to."""

    def __init__(self, crash: bool) -> None:
        self.crash = crash

    def __iter__(self) -> Replies:
        return self

    def __next__(self) -> str:
        if self.crash:
            die()
        time.sleep(float(os.environ.get("CRASH_DRIVER_SLOW", "0")))  # widen the race between two writers
        return REPLY


def main() -> int:
    domain, db, thread = sys.argv[1:4]
    crash_at = sys.argv[4] if len(sys.argv) > 4 else ""
    puts = {"n": 0}
    saver_class: Any = SqliteSaver
    if db.startswith(("postgresql://", "postgres://")):
        from langgraph.checkpoint.postgres import PostgresSaver

        saver_class = PostgresSaver
    original_put = saver_class.put

    def put(self: Any, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        result = original_put(self, config, checkpoint, metadata, new_versions)
        puts["n"] += 1
        print(f"put {puts['n']} step={metadata.get('step')} source={metadata.get('source')}", file=sys.stderr, flush=True)
        if crash_at == f"put:{puts['n']}":
            print(f"SIGKILL after put {puts['n']}", file=sys.stderr)
            die()
        return result

    saver_class.put = put
    if crash_at == "screen":
        graphs.counseling_nodes.screen_message = lambda *a, **k: die()  # type: ignore[assignment]
    model = GenericFakeChatModel(messages=Replies(crash_at == "generate"))

    def build_agent(domain: str, saver: Any) -> Any:
        if domain == "counseling":
            return graphs.counseling.make_counseling_graph(model, saver)
        from graphs.customer_service import make_customer_service_graph

        return make_customer_service_graph(model, saver)

    chat_app.build_agent = build_agent  # type: ignore[assignment]
    return chat_app.run_chat(domain, thread, db, show_history=False)


if __name__ == "__main__":
    sys.exit(main())
