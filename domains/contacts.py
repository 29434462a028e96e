"""Contact details and personal data in a draft, found by code rather than learned.

A model that makes up a phone number or a web address sends a person in distress, or a
customer, somewhere nobody checked. Card numbers (Luhn-valid), security codes, emails, phone
numbers (also spelled with letters, "1-800-FLOWERS"), social-media handles and plugs ("follow us
on Instagram", "our Facebook page"), street addresses and postcodes are found with patterns; a
phone number, web address, platform or handle that the domain pack lists (its helplines,
emergency numbers and web sites) is allowed. ``domains.invented`` joins these findings with
invented amounts and policies (``domains.stated_facts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from domains.schema import DomainPack, load_pack

PERSONAL_DATA = "personal_data"
INVENTED_CONTACT = "invented_contact"

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL = re.compile(
    r"\b(?:https?://)?(?:www\.)?((?:[a-z0-9-]+\.)+(?:com|org|net|info|io|co|uk|ie|ca|au|de|fr|es|eu|us|help|support|care|app|online|site|nz|biz))\b(?:/[^\s)]*)?",
    re.IGNORECASE,
)
# Digit runs with the separators phone and card numbers are written with.
_DIGITS = re.compile(r"(?<![\w.,/])\+?\(?\d[\d \-().]{1,22}\d(?![\w/%])|(?<![\w.,/])\d{2,}(?![\w/%])")
_CVV = re.compile(r"\b(?:cvv2?|cvc2?|cv2|csc|security code)\b\D{0,12}\d{3,4}\b", re.IGNORECASE)
# A secret that opens an account, with its value: "your password is 'Summer2024!'", "PIN: 4821",
# "Passwort lautet ...". Asking for one ("never share your password") names no value.
_CREDENTIAL = re.compile(
    r"\b(?:password|passcode|passphrase|pin(?: code| number)?|one-time (?:code|password)|otp|login code"
    r"|security (?:answer|question answer)|mot de passe|contrase[nñ]a|passwort|kennwort)\b"
    r"(?:\s+(?:is|was|has been (?:reset|set|changed) to|(?:re)?set to|changed to|lautet|est|es)\b|\s*[:=])"
    r"\s*[\"'\u2018\u201c]?(?=[^\s\"'\u2019\u201d]*[\d!@#$%^&*_])[^\s\"'\u2019\u201d]{4,}",
    re.IGNORECASE,
)
_STREET = re.compile(
    r"\b\d{1,5}[a-z]?,? (?:[A-Z][a-z]+ ){1,3}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Way|Court|Ct|Crescent|Place|Pl|Terrace|Boulevard|Blvd|Gardens|Grove|Hill|Square|Strasse|Straße)\b\.?"
)
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b")
# Social networks and review sites, and social media as such ("our socials").
_PLATFORM = (
    r"facebook|instagram|insta|twitter|tiktok|linkedin|youtube|pinterest|snapchat|whatsapp|telegram|discord|reddit"
    r"|mastodon|bluesky|yelp|tripadvisor|trustpilot|google (?:reviews?|maps|business)"
    r"|social media|socials|social (?:networks?|channels?|pages?|accounts?|platforms?)"
)
_PLATFORM_RX = re.compile(rf"\b(?:{_PLATFORM})\b", re.IGNORECASE)
# A platform becomes a plug when the sentence speaks for the service ("our Facebook page",
# "follow us on ...", "we post ...") or invites the reader to promote it there ("share your visit
# on ...", "leave a review on ...", "stay tuned on ..."). Messaging a friend on WhatsApp or apps
# like Instagram named in passing are neither.
_PLUG_CUE = re.compile(
    r"\b(?:we|we're|we'll|we've|us|our|ours)\b"
    r"|\b(?:follow|subscribe|stay tuned|keep up with|tag|like and share|spread the word|share (?:it|this|them))\b"
    r"|\b(?:leave|write|post|drop|give)\s+(?:us\s+)?(?:a|an|your)\s+(?:[\w-]+\s+){0,2}?(?:review|rating|shout-?out|post)\b"
    r"|\bshare\s+(?:this|that|your|the|these|those|it|them|a|some)\b(?:\s+\w+){0,3}?\s+"
    r"(?:story|stories|experience|visit|stay|meal|dinner|evening|night|day|photos?|pictures?|pics|review|feedback"
    r"|news|love|moment|moments|memories|celebration)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
# Words just before a short number that make it something to call or text ("call 55123").
_DIAL_CUE = re.compile(
    r"\b(?:call|ring|dial|phone|text|txt|sms|whatsapp|hotline|helpline|line|number|no\.?|tel\.?|on)\W{0,3}$"
    r"|\b(?:text|txt|sms|send)\W+\S+\W+to\W{0,3}$"  # "text HOME to 741741"
    r"|\b(?:line|service|helpline|hotline|us|them|number|team|desk|textline|chat)\s+at\W{0,3}$",  # "the text service at 686868"
    re.IGNORECASE,
)
# A social-media handle ("message @ShopHelp on Twitter"); not the "@" inside an email address.
_HANDLE = re.compile(r"(?<![\w.@])@[A-Za-z0-9_]{3,30}\b(?!\.[a-z])")
# A phone number spelled with letters ("1-800-FLOWERS", "55-TEEN").
_VANITY = re.compile(r"(?<![\w-])(?:\+?\d{1,3}[ -])?(?:\d{2,4}[ -])?\d{2,4}-[A-Z]{3,8}\b(?:[ -]?\d{1,4}\b)?")
_NOT_VANITY = frozenset({"HOUR", "HOURS", "DAY", "DAYS", "WEEK", "WEEKS", "YEAR", "YEARS", "MONTH", "STAR", "PACK", "INCH", "MINUTE"})
# A number someone is asked to call is the business's or a helpline's: invented if not in the pack.
_BUSINESS_CUE = re.compile(
    r"\b(?:call|ring|dial|text|contact|reach|email|e-mail|visit|us|our|team|line|helpline|hotline|support|care|service|desk"
    r"|message|dm|tweet|follow|tag|find)\b",
    re.IGNORECASE,
)


# ... unless it is plainly someone's own ("her mobile", "the manager's number").
_PERSONAL_CUE = re.compile(
    r"\b(?:mobile|cell|personal|home|private|his|her|their|\w+'s|manager|owner|colleague|staff|employee"
    r"|driver|chef|waiter|waitress|receptionist|technician|engineer|customer|guest)\b",
    re.IGNORECASE,
)


def _category_in_reviews(before: str) -> str:
    if _PERSONAL_CUE.search(before) or not _BUSINESS_CUE.search(before):
        return PERSONAL_DATA
    return INVENTED_CONTACT


@dataclass(frozen=True)
class Finding:
    """Something in a draft that nobody vouched for: a contact detail, personal data, a fact."""

    category: str
    kind: str
    text: str

    def reason(self) -> str:
        return f"{self.category}: {self.kind} {self.text!r}"


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _only_digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass(frozen=True)
class AllowedContacts:
    numbers: frozenset[str]
    domains: frozenset[str]
    channels: str = ""  # the pack's resource text, lower-cased: a platform or handle named there is listed

    @classmethod
    def from_pack(cls, pack: DomainPack) -> AllowedContacts:
        numbers: set[str] = set()
        domains: set[str] = set()
        listed: list[str] = []
        for entry in pack.locales.values():
            fields = [entry.emergency_number or ""]
            for res in entry.resources:
                fields += [res.phone or "", res.text or "", res.url or "", res.note or "", res.name]
            listed += fields
            for value in fields:
                # "0800 111 0 111 or 0800 111 0 222", "112 (or 15 for SAMU)", "HOME to 741741"
                for part in re.split(r"\bor\b|[(),]|\bto\b|\bfor\b", value):
                    digits = _only_digits(part)
                    if digits:
                        numbers.add(digits)
                for m in _URL.finditer(value):
                    domains.add(m.group(1).lower())
        return cls(frozenset(numbers), frozenset(domains), " ".join(listed).lower())


def _domain_allowed(domain: str, allowed: frozenset[str]) -> bool:
    domain = domain.lower()
    return any(domain == a or domain.endswith("." + a) for a in allowed)


def find_contacts(
    text: str, allowed: AllowedContacts, *, domain: str, user_text: str | None = None
) -> list[Finding]:
    """Every card number, security code, password or PIN with its value, email, social-media handle or plug, unlisted phone
    number (digits or letters), web address or street address in ``text``. In the counseling
    domain every contact detail a model adds is ``invented_contact``; in reviews, a number or
    handle someone is asked to contact is ``invented_contact`` and other people's numbers,
    emails, cards and addresses are ``personal_data``; a plug of the service's own social media
    is ``invented_contact`` in both (``social_plugs``; ``user_text`` is the message the draft
    answers)."""
    found: list[Finding] = []
    emails = list(_EMAIL.finditer(text))
    for m in emails:
        before = text[max(0, m.start() - 40) : m.start()]
        category = INVENTED_CONTACT if domain == "counseling" else _category_in_reviews(before)
        found.append(Finding(category, "email", m.group(0)))
    for m in _HANDLE.finditer(text):
        if m.group(0).lower() in allowed.channels:
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        category = INVENTED_CONTACT if domain == "counseling" else _category_in_reviews(before)
        found.append(Finding(category, "social media handle", m.group(0)))
    for m in _VANITY.finditer(text):
        if m.group(0).rsplit("-", 1)[-1].split()[0] in _NOT_VANITY:
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        category = INVENTED_CONTACT if domain == "counseling" else _category_in_reviews(before)
        found.append(Finding(category, "phone number", m.group(0)))
    for m in _CVV.finditer(text):
        found.append(Finding(PERSONAL_DATA, "security code", m.group(0)))
    for m in _CREDENTIAL.finditer(text):
        found.append(Finding(PERSONAL_DATA, "password or PIN", m.group(0)))
    for m in _URL.finditer(text):
        if any(e.start() <= m.start() < e.end() for e in emails) or _domain_allowed(m.group(1), allowed.domains):
            continue
        if re.fullmatch(r"[\d.]+", m.group(1)):
            continue  # "2.5.com" is not a thing; "3.50" is a price
        found.append(Finding(INVENTED_CONTACT, "web address", m.group(0)))
    for m in _DIGITS.finditer(text):
        raw = m.group(0).strip(" -.()")
        digits = _only_digits(raw)
        if digits in allowed.numbers or not digits:
            continue
        if 13 <= len(digits) <= 19 and (luhn_valid(digits) or re.fullmatch(r"\d{4}([ -])\d{4}\1\d{4}\1\d{4}", raw)):
            found.append(Finding(PERSONAL_DATA, "card number", raw))
            continue
        before = text[max(0, m.start() - 24) : m.start()]
        is_phone = 7 <= len(digits) <= 15 and (
            bool(re.search(r"[ \-()+]", raw)) or raw.startswith("0") or bool(_DIAL_CUE.search(before))
        )
        is_short_code = 3 <= len(digits) < 7 and bool(_DIAL_CUE.search(before))
        if not (is_phone or is_short_code):
            continue
        if _looks_like_reference(text, m.start()):
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        category = INVENTED_CONTACT if domain == "counseling" else _category_in_reviews(before)
        found.append(Finding(category, "phone number", raw))
    for rx in (_STREET, _UK_POSTCODE):
        for m in rx.finditer(text):
            found.append(Finding(PERSONAL_DATA, "address", m.group(0)))
    found += social_plugs(text, allowed, user_text=user_text)
    return found


def social_plugs(text: str, allowed: AllowedContacts, *, user_text: str | None = None) -> list[Finding]:
    """Sentences that send the reader to a social network or review site nobody listed: the
    platform is named in a sentence that speaks for the service or invites the reader there.
    A platform the pack lists, or that the person named themselves ("I found you on TikTok"),
    is not invented."""
    vouched = (user_text or "").lower()
    found: list[Finding] = []
    for sentence in _SENTENCE.finditer(text):
        platforms = [m.group(0).lower() for m in _PLATFORM_RX.finditer(sentence.group(0))]
        if not platforms or not _PLUG_CUE.search(sentence.group(0)):
            continue
        if all(p in allowed.channels or p in vouched for p in platforms):
            continue
        found.append(Finding(INVENTED_CONTACT, "social media", sentence.group(0).strip()))
    return found


_REFERENCE_CUE = re.compile(
    r"\b(?:order|ref|reference|ticket|case|booking|tracking|invoice|confirmation|account|receipt|room|table|flight|item|sku|model|serial)\b(?: number| no\.?| id| #)?\W{0,3}$",
    re.IGNORECASE,
)


def _looks_like_reference(text: str, start: int) -> bool:
    return bool(_REFERENCE_CUE.search(text[max(0, start - 30) : start]))


@cache
def allowed_contacts(domain: str) -> AllowedContacts:
    return AllowedContacts.from_pack(load_pack(domain))


def contact_findings(domain: str, text: str, *, user_text: str | None = None) -> list[Finding]:
    return find_contacts(text, allowed_contacts(domain), domain=domain, user_text=user_text)
