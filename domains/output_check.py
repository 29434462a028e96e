"""Checks on a model's draft reply before it reaches the user.

Layers, in order; the first that blocks decides and is named in the result:

1. contacts: card numbers, security codes, emails, addresses, and phone numbers, web sites or
   social media channels the pack does not list (``domains.invented``);
2. rules: patterns from ``pack.output_rules``, matched case-insensitively but with case
   preserved, so person-name patterns can insist on capitalised words. A match is excused when a
   negation governs it ("don't stop taking your medication") or when it sits inside an allowed
   context ("a doctor can assess whether you have depression"). Then the pack's sentence rules:
   a sentence that matches every group of one and none of its vetoes blocks (a means and a word
   that weighs it as a way to die, "the garage ... a quiet way to go", but not "lock the pills
   away"; a person's therapist or group and a draft that replaces or runs it down);
3. facts: amounts of money, service policies and (review replies) announced events, offers and
   dated plans that neither the pack nor the person's message states (``invented_fact``,
   ``domains.invented``; after the rules, so a promised voucher is named
   ``unauthorised_compensation``);
4. classifier: the domain's learned output head over MiniLM embeddings, averaged with its
   lexical scorer (``domains.lexical``), trained on drafts the project wrote per block
   category, paraphrases included;
5. guard: an optional guard model (``domains.guard.SafetyGuard``).

Anything that goes wrong in layers 4 and 5 blocks the draft: a reply nobody could check is not sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from domains.classifier import load_classifier
from domains.guard import SafetyGuard
from domains.invented import INVENTED_FACT, invented_details
from domains.results import OutputCheck
from domains.rules import Span, any_of, negation_before
from domains.safety_encoder import SentenceEncoder
from domains.schema import OutputRules, SentenceRule, load_pack
from domains.text import fold, sentences

ALLOWED = "ok"


@dataclass(frozen=True)
class _SentenceRule:
    category: str
    all_of: list[re.Pattern[str]]
    veto: re.Pattern[str] | None

    @classmethod
    def compile(cls, rule: SentenceRule) -> _SentenceRule:
        return cls(rule.category, [any_of(group) for group in rule.all_of], any_of(rule.none_of) if rule.none_of else None)

    def matches(self, sentence: str) -> bool:
        return all(rx.search(sentence) for rx in self.all_of) and not (self.veto and self.veto.search(sentence))


class OutputChecker:
    def __init__(self, rules: OutputRules) -> None:
        self.block = {
            category: [re.compile(p, re.IGNORECASE) for p in patterns]
            for category, patterns in rules.block.items()
        }
        self.allow = [re.compile(p, re.IGNORECASE) for p in rules.allow_contexts]
        self.negation = any_of(rules.negation_cues) if rules.negation_cues else None
        self.sentence_rules = [_SentenceRule.compile(rule) for rule in rules.sentence_rules]

    def check(self, text: str) -> OutputCheck:
        if not isinstance(text, str):
            raise TypeError(f"draft must be a str, got {type(text).__name__}")
        draft = fold(text)
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
        for sentence in sentences(draft, 1) or [draft]:
            for rule in self.sentence_rules:
                if rule.matches(sentence):
                    reasons.append(f"{rule.category}: {sentence.strip()!r}")
                    first = first or rule.category
        if first is None:
            return OutputCheck(block=False, category=ALLOWED, reasons=[])
        return OutputCheck(
            block=True, category=first, reasons=list(dict.fromkeys(reasons)), layer="rules"
        )


@cache
def output_checker(domain: str) -> OutputChecker:
    return OutputChecker(load_pack(domain).output_rules)


def _learned_layers(
    domain: str,
    draft: str,
    guard: SafetyGuard | None,
    user_text: str | None,
    encoder: SentenceEncoder | None,
) -> OutputCheck | None:
    clf = load_classifier(domain, "output", encoder)
    [(category, score)] = clf.assess([draft])
    if score >= clf.threshold:
        reason = f"classifier {category} {score:.2f} >= {clf.threshold:.2f}"
        return OutputCheck(block=True, category=category, reasons=[reason], layer="classifier")
    if guard is not None:
        verdict = guard.check_draft(draft, user_text)
        if verdict.unsafe:
            reason = verdict.reason(guard.categories)
            return OutputCheck(block=True, category="guard", reasons=[reason], layer="guard")
    return None


def check_output(
    domain: str,
    text: str,
    *,
    guard: SafetyGuard | None = None,
    user_text: str | None = None,
    encoder: SentenceEncoder | None = None,
) -> OutputCheck:
    """Should this draft reply be withheld? ``category`` is "ok" when it may be sent.

    ``user_text`` (the message the draft answers) vouches for the amounts, terms and platforms it
    states, and is shown to the guard model, if there is one. ``encoder`` is passed to the output
    classifier (default: the safety encoder it was trained on).
    """
    if not isinstance(text, str):
        raise TypeError(f"draft must be a str, got {type(text).__name__}")
    findings = invented_details(domain, text, user_text=user_text)
    contacts = [f for f in findings if f.category != INVENTED_FACT]
    if contacts:
        return OutputCheck(
            block=True, category=contacts[0].category, reasons=[f.reason() for f in contacts], layer="contacts"
        )
    result = output_checker(domain).check(text)
    if result.block:
        return result
    if findings:
        return OutputCheck(block=True, category=INVENTED_FACT, reasons=[f.reason() for f in findings], layer="facts")
    try:
        learned = _learned_layers(domain, text, guard, user_text, encoder)
    except Exception as exc:  # fail closed: an unchecked draft is never sent
        reason = f"output check failed: {type(exc).__name__}: {exc}"
        return OutputCheck(block=True, category="check_error", reasons=[reason], layer="classifier")
    return learned or OutputCheck(block=False, category=ALLOWED, reasons=[])
