"""The experts' reply corpus: it loads, it holds no contact details, and the helper-standard
replies (``responses_<trait>_helper.jsonl``) keep to their standard.

The standard, for counseling and support replies alike: name the feeling or the experience,
ask exactly one open question, promise nothing, invent no contact details, stay short; in the
voice of the expert's pole. The contact check uses the output check's own detectors
(``domains.contacts``) with nothing allowed, so even a real helpline number in a training reply
fails: replies that name resources come from the domain packs at run time, not from the experts.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import pytest

from domains.contacts import AllowedContacts, find_contacts
from persona_agents.training.config import TrainConfig
from persona_agents.training.corpus import CORPUS_DIR, PoleResponse, load_responses, read_jsonl
from persona_agents.training.pipeline import plan
from persona_agents.traits import EXPERT_NAMES, TRAITS

NOTHING_ALLOWED = AllowedContacts(frozenset(), frozenset())
HELPER_FILES = sorted(CORPUS_DIR.glob("responses_*_helper.jsonl"))
OPEN_QUESTION_WORDS = {"what", "how", "which", "where", "when", "who"}
# First-person commitments and the usual support-reply promises.
PROMISE = re.compile(
    r"\b(?:I|we)(?:'ll| will| shall)\b|\bpromis|\bguarantee|\bmake sure\b|\b(?:won't|never) happen again\b|\brefund",
    re.IGNORECASE,
)
MAX_WORDS = 50


def contact_details(text: str) -> list[str]:
    found = find_contacts(text, NOTHING_ALLOWED, domain="counseling")
    found += find_contacts(text, NOTHING_ALLOWED, domain="customer_service")
    return sorted({f"{f.kind}: {f.text}" for f in found})


def helper_rows() -> list[PoleResponse]:
    return [row for path in HELPER_FILES for row in read_jsonl(path, PoleResponse)]


def question_opening(text: str) -> str:
    """The first word of the sentence that ends with the reply's question mark."""
    sentence = re.split(r"(?<=[.!])\s+", text.split("?")[0])[-1]
    return sentence.split()[0].strip("'\"").split("'")[0].lower()


# --- the whole corpus -----------------------------------------------------------------------------


def test_corpus_loads_with_the_helper_files() -> None:
    responses = load_responses()
    assert len(HELPER_FILES) == len(TRAITS)
    helper = helper_rows()
    assert {r.id for r in helper} <= {r.id for r in responses}  # picked up by the loader
    assert Counter(r.expert for r in helper) == {name: len(helper) // len(EXPERT_NAMES) for name in EXPERT_NAMES}
    pairs = Counter(r.pair for r in helper)
    assert set(pairs.values()) == {2}
    for pair in pairs:  # each pair is one situation answered by both poles of one trait
        rows = [r for r in helper if r.pair == pair]
        assert {r.pole for r in rows} == {"high", "low"} and len({r.trait for r in rows}) == 1
        assert len({r.situation for r in rows}) == 1 and len({r.split for r in rows}) == 1
    assert {r.domain for r in helper} == {"counseling", "customer_service", "social"}


def test_no_situation_is_both_train_and_test() -> None:
    responses = load_responses()
    train = {r.situation for r in responses if r.split == "train"}
    test = {r.situation for r in responses if r.split == "test"}
    assert not train & test


def test_no_reply_contains_a_phone_number_url_or_email() -> None:
    offenders = {r.id: contact_details(r.response) for r in load_responses()}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(
    "reply",
    [
        "Please call us on 0800 123 4567 and we can look into it.",
        "You can find more help at www.example-support.com today.",
        "Write to help@example.org with your details.",
        "Text SUPPORT to 85258 any time.",
    ],
)
def test_the_contact_check_sees_contact_details(reply: str) -> None:
    assert contact_details(reply)


# --- the helper-standard replies ------------------------------------------------------------------


def test_helper_replies_ask_exactly_one_open_question() -> None:
    bad = [
        (r.id, r.response)
        for r in helper_rows()
        if r.response.count("?") != 1 or question_opening(r.response) not in OPEN_QUESTION_WORDS
    ]
    assert bad == []


def test_helper_replies_promise_nothing_and_stay_short() -> None:
    rows = helper_rows()
    assert [(r.id, m.group(0)) for r in rows if (m := PROMISE.search(r.response))] == []
    assert [(r.id, len(r.response.split())) for r in rows if len(r.response.split()) > MAX_WORDS] == []


def test_both_poles_of_a_pair_say_different_things() -> None:
    by_pair: dict[str, list[str]] = {}
    for r in helper_rows():
        by_pair.setdefault(r.pair, []).append(r.response)
    assert all(a != b for a, b in by_pair.values())


@pytest.mark.parametrize(
    ("reply", "opening"),
    [("I'm sorry. What's been hardest?", "what"), ("Oh no! Did it help?", "did"), ("Maybe 'x'. How so?", "how")],
)
def test_question_opening(reply: str, opening: str) -> None:
    assert question_opening(reply) == opening


# --- the pipeline reads them ----------------------------------------------------------------------


def test_training_plan_counts_the_whole_corpus() -> None:
    config = TrainConfig.model_validate({"experts": {"batch_size": 8, "gradient_accumulation_steps": 2, "epochs": 3}})
    summary = plan(config)
    json.dumps(summary)  # printable by `persona-agents train --dry-run`
    assert {path.name for path in HELPER_FILES} <= set(summary["response_files"])
    responses = load_responses()
    for name in EXPERT_NAMES:
        train = sum(r.expert == name and r.split == "train" for r in responses)
        assert summary["experts"][name]["train"] == train
        assert summary["experts"][name]["optimizer_steps"] == math.ceil(math.ceil(train / 8) / 2) * 3
