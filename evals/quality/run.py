"""Running the quality eval: prompts, both arms' replies, the checks, the summary per arm.

Both arms answer every row with the domain pack's persona prompt as the system prompt:
``persona_fuse`` (routed expert weights) and ``base`` (the same model without experts,
``persona_weights="base"``), with ``GenerationParams``' reply defaults unless ``max_tokens``
overrides the length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from evals.common import progress
from evals.quality.checks import (
    counseling_checks,
    customer_service_checks,
    reply_checks,
    summarise_counseling,
    summarise_customer_service,
    summarise_shared,
)
from evals.quality.judge import ARMS, judge_counseling, judge_pairwise

JUDGE_SKIPPED = "judge skipped (no --judge given)"


def system_prompt(domain: str, row: Mapping[str, Any]) -> str:
    from domains.schema import load_pack

    persona = load_pack(domain).prompts.persona
    if domain == "counseling":
        return persona
    from graphs.review_input import ReviewInput, review_context

    review = ReviewInput.model_validate({"text": row["text"], "rating": row["rating"], "product": row.get("product")})
    return f"{persona}\n\n{review_context(review)}"


def conversation(domain: str, row: Mapping[str, Any]) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": system_prompt(domain, row)}]
    turns += list(row.get("context", []))
    turns.append({"role": "user", "content": row["text"]})
    return turns


def reply_params(max_tokens: int | None) -> Any:
    """The reply defaults, greedy, with ``max_tokens`` new tokens if given."""
    from persona_agents.generation import GenerationParams

    return GenerationParams.from_options(max_tokens=max_tokens, temperature=0.0)


def decoding_summary(params: Any) -> dict[str, Any]:
    fields = ("max_new_tokens", "temperature", "repetition_penalty", "no_repeat_ngram_size", "word_run_limit",
              "end_at_sentence")
    return {k: v for k, v in dataclasses.asdict(params).items() if k in fields}


def generate_arms(engine: Any, domain: str, rows: Sequence[Mapping[str, Any]], *, params: Any,
                  batch_size: int) -> dict[str, list[str]]:
    from persona_agents.engine import BASE_ONLY

    conversations = [conversation(domain, r) for r in rows]
    replies: dict[str, list[str]] = {arm: [] for arm in ARMS}
    jobs = [(arm, start) for arm in ARMS for start in range(0, len(rows), batch_size)]
    for arm, start in progress(jobs, desc=f"{domain} replies", unit="batch"):
        chunk = conversations[start : start + batch_size]
        weights = [None if arm == "persona_fuse" else BASE_ONLY] * len(chunk)
        replies[arm].extend(g.text for g in engine.generate_batch(chunk, weights, params=params))
    return replies


def score(domain: str, rows: Sequence[Mapping[str, Any]], replies: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Every check on every reply of both arms: ``{"arms": summaries, "rows": details}``."""
    from domains.output_check import check_output

    details = [{"id": r["id"], "text": r["text"], **({"rating": r["rating"]} if "rating" in r else {}), "arms": {}} for r in rows]
    per_arm_checks: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    if domain == "customer_service":
        from domains.reviews import aspects_in

        review_aspects = [aspects_in(r["text"]) for r in rows]
    for arm in ARMS:
        for i, (row, reply) in enumerate(zip(rows, replies[arm])):
            check = check_output(domain, reply or " ", user_text=row["text"])
            if domain == "counseling":
                checks = counseling_checks(row["text"], reply, check.block)
            else:
                checks = customer_service_checks(row["text"], row["rating"], reply, review_aspects[i],
                                                 aspects_in(reply) if reply.strip() else [], check.block)
            checks.update(reply_checks(domain, row["text"], reply))
            checks["output_check_reasons"] = check.reasons
            per_arm_checks[arm].append(checks)
            details[i]["arms"][arm] = {"reply": reply, "checks": checks}
    summarise = summarise_counseling if domain == "counseling" else summarise_customer_service
    arms = {arm: {**summarise(per_arm_checks[arm]), **summarise_shared(per_arm_checks[arm])} for arm in ARMS}
    return {"arms": arms, "rows": details}


def evaluate(engine: Any, domain: str, rows: Sequence[Mapping[str, Any]], *, judge: Any = None,
             max_tokens: int | None = None, batch_size: int = 8) -> dict[str, Any]:
    params = reply_params(max_tokens)
    replies = generate_arms(engine, domain, rows, params=params, batch_size=batch_size)
    scored = score(domain, rows, replies)
    result: dict[str, Any] = {"domain": domain, "n": len(rows), "max_tokens": params.max_new_tokens,
                              "decoding": decoding_summary(params), "arms": scored["arms"]}
    details = scored["rows"]
    if judge is None:
        result["judge"] = JUDGE_SKIPPED
    elif domain == "counseling":
        result["judge"] = type(judge).__name__
        result["judge_scores"] = judge_counseling(judge, rows, replies, details)
    else:
        result["judge"] = type(judge).__name__
        result["pairwise"] = judge_pairwise(judge, rows, replies, details)
    result["rows"] = details
    return result


def rescore(saved: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A saved result's replies scored again with today's checks (no model is loaded).

    ``saved`` is one domain's ``--json`` output; ``rows`` are the eval rows it answered."""
    by_id = {r["id"]: r for r in saved["rows"]}
    missing = [r["id"] for r in rows if r["id"] not in by_id]
    if missing:
        raise ValueError(f"the saved result has no replies for rows {missing[:5]}")
    replies = {arm: [by_id[r["id"]]["arms"][arm]["reply"] for r in rows] for arm in ARMS}
    scored = score(saved["domain"], rows, replies)
    return {"domain": saved["domain"], "n": len(rows), "max_tokens": saved.get("max_tokens"),
            "decoding": saved.get("decoding", "not recorded"), "rescored": True, "arms": scored["arms"],
            "judge": JUDGE_SKIPPED, "rows": scored["rows"]}
