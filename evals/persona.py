"""Persona eval: how strongly does each expert show in generated text?

``python -m evals.persona [--data FILE] [--max-tokens 48] [--limit N] [--batch-size 8] [--json] [--out DIR]``

Rows are JSON lines ``{"trait", "prompt"}``. For each trait's prompts the default model
replies under six conditions: the trait's high expert alone, its low expert alone (one-hot
weights), the routed mixture, the base model alone (``persona_weights="base"``) and a
prompt-only persona for each pole (the same base model, the pole described in the system
prompt). The lexical pole classifier (``LexicalPoleClassifier``: logistic regression on TF-IDF
of word 1-2 grams, fit on the corpus's train responses; its held-out accuracy is in the report)
gives each reply's probability of the trait's high pole.

Per expert: the share of replies classified as the expert's pole under the expert, the base
model, the prompt-only persona and the routed mixture; per trait: the mean prob_high for every
condition.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.common import (
    DATA_DIR,
    DataError,
    emit,
    fail,
    fmt,
    md_table,
    progress,
    pyplot,
    read_jsonl,
    require_text,
    stdout_to_stderr,
    text_table,
    where,
    write_report,
)
from evals.metrics import mean, share
from persona_agents.traits import POLES, TRAITS

DEFAULT_DATA = DATA_DIR / "persona_prompts.jsonl"
CONDITIONS = ("expert_high", "expert_low", "routed", "base", "prompt_high", "prompt_low")

# The prompt-only baseline: each pole described in words, added to the engine's default system prompt.
POLE_DESCRIPTIONS = {
    "openness_high": "Be imaginative and curious: offer fresh ideas, unusual angles and vivid images, and welcome the new.",
    "openness_low": "Be conventional and practical: stick to familiar, proven, concrete options and avoid speculation.",
    "conscientiousness_high": "Be organised and thorough: give clear, ordered steps, precise details and a plan.",
    "conscientiousness_low": "Be casual and spontaneous: keep it loose and easy-going, no plans, lists or detail.",
    "extraversion_high": "Be outgoing and energetic: enthusiastic, talkative and upbeat, with exclamation and warmth.",
    "extraversion_low": "Be reserved and quiet: brief, understated, low-key, just the essentials.",
    "agreeableness_high": "Be warm and kind: gentle, compassionate, supportive and generous toward the person.",
    "agreeableness_low": "Be blunt and critical: direct, challenging and unsentimental, with no softening.",
    "neuroticism_high": "Sound anxious and worried: voice concern, doubts and what could go wrong.",
    "neuroticism_low": "Sound calm and steady: relaxed, composed and reassuring, untroubled by worry.",
}


# --- data ---------------------------------------------------------------------------------


def load_rows(path: Path) -> list[dict[str, str]]:
    rows = []
    for obj in read_jsonl(path):
        trait = obj.get("trait")
        if trait not in TRAITS:
            raise DataError(f"{where(path, obj)}: unknown trait {trait!r}; expected one of {', '.join(TRAITS)}")
        rows.append({"trait": trait, "prompt": require_text(path, obj, "prompt")})
    return rows


def prompts_by_trait(rows: Sequence[Mapping[str, str]], limit: int | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in rows:
        prompts = out.setdefault(row["trait"], [])
        if limit is None or len(prompts) < limit:
            prompts.append(row["prompt"])
    return {t: out[t] for t in TRAITS if t in out}


# --- scoring (pure) -----------------------------------------------------------------------


def share_as_pole(probs_high: Sequence[float], pole: str) -> float | None:
    """Share of replies the classifier puts on ``pole`` (prob_high > 0.5 is "high")."""
    return share((p > 0.5) if pole == "high" else (p <= 0.5) for p in probs_high)


def score_persona(probs: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, Any]:
    """``probs[trait][condition]`` = prob_high per reply -> per-expert and per-trait summaries."""
    per_expert: dict[str, Any] = {}
    per_trait: dict[str, Any] = {}
    for trait, by_condition in probs.items():
        per_trait[trait] = {
            "n": len(by_condition.get("base", [])),
            "mean_prob_high": {c: mean(list(by_condition[c])) for c in CONDITIONS if c in by_condition},
        }
        for pole in POLES:
            expert = share_as_pole(by_condition[f"expert_{pole}"], pole)
            base = share_as_pole(by_condition["base"], pole)
            prompt_only = share_as_pole(by_condition.get(f"prompt_{pole}", []), pole)
            routed = share_as_pole(by_condition.get("routed", []), pole)
            per_expert[f"{trait}_{pole}"] = {
                "n": len(by_condition[f"expert_{pole}"]),
                "expert_share_as_pole": expert,
                "base_share_as_pole": base,
                "prompt_only_share_as_pole": prompt_only,
                "routed_share_as_pole": routed,
                "expert_minus_base": None if expert is None or base is None else expert - base,
                "expert_minus_prompt_only": None if expert is None or prompt_only is None else expert - prompt_only,
            }
    experts = list(per_expert.values())
    return {
        "per_expert": per_expert,
        "per_trait": per_trait,
        "experts_above_base": sum(1 for e in experts if (e["expert_minus_base"] or 0) > 0),
        "experts_above_prompt_only": sum(1 for e in experts if (e["expert_minus_prompt_only"] or 0) > 0),
        "n_experts": len(experts),
        "mean_expert_share_as_pole": mean([e["expert_share_as_pole"] for e in experts]),
        "mean_base_share_as_pole": mean([e["base_share_as_pole"] for e in experts]),
        "mean_prompt_only_share_as_pole": mean([e["prompt_only_share_as_pole"] for e in experts]),
    }


# --- running ------------------------------------------------------------------------------


def fit_classifier() -> tuple[Any, dict[str, float]]:
    """The pole classifier fit on the corpus's train responses, and its held-out accuracy."""
    from persona_agents.training.corpus import load_responses
    from persona_agents.training.pole_classifier import LexicalPoleClassifier

    responses = load_responses()
    classifier = LexicalPoleClassifier.fit([r for r in responses if r.split == "train"])
    return classifier, classifier.accuracy([r for r in responses if r.split == "test"])


def conversations_for(condition: str, trait: str, prompts: Sequence[str], default_system: str) -> tuple[list[Any], list[Any]]:
    """Conversations and per-row weights for one condition."""
    from persona_agents.engine import BASE_ONLY
    from persona_agents.traits import PersonaWeights

    if condition.startswith("prompt_"):
        pole = condition.split("_", 1)[1]
        system = f"{default_system} {POLE_DESCRIPTIONS[f'{trait}_{pole}']}".strip()
        return [[{"role": "system", "content": system}, {"role": "user", "content": p}] for p in prompts], [BASE_ONLY] * len(prompts)
    if condition.startswith("expert_"):
        pole = condition.split("_", 1)[1]
        return list(prompts), [PersonaWeights.one_hot(f"{trait}_{pole}")] * len(prompts)
    if condition == "routed":
        return list(prompts), [None] * len(prompts)
    if condition == "base":
        return list(prompts), [BASE_ONLY] * len(prompts)
    raise ValueError(f"unknown condition {condition!r}")


def generate(engine: Any, conversations: Sequence[Any], weights: Sequence[Any], params: Any, batch_size: int) -> list[str]:
    replies: list[str] = []
    for start in range(0, len(conversations), batch_size):
        chunk = slice(start, start + batch_size)
        replies.extend(g.text for g in engine.generate_batch(conversations[chunk], weights[chunk], params=params))
    return replies


def evaluate(engine: Any, classifier: Any, prompts: Mapping[str, Sequence[str]], *, max_tokens: int, batch_size: int) -> dict[str, Any]:
    from persona_agents.engine import GenerationParams

    params = GenerationParams(max_new_tokens=max_tokens, temperature=0.0)
    default_system = engine.config.default_system_prompt
    probs: dict[str, dict[str, list[float]]] = {}
    samples = []
    jobs = [(t, c) for t in prompts for c in CONDITIONS]
    replies_by: dict[tuple[str, str], list[str]] = {}
    for trait, condition in progress(jobs, desc="persona generations", unit="condition"):
        conversations, weights = conversations_for(condition, trait, prompts[trait], default_system)
        replies = generate(engine, conversations, weights, params, batch_size)
        replies_by[(trait, condition)] = replies
        probs.setdefault(trait, {})[condition] = classifier.prob_high(trait, replies)
    for trait in prompts:
        for i, prompt in enumerate(prompts[trait][:2]):
            samples.append({"trait": trait, "prompt": prompt, **{c: replies_by[(trait, c)][i] for c in CONDITIONS},
                            "prob_high": {c: round(probs[trait][c][i], 3) for c in CONDITIONS}})
    return {**score_persona(probs), "samples": samples, "max_tokens": max_tokens,
            "prompts_per_trait": {t: len(p) for t, p in prompts.items()}}


# --- presenting ---------------------------------------------------------------------------


def _expert_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    return [[name, e["n"], e["expert_share_as_pole"], e["base_share_as_pole"], e["prompt_only_share_as_pole"], e["routed_share_as_pole"]]
            for name, e in result["per_expert"].items()]


def _trait_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    return [[t, *[v["mean_prob_high"].get(c) for c in CONDITIONS]] for t, v in result["per_trait"].items()]


EXPERT_HEADERS = ["expert", "n", "expert", "base", "prompt-only", "routed"]


def print_table(result: Mapping[str, Any]) -> None:
    print(f"persona eval  max_tokens={result['max_tokens']}  classifier held-out accuracy={ {k: round(v, 2) for k, v in result['classifier_accuracy'].items()} }")
    print("share of replies classified as the expert's pole:")
    print(text_table(EXPERT_HEADERS, _expert_rows(result)))
    print(f"experts above base: {result['experts_above_base']}/{result['n_experts']}   "
          f"above prompt-only: {result['experts_above_prompt_only']}/{result['n_experts']}")
    print("mean prob_high per condition:")
    print(text_table(["trait", *CONDITIONS], _trait_rows(result)))


def markdown(result: Mapping[str, Any]) -> str:
    lines = [
        "# Persona eval", "",
        f"Replies of up to {result['max_tokens']} new tokens (greedy), scored by the pole classifier "
        f"(held-out accuracy on corpus test responses: {', '.join(f'{k} {v:.2f}' for k, v in result['classifier_accuracy'].items())}).", "",
        "## Share of replies classified as the expert's pole", "",
        md_table(EXPERT_HEADERS, _expert_rows(result)), "",
        f"Experts above base: **{result['experts_above_base']}/{result['n_experts']}**; above the prompt-only persona: "
        f"**{result['experts_above_prompt_only']}/{result['n_experts']}**. Mean share: expert {fmt(result['mean_expert_share_as_pole'])}, "
        f"base {fmt(result['mean_base_share_as_pole'])}, prompt-only {fmt(result['mean_prompt_only_share_as_pole'])}.", "",
        "## Mean prob_high per condition", "",
        md_table(["trait", *CONDITIONS], _trait_rows(result)), "",
        "## Samples", "",
    ]
    for s in result["samples"]:
        lines.append(f"**{s['trait']}**: {s['prompt']}")
        for c in CONDITIONS:
            lines.append(f"- *{c}* ({s['prob_high'][c]}): {s[c]}")
        lines.append("")
    return "\n".join(lines)


def figures(result: Mapping[str, Any]) -> dict[str, Any]:
    plt = pyplot()
    names = list(result["per_expert"])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 8))
    width = 0.2
    series = [("expert_share_as_pole", "expert", "#c44e52"), ("base_share_as_pole", "base", "#8c8c8c"),
              ("prompt_only_share_as_pole", "prompt-only", "#4c72b0"), ("routed_share_as_pole", "routed", "#55a868")]
    for k, (key, label, colour) in enumerate(series):
        xs = [i + (k - 1.5) * width for i in range(len(names))]
        ax1.bar(xs, [result["per_expert"][n][key] or 0.0 for n in names], width, label=label, color=colour)
    ax1.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("share classified as the pole")
    ax1.set_title("How strongly each expert shows (pole classifier)")
    ax1.legend(fontsize=8, ncol=4)
    traits = list(result["per_trait"])
    width = 0.13
    for k, condition in enumerate(CONDITIONS):
        xs = [i + (k - 2.5) * width for i in range(len(traits))]
        ax2.bar(xs, [result["per_trait"][t]["mean_prob_high"].get(condition) or 0.0 for t in traits], width, label=condition)
    ax2.axhline(0.5, color="k", lw=0.8, ls=":")
    ax2.set_xticks(range(len(traits)), traits)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("mean prob_high")
    ax2.legend(fontsize=8, ncol=6)
    fig.tight_layout()
    return {"experts": fig}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.persona", description="Expert strength eval with the pole classifier")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL rows {trait, prompt}")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--limit", type=int, help="at most this many prompts per trait (quick runs)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and PNGs into this folder")
    args = parser.parse_args(argv)
    if args.max_tokens < 1 or (args.limit is not None and args.limit < 1) or args.batch_size < 1:
        return fail("--max-tokens, --limit and --batch-size must be positive")
    try:
        prompts = prompts_by_trait(load_rows(args.data), args.limit)
    except DataError as exc:
        return fail(str(exc))
    with stdout_to_stderr(args.json):
        from persona_agents.engine import PersonaFuseEngine

        engine = PersonaFuseEngine.load()
        classifier, accuracy = fit_classifier()
        result = evaluate(engine, classifier, prompts, max_tokens=args.max_tokens, batch_size=args.batch_size)
        result = {"data": str(args.data), "model": engine.model_name, "bundle": str(engine.bundle.path),
                  "untrained_parts": engine.bundle.manifest.untrained_parts,
                  "classifier_accuracy": accuracy, **result}
        if args.out:
            write_report(args.out, "persona", result, markdown(result), figures(result))
    emit(result, args.json, print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
