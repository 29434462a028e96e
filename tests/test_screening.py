"""screen_message and analyse_review on the real encoder and shipped weights."""

from __future__ import annotations

import pytest

from domains.classifier import ClassifierError, load_classifier_from
from domains.reviews import analyse_review
from domains.screening import InvalidInputError, ScreenResult, screen_message


@pytest.fixture(scope="module")
def screen():
    # Warm the encoder and both heads once for the module.
    screen_message("counseling", "hello")
    screen_message("customer_service", "hello")
    return screen_message


@pytest.mark.parametrize(
    "text",
    [
        "I want to kill myself",
        "I wish I could go to sleep and not wake up",
        "everyone would be better off without me",
        "I've been stockpiling my pills",
        "I cut myself again last night",
        "I took the whole bottle",
        "the voices tell me to hurt my sister",
        "my dad hits me and my little brother",
        "k1ll mys3lf",
        "s.u.i.c.i.d.e",
        "thinking about unaliving myself",
        "kms",
        "Quiero morir",
    ],
)
def test_crisis_escalates(screen, text: str) -> None:
    res = screen("counseling", text)
    assert isinstance(res, ScreenResult)
    assert res.escalate, (text, res)
    assert res.category != "safe"
    assert 0.0 <= res.score <= 1.0 and res.reasons


@pytest.mark.parametrize(
    "text",
    [
        "I'm not suicidal, just tired",
        "I would never hurt myself",
        "no thoughts of ending it",
        "this traffic is killing me",
        "I could murder a burger",
        "the wings nearly killed me lol",
        "dying of laughter",
        "my phone died",
        "killing it at work",
        "I'm dead 😂",
        "What does a counselor do?",
        "I had a rough day at work",
    ],
)
def test_negations_idioms_and_everyday_do_not_escalate(screen, text: str) -> None:
    res = screen("counseling", text)
    assert not res.escalate, (text, res)
    assert res.category == "safe"


def test_history_window_escalates_ambiguous_follow_up(screen) -> None:
    follow_up = "it's all planned out for this weekend"
    alone = screen("counseling", follow_up)
    with_history = screen("counseling", follow_up, ["I don't want to be here anymore"])
    assert with_history.escalate
    assert with_history.score >= alone.score
    assert screen(
        "counseling", "I have the pills ready", ["I don't want to be here anymore"]
    ).escalate


def test_history_does_not_escalate_a_safe_turn(screen) -> None:
    res = screen("counseling", "thanks, what time is my appointment?", ["I had a stressful week"])
    assert not res.escalate


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("The charger caught fire and burned my hand", "product_safety_injury"),
        ("We all got food poisoning from the chicken", "health"),
        ("I'll be contacting my lawyer", "legal_threat"),
        ("They refused to serve us because we're black", "discrimination"),
        ("Your driver keeps messaging me on instagram", "staff_harassment"),
        ("I received another customer's invoice with their address", "privacy_data_leak"),
    ],
)
def test_customer_service_escalations(screen, text: str, category: str) -> None:
    res = screen("customer_service", text, rating=1)
    assert res.escalate, res
    assert res.category == category, res


@pytest.mark.parametrize(
    "text",
    [
        "The delivery was late and the food was cold",
        "these brownies are to die for",
        "Great staff, lovely evening",
    ],
)
def test_customer_service_ordinary_reviews(screen, text: str) -> None:
    assert not screen("customer_service", text, rating=2).escalate


def test_rating_is_only_a_weak_signal(screen) -> None:
    text = "The delivery was late"
    assert not screen("customer_service", text, rating=1).escalate
    low = screen("customer_service", text, rating=1).score
    high = screen("customer_service", text, rating=5).score
    assert low >= high
    assert screen("customer_service", "I'm going to sue you", rating=5).escalate


@pytest.mark.parametrize("bad", ["", "   ", None, 12])
def test_invalid_text_raises(screen, bad) -> None:
    with pytest.raises(InvalidInputError):
        screen("counseling", bad)


def test_invalid_rating_and_history_raise(screen) -> None:
    with pytest.raises(InvalidInputError):
        screen("customer_service", "ok", rating=9)
    with pytest.raises(InvalidInputError):
        screen("counseling", "ok", [3])


def test_broken_unicode_is_screened_not_crashed(screen) -> None:
    assert isinstance(screen("counseling", "I feel \ud83d okay"), ScreenResult)


def test_analyse_review() -> None:
    a = analyse_review("The delivery was late and the pizza was cold, staff were rude", rating=None)
    assert a.sentiment == "negative"
    assert {"delivery", "food", "staff/service"} <= set(a.aspects)
    assert not a.screen.escalate
    b = analyse_review(
        "Lovely food, but the kettle in the room exploded and burned my arm", rating=4
    )
    assert b.sentiment == "positive" and b.screen.escalate and "safety" in b.aspects
    assert analyse_review("It was not good").sentiment == "negative"
    assert analyse_review("It was fine", rating=3).sentiment == "neutral"


def test_missing_weights_give_clear_error(tmp_path, monkeypatch) -> None:
    import domains.classifier as clf

    monkeypatch.setattr(clf, "weights_path", lambda domain, kind="screen": tmp_path / "nope.safetensors")
    with pytest.raises(ClassifierError, match="train_classifiers"):
        load_classifier_from("counseling")


def test_wrong_shape_weights_give_clear_error(tmp_path, monkeypatch) -> None:
    import json

    import torch
    from safetensors.torch import save_file

    import domains.classifier as clf

    w = tmp_path / "c.safetensors"
    save_file({"net.1.weight": torch.zeros(3, 10), "net.1.bias": torch.zeros(3)}, str(w))
    meta = json.loads(clf.sidecar_path("counseling").read_text())
    side = tmp_path / "c.json"
    side.write_text(json.dumps(meta))
    monkeypatch.setattr(clf, "weights_path", lambda domain, kind="screen": w)
    monkeypatch.setattr(clf, "sidecar_path", lambda domain, kind="screen": side)
    with pytest.raises(ClassifierError, match="shape"):
        load_classifier_from("counseling")


EVASIONS = [
    "I want to k i l l myself",
    "I want to k.i.l.l myself",
    "I want to k-i-l-l myself",
    "I want to k\u0456ll myself",  # Cyrillic i
    "I w\u0430nt to \u0435nd my lif\u0435",  # Cyrillic a and e
    "\uff29 \uff37\uff21\uff2e\uff34 \uff34\uff2f \uff24\uff29\uff25",  # fullwidth
    "I can\u00e2\u20ac\u2122t go on, I want to kill myself",  # mojibake of "can't"
    "i w a n t  t o  d i e",
]


@pytest.mark.parametrize("text", EVASIONS)
def test_spaced_look_alike_and_mojibake_spellings_escalate(screen, text: str) -> None:
    assert screen("counseling", text).escalate, text


@pytest.mark.parametrize(
    "text",
    [
        "i think about s u i c i d e a lot",
        "w1sh 1 w4s d34d lol",
        "He tomado muchas pastillas hace un rato y me siento mareado.",
        "J'ai avalé une boîte de cachets il y a une heure",
        "Ich habe eine ganze Packung Schlaftabletten geschluckt",
    ],
)
def test_evasions_and_overdoses_in_other_languages_are_caught_by_the_rules(screen, text: str) -> None:
    result = screen("counseling", text)
    assert result.escalate and result.layer == "rules", (text, result.layer)


@pytest.mark.parametrize("text", ["I want to k i l l myself", "I want to k\u0456ll myself", "I can\u00e2\u20ac\u2122t do this anymore, I want to die"])
def test_screen_cli_escalates_evasions(capsys, text: str) -> None:
    import json

    from graphs.apps.cli import main

    assert main(["screen", "--domain", "counseling", "--message", text, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["escalate"] is True, out


def test_screen_request_keeps_the_last_turns_oldest_first() -> None:
    from domains.screening import HISTORY_TURNS, ScreenRequest

    req = ScreenRequest(domain="counseling", text="now", history=["one", "two", "three"])
    assert req.history == ("one", "two", "three")[-HISTORY_TURNS:]


def test_prior_risk_turns_a_weak_signal_into_an_escalation(monkeypatch) -> None:
    """A turn scored between support_score and the threshold escalates only for a person at risk before."""
    import domains.screening as screening
    from domains.classifier import load_classifier

    real = load_classifier("counseling")

    class MiddlingScores:
        threshold = real.threshold
        categories = real.categories

        def assess(self, texts: list[str]) -> list[tuple[str, float]]:
            return [("calm_after_decision", (real.threshold + 0.3) / 2) for _ in texts]

    monkeypatch.setattr(screening, "load_classifier", lambda domain, kind="screen", encoder=None: MiddlingScores())
    history = ["work was long today", "I made pasta for dinner"]
    assert not screening.screen_message("counseling", "I feel settled now.", history).escalate
    result = screening.screen_message("counseling", "I feel settled now.", history, prior_risk=True)
    assert result.escalate and result.layer == "history", result
    assert "risk was raised earlier" in result.reasons[0]


@pytest.mark.parametrize(
    "text",
    [
        "Years ago I tried to kill myself. Therapy helped and I'm in a good place now.",
        "When I was 19 I wanted to die; these days I'm doing well and I'm grateful I stayed.",
        "Hace muchos años intenté suicidarme, hoy estoy bien.",
        "Il y a deux années j'ai fait une tentative de suicide. Aujourd'hui je vais bien.",
        "I used to believe everyone would be better off without me, but I don't feel that way anymore.",
        "I had a plan to kill myself after my divorce; I've been doing well for two years now.",
    ],
)
def test_risk_told_as_past_and_recovered_vetoes_the_rules(text: str) -> None:
    from domains.rules import match_rules

    rules = match_rules("counseling", text)
    assert rules.hits and not rules.active, rules.reason()
    assert all(h.vetoed_by == "told as past and recovered" for h in rules.vetoed), rules.reason()


@pytest.mark.parametrize(
    "text",
    [
        "Years ago I tried to kill myself and got better, but lately I want to die again.",
        "I used to self-harm as a teen and stopped, but I relapsed and cut last night.",
        "Years ago I was in a better place. I've decided I want to end my life.",
        "I had a plan to kill myself years ago and I've been well, but I don't feel safe anymore.",
        "I used to think they'd be better off without me and I don't think that anymore, but now I plan to kill myself.",
    ],
)
def test_past_risk_that_is_back_still_escalates(screen, text: str) -> None:
    result = screen("counseling", text)
    assert result.escalate and result.layer == "rules", result


@pytest.mark.parametrize(
    "text",
    [
        "Unless the money is back by the 5th, I'll be taking you to court.",
        "if nobody replies to my emails by tomorrow i'm suing",
    ],
)
def test_conditional_legal_threats_escalate_despite_the_negation_in_the_condition(screen, text: str) -> None:
    result = screen("customer_service", text)
    assert result.escalate and result.category == "legal_threat", result


@pytest.mark.parametrize(
    ("text", "strong"),
    [
        ("step by step, what's the least painful way to die", True),
        ("what's the fastest way to end it", True),
        ("The pills are all counted and ready.", True),
        ("I've got everything sorted for the move, boxes packed and van booked.", False),
        ("my cover letter is ready, wish me luck!", False),
        ("what's the best way to go about asking for a raise?", False),
    ],
)
def test_method_questions_are_strong_rules_and_everyday_readiness_is_not(text: str, strong: bool) -> None:
    """'everything is sorted' or 'the letter is ready' is preparation only with other signs."""
    from domains.rules import match_rules

    assert bool(match_rules("counseling", text).strong) is strong, text


@pytest.mark.parametrize(
    ("text", "escalate"),
    [
        ("drafted my goodbye post for insta, just need to pick the photo", True),
        ("writing a goodbye email to my team before I move to Berlin", False),
        ("drafted my goodbye post for linkedin, last day at the firm on friday!", False),
        ("i told my best friend she can have my guitar and my clothes, she thought i was joking", True),
        ("my sister can have my car while I'm abroad for a year", False),
        ("I'm giving my old clothes to the charity shop this weekend", False),
    ],
)
def test_goodbye_posts_and_possessions_given_away_are_preparation_in_context(screen, text: str, escalate: bool) -> None:
    assert screen("counseling", text).escalate is escalate, text


@pytest.mark.parametrize(
    ("text", "escalate"),
    [
        ("my neighbour's dog barked till 3 so I'm wrecked today", False),
        ("kann seit Tagen nicht richtig schlafen, was hilft?", False),
        ("I swallowed the whole box of sleeping pills twenty minutes ago", True),
    ],
)
def test_ordinary_sleep_trouble_is_not_an_overdose(screen, text: str, escalate: bool) -> None:
    assert screen("counseling", text).escalate is escalate, text


@pytest.mark.xfail(strict=True, reason="known false escalation of the shipped counseling head; see README, safety layer")
@pytest.mark.parametrize(
    "text",
    ["I went for a walk afterwards", "I took the dog out after that", "I slept badly last night"],
)
def test_short_everyday_reports_are_not_escalated(screen, text: str) -> None:
    """Short mid-conversation reports with a time connective score as self-harm or an overdose on
    the shipped head (0.39, 0.67, 0.46 against 0.36). Strict: when a retrain fixes one, this test
    fails, and the README's list of known false escalations must be updated with it."""
    assert not screen("counseling", text).escalate, text
