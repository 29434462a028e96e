"""Invented amounts and policies: found in drafts, allowed when the pack or the person states them."""

from __future__ import annotations

import pytest

from domains.invented import INVENTED_CONTACT, INVENTED_FACT, invented_details
from domains.output_check import check_output
from domains.schema import load_pack
from domains.stated_facts import known_terms, pack_fact_texts, unvouched
from domains.text import fold


@pytest.mark.parametrize(
    ("domain", "text", "kind"),
    [
        ("customer_service", "As a thank-you, here is a code for 15% off your next visit.", "amount"),
        ("customer_service", "The repair normally costs about $120, so this one is on us.", "amount"),
        ("customer_service", "It's only fifty pounds to upgrade to the premium plan.", "amount"),
        ("customer_service", "Our standard delivery charge is 99p per order.", "amount"),
        ("customer_service", "Under our 30-day refund policy you can send it back.", "policy"),
        ("customer_service", "We offer free returns on every order, no questions asked.", "policy"),
        ("customer_service", "Our team replies to every message within 24 hours.", "policy"),
        ("customer_service", "We're open seven days a week, so pop in any time.", "policy"),
        ("customer_service", "Your refund will be processed within 3-5 business days.", "policy"),
        ("customer_service", "Unfortunately it is our policy not to exchange sale items.", "policy"),
        ("customer_service", "This offer is valid until March 31st.", "policy"),
        ("counseling", "Everything you write here is strictly confidential.", "policy"),
        ("counseling", "Our counsellors are available from 9am to 5pm on weekdays.", "policy"),
        ("counseling", "A session with one of our therapists costs $40.", "amount"),
    ],
)
def test_invented_amounts_and_policies_are_found(domain: str, text: str, kind: str) -> None:
    findings = [f for f in invented_details(domain, text) if f.category == INVENTED_FACT]
    assert [f.kind for f in findings][:1] == [kind], findings
    assert check_output(domain, text).block


@pytest.mark.parametrize(
    ("domain", "text"),
    [
        ("customer_service", "We're so sorry the kettle stopped working after two days."),  # the review says so
        ("customer_service", "Sorry you paid £45 for a jug that arrived cracked."),
        ("customer_service", "Thank you for the review. Please contact our Customer Care team."),
        ("customer_service", "Our Customer Care team will look at escalated reviews within one working day."),  # pack
        ("customer_service", "It cost 24.99 and arrived at 10am, thanks for telling us."),
        ("customer_service", "We're 100% behind our staff and will pass this on."),
        ("counseling", "Samaritans are free to call on 116 123, 24/7."),  # the pack lists them so
        ("counseling", "Lifeline in Australia is on 13 11 14, and they're open 24 hours."),
        ("counseling", "I'm here to listen for as long as you need tonight."),
        ("counseling", "It's been three weeks of poor sleep for you, and that is exhausting."),
        ("counseling", "Maybe message a friend on WhatsApp and go for a 10 minute walk."),
    ],
)
def test_stated_by_the_pack_or_the_person_or_not_a_fact(domain: str, text: str) -> None:
    review = "My £45 kettle stopped working after 2 days and the jug arrived cracked. Three weeks of poor sleep."
    assert invented_details(domain, text, user_text=review) == []


def test_the_persons_words_vouch_for_amounts_and_terms_not_for_contacts() -> None:
    draft = "Sorry our 14-day return window felt short for a £30 lamp. Call us on 0161 496 0000."
    review = "You only give a 14 day return window on a £30 lamp?! Call me on 0161 496 0000."
    found = invented_details("customer_service", draft, user_text=review)
    assert [(f.category, f.kind) for f in found] == [(INVENTED_CONTACT, "phone number")]
    assert {f.kind for f in invented_details("customer_service", draft)} == {"phone number", "amount", "policy"}


def test_facts_the_pack_lists_may_be_stated() -> None:
    pack = load_pack("customer_service").model_copy(update={"facts": [
        "Returns are accepted within 30 days of delivery.",
        "Standard delivery costs £3.95 and is free on orders over £50.",
        "The shop is open until 8pm, seven days a week.",
    ]})
    known = known_terms([fold(t) for t in pack_fact_texts(pack)])
    listed = "Our 30-day returns policy covers this, and delivery is £3.95 (free over £50). We're open until 8pm."
    assert unvouched(fold(listed), known) == []
    invented = unvouched(fold("We give refunds within 60 days and we're open until 10pm."), known)
    assert [f.kind for f in invented] == ["policy"]


def test_a_promised_voucher_is_still_named_compensation() -> None:
    result = check_output("customer_service", "Here's a $50 voucher for your trouble.")
    assert result.block and result.category == "unauthorised_compensation" and result.layer == "rules"
    fact = check_output("customer_service", "Our returns window is 60 days from purchase.")
    assert fact.block and fact.category == INVENTED_FACT and fact.layer == "facts"
    assert fact.reasons and "policy" in fact.reasons[0]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Follow us on Instagram for our latest news!", "social media"),
        ("Find us on TikTok and say hi.", "social media"),
        ("Check out our Facebook page for updates.", "social media"),
        ("Tag @brightkettles in your photos!", "social media handle"),
        ("Share this story in our Facebook page, Twitter, and Instagram posts.", "social media"),
        ("Leave us a review on Yelp if you get a minute.", "social media"),
        ("Stay tuned on our socials for next month's menu.", "social media"),
    ],
)
def test_social_media_plugs_are_invented_contacts(text: str, kind: str) -> None:
    found = invented_details("customer_service", text)
    assert [(f.category, f.kind) for f in found] == [(INVENTED_CONTACT, kind)], found


@pytest.mark.parametrize(
    ("domain", "text", "user_text"),
    [
        ("counseling", "Comparing yourself to people on Instagram can make a hard week harder.", None),
        ("customer_service", "We're glad you found us on TikTok!", "Found this place on TikTok and loved it."),
        ("customer_service", "Thank you for the lovely review, we hope to see you again.", None),
    ],
)
def test_a_platform_named_without_a_plug_or_by_the_person_passes(domain: str, text: str, user_text: str | None) -> None:
    assert invented_details(domain, text, user_text=user_text) == []


def test_emails_are_not_handles() -> None:
    found = invented_details("customer_service", "Write to care@brightkettles.com please.")
    assert [f.kind for f in found] == ["email"]
