"""The seed corpus: schemas and loaders.

Files in ``persona_agents/training/corpus/`` (JSON Lines, one object per line):

- ``situations.jsonl``: user turns with the trait activation they call for (router data).
  ``{"id", "domain", "text", "context": [earlier user turns], "reasoning", "activation":
  {expert: weight, ...} (1-3 poles, positive, summing to 1, never both poles of a trait),
  "split": "train"|"test"}``
- ``responses_<trait>.jsonl``: the same situation answered in the high and the low pole's voice
  (expert data). ``{"id", "pair", "expert", "domain", "situation", "response", "split"}``
- ``general_questions.jsonl``: plain questions for the general-ability check.
  ``{"id", "question", "answers": [accepted substrings, case-insensitive]}``
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from persona_agents import jsonl
from persona_agents.traits import EXPERT_NAMES, TRAITS, PersonaWeights, split_expert_name

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
# Where a situation comes from. Not the domain packs' list (``domains.schema.DOMAINS``): the
# engine knows no packs, and "social" (everyday talk) has none.
Domain = Literal["counseling", "customer_service", "social"]
SITUATION_DOMAINS: tuple[str, ...] = get_args(Domain)
Split = Literal["train", "test"]


class CorpusError(ValueError):
    """A corpus file that does not follow its schema (names file and line)."""


class Situation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    domain: Domain
    text: str = Field(min_length=1)
    context: list[str] = Field(default_factory=list)
    reasoning: str = ""
    activation: dict[str, float]
    split: Split = "train"

    @field_validator("activation")
    @classmethod
    def _valid_activation(cls, activation: dict[str, float]) -> dict[str, float]:
        if not 1 <= len(activation) <= 3:
            raise ValueError("an activation names 1 to 3 expert poles")
        if any(v <= 0 for v in activation.values()):
            raise ValueError("activation weights must be positive")
        traits = [split_expert_name(name)[0] for name in activation]
        if len(set(traits)) != len(traits):
            raise ValueError("an activation cannot name both poles of one trait")
        PersonaWeights.from_mapping(activation)  # sums to 1, known names
        return activation

    @property
    def weights(self) -> PersonaWeights:
        return PersonaWeights.from_mapping(self.activation)

    @property
    def top_pole(self) -> str:
        return max(self.activation, key=lambda k: (self.activation[k], -EXPERT_NAMES.index(k)))

    @property
    def expected_traits(self) -> dict[str, str]:
        """trait -> 'high' | 'low' for every trait the activation names."""
        return dict(split_expert_name(name) for name in self.activation)


class PoleResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    pair: str
    expert: str
    domain: Domain
    situation: str = Field(min_length=1)
    response: str = Field(min_length=1)
    split: Split = "train"

    @field_validator("expert")
    @classmethod
    def _known_expert(cls, name: str) -> str:
        split_expert_name(name)
        return name

    @property
    def trait(self) -> str:
        return split_expert_name(self.expert)[0]

    @property
    def pole(self) -> str:
        return split_expert_name(self.expert)[1]


class GeneralQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str = Field(min_length=1)
    answers: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _non_empty_answers(self) -> GeneralQuestion:
        if any(not a.strip() for a in self.answers):
            raise ValueError("answers must be non-empty strings")
        return self

    def is_correct(self, reply: str) -> bool:
        lowered = reply.lower()
        return any(answer.lower() in lowered for answer in self.answers)


Row = TypeVar("Row", bound=BaseModel)


def read_jsonl(path: Path, model: type[Row]) -> list[Row]:
    """The rows of one corpus file, each validated by ``model``; ids must be unique in the file."""
    try:
        objects = jsonl.read_jsonl(path)
    except jsonl.JsonlError as exc:
        raise CorpusError(str(exc)) from exc
    rows: list[Row] = []
    for number, obj in objects:
        try:
            rows.append(model.model_validate(obj))
        except ValidationError as exc:
            raise CorpusError(f"{path}:{number}: {exc}") from exc
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise CorpusError(f"{path}: duplicate ids")
    return rows


def _checked_unique(rows: list[Row], what: str) -> list[Row]:
    ids = [r.id for r in rows]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CorpusError(f"duplicate {what} ids across files: {duplicates[:5]}")
    return rows


def load_situations(corpus_dir: Path = CORPUS_DIR) -> list[Situation]:
    """``situations.jsonl`` plus any ``situations_*.jsonl`` (more seed data, synthesized data)."""
    files = [corpus_dir / "situations.jsonl", *sorted(corpus_dir.glob("situations_*.jsonl"))]
    return _checked_unique([row for f in files for row in read_jsonl(f, Situation)], "situation")


def load_responses(corpus_dir: Path = CORPUS_DIR) -> list[PoleResponse]:
    """``responses_<trait>.jsonl`` plus any ``responses_<trait>_*.jsonl`` for every trait."""
    rows: list[PoleResponse] = []
    for trait in TRAITS:
        files = [corpus_dir / f"responses_{trait}.jsonl", *sorted(corpus_dir.glob(f"responses_{trait}_*.jsonl"))]
        rows.extend(row for f in files for row in read_jsonl(f, PoleResponse))
    return _checked_unique(rows, "response")


def load_general_questions(corpus_dir: Path = CORPUS_DIR) -> list[GeneralQuestion]:
    return read_jsonl(corpus_dir / "general_questions.jsonl", GeneralQuestion)
