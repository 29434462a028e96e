"""Cost of the safety layer per turn: screening a user turn plus checking one draft.

Called by ``python -m evals.bench`` (keys ``safety_ms_per_turn``, ``screen_ms``,
``output_check_ms``, ``safety_classifier_kb``); also runnable alone as
``python -m evals.bench_safety [--repeats N] [--json]``. Medians over the repeats, after a warm-up
that loads the encoder and the heads; the embedding memo is cleared before every measured call.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from evals.common import progress
from evals.metrics import median

SAFETY_TARGET_MS = 30.0  # screening plus output check per turn, on this machine's 2 CPU cores

# (domain, user turn, earlier turns, draft): a turn with history, the screen's usual case.
TURNS: tuple[tuple[str, str, list[str], str], ...] = (
    ("counseling", "I keep going over it and I can't sleep", ["work was awful today", "my manager shouted at me"],
     "That sounds exhausting. What has been on your mind most when you lie awake?"),
    ("counseling", "honestly what's the point anymore", ["I failed the exam again"],
     "It sounds like this has worn you down. Would you tell me more about how you're feeling right now?"),
    ("customer_service", "Double charged again and nobody answers the phone", [],
     "We're sorry to hear about the double charge. Please contact our Customer Care team so it can be looked into."),
    ("customer_service", "Lovely staff, the cake was to die for!", [],
     "Thank you so much for the kind words, we're glad you enjoyed the cake!"),
)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_safety(repeats: int = 20) -> dict[str, float]:
    """As in a live conversation: the earlier turns were screened (and remembered) when they were
    sent, the new turn, the conversation window and the draft are embedded for the first time."""
    from domains.classifier import clear_embedding_memo, embed, weights_path
    from domains.schema import DOMAINS
    from domains.screening import check_output, screen_message

    for domain, text, history, draft in TURNS:  # warm-up: encoder, heads, rule engines
        screen_message(domain, text, history)
        check_output(domain, draft)
    screen_s: list[float] = []
    check_s: list[float] = []
    for _ in progress(range(repeats), desc="safety layer"):
        for domain, text, history, draft in TURNS:
            clear_embedding_memo()
            embed(history)  # screened on their own turns
            screen_s.append(_timed(lambda: screen_message(domain, text, history)))  # noqa: B023
            clear_embedding_memo()
            check_s.append(_timed(lambda: check_output(domain, draft)))  # noqa: B023
    size = sum(
        weights_path(d, k).stat().st_size
        for d in DOMAINS
        for k in ("screen", "output")
    )
    screen_ms = 1000 * (median(screen_s) or 0.0)
    check_ms = 1000 * (median(check_s) or 0.0)
    return {
        "safety_ms_per_turn": round(screen_ms + check_ms, 2),
        "screen_ms": round(screen_ms, 2),
        "output_check_ms": round(check_ms, 2),
        "safety_classifier_kb": round(size / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_safety", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure_safety(args.repeats)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
