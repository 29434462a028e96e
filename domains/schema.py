"""Domain packs: the data that drives the safety layer, validated with pydantic.

A pack holds everything that differs between the counseling agent and the review agent:
crisis resources per locale, risk and output rules (regex patterns as data), the
customer-service policy, the facts about the service a reply may state, prompts and the fixed
replies used when a human takes over.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The project's one list of domain packs (a folder each under domains/); everyone imports it.
DomainName = Literal["counseling", "customer_service"]
DOMAINS: tuple[str, ...] = get_args(DomainName)
INTERNATIONAL = "international"

_LOCALE_RE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}$")


class PackError(ValueError):
    """A domain pack is missing or does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
    return patterns


class Resource(_Strict):
    """One place a person can turn to: a helpline, a text line or a web service."""

    name: str = Field(min_length=1)
    phone: str | None = None
    text: str | None = None
    url: str | None = None
    hours: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Resource:
        if not (self.phone or self.text or self.url or self.note):
            raise ValueError(f"resource {self.name!r} needs a phone, text, url or note")
        return self


class LocaleResources(_Strict):
    emergency_number: str | None = None
    resources: list[Resource] = Field(default_factory=list)


class CategoryRules(_Strict):
    """Patterns for one category. A strong hit escalates on its own; a weak one needs support."""

    strong: list[str] = Field(default_factory=list)
    weak: list[str] = Field(default_factory=list)

    @field_validator("strong", "weak")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        return _check_patterns(v)


class RecoveredFrame(_Strict):
    """Risk told as over: "I tried years ago; I'm doing well now".

    The frame holds when a ``past`` marker and a ``recovered`` marker match and no ``current``
    marker (risk now: "again", "lately", "relapsed", "tonight") does. Then the rule hits of the
    message are vetoed like negated ones: the classifier still decides, at ``strong_score``.
    """

    past: list[str] = Field(min_length=1)
    recovered: list[str] = Field(min_length=1)
    current: list[str] = Field(default_factory=list)

    @field_validator("past", "recovered", "current")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        return _check_patterns(v)


class RiskRules(_Strict):
    categories: dict[str, CategoryRules]
    negation_cues: list[str] = Field(min_length=1)
    negation_window: int = Field(default=3, ge=1, le=10)
    # A message of at most this many words whose only content is a weak hit escalates:
    # a bare "suicide" gives no context that could make it safe. 0 disables.
    short_message_words: int = Field(default=0, ge=0, le=10)
    idioms: list[str] = Field(default_factory=list)
    recovered_frame: RecoveredFrame | None = None
    # category -> phrases that are a warning sign only after risk was raised ("I feel calmer
    # now", "thanks for everything"): the history layer counts them as a signal then.
    after_risk: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("negation_cues", "idioms")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        return _check_patterns(v)

    @field_validator("after_risk")
    @classmethod
    def _after_risk_compiles(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for patterns in v.values():
            _check_patterns(patterns)
        return v


class SentenceRule(_Strict):
    """Blocks a sentence that matches a pattern of every group in ``all_of`` and none of ``none_of``.

    For harm that shows only as a combination, each part harmless alone: a means ("the garage",
    "your pills") and a word that weighs it as a way to die ("would work", "a quiet way to go").
    """

    category: str = Field(min_length=1)
    all_of: list[list[str]] = Field(min_length=2)
    none_of: list[str] = Field(default_factory=list)

    @field_validator("all_of")
    @classmethod
    def _groups(cls, v: list[list[str]]) -> list[list[str]]:
        for group in v:
            if not group:
                raise ValueError("every all_of group needs at least one pattern")
            _check_patterns(group)
        return v

    @field_validator("none_of")
    @classmethod
    def _vetoes(cls, v: list[str]) -> list[str]:
        return _check_patterns(v)


class OutputRules(_Strict):
    """Draft-reply checks: category -> patterns that block, plus spans that excuse a match."""

    block: dict[str, list[str]]
    allow_contexts: list[str] = Field(default_factory=list)
    negation_cues: list[str] = Field(default_factory=list)
    sentence_rules: list[SentenceRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sentence_rule_categories(self) -> OutputRules:
        unknown = sorted({r.category for r in self.sentence_rules} - set(self.block))
        if unknown:
            raise ValueError(f"sentence_rules name categories output_rules.block does not have: {unknown}")
        return self

    @field_validator("block")
    @classmethod
    def _patterns(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for patterns in v.values():
            _check_patterns(patterns)
        return v

    @field_validator("allow_contexts", "negation_cues")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        return _check_patterns(v)


class Policy(_Strict):
    never_promise: list[str] = Field(min_length=1)
    handoff_channel: str


class Prompts(_Strict):
    persona: str = Field(min_length=20)
    strict_regeneration: str = Field(min_length=20)


class CrisisTemplate(_Strict):
    """The fixed crisis reply, in four parts, so no model ever improvises it."""

    acknowledge: str = Field(min_length=1)
    ask_safety: str = Field(min_length=1)
    resources_intro: str = Field(min_length=1)
    stay_present: str = Field(min_length=1)


class ClassifierSettings(_Strict):
    categories: list[str] = Field(min_length=2)
    safe_category: str
    strong_score: float = Field(default=0.85, gt=0, le=1)
    support_score: float = Field(default=0.25, gt=0, le=1)
    # Out-of-fold false-escalation budget used to pick the classifier threshold at training time.
    max_false_rate: float = Field(default=0.1, gt=0, lt=1)
    # A decision threshold chosen by the operator on their own data; overrides the trained one.
    threshold: float | None = Field(default=None, gt=0, lt=1)
    # Weights of the lexical scorer the training's cross-validation may choose from (None: all of
    # ``domains.train_classifiers.LEXICAL_WEIGHTS``). Cross-validation reads the project's own rows,
    # whose phrasing the lexical scorer learns too well; a pack may pin what held up on other writers' text.
    lexical_weights: list[float] | None = Field(default=None, min_length=1)

    @field_validator("lexical_weights")
    @classmethod
    def _weights_in_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(not 0.0 <= w < 1.0 for w in v):
            raise ValueError(f"lexical_weights must each be in [0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _safe_listed(self) -> ClassifierSettings:
        if self.safe_category not in self.categories:
            raise ValueError(
                f"safe_category {self.safe_category!r} is not one of {self.categories}"
            )
        return self


class ReviewLexicon(_Strict):
    positive: list[str]
    negative: list[str]
    aspects: dict[str, list[str]]

    @field_validator("positive", "negative")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        return _check_patterns(v)


class DomainPack(_Strict):
    name: DomainName
    default_locale: str
    locales: dict[str, LocaleResources]
    classifier: ClassifierSettings
    output_classifier: ClassifierSettings
    risk_rules: RiskRules
    output_rules: OutputRules
    prompts: Prompts
    policy: Policy | None = None
    crisis_template: CrisisTemplate | None = None
    # Replies a human can publish instead of a rejected draft: ``escalation_reply`` for a review the
    # screen escalated, ``holding_reply`` for any other review, ``thanks_reply`` for praise (a happy
    # reviewer whose draft was blocked should not get an apology). The last two fall back to the first.
    escalation_reply: str | None = None
    holding_reply: str | None = None
    thanks_reply: str | None = None
    review_lexicon: ReviewLexicon | None = None
    # What the service really offers, in plain sentences a reply may repeat: prices, opening hours,
    # response times, return or privacy terms ("Returns are accepted within 30 days of delivery.").
    # An amount or a policy term in a draft that is neither here, in the resources' hours and notes,
    # nor in the person's own words is an invented fact (domains.stated_facts).
    facts: list[str] = Field(default_factory=list)

    @field_validator("locales")
    @classmethod
    def _locale_keys(cls, v: dict[str, LocaleResources]) -> dict[str, LocaleResources]:
        for key in v:
            if key != INTERNATIONAL and not _LOCALE_RE.match(key):
                raise ValueError(
                    f"locale key {key!r} must look like 'en-GB' (or be {INTERNATIONAL!r})"
                )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DomainPack:
        if self.default_locale not in self.locales:
            raise ValueError(f"default_locale {self.default_locale!r} has no entry in locales")
        unknown = set(self.risk_rules.categories) - set(self.classifier.categories)
        if unknown:
            raise ValueError(
                f"risk_rules name categories the classifier does not know: {sorted(unknown)}"
            )
        learned = set(self.output_classifier.categories) - {self.output_classifier.safe_category}
        unknown = learned - set(self.output_rules.block)
        if unknown:
            raise ValueError(
                f"output_classifier names categories output_rules.block does not have: {sorted(unknown)}"
            )
        if self.name == "counseling":
            if self.crisis_template is None:
                raise ValueError("the counseling pack needs a crisis_template")
            if INTERNATIONAL not in self.locales:
                raise ValueError(f"the counseling pack needs an {INTERNATIONAL!r} fallback locale")
            missing = [k for k, v in self.locales.items() if not v.resources]
            if missing:
                raise ValueError(f"counseling locales without crisis resources: {missing}")
        needs_cs_parts = (
            self.policy is None or self.escalation_reply is None or self.review_lexicon is None
        )
        if self.name == "customer_service" and needs_cs_parts:
            raise ValueError(
                "the customer_service pack needs policy, escalation_reply and review_lexicon"
            )
        return self


def parse_pack(raw: str | bytes, source: str = "<pack>") -> DomainPack:
    """Validate pack JSON text; errors name the source and every failing field."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PackError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    try:
        return DomainPack.model_validate(data)
    except ValidationError as exc:
        raise PackError(f"{source}: invalid domain pack\n{exc}") from exc


def pack_path(name: str) -> Path:
    if name not in DOMAINS:
        raise PackError(f"unknown domain {name!r}; expected one of {', '.join(DOMAINS)}")
    return Path(str(resources.files("domains") / name / "pack.json"))


@cache
def load_pack(name: str) -> DomainPack:
    path = pack_path(name)
    if not path.is_file():
        raise PackError(f"domain pack file not found: {path}")
    pack = parse_pack(path.read_text(encoding="utf-8"), source=str(path))
    if pack.name != name:
        raise PackError(f"{path}: pack declares name {pack.name!r}, expected {name!r}")
    return pack


def normalise_locale_tag(locale: str) -> str | None:
    """'en_gb' / 'EN-GB' / ' en-gb.UTF-8 ' -> 'en-GB'; 'DE' -> 'de'; garbage -> None."""
    tag = locale.strip().split(".")[0].split("@")[0].replace("_", "-")
    parts = tag.split("-")
    if len(parts) == 1 and re.fullmatch(r"[A-Za-z]{2,3}", parts[0]):
        return parts[0].lower()
    if (
        len(parts) == 2
        and re.fullmatch(r"[A-Za-z]{2,3}", parts[0])
        and re.fullmatch(r"[A-Za-z]{2}", parts[1])
    ):
        return f"{parts[0].lower()}-{parts[1].upper()}"
    return None


def resolve_locale(pack: DomainPack, locale: str | None) -> str:
    """Map a caller's locale onto a key of ``pack.locales``; anything unusable gives the default."""
    if not isinstance(locale, str):
        return pack.default_locale
    if locale.strip().lower() == INTERNATIONAL and INTERNATIONAL in pack.locales:
        return INTERNATIONAL
    tag = normalise_locale_tag(locale)
    if tag is None:
        return pack.default_locale
    if tag in pack.locales:
        return tag
    if "-" not in tag:  # a bare language: its first country entry, the default country first
        if pack.default_locale.split("-")[0] == tag:
            return pack.default_locale
        for key in pack.locales:
            if key.split("-")[0] == tag:
                return key
    # A real country we have no entry for (en-NZ, de-AT, pt-BR): crisis lines are per country, so the
    # international entry (contact local emergency services) beats another country's numbers.
    return INTERNATIONAL if INTERNATIONAL in pack.locales else pack.default_locale


def crisis_reply(pack: DomainPack, locale: str | None = None) -> str:
    """The fixed crisis message for a locale: acknowledge, ask about safety, resources, stay present."""
    if pack.crisis_template is None:
        raise PackError(f"pack {pack.name!r} has no crisis template")
    key = resolve_locale(pack, locale)
    entry = pack.locales[key]
    lines = []
    for res in entry.resources:
        reach = ", ".join(
            part
            for part in (
                f"call {res.phone}" if res.phone else "",
                f"text {res.text}" if res.text else "",
                res.url or "",
                res.hours or "",
            )
            if part
        )
        lines.append(
            f"- {res.name}"
            + (f": {reach}" if reach else "")
            + (f" ({res.note})" if res.note else "")
        )
    if entry.emergency_number:
        lines.append(f"- Emergency services: {entry.emergency_number}")
    t = pack.crisis_template
    return "\n\n".join(
        [t.acknowledge, t.ask_safety, t.resources_intro + "\n" + "\n".join(lines), t.stay_present]
    )
