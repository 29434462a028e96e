"""The Big-Five traits, the ten persona experts (one per pole) and a validated weights type."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

TRAITS: tuple[str, ...] = (
    "openness",
    "conscientiousness",
    "extraversion",
    "agreeableness",
    "neuroticism",
)
POLES: tuple[str, ...] = ("high", "low")
EXPERT_NAMES: tuple[str, ...] = tuple(f"{trait}_{pole}" for trait in TRAITS for pole in POLES)
NUM_EXPERTS = len(EXPERT_NAMES)

Pole = Literal["high", "low"]


def expert_name(trait: str, pole: str) -> str:
    if trait not in TRAITS:
        raise ValueError(f"unknown trait {trait!r}; expected one of {', '.join(TRAITS)}")
    if pole not in POLES:
        raise ValueError(f"unknown pole {pole!r}; expected 'high' or 'low'")
    return f"{trait}_{pole}"


def split_expert_name(name: str) -> tuple[str, str]:
    if name not in EXPERT_NAMES:
        raise ValueError(f"unknown expert {name!r}; expected one of {', '.join(EXPERT_NAMES)}")
    trait, pole = name.rsplit("_", 1)
    return trait, pole


class PersonaWeights:
    """Ten non-negative finite weights over the experts, summing to 1.

    Immutable. Read per trait as ``high - low`` with :meth:`trait_scores`.
    """

    __slots__ = ("_values",)
    _TOLERANCE = 1e-4

    def __init__(self, values: Sequence[float]) -> None:
        values = [float(v) for v in values]
        if len(values) != NUM_EXPERTS:
            raise ValueError(f"persona weights need {NUM_EXPERTS} values, got {len(values)}")
        for name, value in zip(EXPERT_NAMES, values):
            if not math.isfinite(value):
                raise ValueError(f"persona weight {name} is not finite: {value}")
            if value < 0:
                raise ValueError(f"persona weight {name} is negative: {value}")
        total = sum(values)
        if abs(total - 1.0) > self._TOLERANCE:
            raise ValueError(f"persona weights must sum to 1, got {total:.6f}")
        self._values = tuple(v / total for v in values)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, float], *, normalize: bool = False) -> PersonaWeights:
        unknown = sorted(set(mapping) - set(EXPERT_NAMES))
        if unknown:
            raise ValueError(f"unknown expert name(s): {', '.join(unknown)}")
        values = [float(mapping.get(name, 0.0)) for name in EXPERT_NAMES]
        return cls.normalized(values) if normalize else cls(values)

    @classmethod
    def normalized(cls, values: Iterable[float]) -> PersonaWeights:
        """Scale non-negative values to sum to 1 (all-zero input is an error)."""
        values = [float(v) for v in values]
        if len(values) != NUM_EXPERTS:
            raise ValueError(f"persona weights need {NUM_EXPERTS} values, got {len(values)}")
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("persona weights must be non-negative finite numbers")
        total = sum(values)
        if total <= 0:
            raise ValueError("persona weights are all zero")
        return cls([v / total for v in values])

    @classmethod
    def uniform(cls) -> PersonaWeights:
        return cls([1.0 / NUM_EXPERTS] * NUM_EXPERTS)

    @classmethod
    def one_hot(cls, name: str) -> PersonaWeights:
        split_expert_name(name)
        return cls([1.0 if n == name else 0.0 for n in EXPERT_NAMES])

    @classmethod
    def coerce(cls, value: PersonaWeights | Mapping[str, float] | Sequence[float]) -> PersonaWeights:
        """Accept weights, a name->weight mapping or a sequence of ten numbers."""
        if isinstance(value, PersonaWeights):
            return value
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        return cls(value)

    # --- reading ------------------------------------------------------------------------
    @property
    def values(self) -> tuple[float, ...]:
        return self._values

    def as_dict(self) -> dict[str, float]:
        return dict(zip(EXPERT_NAMES, self._values))

    def __getitem__(self, name: str) -> float:
        split_expert_name(name)
        return self._values[EXPERT_NAMES.index(name)]

    def trait_scores(self) -> dict[str, float]:
        """Per trait ``weight(high) - weight(low)``, in [-1, 1]."""
        d = self.as_dict()
        return {t: d[f"{t}_high"] - d[f"{t}_low"] for t in TRAITS}

    def top_traits(self, k: int = 2) -> list[str]:
        """The k most strongly activated poles as expert names, strongest first."""
        order = sorted(range(NUM_EXPERTS), key=lambda i: (-self._values[i], i))
        return [EXPERT_NAMES[i] for i in order[:k]]

    def blend(self, other: PersonaWeights, amount: float) -> PersonaWeights:
        """``(1 - amount) * self + amount * other``."""
        if not 0.0 <= amount <= 1.0:
            raise ValueError("blend amount must be within [0, 1]")
        return PersonaWeights.normalized(
            (1 - amount) * a + amount * b for a, b in zip(self._values, other._values)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PersonaWeights) and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v:.3f}" for n, v in self.as_dict().items() if v > 0.0005)
        return f"PersonaWeights({inner})"
