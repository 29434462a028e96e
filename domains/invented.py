"""Details in a draft that nobody vouched for: the one check the output check and the evals share.

- contact details and personal data (``domains.contacts``): card numbers, security codes,
  emails, addresses, and phone numbers, web addresses or social media channels the pack does
  not list (``invented_contact`` / ``personal_data``);
- amounts of money and service policies (``domains.stated_facts``) stated neither in the pack
  (``facts``, resources' hours and notes) nor in the person's own message (``invented_fact``).
"""

from __future__ import annotations

from functools import cache

from domains.contacts import INVENTED_CONTACT, PERSONAL_DATA, Finding, contact_findings
from domains.schema import load_pack
from domains.stated_facts import INVENTED_FACT, known_terms, pack_fact_texts, unvouched
from domains.text import fold

__all__ = ["INVENTED_CONTACT", "INVENTED_FACT", "PERSONAL_DATA", "Finding", "invented_details"]


@cache
def _pack_terms(domain: str) -> frozenset[str]:
    return known_terms([fold(t) for t in pack_fact_texts(load_pack(domain))])


def invented_details(domain: str, text: str, *, user_text: str | None = None) -> list[Finding]:
    """Contact findings first, then invented facts; ``user_text`` is what the draft answers
    (its amounts, terms and the platforms it names may be repeated back; its phone numbers,
    emails and addresses may not)."""
    folded = fold(text)
    found = contact_findings(domain, folded, user_text=fold(user_text) if user_text else None)
    known = _pack_terms(domain)
    if user_text:
        known |= known_terms([fold(user_text)])
    found += [Finding(INVENTED_FACT, fact.kind, fact.text) for fact in unvouched(folded, known)]
    return found
