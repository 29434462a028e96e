"""Cost of the safety layer per turn: screening a user turn plus checking one draft.

Called by ``python -m evals.bench`` (keys ``safety_ms_per_turn``, ``screen_ms``,
``output_check_ms``, ``safety_classifier_kb``, ``safety_encoder``); also runnable alone as
``python -m evals.bench_safety [--repeats N] [--json]``. Medians over the repeats, after a warm-up
that loads the encoder and the heads; the embedding memo is cleared before every measured call.

``safety_encoder_compare`` times the same turns, interleaved in the same run, with the safety
encoder as float32 or int8 (``domains.safety_encoder``) and on 1 or 2 intra-op threads, so the
ratios hold even when the shared machine's load changes between runs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from evals.common import progress
from evals.metrics import median

if TYPE_CHECKING:
    from domains.safety_encoder import SentenceEncoder

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


def _turn_timer(encoder: SentenceEncoder | None) -> Callable[[tuple[str, str, list[str], str]], tuple[float, float]]:
    """Screen plus output-check time of one turn, with ``encoder`` (None: each head's default)."""
    from domains.classifier import clear_embedding_memo, embed, load_classifier
    from domains.screening import check_output, screen_message

    def run(turn: tuple[str, str, list[str], str]) -> tuple[float, float]:
        domain, text, history, draft = turn
        clear_embedding_memo()
        if history:  # screened on their own turns, so remembered
            embed(history, load_classifier(domain, "screen", encoder).encoder)
        screen_s = _timed(lambda: screen_message(domain, text, history, encoder=encoder))
        clear_embedding_memo()
        check_s = _timed(lambda: check_output(domain, draft, encoder=encoder))
        return screen_s, check_s

    return run


def encoder_extra_mb(encoder: object) -> float:
    """Memory the safety encoder adds beside the shared one: its tensors not shared with it."""
    inner = getattr(encoder, "inner", encoder)
    model = getattr(inner, "model", None)
    if model is None:
        return 0.0
    from persona_agents.encoder import shared_encoder

    shared = {t.data_ptr() for t in shared_encoder().model.state_dict().values()}
    total = 0
    for value in model.state_dict().values():
        tensors = value if isinstance(value, tuple) else (value,)
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.data_ptr() not in shared:
                total += t.numel() * t.element_size()
    return round(total / 1e6, 1)


def measure_safety(repeats: int = 20, compare: bool = True) -> dict[str, object]:
    """As in a live conversation: the earlier turns were screened (and remembered) when they were
    sent, the new turn, the conversation window and the draft are embedded for the first time."""
    from domains.classifier import load_classifier, weights_path
    from domains.safety_encoder import ThreadLimitedEncoder, default_safety_encoder
    from domains.schema import DOMAINS

    default = load_classifier("counseling", "screen")
    configs: dict[str, SentenceEncoder | None] = {"default": None}
    if compare:
        for variant in ("float32", "int8"):
            base = default_safety_encoder(variant).inner  # type: ignore[arg-type]
            for threads in (1, 2):
                configs[f"{variant}, {threads} thread{'s' if threads > 1 else ''}"] = ThreadLimitedEncoder(
                    base, threads, variant  # type: ignore[arg-type]
                )
    timers = {name: _turn_timer(encoder) for name, encoder in configs.items()}
    for timer in timers.values():  # warm-up: encoders, heads, rule engines
        for turn in TURNS:
            timer(turn)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in configs}
    for _ in progress(range(repeats), desc="safety layer"):
        for name, timer in timers.items():
            for turn in TURNS:
                screen_s, check_s = timer(turn)
                times[name][0].append(screen_s)
                times[name][1].append(check_s)
    size = sum(
        weights_path(d, k).stat().st_size
        for d in DOMAINS
        for k in ("screen", "output")
    )
    screen_ms = 1000 * (median(times["default"][0]) or 0.0)
    check_ms = 1000 * (median(times["default"][1]) or 0.0)
    result: dict[str, object] = {
        "safety_ms_per_turn": round(screen_ms + check_ms, 2),
        "screen_ms": round(screen_ms, 2),
        "output_check_ms": round(check_ms, 2),
        "safety_classifier_kb": round(size / 1024, 1),
        "safety_encoder": f"{default.encoder_variant}, {getattr(default.encoder, 'threads', '?')} thread(s)",
        "safety_encoder_extra_mb": encoder_extra_mb(default.encoder),
    }
    if compare:
        per_turn = {
            name: round(1000 * ((median(s) or 0.0) + (median(c) or 0.0)), 2)
            for name, (s, c) in times.items() if name != "default"
        }
        before = per_turn["float32, 2 threads"]  # the safety layer before int8 and the thread limit
        result["safety_encoder_compare"] = {
            name: {"ms_per_turn": ms, "ratio_to_float32_2_threads": round(ms / before, 3) if before else None}
            for name, ms in per_turn.items()
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_safety", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compare", action="store_true", help="skip the float32/int8 x threads comparison")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be positive")
    result = measure_safety(args.repeats, compare=not args.no_compare)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
