"""The review a customer-service turn answers: validated, with sensible defaults."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domains.schema import DomainPack, resolve_locale
from domains.text import InvalidInputError, validate_user_text
from persona_agents.messages import clean_text


class ReviewInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    rating: int | None = Field(None, ge=1, le=5)
    product: str | None = Field(None, max_length=200)
    business: str | None = Field(None, max_length=200)
    channel: str | None = Field(None, max_length=100)
    locale: str | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = validate_user_text(value).strip()  # cleaned by clean_text in there
        if not value:
            raise ValueError("the review has no visible text")
        return value

    @field_validator("product", "business", "channel")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        return clean_text(value).strip() or None if isinstance(value, str) else value

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("rating must be a whole number from 1 to 5")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def as_message(self) -> str:
        stars = f"{self.rating}/5 stars" if self.rating else "no rating"
        about = f" about {self.product}" if self.product else ""
        return f"Review ({stars}){about}: {self.text}"


def parse_review(raw: Any, pack: DomainPack, default_locale: str | None = None) -> ReviewInput:
    """A dict or a JSON string. A review without a locale gets ``default_locale``; an unknown
    locale gets the pack's default."""
    if raw is None:
        raise InvalidInputError("no review given: send {'review': {'text': ..., 'rating': 1-5}}")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"the review is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError(f"the review must be an object with a 'text', got {type(raw).__name__}")
    try:
        review = ReviewInput.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'review'}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(f"invalid review: {problems}") from exc
    return review.model_copy(update={"locale": resolve_locale(pack, review.locale or default_locale)})


def review_context(review: ReviewInput) -> str:
    """What the drafting model is told about the review, beside the review text itself."""
    business = f" of {review.business}" if review.business else ""
    product = f" about {review.product}" if review.product else ""
    rating = f"{review.rating} out of 5 stars" if review.rating else "no star rating"
    return (
        f"The user's message is a customer review{business}{product}, with {rating}. "
        "Write the business's short public reply to it (two or three sentences)."
    )
