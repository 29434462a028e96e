"""Details in a draft that nobody vouched for: the one check the output check and the evals share.

- contact details and personal data (``domains.contacts``): card numbers, security codes,
  emails, addresses, and phone numbers, web addresses or social media channels the pack does
  not list (``invented_contact`` / ``personal_data``);
- amounts of money and service policies (``domains.stated_facts``) stated neither in the pack
  (``facts``, resources' hours and notes) nor in the person's own message (``invented_fact``);
- for a business (the customer_service domain), the events, offers and dated plans it
  announces (``domains.announcements``: "join us for our wine night on Friday") that neither the
  pack nor the person's message states (``invented_fact``, kind ``announcement``). A counsellor
  proposing next week's exercise announces nothing, so counseling drafts are not read for them.
"""

from __future__ import annotations

from functools import cache

from domains.announcements import announcement_terms, unvouched_announcements
from domains.contacts import INVENTED_CONTACT, PERSONAL_DATA, Finding, contact_findings
from domains.schema import load_pack
from domains.stated_facts import INVENTED_FACT, known_terms, pack_fact_texts, unvouched
from domains.text import fold

__all__ = ["INVENTED_CONTACT", "INVENTED_FACT", "PERSONAL_DATA", "Finding", "invented_details"]

# The domains whose drafts speak for a business that holds events and makes offers.
_ANNOUNCING_DOMAINS = frozenset({"customer_service"})


@cache
def _pack_terms(domain: str) -> frozenset[str]:
    return known_terms([fold(t) for t in pack_fact_texts(load_pack(domain))])


@cache
def _pack_announcement_terms(domain: str) -> frozenset[str]:
    return frozenset().union(*(announcement_terms(fold(t)) for t in pack_fact_texts(load_pack(domain))))


def invented_details(domain: str, text: str, *, user_text: str | None = None) -> list[Finding]:
    """Contact findings first, then invented facts (amounts and policies, then announcements);
    ``user_text`` is what the draft answers (its amounts, terms, platforms and the events, offers
    and times it names may be repeated back; its phone numbers, emails and addresses may not)."""
    folded = fold(text)
    found = contact_findings(domain, folded, user_text=fold(user_text) if user_text else None)
    known = _pack_terms(domain)
    if user_text:
        known |= known_terms([fold(user_text)])
    found += [Finding(INVENTED_FACT, fact.kind, fact.text) for fact in unvouched(folded, known)]
    if domain in _ANNOUNCING_DOMAINS:
        vouched = _pack_announcement_terms(domain) | (announcement_terms(fold(user_text)) if user_text else set())
        stated = {f.text for f in found}
        found += [
            Finding(INVENTED_FACT, fact.kind, fact.text)
            for fact in unvouched_announcements(folded, frozenset(vouched))
            if fact.text not in stated
        ]
    return found
