"""Result models returned by the public safety API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# Which layer made a decision: the pack's patterns, code that finds contact details or invented
# facts, the learned classifier, the conversation so far, the writer-in-crisis screen, the
# optional guard model; "none" when nothing fired.
Layer = Literal["rules", "contacts", "facts", "classifier", "rules+classifier", "history", "crisis", "guard", "none"]


class ScreenResult(BaseModel):
    escalate: bool
    category: str
    score: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)
    layer: Layer = "none"


class OutputCheck(BaseModel):
    block: bool
    category: str
    reasons: list[str] = Field(default_factory=list)
    layer: Layer = "none"


Sentiment = Literal["positive", "neutral", "negative"]
ASPECTS: tuple[str, ...] = (
    "delivery",
    "price/billing",
    "quality",
    "staff/service",
    "food",
    "cleanliness",
    "app/website",
    "refund/returns",
    "safety",
)


class ReviewAnalysis(BaseModel):
    sentiment: Sentiment
    aspects: list[str] = Field(default_factory=list)
    screen: ScreenResult
