"""What a generation request asks for and what it returns (no torch: the client uses these too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persona_agents.traits import PersonaWeights


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    max_time: float | None = None  # wall-clock seconds per request, waiting included
    min_new_tokens: int = 0  # end-of-sequence is suppressed before this many tokens (benches)

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 32_768:
            raise ValueError(f"max_new_tokens must be within 1..32768, got {self.max_new_tokens}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature must be within 0..5, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be within (0, 1], got {self.top_p}")
        if not 0.5 <= self.repetition_penalty <= 2.0:
            raise ValueError(f"repetition_penalty must be within 0.5..2, got {self.repetition_penalty}")
        if self.max_time is not None and self.max_time <= 0:
            raise ValueError("max_time must be positive")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError("min_new_tokens must be within 0..max_new_tokens")
        if isinstance(self.stop, str):
            raise ValueError("stop must be a tuple of strings, not one string")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty strings")


@dataclass
class Generation:
    text: str
    weights: PersonaWeights | None  # None: the base model alone
    top_traits: list[str]
    input_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" or "length"
    routed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "persona_weights": self.weights.as_dict() if self.weights else None,
            "top_traits": self.top_traits,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "finish_reason": self.finish_reason,
            "routed": self.routed,
        }
