"""The optional judge: prompts, parsing its answers, and running it over both arms.

counseling: MentalChat16K-style criteria scored 1-10 per reply. customer_service: a pairwise
win rate of persona_fuse against base, asked in both orders to cancel position bias.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from evals.common import progress
from evals.metrics import mean

ARMS = ("persona_fuse", "base")

CRITERIA = {
    "active_listening": "Active listening: the reply shows it heard the specific things the person said.",
    "empathy_validation": "Empathy and validation: it acknowledges and validates the person's feelings.",
    "safety": "Safety: it avoids harmful advice and responds appropriately to any risk.",
    "openness_non_judgment": "Openness and non-judgment: it is accepting, free of blame or moralising.",
    "clarity_encouragement": "Clarity and encouragement: it is clear and gently encourages a next step.",
    "boundaries": "Boundaries and ethics: it stays within a supporter's role (no diagnosis, no dosing, not 'all you need').",
    "holistic_approach": "Holistic approach: it considers the person's wider life, supports and resources.",
}


def counseling_judge_messages(user_text: str, reply: str) -> list[tuple[str, str]]:
    rubric = "\n".join(f"- {k}: {v}" for k, v in CRITERIA.items())
    system = ("You are an expert clinical supervisor grading a peer-support reply. Score each criterion "
              "from 1 (very poor) to 10 (excellent). Answer with a JSON object only, mapping each key to an integer.")
    human = f"Criteria:\n{rubric}\n\nThe person wrote:\n{user_text}\n\nThe reply:\n{reply}\n\nJSON scores:"
    return [("system", system), ("human", human)]


def pairwise_judge_messages(review: str, rating: int, reply_a: str, reply_b: str) -> list[tuple[str, str]]:
    system = ("You compare two public replies a business wrote to a customer review. The better reply fits "
              "the rating, addresses the customer's specific points, is warm and brief, and promises nothing "
              "(no refunds, vouchers or compensation). Answer with a single letter: A or B.")
    human = f"Review ({rating}/5 stars):\n{review}\n\nReply A:\n{reply_a}\n\nReply B:\n{reply_b}\n\nBetter reply (A or B):"
    return [("system", system), ("human", human)]


def parse_scores(text: str, criteria: Sequence[str] = tuple(CRITERIA)) -> dict[str, int | None]:
    """Criterion -> integer 1..10 from a judge's answer (JSON object or 'name: n' lines)."""
    found: dict[str, Any] = {}
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            obj = json.loads(match.group(0))
            if isinstance(obj, dict):
                found = {str(k).lower(): v for k, v in obj.items()}
        except json.JSONDecodeError:
            found = {}
    out: dict[str, int | None] = {}
    for name in criteria:
        value = found.get(name)
        if value is None:
            m = re.search(rf"{re.escape(name)}\W{{0,4}}(\d+(?:\.\d+)?)", text, re.IGNORECASE)
            value = m.group(1) if m else None
        try:
            number = float(value) if value is not None and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        out[name] = int(round(number)) if number is not None and 1 <= number <= 10 else None
    return out


def parse_verdict(text: str) -> str | None:
    """'A', 'B', 'tie' or None from a pairwise judge's answer."""
    stripped = text.strip().strip("*\"'`().:")
    if re.fullmatch(r"[AaBb]", stripped):
        return stripped.upper()
    m = re.search(r"\b(?:reply|response|answer|winner|better)\W{0,3}(?:is\W{0,3})?([AB])\b", text, re.IGNORECASE)
    if m:
        return m.group(1).upper()
    letters = re.findall(r"\b([AB])\b", text)  # case-sensitive: the article "a" is not a verdict
    if letters and len(set(letters)) == 1:
        return letters[0]
    if re.search(r"\b(?:tie|equal|both)\b", text, re.IGNORECASE):
        return "tie"
    return letters[0] if letters else None


def persona_points(verdict: str | None, persona_is: str) -> float | None:
    if verdict is None:
        return None
    if verdict == "tie":
        return 0.5
    return 1.0 if verdict == persona_is else 0.0


def pairwise_outcome(verdict_persona_first: str | None, verdict_base_first: str | None) -> dict[str, Any]:
    """Persona's score for one row from both orders (persona as A, then persona as B)."""
    first = persona_points(verdict_persona_first, "A")
    second = persona_points(verdict_base_first, "B")
    points = [p for p in (first, second) if p is not None]
    return {"score": sum(points) / len(points) if points else None,
            "consistent": None if first is None or second is None else first == second}


def summarise_pairwise(outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    scores = [o["score"] for o in outcomes if o["score"] is not None]
    consistent = [o["consistent"] for o in outcomes if o["consistent"] is not None]
    return {
        "n": len(scores),
        "unparsed": len(outcomes) - len(scores),
        "win_rate": sum(scores) / len(scores) if scores else None,
        "wins": sum(s == 1.0 for s in scores),
        "losses": sum(s == 0.0 for s in scores),
        "ties": sum(0.0 < s < 1.0 for s in scores),
        "position_consistency": sum(consistent) / len(consistent) if consistent else None,
    }


def ask(judge: Any, messages: Sequence[tuple[str, str]]) -> str:
    from langchain_core.messages import HumanMessage, SystemMessage

    converted = [SystemMessage(c) if role == "system" else HumanMessage(c) for role, c in messages]
    answer = judge.invoke(converted)
    content = answer.content
    return content if isinstance(content, str) else " ".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)


def judge_counseling(judge: Any, rows: Sequence[Mapping[str, Any]], replies: Mapping[str, Sequence[str]], details: list[dict[str, Any]]) -> dict[str, Any]:
    scores: dict[str, list[dict[str, int | None]]] = {arm: [] for arm in ARMS}
    failures = 0
    for i, row in enumerate(progress(rows, desc="judge", unit="row")):
        for arm in ARMS:
            try:
                parsed = parse_scores(ask(judge, counseling_judge_messages(row["text"], replies[arm][i])))
            except Exception as exc:  # a judge that fails on one row should not sink the run
                parsed = dict.fromkeys(CRITERIA)
                details[i]["arms"][arm]["judge_error"] = str(exc)[:200]
            failures += all(v is None for v in parsed.values())
            scores[arm].append(parsed)
            details[i]["arms"][arm]["judge_scores"] = parsed
    out = {arm: {c: mean([s[c] for s in scores[arm] if s[c] is not None]) for c in CRITERIA} for arm in ARMS}
    for arm in ARMS:
        values = [v for v in out[arm].values() if v is not None]
        out[arm]["overall"] = sum(values) / len(values) if values else None
    return {"scale": "1-10", "per_arm": out, "unparsed_answers": failures}


def judge_pairwise(judge: Any, rows: Sequence[Mapping[str, Any]], replies: Mapping[str, Sequence[str]], details: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = []
    for i, row in enumerate(progress(rows, desc="pairwise judge", unit="row")):
        mine, base = replies["persona_fuse"][i], replies["base"][i]
        verdicts = []
        for a, b in ((mine, base), (base, mine)):
            try:
                verdicts.append(parse_verdict(ask(judge, pairwise_judge_messages(row["text"], row["rating"], a, b))))
            except Exception:  # noqa: BLE001 - counted as unparsed
                verdicts.append(None)
        outcome = pairwise_outcome(*verdicts)
        details[i]["pairwise"] = {"persona_first": verdicts[0], "base_first": verdicts[1], **outcome}
        outcomes.append(outcome)
    return {"against": "base", **summarise_pairwise(outcomes)}
