from __future__ import annotations

import math

import pytest

from persona_agents.traits import (
    EXPERT_NAMES,
    NUM_EXPERTS,
    TRAITS,
    PersonaWeights,
    expert_name,
    split_expert_name,
)


def test_expert_names_are_ten_poles_in_trait_order() -> None:
    assert NUM_EXPERTS == 10
    assert EXPERT_NAMES[:4] == (
        "openness_high",
        "openness_low",
        "conscientiousness_high",
        "conscientiousness_low",
    )
    assert EXPERT_NAMES[-1] == "neuroticism_low"
    assert expert_name("agreeableness", "low") == "agreeableness_low"
    assert split_expert_name("extraversion_high") == ("extraversion", "high")
    with pytest.raises(ValueError, match="unknown trait"):
        expert_name("humour", "high")
    with pytest.raises(ValueError, match="unknown pole"):
        expert_name("openness", "middle")
    with pytest.raises(ValueError, match="unknown expert"):
        split_expert_name("openness_mid")


@pytest.mark.parametrize("length", [0, 9, 11])
def test_wrong_length_is_rejected(length: int) -> None:
    with pytest.raises(ValueError, match=f"need 10 values, got {length}"):
        PersonaWeights([1.0 / max(length, 1)] * length)


def test_negative_weight_names_the_expert() -> None:
    values = [0.2] * 5 + [0.0] * 5
    values[1], values[2] = -0.1, 0.3
    with pytest.raises(ValueError, match="openness_low is negative"):
        PersonaWeights(values)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weight_is_rejected(bad: float) -> None:
    values = [0.1] * 10
    values[3] = bad
    with pytest.raises(ValueError, match="conscientiousness_low is not finite"):
        PersonaWeights(values)


@pytest.mark.parametrize("total", [0.5, 1.01, 2.0])
def test_sum_not_one_is_rejected(total: float) -> None:
    with pytest.raises(ValueError, match="must sum to 1"):
        PersonaWeights([total / 10] * 10)


def test_small_rounding_is_accepted_and_renormalised() -> None:
    w = PersonaWeights([0.1] * 9 + [0.10005])
    assert sum(w.values) == pytest.approx(1.0, abs=1e-12)


def test_unknown_names_in_mapping() -> None:
    with pytest.raises(ValueError, match="unknown expert name.*charm_high"):
        PersonaWeights.from_mapping({"charm_high": 1.0})
    w = PersonaWeights.from_mapping({"openness_high": 3.0, "neuroticism_low": 1.0}, normalize=True)
    assert w["openness_high"] == pytest.approx(0.75)
    assert w["neuroticism_low"] == pytest.approx(0.25)
    assert w["agreeableness_high"] == 0.0
    with pytest.raises(ValueError, match="must sum to 1"):
        PersonaWeights.from_mapping({"openness_high": 3.0})


def test_getitem_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown expert"):
        PersonaWeights.uniform()["openness"]


def test_trait_scores_are_high_minus_low() -> None:
    w = PersonaWeights.from_mapping(
        {
            "openness_high": 0.4,
            "openness_low": 0.1,
            "neuroticism_low": 0.3,
            "agreeableness_high": 0.2,
        }
    )
    scores = w.trait_scores()
    assert list(scores) == list(TRAITS)
    assert scores["openness"] == pytest.approx(0.3)
    assert scores["neuroticism"] == pytest.approx(-0.3)
    assert scores["agreeableness"] == pytest.approx(0.2)
    assert scores["extraversion"] == 0.0
    assert scores["conscientiousness"] == 0.0


def test_top_traits_order_and_ties() -> None:
    w = PersonaWeights.from_mapping(
        {"extraversion_low": 0.5, "openness_high": 0.2, "neuroticism_low": 0.3}
    )
    assert w.top_traits(3) == ["extraversion_low", "neuroticism_low", "openness_high"]
    assert w.top_traits() == ["extraversion_low", "neuroticism_low"]
    assert w.top_traits(1) == ["extraversion_low"]
    # ties keep the canonical expert order
    assert PersonaWeights.uniform().top_traits(3) == list(EXPERT_NAMES[:3])


def test_one_hot() -> None:
    for index, name in enumerate(EXPERT_NAMES):
        w = PersonaWeights.one_hot(name)
        assert w.values[index] == 1.0
        assert sum(w.values) == 1.0
        assert w.top_traits(1) == [name]
    with pytest.raises(ValueError, match="unknown expert"):
        PersonaWeights.one_hot("openness")


def test_normalized() -> None:
    w = PersonaWeights.normalized(range(10))
    assert w.values[9] == pytest.approx(9 / 45)
    assert sum(w.values) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="all zero"):
        PersonaWeights.normalized([0.0] * 10)
    with pytest.raises(ValueError, match="non-negative finite"):
        PersonaWeights.normalized([1.0] * 9 + [-1.0])
    with pytest.raises(ValueError, match="non-negative finite"):
        PersonaWeights.normalized([1.0] * 9 + [math.nan])
    with pytest.raises(ValueError, match="need 10 values"):
        PersonaWeights.normalized([1.0] * 3)


def test_blend() -> None:
    a = PersonaWeights.one_hot("openness_high")
    b = PersonaWeights.one_hot("neuroticism_low")
    mid = a.blend(b, 0.25)
    assert mid["openness_high"] == pytest.approx(0.75)
    assert mid["neuroticism_low"] == pytest.approx(0.25)
    assert a.blend(b, 0.0) == a
    assert a.blend(b, 1.0) == b
    with pytest.raises(ValueError, match="within"):
        a.blend(b, 1.5)


def test_coerce_and_equality() -> None:
    w = PersonaWeights.one_hot("agreeableness_high")
    assert PersonaWeights.coerce(w) is w
    assert PersonaWeights.coerce({"agreeableness_high": 1.0}) == w
    assert PersonaWeights.coerce(list(w.values)) == w
    assert hash(PersonaWeights.coerce(tuple(w.values))) == hash(w)
    assert w != PersonaWeights.uniform()
    assert w.as_dict()["agreeableness_high"] == 1.0
    assert "agreeableness_high=1.000" in repr(w)
    with pytest.raises(AttributeError):
        w.foo = 1  # type: ignore[attr-defined]
