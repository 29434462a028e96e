"""Scoring every item under every system on a loaded engine, and the whole evaluation."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from evals.common import progress
from evals.ei.items import Item
from evals.ei.scoring import (
    METRICS,
    PRIMARY_METRIC,
    OptionScore,
    ScoringRequest,
    choose,
    option_token_ids,
    score_batch,
)
from evals.ei.summary import routing_counts, summarise
from evals.ei.systems import SYSTEMS, route_item, system_inputs
from persona_agents.router import RouteResult

DEFAULT_BATCH_SIZE = 8  # prompts per forward pass; 8 cost about a third of the CPU time per token of 1


def _record(item: Item, route: RouteResult) -> dict[str, Any]:
    return {
        "id": item.id, "type": item.type, "subtype": item.subtype, "category": item.category,
        "answer": item.answer, "n_options": len(item.options), "top_traits": list(route.top_traits),
        "systems": {},
    }


def _result(item: Item, scores: Sequence[OptionScore]) -> dict[str, Any]:
    """One system's reading of one item: every option's log-probabilities, the option each
    metric chooses and whether it is the keyed answer."""
    chosen = {metric: choose(scores, metric) for metric in METRICS}
    return {
        "logprob_sum": [round(s.logprob_sum, 4) for s in scores],
        "logprob_mean": [round(s.logprob_mean, 4) for s in scores],
        **{f"choice_{m}": chosen[m] for m in METRICS},
        **{f"correct_{m}": chosen[m] == item.answer for m in METRICS},
    }


def _load_average() -> float | None:
    """The machine's 1-minute load average at the end of scoring (shared cores make timings noisy)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def score_sets(
    engine: Any, sets: Mapping[str, Sequence[Item]], *, top_k: int = 2, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records for every item (set order, then file order) and the runtime spent per system.

    Every item is routed once; each system then scores all items in batches of ``batch_size``
    prompts of similar length (less padding).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    items = [item for name in sets for item in sets[name]]
    timing = {system: {"seconds": 0.0, "tokens": 0} for system in SYSTEMS}
    start, cpu_start = time.perf_counter(), time.process_time()
    routes = [route_item(engine, item, top_k) for item in items]
    inputs = [system_inputs(engine, item, route) for item, route in zip(items, routes)]
    options = [option_token_ids(engine.tokenizer, item.options) for item in items]
    records = [_record(item, route) for item, route in zip(items, routes)]
    with progress(total=len(items) * len(SYSTEMS), desc="evals.ei", unit="item") as bar:
        for system in SYSTEMS:
            order = sorted(range(len(items)), key=lambda i: len(inputs[i][system].prompt_ids))
            for offset in range(0, len(order), batch_size):
                chunk = order[offset : offset + batch_size]
                requests = [ScoringRequest(inputs[i][system].prompt_ids, options[i], inputs[i][system].weights) for i in chunk]
                began = time.perf_counter()
                scores = score_batch(engine.model, requests, engine.tokenizer.pad_token_id, engine.mixer)
                timing[system]["seconds"] += time.perf_counter() - began
                timing[system]["tokens"] += sum(len(r.prompt_ids) + sum(len(o) for o in r.options_ids) for r in requests)
                for i, item_scores in zip(chunk, scores):
                    records[i]["systems"][system] = _result(items[i], item_scores)
                bar.update(len(chunk))
    wall = time.perf_counter() - start
    runtime = {
        "scoring_seconds": wall,
        "scoring_cpu_seconds": time.process_time() - cpu_start,  # all threads; less sensitive to other load
        "load_average_1min": _load_average(),
        "items": len(items),
        "batch_size": batch_size,
        "seconds_per_item": wall / len(items) if items else None,
        "per_system": {
            s: {**t, "tokens_per_second": t["tokens"] / t["seconds"] if t["seconds"] else None} for s, t in timing.items()
        },
    }
    return records, runtime


def evaluate(
    engine: Any, sets: Mapping[str, Sequence[Item]], *, top_k: int = 2, resamples: int = 10_000, seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Score every set under every system; per-set accuracies, paired differences and per-item records."""
    if not any(sets.values()):
        raise ValueError("no items to evaluate")
    records, runtime = score_sets(engine, sets, top_k=top_k, batch_size=batch_size)
    items_by_id = {item.id: item for items in sets.values() for item in items}
    return {
        "primary_metric": PRIMARY_METRIC,
        "metrics": list(METRICS),
        "systems": list(SYSTEMS),
        "top_k": top_k,
        "bootstrap": {"resamples": resamples, "seed": seed},
        "sets": summarise(records, items_by_id, resamples=resamples, seed=seed),
        "routing": routing_counts(records),
        "runtime": runtime,
        "items": records,
    }
