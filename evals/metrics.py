"""The numbers every eval reports, computed in one place.

Every function returns ``None`` where a number is undefined (a rate over no rows, a ratio to
zero) instead of 0 or NaN, so a report never shows a made-up value.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def share(flags: Iterable[bool | None]) -> float | None:
    """Share of True among the applicable flags (None is "not applicable" and left out)."""
    applicable = [bool(f) for f in flags if f is not None]
    return ratio(sum(applicable), len(applicable))


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def confusion(gold: Sequence[bool], pred: Sequence[bool]) -> dict[str, int]:
    """True/false positives and negatives of binary predictions against gold labels."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    tp = sum(g and p for g, p in zip(gold, pred))
    fp = sum((not g) and p for g, p in zip(gold, pred))
    fn = sum(g and not p for g, p in zip(gold, pred))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": len(gold) - tp - fp - fn}


def binary_metrics(gold: Sequence[bool], pred: Sequence[bool]) -> dict[str, float | int | None]:
    """Recall on positives, false-positive rate on negatives, precision, and the confusion counts."""
    c = confusion(gold, pred)
    return {
        "n": len(gold),
        "recall": ratio(c["tp"], c["tp"] + c["fn"]),
        "false_positive_rate": ratio(c["fp"], c["fp"] + c["tn"]),
        "precision": ratio(c["tp"], c["tp"] + c["fp"]),
        **c,
    }


def per_kind_metrics(kinds: Sequence[str], gold: Sequence[bool], pred: Sequence[bool]) -> dict[str, dict[str, Any]]:
    """Per kind of row (sorted): n, accuracy, recall and false-positive rate."""
    if not len(kinds) == len(gold) == len(pred):
        raise ValueError(f"{len(kinds)} kinds, {len(gold)} gold labels and {len(pred)} predictions")
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        g = [gold[i] for i in idx]
        p = [pred[i] for i in idx]
        m = binary_metrics(g, p)
        out[kind] = {
            "n": len(idx),
            "accuracy": share(a == b for a, b in zip(g, p)),
            "recall": m["recall"],
            "false_positive_rate": m["false_positive_rate"],
        }
    return out


def agreement_by(keys: Sequence[Hashable], hits: Sequence[bool], every: Iterable[Hashable] = ()) -> dict[Any, dict[str, Any]]:
    """Per key: the share of hits (``agreement``) and how many there were (``n``).

    Keys in ``every`` come first, in that order, with ``n`` 0 and ``agreement`` None when no
    row had them; other keys follow in order of first appearance.
    """
    if len(keys) != len(hits):
        raise ValueError(f"{len(keys)} keys but {len(hits)} hits")
    groups: dict[Any, list[bool]] = {key: [] for key in every}
    for key, hit in zip(keys, hits):
        groups.setdefault(key, []).append(hit)
    return {key: {"agreement": share(values), "n": len(values)} for key, values in groups.items()}


def counts(labels: Iterable[str]) -> dict[str, int]:
    """How often each label occurs, labels sorted."""
    return dict(sorted(Counter(labels).items()))
