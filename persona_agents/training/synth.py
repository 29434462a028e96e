"""``persona-agents synth``: grow the seed corpus with a teacher chat model.

Any LangChain chat model can teach (a large local model on a GPU, or a hosted one). For each
requested item the teacher writes a situation for a domain and a target pole, reasons about
which traits the situation activates (personality-aware chain of thought), gives the
activation label, and answers the situation in the high and the low voice of the target
trait. Rows are validated against the corpus schema and de-duplicated (exact text and
near-duplicates by sentence embedding) before they are appended.
"""

from __future__ import annotations

import importlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import ValidationError
from tqdm.auto import tqdm

from persona_agents import jsonl
from persona_agents.encoder import TextEncoder
from persona_agents.training.corpus import (
    SITUATION_DOMAINS,
    PoleResponse,
    Situation,
    load_responses,
    load_situations,
)
from persona_agents.traits import EXPERT_NAMES, split_expert_name

TEACHER_SYSTEM = (
    "You write training data for a personality-adaptive assistant, following Trait Activation Theory: "
    "a situation activates the Big-Five trait poles a good helper should express. Poles: "
    + ", ".join(EXPERT_NAMES)
    + ". Answer with one JSON object and nothing else."
)
TEACHER_TASK = """Write one new {domain} situation (a user's message, 1-3 sentences, in the user's own voice) that calls for {pole}.
{domain_hint}
Then reason step by step about which trait poles it activates and why, give the activation (1-3 poles,
weights summing to 1, never both poles of one trait, {pole} weighted highest), and answer the situation
twice: once in the voice of {trait}_high and once in the voice of {trait}_low (25-60 words each, helpful,
safe: no method information for self-harm, no diagnosis, no medication advice, no promised refunds,
no admissions of legal liability, no personal data, never cruel).
JSON keys: "situation", "reasoning", "activation", "high_response", "low_response"."""
DOMAIN_HINTS = {
    "counseling": "The user talks to a mental-health support counselor (no acute crisis).",
    "customer_service": "The user posts a customer review or message to a business; the replies are the business's public reply.",
    "social": "Everyday conversation with a helpful assistant.",
}


class TeacherOutputError(ValueError):
    """The teacher's answer was not a usable JSON item."""


@dataclass
class SynthResult:
    situations: list[Situation]
    responses: list[PoleResponse]
    rejected: list[str]


def load_teacher(spec: str) -> BaseChatModel:
    """Import ``package.module:attribute``: a chat model instance or a callable returning one."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"teacher must look like 'package.module:attribute', got {spec!r}")
    target: Any = getattr(importlib.import_module(module_name), attribute)
    teacher = target() if callable(target) and not isinstance(target, BaseChatModel) else target
    if not isinstance(teacher, BaseChatModel):
        raise ValueError(f"{spec} did not give a LangChain chat model (got {type(teacher).__name__})")
    return teacher


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in a reply (teachers often wrap JSON in prose or code fences)."""
    start = text.find("{")
    while start >= 0:
        depth = 0
        in_string = escaped = False
        for end in range(start, len(text)):
            ch = text[end]
            if in_string:
                escaped = ch == "\\" and not escaped
                if ch == '"' and not escaped:
                    in_string = False
                continue
            if ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start : end + 1])
                    except json.JSONDecodeError:
                        break
                    if isinstance(value, dict):
                        return value
                    break
        start = text.find("{", start + 1)
    raise TeacherOutputError("no JSON object in the teacher's reply")


def _normal(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


class Deduplicator:
    """Rejects exact (normalised) repeats and near-duplicates by embedding cosine."""

    def __init__(self, encoder: TextEncoder | None, existing: Sequence[str], threshold: float = 0.93) -> None:
        self.encoder = encoder
        self.threshold = threshold
        self.seen = {_normal(t) for t in existing}
        self.vectors = encoder.encode(list(existing)) if encoder and existing else None

    def accept(self, text: str) -> bool:
        key = _normal(text)
        if not key or key in self.seen:
            return False
        if self.encoder is not None:
            vector = self.encoder.encode([text])
            if self.vectors is not None and len(self.vectors) and float((self.vectors @ vector.t()).max()) >= self.threshold:
                return False
            self.vectors = vector if self.vectors is None else torch.cat([self.vectors, vector])
        self.seen.add(key)
        return True


def parse_item(raw: dict[str, Any], *, domain: str, pole: str, item_id: str, split: str) -> tuple[Situation, list[PoleResponse]]:
    trait, _ = split_expert_name(pole)
    try:
        situation = Situation(
            id=f"sit-{item_id}",
            domain=domain,
            text=str(raw["situation"]).strip(),
            context=[],
            reasoning=str(raw.get("reasoning", "")).strip(),
            activation={str(k): float(v) for k, v in dict(raw["activation"]).items()},
            split=split,
        )
        if situation.top_pole != pole:
            raise TeacherOutputError(f"the activation's strongest pole is {situation.top_pole}, not {pole}")
        responses = [
            PoleResponse(
                id=f"{trait}-{item_id}-{side}",
                pair=f"{trait}-{item_id}",
                expert=f"{trait}_{side}",
                domain=domain,
                situation=situation.text,
                response=str(raw[f"{side}_response"]).strip(),
                split=split,
            )
            for side in ("high", "low")
        ]
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        if isinstance(exc, TeacherOutputError):
            raise
        raise TeacherOutputError(f"the teacher's item does not fit the schema: {exc}") from exc
    return situation, responses


def synthesize(
    teacher: BaseChatModel,
    count: int,
    *,
    encoder: TextEncoder | None = None,
    seed: int = 0,
    test_share: float = 0.2,
    existing_texts: Sequence[str] = (),
    id_prefix: str = "synth",
) -> SynthResult:
    """Ask the teacher for ``count`` items, cycling over domains and poles."""
    rng = random.Random(seed)
    dedup = Deduplicator(encoder, existing_texts)
    result = SynthResult([], [], [])
    for index in tqdm(range(count), desc="synth", unit="item"):
        domain = SITUATION_DOMAINS[index % len(SITUATION_DOMAINS)]
        pole = EXPERT_NAMES[(index // len(SITUATION_DOMAINS)) % len(EXPERT_NAMES)]
        trait, _ = split_expert_name(pole)
        prompt = TEACHER_TASK.format(domain=domain, pole=pole, trait=trait, domain_hint=DOMAIN_HINTS[domain])
        reply = teacher.invoke([SystemMessage(TEACHER_SYSTEM), HumanMessage(prompt)])
        split = "test" if rng.random() < test_share else "train"
        try:
            situation, responses = parse_item(
                extract_json(str(reply.content)), domain=domain, pole=pole, item_id=f"{id_prefix}{index:05d}", split=split
            )
        except TeacherOutputError as exc:
            result.rejected.append(f"item {index}: {exc}")
            continue
        if not dedup.accept(situation.text):
            result.rejected.append(f"item {index}: duplicate situation")
            continue
        result.situations.append(situation)
        result.responses.extend(responses)
    return result


def append_to_corpus(result: SynthResult, corpus_dir: Path, tag: str = "synth") -> list[Path]:
    """Append synthesized rows as ``situations_<tag>.jsonl`` and ``responses_<trait>_<tag>.jsonl``."""
    groups: dict[Path, list[Situation | PoleResponse]] = {}
    for s in result.situations:
        groups.setdefault(corpus_dir / f"situations_{tag}.jsonl", []).append(s)
    for r in result.responses:
        groups.setdefault(corpus_dir / f"responses_{r.trait}_{tag}.jsonl", []).append(r)
    return [jsonl.write_jsonl(path, rows, append=True) for path, rows in groups.items()]


def existing_corpus_texts(corpus_dir: Path) -> list[str]:
    return [s.text for s in load_situations(corpus_dir)] + sorted({r.situation for r in load_responses(corpus_dir)})
