"""Invented amounts and policies: found in drafts, allowed when the pack or the person states them."""

from __future__ import annotations

import pytest

from domains.announcements import ANNOUNCEMENT, announcement_terms, unvouched_announcements
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


_DEMO_REVIEW = "Best anniversary dinner ever! The staff made it so special, we'll be back!!"


@pytest.mark.parametrize(
    ("text", "user_text"),
    [
        ("We've got a fantastic dinner planned, with a special menu, a live band, and a special dessert. "
         "We'll be back in 2 weeks.", _DEMO_REVIEW),
        ("Next month we're launching a brand-new brunch menu, so do come and try it.", None),
        ("Join us for our wine night on Friday!", "Lovely wine list and friendly staff."),
        ("We've got a special tasting menu coming, and we can't wait for you to try it.", "The menu was great."),
        ("Our new loyalty programme starts soon, so keep an eye out.", None),
        ("Good news: we're reopening after the refurbishment next month.", None),
        ("Don't miss the summer sale next week!", None),
        ("Come along to the pub quiz night every Thursday, it's great fun.", "Great pub, we'll be back."),
        ("We're hosting a charity fundraiser on the 14th of May and would love to see you there.", None),
        ("Look out for our new autumn collection, in stores in two weeks.", "Love the jackets!"),
        ("There's live music every Saturday from 8pm, so bring your friends!", None),
        ("We'll be opening a second branch in Leeds this summer.", None),
        ("We have a little surprise lined up for your next visit.", None),
        ("Keep an eye out for our Christmas giveaway!", None),
    ],
)
def test_announced_events_and_offers_are_invented(text: str, user_text: str | None) -> None:
    found = invented_details("customer_service", text, user_text=user_text)
    assert [(f.category, f.kind) for f in found][:1] == [(INVENTED_FACT, ANNOUNCEMENT)], found
    result = check_output("customer_service", text, user_text=user_text)
    assert result.block and result.category == INVENTED_FACT and result.layer == "facts"


@pytest.mark.parametrize(
    ("text", "user_text"),
    [
        ("Thank you so much, we hope to see you again soon!", None),
        ("We look forward to welcoming you back.", None),
        ("Thanks for the feedback, we'll pass your comments to the kitchen team.", None),
        ("We'd love to hear more, please contact us through the app.", None),
        ("Sorry about the wait, our team will look into the delay.", None),
        ("We're so sorry your meal arrived cold, and we apologise for the wait.", None),
        ("Thank you for choosing us for your special night, we hope to welcome you back soon.", None),
        ("We'd love to have you back next time you're in town.", None),
        ("We look forward to hosting you again next summer.", "We'll be back next summer!"),
        ("Of course, we'll look into it tomorrow.", None),
        ("Sorry the event didn't go as planned.", "The event was a shambles."),
        ("We'll arrange collection of the faulty kettle.", None),
        ("Thank you for visiting our shop, we hope you'll be back next week.", None),
        ("We'd like to offer our sincere apologies, and we're sorry the sales team was rude.", None),
        ("It was a pleasure to host your party, thank you for the lovely review.", None),
        ("We're glad you enjoyed the new menu, and we'll let the chef know.", "Loved the new menu."),
        ("Thanks for coming to the quiz night on Thursday!", "Great quiz night on Thursday."),
        ("We're looking forward to seeing you in the store!", None),
    ],
)
def test_ordinary_replies_announce_nothing(text: str, user_text: str | None) -> None:
    assert invented_details("customer_service", text, user_text=user_text) == []


def test_the_persons_words_vouch_for_the_event_and_its_time_not_for_another() -> None:
    review = "Come for the jazz night on Fridays, it's brilliant."
    assert invented_details("customer_service", "See you at our jazz night next Friday!", user_text=review) == []
    found = invented_details("customer_service", "See you at our jazz night on Saturday!", user_text=review)
    assert [f.kind for f in found] == [ANNOUNCEMENT]


def test_offers_the_pack_lists_may_be_announced() -> None:
    pack = load_pack("customer_service").model_copy(update={"facts": [
        "Live jazz every Friday from 8pm.",
        "The autumn tasting menu starts on 1 October.",
    ]})
    known = frozenset().union(*(announcement_terms(fold(t)) for t in pack_fact_texts(pack)))
    listed = "Join us for live jazz this Friday from 8pm! Our new autumn tasting menu starts on October 1st."
    assert unvouched_announcements(fold(listed), known) == []
    invented = unvouched_announcements(fold("Our wine night on Saturday is not to be missed."), known)
    assert [f.kind for f in invented] == [ANNOUNCEMENT]


def test_counseling_drafts_are_not_read_for_announcements() -> None:
    draft = "Next week we could try a new breathing exercise, and there's a group session on Friday."
    assert invented_details("counseling", draft) == []
