"""Held-out measurements of a trained bundle: expert pole strength and general ability."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from persona_agents.engine import BASE_ONLY, GenerationParams, PersonaFuseEngine
from persona_agents.training.corpus import GeneralQuestion, PoleResponse
from persona_agents.training.pole_classifier import (
    PoleClassifier,
    pairwise_separation,
    share_as_pole,
)
from persona_agents.traits import TRAITS, PersonaWeights


def generate_all(
    engine: PersonaFuseEngine,
    prompts: Sequence[str],
    weights: PersonaWeights | str | None,
    params: GenerationParams,
    batch_size: int,
    desc: str,
) -> list[str]:
    """Replies to each prompt with the same weights (None routes each prompt), in batches."""
    replies: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch", leave=False):
        chunk = list(prompts[start : start + batch_size])
        results = engine.generate_batch(chunk, [weights] * len(chunk), params=params)
        replies.extend(r.text for r in results)
    return replies


def held_out_prompts(responses: Sequence[PoleResponse], trait: str, limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for r in responses:
        if r.split == "test" and r.trait == trait:
            seen.setdefault(r.situation)
    return list(seen)[:limit]


ExpertReplies = dict[str, dict[str, list[str]]]  # trait -> "prompts" | "base" | "high" | "low" -> texts


def generate_expert_replies(
    engine: PersonaFuseEngine, responses: Sequence[PoleResponse], *, prompts_per_trait: int, params: GenerationParams, batch_size: int
) -> ExpertReplies:
    """Per trait: the base model's, the high expert's and the low expert's replies to held-out prompts."""
    replies: ExpertReplies = {}
    for trait in tqdm(TRAITS, desc="expert replies", unit="trait"):
        prompts = held_out_prompts(responses, trait, prompts_per_trait)
        replies[trait] = {
            "prompts": prompts,
            "base": generate_all(engine, prompts, BASE_ONLY, params, batch_size, f"{trait} base"),
            "high": generate_all(engine, prompts, PersonaWeights.one_hot(f"{trait}_high"), params, batch_size, f"{trait} high"),
            "low": generate_all(engine, prompts, PersonaWeights.one_hot(f"{trait}_low"), params, batch_size, f"{trait} low"),
        }
    return replies


def score_expert_replies(replies: ExpertReplies, classifier: PoleClassifier) -> dict[str, Any]:
    """How often each expert's replies read as its pole, against the base model's, per the classifier."""
    per_expert: dict[str, Any] = {}
    per_trait: dict[str, Any] = {}
    for trait, by_condition in replies.items():
        p_base, p_high, p_low = (classifier.prob_high(trait, by_condition[c]) for c in ("base", "high", "low"))
        for pole, probs in (("high", p_high), ("low", p_low)):
            expert_share, base_share = share_as_pole(probs, pole), share_as_pole(p_base, pole)
            per_expert[f"{trait}_{pole}"] = {
                "n": len(probs),
                "expert_share_as_pole": expert_share,
                "base_share_as_pole": base_share,
                "moves_toward_pole": expert_share > base_share,
            }
        per_trait[trait] = {
            "high_low_separation": pairwise_separation(p_high, p_low),
            "high_low_accuracy": (share_as_pole(p_high, "high") + share_as_pole(p_low, "low")) / 2,
            "mean_prob_high": {"base": _mean(p_base), "high": _mean(p_high), "low": _mean(p_low)},
        }
    return {
        "classifier": classifier.name,
        "per_expert": per_expert,
        "per_trait": per_trait,
        "all_experts_move_toward_pole": all(v["moves_toward_pole"] for v in per_expert.values()),
        "min_high_low_separation": min(v["high_low_separation"] for v in per_trait.values()),
    }


def evaluate_experts(
    engine: PersonaFuseEngine,
    classifier: PoleClassifier,
    responses: Sequence[PoleResponse],
    *,
    prompts_per_trait: int,
    params: GenerationParams,
    batch_size: int,
    second_opinion: PoleClassifier | None = None,
) -> dict[str, Any]:
    """Expert pole strength on held-out prompts, scored by ``classifier`` (and ``second_opinion``)."""
    replies = generate_expert_replies(engine, responses, prompts_per_trait=prompts_per_trait, params=params, batch_size=batch_size)
    result = score_expert_replies(replies, classifier)
    if second_opinion is not None:
        result["second_opinion"] = score_expert_replies(replies, second_opinion)
    result["samples"] = [
        {"trait": trait, "prompt": prompt, "base": b, "high": h, "low": lo}
        for trait, r in replies.items()
        for prompt, b, h, lo in list(zip(r["prompts"], r["base"], r["high"], r["low"]))[:3]
    ]
    return result


def evaluate_general_ability(
    engine: PersonaFuseEngine, questions: Sequence[GeneralQuestion], *, params: GenerationParams, batch_size: int
) -> dict[str, Any]:
    """Accuracy on plain questions: base model alone versus the routed mixture."""
    prompts = [q.question for q in questions]
    base = generate_all(engine, prompts, BASE_ONLY, params, batch_size, "questions base")
    routed = generate_all(engine, prompts, None, params, batch_size, "questions routed")
    base_ok = [q.is_correct(a) for q, a in zip(questions, base)]
    routed_ok = [q.is_correct(a) for q, a in zip(questions, routed)]
    return {
        "n": len(questions),
        "base_accuracy": sum(base_ok) / len(questions),
        "mixture_accuracy": sum(routed_ok) / len(questions),
        "disagreements": [
            {"question": q.question, "base": b, "mixture": m}
            for q, b, m, bo, mo in zip(questions, base, routed, base_ok, routed_ok)
            if bo != mo
        ],
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
