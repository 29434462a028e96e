"""Amounts of money and service policies stated in a draft, and whether anyone vouched for them.

A small model invents facts that sound like the business speaking: "a $20 voucher", "50% off",
"our 30-day refund policy", "we reply within 24 hours", "this chat is completely confidential".
Nobody checked them, and a person will hold the service to them. Found by code:

- amounts: money (a currency sign or code before or after a number, "twenty dollars", "50p")
  and commercial percentages ("20% off", "a 15 percent discount", "half price");
- policies: a sentence in the service's own voice (we/our/us, "this service", "your order",
  "everything you share") about a service topic (returns, delivery, hours, privacy, ...), or a
  commitment whatever its subject ("it will arrive ...", "will be processed ..."), that
  states a standing term: a time limit, schedule or date (``30-day``, ``within 48 hours``,
  ``3-5 business days``, ``24/7``, ``until 10pm``, ``seven days a week``, ``until January 2nd``),
  an absolute promise
  ("no questions asked", "lifetime", "money-back", "price match", "free returns",
  "completely confidential"), or a named policy it spells out ("our policy is ...",
  "under our terms you can ...").

A statement is vouched for when every term it states (each amount's value; each policy term,
normalised: "thirty days" = "30-day", "working day" = "business day", "24 hours a day" = "24/7")
also appears in the domain pack (``facts``, and its resources' hours and notes) or in what the
person wrote (a reply may repeat the price they paid). Everything else is ``invented_fact``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from domains.schema import DomainPack

INVENTED_FACT = "invented_fact"

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15,
    "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
    "hundred": 100, "a hundred": 100, "one hundred": 100, "thousand": 1000,
}
_NUMBER_WORD = "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True))
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
# fold() has already turned £ € ¥ ₹ into GBP, EUR, Y, Rs.
_CODE = r"\$|USD|GBP|EUR|AUD|CAD|NZD|CHF|JPY|INR|Rs\.?"
_MONEY = re.compile(
    rf"(?:(?<![A-Za-z])(?:{_CODE})\s?(?P<pre>{_NUM})(?:\s?(?:k|m|bn)\b)?)"
    rf"|(?:\b(?P<post>{_NUM})\s?(?:(?:{_CODE})(?![A-Za-z])|(?:dollars?|bucks|pounds?|quid|euros?|cents?|pence)\b))"
    rf"|(?:\b(?P<pence>\d{{1,3}})p\b)"
    rf"|(?:\b(?P<word>{_NUMBER_WORD})(?:[- ](?:and[- ])?(?:one|two|three|four|five|six|seven|eight|nine))?\s+"
    rf"(?:dollars|bucks|pounds|quid|euros)\b)",
    re.IGNORECASE,
)
_PERCENT = r"(?P<pct>\d+(?:\.\d+)?)\s?(?:%|percent\b|per cent\b)"
_COMMERCIAL = (r"off|discount|discounted|cashback|cash back|back|reduction|cheaper|saving|savings|interest|fee|"
               r"surcharge|commission|tip|service charge|deposit|refund|rebate|credit")
_DISCOUNT = re.compile(
    rf"{_PERCENT}\s?(?:{_COMMERCIAL})\b"
    rf"|\b(?:discount|reduction|rebate|saving|cashback|cut) of (?:up to )?{_PERCENT.replace('pct', 'pct2')}"
    rf"|\b(?:save|get|take|knock(?:ed)?|enjoy) (?:up to |an extra |a further )?{_PERCENT.replace('pct', 'pct3')}"
    r"|\bhalf[- ](?:price|off)\b",
    re.IGNORECASE,
)

# --- policies ---------------------------------------------------------------------------------

_VOICE = re.compile(
    r"\b(?:we|we're|we've|we'll|we'd|our|ours|us)\b"
    r"|\b(?:this|the|our) (?:store|shop|company|restaurant|hotel|business|service|app|platform|site|website"
    r"|chat|conversation|team|helpline|line|clinic|promotion|offer|sale|deal|discount|code|voucher|coupon)s?\b"
    r"|\b(?:everything|anything|whatever|what) you (?:say|write|share|type|tell (?:me|us))\b"
    r"|\byour (?:order|refund|parcel|package|delivery|replacement|item|items|money|payment|repair|booking"
    r"|reservation|account|subscription|membership|complaint|case|claim|return)\b",
    re.IGNORECASE,
)
# What the customer is told to expect, a commitment whatever its subject: "it will arrive in 3 days".
_COMMITMENT = re.compile(
    r"\b(?:will|should|is going to|are going to) (?:arrive|ship|come back|be back|reach you|get to you|be (?:delivered"
    r"|dispatched|shipped|processed|refunded|replaced|repaired|credited|returned|sent|ready|valid|available|open))\b",
    re.IGNORECASE,
)
_TOPIC = re.compile(
    r"\b(?:return|returns|returned|refund\w*|exchange\w*|cancel\w*|warrant\w*|guarantee\w*|deliver\w*|ship\w*"
    r"|dispatch\w*|postage|open|opening|closed|hours|booking\w*|reservation\w*|membership\w*|member|subscri\w*"
    r"|loyalty|rewards?|points|price[- ]match\w*|deposit|fees?|charges?|confidential\w*|privacy|private|anonymous"
    r"|data|records?|respond|response|reply|replies|get back|answer\w*|available|availability|here|support"
    r"|repair\w*|replace\w*|trial|contract|notice|policy|policies|terms|promotion\w*|offer\w*|sale|deal|codes?"
    r"|coupons?|vouchers?|discount\w*|valid|expir\w*)\b",
    re.IGNORECASE,
)
_AMOUNT_WORD = rf"(?:\d+(?:\.\d+)?|{_NUMBER_WORD})"
_UNIT = r"(?:business |working |calendar |school )?(?:day|days|hour|hours|hr|hrs|week|weeks|month|months|year|years|minute|minutes|mins?)"
_DURATION = re.compile(
    rf"\b(?P<n>{_AMOUNT_WORD})(?:\s?(?:-|to|–)\s?(?P<m>{_AMOUNT_WORD}))?[- ](?P<unit>{_UNIT})\b",
    re.IGNORECASE,
)
_CLOCK = re.compile(
    r"\b(?:until|till|til|from|after|before|by|between|at)\s+(?P<t>\d{1,2}(?:[:.]\d{2})?\s?(?:am|pm)?|noon|midnight)\b"
    r"|\b(?P<t2>\d{1,2}(?:[:.]\d{2})?\s?(?:am|pm))\b",
    re.IGNORECASE,
)
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DATE = re.compile(
    rf"\b(?P<m1>{_MONTH})\.? (?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\b|\b(?P<d2>\d{{1,2}})(?:st|nd|rd|th)? (?:of )?(?P<m2>{_MONTH})\b",
    re.IGNORECASE,
)
_ROUND_THE_CLOCK = re.compile(
    r"\b24/7\b|\b24 hours a day\b|\b(?:a)?round the clock\b|\bday or night\b|\bday and night\b"
    r"|\b24-hour\b|\bseven days a week\b|\b7 days a week\b|\bevery day of the year\b|\b365 days\b",
    re.IGNORECASE,
)
_ABSOLUTE = re.compile(
    r"\bno[- ]questions[- ]asked\b|\blifetime\b|\bmoney[- ]back\b|\bprice[- ]match\w*\b|\bbest[- ]price\b"
    r"|\bfree (?:returns?|delivery|shipping|exchanges?|cancellations?|collection|postage|repairs?)\b"
    r"|\b(?:fully|completely|totally|strictly|100%|always|entirely) (?:confidential|anonymous|private|secure)\b"
    r"|\b(?:never|don't|do not|won't|will not) (?:store|keep|record|save|share)\w* (?:your |any )?(?:data|messages|conversations?|chats?|information|details)\b",
    re.IGNORECASE,
)
_NAMED_POLICY = re.compile(
    r"\b(?:our|company|store|shop|house|the)\s+(?:\w+\s+){0,2}?(?:policy|policies|terms and conditions|terms of service|terms|t&cs)\b"
    r"[^.!?\n]{0,60}?\b(?:is|are|says|states|allows?|lets?|covers?|means|requires?|only|does not|doesn't|cannot|can't"
    r"|won't|will not|within|must)\b"
    r"|\b(?:it's|it is|as per|per|under|according to|in line with) (?:our |company |store )?(?:\w+ )?(?:policy|terms)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r".+?(?:[.!?]+(?=\s|$)|\n|$)")


@dataclass(frozen=True)
class StatedFact:
    kind: str  # "amount" or "policy"
    text: str
    terms: frozenset[str]  # normalised terms; vouched for when all are known


def _number(text: str) -> Decimal | None:
    word = text.lower().replace("-and-", "-").strip()
    if word in _NUMBER_WORDS:
        return Decimal(_NUMBER_WORDS[word])
    try:
        return Decimal(text.replace(",", "")).normalize()
    except InvalidOperation:
        return None


def _count(text: str) -> str:
    value = _number(text)
    return str(value) if value is not None else text.lower()


def amount_terms(text: str) -> list[tuple[str, str]]:
    """(span text, normalised term) for every amount of money and commercial percentage."""
    found: list[tuple[str, str]] = []
    for m in _MONEY.finditer(text):
        if m.group("pence"):
            value = _number(m.group("pence"))
            term = f"money:{(value or 0) / 100}"
        else:
            raw = m.group("pre") or m.group("post") or m.group("word") or ""
            term = f"money:{_count(raw.split('-')[0].split(' ')[0] if m.group('word') else raw)}"
        found.append((m.group(0).strip(), term))
    for m in _DISCOUNT.finditer(text):
        pct = m.group("pct") or m.group("pct2") or m.group("pct3")
        found.append((m.group(0).strip(), f"percent:{_count(pct)}" if pct else "percent:50"))
    return found


def _unit(unit: str) -> str:
    unit = unit.lower().replace("working", "business")
    for short, full in (("hrs", "hour"), ("hr", "hour"), ("mins", "minute"), ("min", "minute")):
        if unit.endswith(short):
            unit = unit[: -len(short)] + full
    return unit.removesuffix("s")


def policy_terms(sentence: str) -> set[str]:
    """The normalised terms a sentence states: durations, clock times, round-the-clock, absolutes."""
    terms: set[str] = set()
    for m in _DURATION.finditer(sentence):
        span = _count(m.group("n")) + (f"-{_count(m.group('m'))}" if m.group("m") else "")
        terms.add(f"time:{span} {_unit(m.group('unit'))}")
    for m in _CLOCK.finditer(sentence):
        terms.add("clock:" + re.sub(r"\s+", "", (m.group("t") or m.group("t2")).lower().replace(".", ":")))
    if _ROUND_THE_CLOCK.search(sentence):
        terms.add("time:24/7")
    for m in _DATE.finditer(sentence):
        month, day = (m.group("m1"), m.group("d1")) if m.group("m1") else (m.group("m2"), m.group("d2"))
        terms.add(f"date:{month.lower()[:3]} {int(day)}")
    for m in _ABSOLUTE.finditer(sentence):
        terms.add("absolute:" + re.sub(r"[\s-]+", " ", m.group(0).lower()))
    return terms


def stated_facts(text: str) -> list[StatedFact]:
    """Every amount and every policy statement in ``text`` (already ``fold``-ed)."""
    facts = [StatedFact("amount", span, frozenset([term])) for span, term in amount_terms(text)]
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0).strip()
        voiced = bool(_VOICE.search(sentence))
        if not sentence or not (voiced or _COMMITMENT.search(sentence)):
            continue
        stated = _COMMITMENT.search(sentence) or _TOPIC.search(sentence)
        terms = policy_terms(sentence) if stated else set()
        named = voiced and _NAMED_POLICY.search(sentence)
        if named and not terms:
            topic = re.search(r"\b(?:return|refund|exchange|cancel|warrant|deliver|ship|privacy|data|booking|price)",
                              sentence, re.IGNORECASE)
            terms.add("policy:" + (topic.group(0).lower() if topic else "general"))
        if terms:
            facts.append(StatedFact("policy", sentence, frozenset(terms)))
    return facts


def known_terms(texts: list[str]) -> frozenset[str]:
    """Every amount and policy term stated anywhere in ``texts`` (pack facts, the user's words).

    Statements from the pack count whoever states them: a pack fact need not say "we"."""
    terms: set[str] = set()
    for text in texts:
        terms.update(term for _, term in amount_terms(text))
        terms.update(policy_terms(text))
        if re.search(r"\bpolic(?:y|ies)\b", text, re.IGNORECASE):
            for topic in re.findall(r"\b(?:return|refund|exchange|cancel|warrant|deliver|ship|privacy|data|booking|price)",
                                    text, re.IGNORECASE):
                terms.add("policy:" + topic.lower())
            terms.add("policy:general")
    return frozenset(terms)


def pack_fact_texts(pack: DomainPack) -> list[str]:
    """What the pack states about the service: ``facts``, plus its resources' hours and notes."""
    texts = list(pack.facts)
    for entry in pack.locales.values():
        for res in entry.resources:
            texts += [res.hours or "", res.note or ""]
    return [t for t in texts if t]


def unvouched(text: str, known: frozenset[str]) -> list[StatedFact]:
    """The stated facts of ``text`` with a term nobody vouched for."""
    return [fact for fact in stated_facts(text) if not fact.terms <= known]
