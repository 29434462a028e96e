"""Fast rule layer: regex patterns per category, with negation, idiom and past-and-recovered vetoes.

Patterns come from the domain pack and run on normalised text. A hit is vetoed when a
negation cue governs it ("I'm *not* suicidal", "I would *never* hurt myself"), when it
sits inside a known idiom ("this traffic is *killing me*", "*killing it* at work"), or when the
whole message tells the risk as over (the pack's ``recovered_frame``: "I *tried to kill myself*
years ago; I'm in a good place now").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from domains.schema import RiskRules, load_pack
from domains.text import normalised_variants

Strength = Literal["strong", "weak"]

# Clause boundaries: a negation does not reach across these. A condition starts a clause of its
# own: in "she wouldn't have to if I was gone" the negation belongs to "have to", not to the risk.
_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]|\b(?:but|however|though|although|yet|and|if|unless|whether)\b")
_WORD = re.compile(r"[\w']+")
# A hit that itself opens a clause ("if I was gone") is not governed by a negation before it.
_OPENS_CLAUSE = re.compile(r"(?:if|unless|whether)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    text: str
    start: int
    end: int

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class RuleHit:
    category: str
    strength: Strength
    evidence: Span
    vetoed_by: str | None = None


@dataclass(frozen=True)
class RuleResult:
    text: str
    hits: tuple[RuleHit, ...] = ()
    idioms: tuple[Span, ...] = field(default_factory=tuple)

    @property
    def active(self) -> list[RuleHit]:
        return [h for h in self.hits if h.vetoed_by is None]

    @property
    def vetoed(self) -> list[RuleHit]:
        return [h for h in self.hits if h.vetoed_by is not None]

    @property
    def strong(self) -> list[RuleHit]:
        return [h for h in self.active if h.strength == "strong"]

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(h.category for h in self.active))

    @property
    def has_veto(self) -> bool:
        """Something in the text reads as negated risk or as an idiom."""
        return bool(self.vetoed or self.idioms)

    def reason(self) -> str:
        parts = [f"{h.strength} rule {h.category}: {h.evidence.text!r}" for h in self.active]
        parts += [f"vetoed {h.category} {h.evidence.text!r} ({h.vetoed_by})" for h in self.vetoed]
        parts += [
            f"idiom {s.text!r}"
            for s in self.idioms
            if not any(h.evidence.overlaps(s) for h in self.vetoed)
        ]
        return "; ".join(parts) if parts else "no rule matched"


def negation_before(text: str, start: int, cues: re.Pattern[str], window: int) -> str | None:
    """The negation cue among the ``window`` words before ``start`` in the same clause, if any."""
    prefix = text[:start]
    breaks = list(_CLAUSE_BREAK.finditer(prefix))
    clause = prefix[breaks[-1].end() :] if breaks else prefix
    words = _WORD.findall(clause)[-window:]
    found = cues.search(" ".join(words))
    return found.group(0) if found else None


def any_of(patterns: list[str]) -> re.Pattern[str]:
    """One case-insensitive pattern that matches where any of ``patterns`` does."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


class RuleEngine:
    """Compiled risk rules for one pack."""

    def __init__(self, rules: RiskRules) -> None:
        self.patterns: list[tuple[str, Strength, re.Pattern[str]]] = []
        for category, cat_rules in rules.categories.items():
            for p in cat_rules.strong:
                self.patterns.append((category, "strong", re.compile(p, re.IGNORECASE)))
            for p in cat_rules.weak:
                self.patterns.append((category, "weak", re.compile(p, re.IGNORECASE)))
        self.negation = any_of(rules.negation_cues)
        self.window = rules.negation_window
        self.idioms = [re.compile(p, re.IGNORECASE) for p in rules.idioms]
        self.after_risk = [
            (category, re.compile(p, re.IGNORECASE)) for category, ps in rules.after_risk.items() for p in ps
        ]
        frame = rules.recovered_frame
        self.frame: tuple[list[re.Pattern[str]], ...] | None = (
            tuple([re.compile(p, re.IGNORECASE) for p in ps] for ps in (frame.past, frame.recovered, frame.current))
            if frame is not None
            else None
        )

    def after_risk_cue(self, text: str) -> tuple[str, str] | None:
        """(category, phrase) of the first phrase that is a warning sign only after earlier risk."""
        for category, rx in self.after_risk:
            m = rx.search(text)
            if m:
                return category, m.group(0)
        return None

    def told_as_recovered(self, text: str) -> bool:
        """Past risk, recovery, and nothing that says the risk is back."""
        if self.frame is None:
            return False
        past, recovered, current = self.frame
        if not any(rx.search(text) for rx in past):
            return False
        spans = [m.span() for rx in recovered for m in rx.finditer(text)]
        if not spans:
            return False
        # A current-risk cue inside a recovery phrase is part of it: "I don't think that anymore".
        rest = text
        for start, end in spans:
            rest = rest[:start] + " " * (end - start) + rest[end:]
        return not any(rx.search(rest) for rx in current)

    def _match_one(self, text: str) -> RuleResult:
        idioms = tuple(
            Span(m.group(0), m.start(), m.end()) for rx in self.idioms for m in rx.finditer(text)
        )
        hits: list[RuleHit] = []
        recovered = self.told_as_recovered(text)
        for category, strength, rx in self.patterns:
            for m in rx.finditer(text):
                span = Span(m.group(0), m.start(), m.end())
                veto = None
                # Only an idiom that contains the whole hit vetoes it: "to die for" must not
                # excuse "wanting to die for weeks".
                idiom = next(
                    (i for i in idioms if i.start <= span.start and span.end <= i.end), None
                )
                if idiom is not None:
                    veto = f"idiom {idiom.text!r}"
                else:
                    cue = (
                        None
                        if _OPENS_CLAUSE.match(m.group(0))
                        else negation_before(text, m.start(), self.negation, self.window)
                    )
                    if cue is not None:
                        veto = f"negated by {cue!r}"
                    elif recovered:
                        veto = "told as past and recovered"
                hits.append(RuleHit(category, strength, span, veto))
        return RuleResult(text, tuple(hits), idioms)

    def match(self, text: str) -> RuleResult:
        """Match every normalised reading of ``text``; hits are merged across readings."""
        results = [self._match_one(v) for v in normalised_variants(text)]
        if len(results) == 1:
            return results[0]
        seen: dict[tuple[str, str], RuleHit] = {}
        for res in results:
            for h in res.hits:
                key = (h.category, h.evidence.text)
                if key not in seen or (seen[key].vetoed_by and not h.vetoed_by):
                    seen[key] = h
        # Spans from the second reading index into a different string; keep them only as evidence text.
        idioms = tuple({s.text: s for r in results for s in r.idioms}.values())
        return RuleResult(results[0].text, tuple(seen.values()), idioms)


@cache
def rule_engine(domain: str) -> RuleEngine:
    return RuleEngine(load_pack(domain).risk_rules)


def match_rules(domain: str, text: str) -> RuleResult:
    return rule_engine(domain).match(text)


def after_risk_cue(domain: str, text: str) -> tuple[str, str] | None:
    """A phrase of the pack's ``after_risk`` in the normalised ``text``, with its category."""
    from domains.text import normalise

    return rule_engine(domain).after_risk_cue(normalise(text))
