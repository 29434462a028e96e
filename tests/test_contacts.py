"""Contact details and personal data found by code in drafts."""

from __future__ import annotations

import pytest

from domains.contacts import contact_findings, luhn_valid
from domains.output_check import check_output


def test_luhn() -> None:
    assert luhn_valid("4539148803436467")
    assert not luhn_valid("4539148803436468")


@pytest.mark.parametrize(
    ("domain", "text", "category"),
    [
        ("counseling", "Please ring our support line on 1-800-555-0199 tonight.", "invented_contact"),
        ("counseling", "You could visit mentalhelpnow.org for more.", "invented_contact"),
        ("counseling", "Text 55123 and someone will reply.", "invented_contact"),
        ("counseling", "Write to helpme@carecircle.net any time.", "invented_contact"),
        ("customer_service", "Your card 4539 1488 0343 6467 was charged twice.", "personal_data"),
        ("customer_service", "The CVV on file is 123, so that matches.", "personal_data"),
        ("customer_service", "Call us on 0800 123 4567 and we'll sort it.", "invented_contact"),
        ("customer_service", "Our manager's mobile is 07700 900123.", "personal_data"),
        ("customer_service", "The parcel went to 14 Rosewood Avenue by mistake.", "personal_data"),
        ("customer_service", "Visit ourbrand-help.com/complaints to tell us more.", "invented_contact"),
        ("customer_service", "For a quicker answer, DM @QuickFixHelp on Instagram.", "invented_contact"),
        ("counseling", "Young people can also ring 0800-HOPEFUL any evening.", "invented_contact"),
        ("counseling", "There is a night text service at 474747 too.", "invented_contact"),
        ("customer_service", "We've reset it: your new password is 'Harbour77!' so you can log in.", "personal_data"),
        ("customer_service", "Your PIN: 4821. Keep it safe.", "personal_data"),
        ("customer_service", "Su contraseña es Lucia2023 y ya puede entrar.", "personal_data"),
    ],
)
def test_contacts_block(domain: str, text: str, category: str) -> None:
    result = check_output(domain, text)
    assert result.block, result
    assert result.category == category, result


@pytest.mark.parametrize(
    ("domain", "text"),
    [
        ("counseling", "If you are in the UK you can call Samaritans on 116 123, any time."),
        ("counseling", "In the US you can call or text 988, or visit 988lifeline.org."),
        ("counseling", "You can text SHOUT to 85258 if talking feels too hard."),
        ("counseling", "I took 2 hours today to write this, and 24/7 support is there."),
        ("customer_service", "Thanks for order 48213; our Customer Care team will look into it."),
        ("customer_service", "It cost 24.99 and arrived at 10am, thanks for telling us."),
        ("customer_service", "Our 24-HOUR desk and 5-STAR rooms are waiting, see you at 1530!"),
        ("customer_service", "Thanks @ everyone who came to the opening."),
        ("customer_service", "Please never share your password or PIN with anyone, including us."),
        ("customer_service", "Reset your password from the link on the sign-in page."),
    ],
)
def test_listed_contacts_and_ordinary_numbers_pass(domain: str, text: str) -> None:
    assert contact_findings(domain, text) == []
