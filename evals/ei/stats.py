"""Accuracy intervals and paired comparisons of two systems on the same items."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for an accuracy of ``correct`` out of ``n``."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (binomial, p = 1/2)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of A minus accuracy of B on the same items."""

    diff: float
    ci_low: float
    ci_high: float
    only_a: int  # items A got right and B wrong
    only_b: int
    p_mcnemar: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"diff": self.diff, "ci_low": self.ci_low, "ci_high": self.ci_high, "only_a": self.only_a,
                "only_b": self.only_b, "p_mcnemar": self.p_mcnemar, "n": self.n}


def paired_difference(a: Sequence[bool], b: Sequence[bool], *, resamples: int = 10_000, seed: int = 0) -> PairedDifference:
    """``mean(a) - mean(b)`` with a paired bootstrap 95% CI (items resampled with replacement,
    percentile interval) and the exact McNemar p-value."""
    if len(a) != len(b) or not a:
        raise ValueError("paired_difference needs two equally long, non-empty sequences")
    if resamples < 1:
        raise ValueError("resamples must be positive")
    delta = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(delta), size=(resamples, len(delta)))
    boot = delta[picks].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    only_a = int(np.sum(delta > 0))
    only_b = int(np.sum(delta < 0))
    return PairedDifference(float(delta.mean()), float(low), float(high), only_a, only_b,
                            mcnemar_exact_p(only_a, only_b), len(delta))
