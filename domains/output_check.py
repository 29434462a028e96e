"""Checks on a model's draft reply before it reaches the user.

Patterns come from ``pack.output_rules``. Drafts are matched case-insensitively but with
case preserved, so person-name patterns can insist on capitalised words. A match is
excused when a negation governs it ("don't stop taking your medication") or when it
sits inside an allowed context ("a doctor can assess whether you have depression").
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from domains.results import OutputCheck
from domains.rules import Span, negation_before
from domains.schema import OutputRules, load_pack
from domains.text import repair_unicode

ALLOWED = "ok"
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def prepare_draft(text: str) -> str:
    t = unicodedata.normalize("NFKC", repair_unicode(text)).translate(_APOSTROPHES)
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in t)


class OutputChecker:
    def __init__(self, rules: OutputRules) -> None:
        self.block = {
            category: [re.compile(p, re.IGNORECASE) for p in patterns]
            for category, patterns in rules.block.items()
        }
        self.allow = [re.compile(p, re.IGNORECASE) for p in rules.allow_contexts]
        self.negation = (
            re.compile("|".join(f"(?:{c})" for c in rules.negation_cues), re.IGNORECASE)
            if rules.negation_cues
            else None
        )

    def check(self, text: str) -> OutputCheck:
        if not isinstance(text, str):
            raise TypeError(f"draft must be a str, got {type(text).__name__}")
        draft = prepare_draft(text)
        allowed = [
            Span(m.group(0), m.start(), m.end()) for rx in self.allow for m in rx.finditer(draft)
        ]
        reasons: list[str] = []
        first: str | None = None
        for category, patterns in self.block.items():
            for rx in patterns:
                for m in rx.finditer(draft):
                    span = Span(m.group(0), m.start(), m.end())
                    if any(a.overlaps(span) and a.start <= span.start for a in allowed):
                        continue
                    if self.negation is not None and negation_before(
                        draft.lower(), m.start(), self.negation, 3
                    ):
                        continue
                    reasons.append(f"{category}: {span.text.strip()!r}")
                    first = first or category
                    break
        if first is None:
            return OutputCheck(block=False, category=ALLOWED, reasons=[])
        return OutputCheck(block=True, category=first, reasons=list(dict.fromkeys(reasons)))


@cache
def output_checker(domain: str) -> OutputChecker:
    return OutputChecker(load_pack(domain).output_rules)


def check_output(domain: str, text: str) -> OutputCheck:
    """Should this draft reply be withheld? ``category`` is "ok" when it may be sent."""
    return output_checker(domain).check(text)
