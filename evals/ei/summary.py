"""Per-set accuracies and paired system differences from the item records (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evals.common import mean
from evals.ei.items import EI_TYPES, ITEM_TYPES, Item
from evals.ei.scoring import METRICS
from evals.ei.stats import paired_difference, wilson_interval
from evals.ei.systems import SYSTEMS

AGGREGATE = "ei"  # the three emotional-intelligence sets together
COMPARISONS: tuple[tuple[str, str], ...] = (("routed", "base"), ("routed", "prompt_only"), ("prompt_only", "base"))


def comparison_name(a: str, b: str) -> str:
    return f"{a}_minus_{b}"


def group_records(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Records per set in report order; the ``ei`` aggregate follows the emotional-intelligence sets."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for name in ITEM_TYPES:
        members = [r for r in records if r["type"] == name]
        if members:
            groups[name] = members
        if name == EI_TYPES[-1]:
            ei = [r for r in records if r["type"] in EI_TYPES]
            if ei:
                groups[AGGREGATE] = ei
    return groups


def length_baselines(items: Sequence[Item]) -> dict[str, float]:
    """Accuracy of always picking the longest and the shortest option (characters, first on ties):
    how far option length alone would carry a test-taker on these items."""
    def pick(item: Item, sign: int) -> int:
        return max(range(len(item.options)), key=lambda i: (sign * len(item.options[i]), -i))
    return {
        "longest_option": sum(pick(i, 1) == i.answer for i in items) / len(items),
        "shortest_option": sum(pick(i, -1) == i.answer for i in items) / len(items),
    }


def summarise_set(records: Sequence[Mapping[str, Any]], items: Sequence[Item], *, resamples: int, seed: int) -> dict[str, Any]:
    n = len(records)
    accuracy: dict[str, Any] = {}
    for system in SYSTEMS:
        accuracy[system] = {}
        for metric in METRICS:
            correct = sum(bool(r["systems"][system][f"correct_{metric}"]) for r in records)
            low, high = wilson_interval(correct, n)
            accuracy[system][metric] = {"accuracy": correct / n, "correct": correct, "ci_low": low, "ci_high": high}
    differences: dict[str, Any] = {}
    for a, b in COMPARISONS:
        differences[comparison_name(a, b)] = {
            metric: paired_difference(
                [bool(r["systems"][a][f"correct_{metric}"]) for r in records],
                [bool(r["systems"][b][f"correct_{metric}"]) for r in records],
                resamples=resamples, seed=seed,
            ).as_dict()
            for metric in METRICS
        }
    return {
        "n": n,
        "chance": mean([1 / r["n_options"] for r in records]),
        "length_baselines": length_baselines(items),
        "accuracy": accuracy,
        "differences": differences,
    }


def summarise(records: Sequence[Mapping[str, Any]], items_by_id: Mapping[str, Item], *, resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """``{set: summary}`` for every set present, plus the ``ei`` aggregate."""
    return {
        name: summarise_set(members, [items_by_id[r["id"]] for r in members], resamples=resamples, seed=seed)
        for name, members in group_records(records).items()
    }


def routing_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per set, how often each pole was the router's top pole (what the persona conditions were)."""
    out: dict[str, dict[str, int]] = {}
    for name, members in group_records(records).items():
        counts: dict[str, int] = {}
        for r in members:
            top = r["top_traits"][0] if r["top_traits"] else "none"
            counts[top] = counts.get(top, 0) + 1
        out[name] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    return out
