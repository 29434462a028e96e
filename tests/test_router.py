"""Routing: deterministic, normalised, uniform when untrained, context-aware."""

from __future__ import annotations

import pytest
import torch

from persona_agents.messages import ChatTurn, to_turns
from persona_agents.router import Router, RouteResult, RouterHead, RouterSettings, situation_texts
from persona_agents.traits import EXPERT_NAMES, PersonaWeights

from .conftest import FakeEncoder, make_trained_head

CONVERSATION = [
    {"role": "user", "content": "My package arrived broken."},
    {"role": "assistant", "content": "I am sorry to hear that."},
    {"role": "user", "content": "And I was charged twice!"},
]


@pytest.fixture
def router(fake_encoder: FakeEncoder) -> Router:
    return Router(fake_encoder, make_trained_head())


def test_same_input_same_weights(router: Router) -> None:
    turns = to_turns(CONVERSATION)
    first = router.route(turns)
    second = router.route(list(turns))
    assert first.weights == second.weights
    assert first.top_traits == second.top_traits


def test_weights_sum_to_one_and_are_not_uniform(router: Router) -> None:
    result = router.route(to_turns("I just got promoted, I am thrilled!"))
    assert isinstance(result.weights, PersonaWeights)
    assert sum(result.weights.values) == pytest.approx(1.0, abs=1e-9)
    assert all(v >= 0 for v in result.weights.values)
    assert max(result.weights.values) - min(result.weights.values) > 1e-3


def test_different_situations_route_differently(router: Router) -> None:
    a = router.route(to_turns("I just got promoted, I am thrilled!")).weights
    b = router.route(to_turns("My mother died last week.")).weights
    assert a != b


def test_untrained_router_is_uniform(fake_encoder: FakeEncoder) -> None:
    untrained = Router(fake_encoder, RouterHead(RouterSettings()))
    for text in ("hello", "I am furious about this refund"):
        weights = untrained.route(to_turns(text)).weights
        assert weights.values == pytest.approx([0.1] * 10, abs=1e-9)


def test_context_turns_change_the_situation(router: Router) -> None:
    latest_only = to_turns("And I was charged twice!")
    with_context = to_turns(CONVERSATION)
    v_alone = router.situation_vectors([latest_only])
    v_context = router.situation_vectors([with_context])
    assert v_alone.shape == v_context.shape == (1, 384)
    assert torch.linalg.vector_norm(v_context, dim=-1).item() == pytest.approx(1.0, abs=1e-5)
    assert (v_alone - v_context).abs().max() > 1e-3
    assert router.route(latest_only).weights != router.route(with_context).weights


def test_context_disabled_ignores_earlier_turns(fake_encoder: FakeEncoder) -> None:
    head = make_trained_head(RouterSettings(context_turns=0, trained=True))
    router = Router(fake_encoder, head)
    alone = router.route(to_turns("And I was charged twice!")).weights
    assert router.route(to_turns(CONVERSATION)).weights == alone


def test_situation_texts() -> None:
    turns = [
        ChatTurn("user", f"u{i}") if i % 2 == 0 else ChatTurn("assistant", f"a{i}")
        for i in range(7)
    ]
    assert situation_texts(turns, 2) == ("u6", ["u4", "u2"])
    assert situation_texts(turns, 0) == ("u6", [])
    assert situation_texts(turns, 10) == ("u6", ["u4", "u2", "u0"])
    with pytest.raises(ValueError, match="at least one user message"):
        situation_texts([ChatTurn("system", "s"), ChatTurn("assistant", "a")], 2)


def test_no_user_message_is_an_error(router: Router) -> None:
    with pytest.raises(ValueError, match="at least one user message"):
        router.route([ChatTurn("system", "be nice"), ChatTurn("assistant", "Hello!")])


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_top_traits_length(router: Router, k: int) -> None:
    result = router.route(to_turns("hello"), top_k=k)
    assert len(result.top_traits) == k
    assert result.top_traits == result.weights.top_traits(k)
    ordered = [result.weights[name] for name in result.top_traits]
    assert ordered == sorted(ordered, reverse=True)


def test_route_many_matches_route(router: Router) -> None:
    conversations = [to_turns("hello"), to_turns(CONVERSATION), to_turns("I failed my exam")]
    many = router.route_many(conversations)
    for conv, result in zip(conversations, many):
        assert router.route(conv).weights.values == pytest.approx(result.weights.values, abs=1e-6)


def test_route_result_as_dict(router: Router) -> None:
    result: RouteResult = router.route(to_turns("hello"))
    out = result.as_dict()
    assert list(out["persona_weights"]) == list(EXPERT_NAMES)
    assert out["top_traits"] == result.top_traits
    assert out["trait_scores"] == result.weights.trait_scores()


def test_encoder_dimension_mismatch(fake_encoder: FakeEncoder) -> None:
    with pytest.raises(ValueError, match="384-d vectors but the router head expects 16-d"):
        Router(fake_encoder, RouterHead(RouterSettings(embedding_dim=16)))


def test_real_encoder_gives_unit_384d_vectors(real_encoder) -> None:
    vectors = real_encoder.encode(["I failed my exam and feel awful", "Great service, thanks!", ""])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == torch.float32
    torch.testing.assert_close(
        torch.linalg.vector_norm(vectors, dim=-1), torch.ones(3), atol=1e-5, rtol=0
    )
    again = real_encoder.encode(["I failed my exam and feel awful"])
    torch.testing.assert_close(again[0], vectors[0], atol=1e-5, rtol=0)
    # semantically close sentences are closer than unrelated ones
    sad = real_encoder.encode(
        ["I failed my test and I feel terrible", "The invoice total is 40 euros"]
    )
    assert float(vectors[0] @ sad[0]) > float(vectors[0] @ sad[1]) + 0.2
    assert real_encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        real_encoder.encode("a bare string")  # type: ignore[arg-type]


def test_real_encoder_routes(real_encoder) -> None:
    router = Router(real_encoder, make_trained_head())
    result = router.route(to_turns("I failed my exam and feel awful"))
    assert sum(result.weights.values) == pytest.approx(1.0, abs=1e-9)
    assert router.route(to_turns("I failed my exam and feel awful")).weights == result.weights
