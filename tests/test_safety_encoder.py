"""The encoder the safety heads read: passed in by the caller, or the default in one place."""

from __future__ import annotations

import json

import pytest
import torch

from domains.classifier import EMBED_DIM, ClassifierError, load_classifier, load_classifier_from
from domains.safety_encoder import (
    THREADS_ENV,
    SentenceEncoder,
    ThreadLimitedEncoder,
    default_safety_encoder,
    quantised_copy,
    safety_threads,
)


class CountingEncoder:
    """Deterministic vectors; remembers what it was asked to encode."""

    def __init__(self, dim: int = EMBED_DIM) -> None:
        self.dim = dim
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.seen += texts
        vectors = torch.stack([torch.randn(self.dim, generator=torch.Generator().manual_seed(len(t))) for t in texts])
        return torch.nn.functional.normalize(vectors, dim=-1)


def test_a_caller_can_pass_its_own_encoder() -> None:
    own = CountingEncoder()
    assert isinstance(own, SentenceEncoder)
    clf = load_classifier("counseling", "screen", own)
    assert clf.encoder is own
    [(category, score)] = clf.assess(["a message only this encoder sees"])
    assert own.seen == ["a message only this encoder sees"]
    assert category in clf.categories and 0.0 <= score <= 1.0
    assert load_classifier("counseling", "screen") is not clf  # the default stays separate


def test_screen_and_check_pass_the_encoder_through() -> None:
    from domains.screening import check_output, screen_message
    from domains.text import normalise

    own = CountingEncoder()
    screen_message("counseling", "my week was long and grey", encoder=own)
    check_output("counseling", "That sounds like a long week.", encoder=own)
    assert normalise("my week was long and grey") in own.seen
    assert normalise("That sounds like a long week.") in own.seen


def test_an_encoder_of_the_wrong_width_is_refused_by_name() -> None:
    clf = load_classifier("counseling", "output", CountingEncoder(dim=8))
    with pytest.raises(ClassifierError, match="CountingEncoder"):
        clf.assess(["hello"])


def test_default_encoder_is_the_variant_the_head_was_trained_on() -> None:
    for domain in ("counseling", "customer_service"):
        for kind in ("screen", "output"):
            clf = load_classifier(domain, kind)  # type: ignore[arg-type]
            assert clf.encoder is default_safety_encoder(clf.encoder_variant)


def test_unknown_variant_in_a_sidecar_is_a_clear_error(tmp_path, monkeypatch) -> None:
    import domains.classifier as clf

    meta = json.loads(clf.sidecar_path("counseling").read_text())
    meta["encoder_variant"] = "int4"
    side = tmp_path / "c.json"
    side.write_text(json.dumps(meta))
    monkeypatch.setattr(clf, "sidecar_path", lambda domain, kind="screen": side)
    with pytest.raises(ClassifierError, match="int4"):
        load_classifier_from("counseling")


def test_thread_limit_applies_to_the_call_and_is_restored() -> None:
    seen: list[int] = []

    class Probe:
        def encode(self, texts: list[str]) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return torch.zeros(len(texts), EMBED_DIM)

    before = torch.get_num_threads()
    ThreadLimitedEncoder(Probe(), 1, "float32").encode(["x"])
    assert seen == [1]
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        ThreadLimitedEncoder(Probe(), 0, "float32")


@pytest.mark.parametrize(("value", "expected"), [("", 1), ("2", 2), ("1", 1)])
def test_threads_setting(monkeypatch, value: str, expected: int) -> None:
    monkeypatch.setenv(THREADS_ENV, value)
    assert safety_threads() == expected


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_threads_setting_names_the_variable(monkeypatch, value: str) -> None:
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(ValueError, match=THREADS_ENV):
        safety_threads()


def test_int8_copy_shares_embeddings_and_stays_close(real_encoder) -> None:
    texts = ["I can't sleep and keep going over it", "the cake was to die for", "Bonjour, ça va ?"]
    before = real_encoder.encode(texts)
    quantised = quantised_copy(real_encoder)
    assert quantised.model is not real_encoder.model  # type: ignore[attr-defined]
    assert (
        quantised.model.get_input_embeddings().weight.data_ptr()  # type: ignore[attr-defined]
        == real_encoder.model.get_input_embeddings().weight.data_ptr()
    )
    assert isinstance(real_encoder.model.encoder.layer[0].attention.self.query, torch.nn.Linear)
    after = quantised.encode(texts)  # type: ignore[attr-defined]
    assert torch.equal(real_encoder.encode(texts), before)  # the shared encoder is untouched
    cosine = torch.nn.functional.cosine_similarity(before, after)
    assert float(cosine.min()) > 0.9, cosine
    assert not torch.equal(before, after)
    # a text's vector does not depend on the texts encoded with it
    alone = torch.cat([quantised.encode([t]) for t in texts])  # type: ignore[attr-defined]
    assert torch.equal(after, alone)
