"""Domain packs: validation, locale resolution, crisis reply, input normalisation."""

from __future__ import annotations

import json

import pytest

from domains.schema import (
    DOMAINS,
    DomainPack,
    PackError,
    crisis_reply,
    load_pack,
    normalise_locale_tag,
    pack_path,
    parse_pack,
    resolve_locale,
)
from domains.text import InvalidInputError, normalise, normalised_variants, validate_user_text


@pytest.fixture(scope="module")
def counseling() -> DomainPack:
    return load_pack("counseling")


def test_both_packs_load_and_are_cached() -> None:
    assert load_pack("counseling") is load_pack("counseling")
    assert load_pack("customer_service").name == "customer_service"


def test_the_domain_list_is_the_pack_folders() -> None:
    from pathlib import Path

    import domains

    folders = {d.name for d in Path(domains.__file__).parent.iterdir() if (d / "pack.json").is_file()}
    assert set(DOMAINS) == folders and len(DOMAINS) == len(folders)
    assert all(load_pack(name).name == name for name in DOMAINS)


def test_counseling_has_required_crisis_lines(counseling: DomainPack) -> None:
    phones = {
        k: " ".join(r.phone or "" for r in v.resources) for k, v in counseling.locales.items()
    }
    assert "988" in phones["en-US"]
    assert "116 123" in phones["en-GB"]
    assert "13 11 14" in phones["en-AU"]
    assert "0800 111 0 111" in phones["de-DE"]
    assert "3114" in phones["fr-FR"]
    assert "024" in phones["es-ES"]
    assert "988" in phones["en-CA"]
    assert "en-IE" in counseling.locales
    assert "emergency" in counseling.locales["international"].resources[0].note.lower()


def test_unknown_domain_is_a_clear_error() -> None:
    with pytest.raises(PackError, match="unknown domain"):
        load_pack("astrology")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "en-US"),
        ("en_gb", "en-GB"),
        ("EN-GB", "en-GB"),
        ("en-gb.UTF-8", "en-GB"),
        ("de", "de-DE"),
        ("FR", "fr-FR"),
        ("en", "en-US"),
        ("xx-YY", "international"),
        ("en-NZ", "international"),  # a country without an entry: never another country's crisis lines
        ("de-AT", "international"),
        ("garbled!!", "en-US"),
        ("", "en-US"),
        ("international", "international"),
    ],
)
def test_resolve_locale(counseling: DomainPack, given: str | None, expected: str) -> None:
    assert resolve_locale(counseling, given) == expected


def test_normalise_locale_tag() -> None:
    assert normalise_locale_tag("pt_br") == "pt-BR"
    assert normalise_locale_tag("not a locale") is None


def test_crisis_reply_has_all_parts_and_local_resources(counseling: DomainPack) -> None:
    reply = crisis_reply(counseling, "en_GB")
    assert "Samaritans" in reply and "116 123" in reply and "999" in reply
    assert "safe right now" in reply
    assert "988" in crisis_reply(counseling, None)


def _raw_pack() -> dict:
    return json.loads(pack_path("counseling").read_text(encoding="utf-8"))


def test_bad_regex_gives_clear_pydantic_error() -> None:
    raw = _raw_pack()
    raw["risk_rules"]["categories"]["self_harm"]["strong"].append("(unclosed")
    with pytest.raises(PackError, match="invalid regex"):
        parse_pack(json.dumps(raw), source="test-pack")


def test_missing_fields_and_bad_default_locale_are_named() -> None:
    raw = _raw_pack()
    del raw["crisis_template"]
    with pytest.raises(PackError, match="crisis_template"):
        parse_pack(json.dumps(raw))
    raw = _raw_pack()
    raw["default_locale"] = "en-ZZ"
    with pytest.raises(PackError, match="default_locale"):
        parse_pack(json.dumps(raw))
    raw = _raw_pack()
    raw["name"] = "banking"
    with pytest.raises(PackError, match="name"):
        parse_pack(json.dumps(raw))


def test_invalid_json_reports_position() -> None:
    with pytest.raises(PackError, match="line 1"):
        parse_pack("{not json", source="broken.json")


def test_unknown_rule_category_rejected() -> None:
    raw = _raw_pack()
    raw["risk_rules"]["categories"]["astrology"] = {"strong": ["stars"], "weak": []}
    with pytest.raises(PackError, match="astrology"):
        parse_pack(json.dumps(raw))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k1ll mys3lf", "kill myself"),
        ("s.u.i.c.i.d.e", "suicide"),
        ("I want to unalive myself", "i want to kill myself"),
        ("kms", "kill myself"),
        ("su\u200bicide", "suicide"),
        ("I\u2019m fine", "i'm fine"),
        ("I took 10mg at 3am", "i took 10mg at 3am"),
    ],
)
def test_normalise_deobfuscates(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_repeated_letters_give_two_readings() -> None:
    assert "i want to die" in normalised_variants("I wanna diiieeee")


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("i think about s u i c i d e a lot", "i think about suicide a lot"),
        ("i k i l l", "i kill"),
    ],
)
def test_spelled_out_runs_also_read_with_one_letter_words_at_their_edges(text: str, reading: str) -> None:
    readings = normalised_variants(text)
    assert reading in readings
    assert normalise(text) in readings  # the plain join stays a reading: "a l o n e" is "alone"


def test_a_lone_one_is_the_word_i_only_in_leetspeak() -> None:
    assert normalise("w1sh 1 w4s d34d") == "wish i was dead"
    assert normalise("I have 1 kid and 1.5 jobs") == "i have 1 kid and 1.5 jobs"


def test_validate_user_text() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        validate_user_text("   \n")
    with pytest.raises(InvalidInputError, match="str"):
        validate_user_text(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="limit"):
        validate_user_text("a" * 9000)
    assert validate_user_text("ok", max_chars=2) == "ok"
    repaired = validate_user_text("hi \ud800 there")
    repaired.encode("utf-8")  # no lone surrogate left
    assert issubclass(InvalidInputError, ValueError)


@pytest.mark.parametrize("weights", [[], [1.5], [-0.1]])
def test_bad_lexical_weights_are_named(weights: list[float]) -> None:
    raw = _raw_pack()
    raw["classifier"]["lexical_weights"] = weights
    with pytest.raises(PackError, match="lexical_weights"):
        parse_pack(json.dumps(raw))


@pytest.mark.parametrize(("domain", "kind"), [(d, k) for d in DOMAINS for k in ("screen", "output")])
def test_shipped_heads_were_trained_with_the_packs_lexical_weights(domain: str, kind: str) -> None:
    """A pack that narrows the lexical weights must ship heads whose cross-validation honoured it."""
    from domains.classifier import sidecar_path

    pack = load_pack(domain)
    settings = pack.classifier if kind == "screen" else pack.output_classifier
    meta = json.loads(sidecar_path(domain, kind).read_text(encoding="utf-8"))  # type: ignore[arg-type]
    if settings.lexical_weights is not None:
        assert sorted(float(w) for w in meta["cv_recall_by_lexical_weight"]) == sorted(settings.lexical_weights)
        assert meta["lexical_weight"] in settings.lexical_weights


def test_sentences_keep_the_long_ones_of_a_text_of_several() -> None:
    from domains.text import sentences

    text = "The shoes are fine. Honestly, I bought them for my funeral, so they only need to last one day."
    assert sentences(text, 6) == ["Honestly, I bought them for my funeral, so they only need to last one day."]
    assert sentences(text, 4) == ["The shoes are fine.", sentences(text, 6)[0]]
    assert sentences("A single sentence of some length here.", 2) == []
    assert sentences("First line of it\nsecond line of it", 3) == ["First line of it", "second line of it"]
