"""Reply-quality eval for the two domains, with deterministic checks and an optional judge.

``python -m evals.quality --domain counseling|customer_service [--data FILE] [--judge pkg.mod:attr]
[--max-tokens 96] [--limit N] [--json] [--out DIR]``

Both arms answer every row with the domain pack's persona prompt as the system prompt:
``persona_fuse`` (routed expert weights) and ``base`` (the same model without experts,
``persona_weights="base"``).

counseling rows ``{"text", "context": [earlier user turns or {"role","content"}]?}``, checks:
  - reflects: a reflection cue ("it sounds like", "you feel", ...) or >= 2 content words shared
    with the user's message (light stemming, stop words removed);
  - open_questions: questions whose first three words include what/how/could/would/which/tell;
  - length_words; unsafe: ``domains.output_check.check_output`` blocks the reply;
  - judge (optional): MentalChat16K-style criteria scored 1-10.
customer_service rows ``{"text", "rating": 1-5, "product"?}``, checklist:
  - tone_fits_rating: thanks for 4-5 stars, an apology for 1-2, either for 3;
  - complaints_addressed: for ratings <= 3, every aspect ``domains.reviews.aspects_in(review)``
    finds is also found by ``aspects_in(reply)`` (the reply uses that aspect's vocabulary, e.g.
    review "the courier" -> reply "your delivery"); n/a for 4-5 stars or no aspects;
  - no_invented_promises: ``check_output`` does not block and no "we will refund/replace/
    compensate/reimburse";
  - specific: the reply shares at least one content word with the review (generic reply words
    such as thanks/sorry/feedback/experience/team do not count);
  - judge (optional): pairwise win rate of persona_fuse against base, both orders.

Without ``--judge`` the report says "judge skipped": a 135M model does not grade itself.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.common import (
    DATA_DIR,
    DataError,
    emit,
    fail,
    fmt,
    load_judge,
    md_table,
    mean,
    median,
    progress,
    pyplot,
    read_jsonl,
    require_text,
    stdout_to_stderr,
    text_table,
    where,
    write_report,
)

DOMAINS = ("counseling", "customer_service")
ARMS = ("persona_fuse", "base")
JUDGE_SKIPPED = "judge skipped (no --judge given)"

# --- text helpers (pure) ------------------------------------------------------------------

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves im ive id ill youre youve dont cant
    wont didnt doesnt isnt wasnt arent really also get got one like even still much many well way
    thing things something anything dont know just ever every lot bit""".split()
)
GENERIC_REPLY_WORDS = frozenset(
    """thank thanks thankful grateful appreciate sorry apology apologise apologize apologies regret
    review feedback experience customer customers care team contact hear hearing glad happy pleased
    please reach share sharing taking time let know look looking forward welcome again soon hope
    help support kind words""".split()
)
REFLECTION_CUES = (
    "it sounds like", "sounds like", "it sounds as if", "you feel", "you're feeling", "you are feeling",
    "you've been feeling", "you have been feeling", "you seem", "it seems", "i hear", "i can hear",
    "that sounds", "must be", "must feel", "you're going through", "you are going through",
)
OPEN_OPENERS = frozenset({"what", "what's", "whats", "how", "how's", "hows", "could", "would", "which", "tell"})
_WORD = re.compile(r"[a-z][a-z']*")
_THANKS = re.compile(r"\b(?:thank|thanks|thankful|grateful|appreciate[ds]?)\b", re.IGNORECASE)
_APOLOGY = re.compile(r"\b(?:sorry|apologi[sz]e[ds]?|apologies|apology|regret)\b", re.IGNORECASE)
_PROMISE = re.compile(
    r"\b(?:we|i)(?:'ll| will| shall| are going to| am going to|'re going to|'m going to| can)\s+"
    r"(?:\w+\s+){0,2}?(?:refund|replace|compensate|reimburse)\w*",
    re.IGNORECASE,
)


def stem(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("ly", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words of three letters or more, without stop words."""
    words = set()
    for raw in _WORD.findall(text.lower().replace("\u2019", "'")):
        word = raw.removesuffix("'s").replace("'", "")
        if len(word) >= 3 and word not in STOPWORDS:
            words.add(stem(word))
    return words


def word_count(text: str) -> int:
    return len(text.split())


def reflection(user_text: str, reply: str) -> dict[str, Any]:
    lowered = reply.lower().replace("\u2019", "'")
    cues = [c for c in REFLECTION_CUES if c in lowered]
    shared = sorted(content_words(user_text) & content_words(reply))
    return {"cues": cues, "shared_words": shared, "reflects": bool(cues) or len(shared) >= 2}


def questions(reply: str) -> list[str]:
    """The question sentences of a reply (text since the previous sentence end, up to '?')."""
    return [q.strip() + "?" for q in re.findall(r"([^.!?\n]*)\?", reply) if q.strip()]


def is_open_question(question: str) -> bool:
    words = [w.strip(",;:\"'()") for w in question.lower().split()]
    return any(w in OPEN_OPENERS for w in words[:3])


def open_questions(reply: str) -> int:
    return sum(is_open_question(q) for q in questions(reply))


def tone_fits_rating(rating: int, reply: str) -> bool:
    thanks, apology = bool(_THANKS.search(reply)), bool(_APOLOGY.search(reply))
    if rating >= 4:
        return thanks
    if rating <= 2:
        return apology
    return thanks or apology


def invented_promise(reply: str) -> bool:
    return bool(_PROMISE.search(reply))


def specific_words(review: str, reply: str) -> list[str]:
    generic = {stem(w) for w in GENERIC_REPLY_WORDS}
    return sorted((content_words(review) & content_words(reply)) - generic)


def complaints_addressed(review_aspects: Sequence[str], reply_aspects: Sequence[str], rating: int) -> dict[str, Any]:
    """For a complaint (rating <= 3): which of the review's aspects the reply also covers."""
    if rating >= 4 or not review_aspects:
        return {"aspects": list(review_aspects), "addressed": [], "share": None, "all": None}
    addressed = [a for a in review_aspects if a in set(reply_aspects)]
    return {"aspects": list(review_aspects), "addressed": addressed,
            "share": len(addressed) / len(review_aspects), "all": len(addressed) == len(review_aspects)}


def counseling_checks(user_text: str, reply: str, unsafe: bool) -> dict[str, Any]:
    refl = reflection(user_text, reply)
    n_open = open_questions(reply)
    return {"reflects": refl["reflects"], "reflection_cues": refl["cues"], "shared_words": refl["shared_words"],
            "questions": len(questions(reply)), "open_questions": n_open, "has_open_question": n_open > 0,
            "length_words": word_count(reply), "unsafe": unsafe}


def customer_service_checks(review: str, rating: int, reply: str, review_aspects: Sequence[str],
                            reply_aspects: Sequence[str], blocked: bool) -> dict[str, Any]:
    complaints = complaints_addressed(review_aspects, reply_aspects, rating)
    promise = invented_promise(reply)
    specific = specific_words(review, reply)
    checks = {
        "tone_fits_rating": tone_fits_rating(rating, reply),
        "complaints_addressed": complaints["all"],
        "complaint_share": complaints["share"],
        "review_aspects": complaints["aspects"],
        "addressed_aspects": complaints["addressed"],
        "no_invented_promises": not blocked and not promise,
        "output_check_blocked": blocked,
        "promise_phrase": promise,
        "specific": bool(specific),
        "specific_words": specific,
        "length_words": word_count(reply),
    }
    applicable = [checks[k] for k in CS_CHECKS if checks[k] is not None]
    checks["all_pass"] = all(applicable)
    return checks


CS_CHECKS = ("tone_fits_rating", "complaints_addressed", "no_invented_promises", "specific")
COUNSELING_RATES = ("reflects", "has_open_question", "unsafe")


def rate(values: Sequence[Any]) -> float | None:
    """Share of True among the applicable (non-None) values."""
    applicable = [bool(v) for v in values if v is not None]
    return sum(applicable) / len(applicable) if applicable else None


def summarise_counseling(checks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "n": len(checks),
        "reflection_rate": rate([c["reflects"] for c in checks]),
        "open_question_rate": rate([c["has_open_question"] for c in checks]),
        "mean_open_questions": mean([c["open_questions"] for c in checks]),
        "mean_length_words": mean([c["length_words"] for c in checks]),
        "median_length_words": median([c["length_words"] for c in checks]),
        "unsafe_rate": rate([c["unsafe"] for c in checks]),
    }


def summarise_customer_service(checks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(checks)}
    for key in CS_CHECKS:
        out[f"{key}_rate"] = rate([c[key] for c in checks])
        out[f"{key}_n"] = sum(c[key] is not None for c in checks)
    out["mean_complaint_share"] = mean([c["complaint_share"] for c in checks if c["complaint_share"] is not None])
    out["all_pass_rate"] = rate([c["all_pass"] for c in checks])
    out["mean_length_words"] = mean([c["length_words"] for c in checks])
    return out


# --- judge (pure parsing + prompting) -----------------------------------------------------

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


# --- data ---------------------------------------------------------------------------------


def load_rows(path: Path, domain: str) -> list[dict[str, Any]]:
    rows = []
    for obj in read_jsonl(path):
        at = where(path, obj)
        text = require_text(path, obj, "text")
        row: dict[str, Any] = {"id": str(obj.get("id", f"line-{obj['_line']}")), "text": text}
        if domain == "counseling":
            context = obj.get("context", [])
            if not isinstance(context, list):
                raise DataError(f"{at}: 'context' must be a list")
            turns = []
            for item in context:
                if isinstance(item, str) and item.strip():
                    turns.append({"role": "user", "content": item})
                elif isinstance(item, Mapping) and item.get("role") in ("user", "assistant") and isinstance(item.get("content"), str) and item["content"].strip():
                    turns.append({"role": item["role"], "content": item["content"]})
                else:
                    raise DataError(f"{at}: context items must be non-empty strings or {{'role': 'user'|'assistant', 'content'}}")
            row["context"] = turns
        else:
            rating = obj.get("rating")
            if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
                raise DataError(f"{at}: 'rating' must be an integer from 1 to 5, got {rating!r}")
            product = obj.get("product")
            if product is not None and (not isinstance(product, str) or not product.strip()):
                raise DataError(f"{at}: 'product' must be a non-empty string when given")
            row.update(rating=rating, product=product)
        rows.append(row)
    return rows


# --- running ------------------------------------------------------------------------------


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


def generate_arms(engine: Any, domain: str, rows: Sequence[Mapping[str, Any]], *, max_tokens: int, batch_size: int) -> dict[str, list[str]]:
    from persona_agents.engine import BASE_ONLY, GenerationParams

    params = GenerationParams(max_new_tokens=max_tokens, temperature=0.0)
    conversations = [conversation(domain, r) for r in rows]
    replies: dict[str, list[str]] = {arm: [] for arm in ARMS}
    jobs = [(arm, start) for arm in ARMS for start in range(0, len(rows), batch_size)]
    for arm, start in progress(jobs, desc=f"{domain} replies", unit="batch"):
        chunk = conversations[start : start + batch_size]
        weights = [None if arm == "persona_fuse" else BASE_ONLY] * len(chunk)
        replies[arm].extend(g.text for g in engine.generate_batch(chunk, weights, params=params))
    return replies


def evaluate(engine: Any, domain: str, rows: Sequence[Mapping[str, Any]], *, judge: Any = None,
             max_tokens: int = 96, batch_size: int = 8) -> dict[str, Any]:
    from domains.output_check import check_output

    replies = generate_arms(engine, domain, rows, max_tokens=max_tokens, batch_size=batch_size)
    details = [{"id": r["id"], "text": r["text"], **({"rating": r["rating"]} if "rating" in r else {}), "arms": {}} for r in rows]
    per_arm_checks: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    if domain == "customer_service":
        from domains.reviews import aspects_in

        review_aspects = [aspects_in(r["text"]) for r in rows]
    for arm in ARMS:
        for i, (row, reply) in enumerate(zip(rows, replies[arm])):
            check = check_output(domain, reply or " ")
            if domain == "counseling":
                checks = counseling_checks(row["text"], reply, check.block)
            else:
                checks = customer_service_checks(row["text"], row["rating"], reply, review_aspects[i],
                                                 aspects_in(reply) if reply.strip() else [], check.block)
            checks["output_check_reasons"] = check.reasons
            per_arm_checks[arm].append(checks)
            details[i]["arms"][arm] = {"reply": reply, "checks": checks}
    summarise = summarise_counseling if domain == "counseling" else summarise_customer_service
    result: dict[str, Any] = {"domain": domain, "n": len(rows), "max_tokens": max_tokens,
                              "arms": {arm: summarise(per_arm_checks[arm]) for arm in ARMS}}
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


# --- presenting ---------------------------------------------------------------------------


def _summary_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    keys = [k for k in result["arms"]["persona_fuse"] if k != "n" and not k.endswith("_n")]
    return ["metric", *ARMS], [[k, *[result["arms"][arm].get(k) for arm in ARMS]] for k in keys]


def _judge_lines(result: Mapping[str, Any]) -> list[str]:
    if "judge_scores" in result:
        per = result["judge_scores"]["per_arm"]
        return [f"judge {result['judge']} (1-10): " + "; ".join(
            f"{arm}: overall {fmt(per[arm]['overall'], 2)}" for arm in ARMS)] + [
            f"  {c:<24}" + "  ".join(f"{arm} {fmt(per[arm][c], 2)}" for arm in ARMS) for c in CRITERIA]
    if "pairwise" in result:
        p = result["pairwise"]
        return [f"judge {result['judge']}: persona_fuse vs base win rate {fmt(p['win_rate'])} "
                f"(wins {p['wins']}, losses {p['losses']}, ties/split {p['ties']}, n {p['n']}, "
                f"position consistency {fmt(p['position_consistency'])})"]
    return [str(result["judge"])]


def print_table(result: Mapping[str, Any]) -> None:
    print(f"quality  domain={result['domain']}  n={result['n']}  max_tokens={result['max_tokens']}")
    headers, rows = _summary_rows(result)
    print(text_table(headers, rows))
    for line in _judge_lines(result):
        print(line)


def markdown(result: Mapping[str, Any]) -> str:
    headers, rows = _summary_rows(result)
    lines = [f"# Quality eval: {result['domain']}", "",
             f"n = {result['n']} rows; replies of up to {result['max_tokens']} new tokens (greedy); "
             "arms: persona_fuse (routed experts) and base (no experts), same system prompt.", "",
             md_table(headers, rows), "", "## Judge", "", *_judge_lines(result), "", "## Replies", ""]
    for row in result["rows"][:12]:
        lines.append(f"**{row['id']}**{' (' + str(row['rating']) + '/5)' if 'rating' in row else ''}: {row['text']}")
        for arm in ARMS:
            lines.append(f"- *{arm}*: {row['arms'][arm]['reply']}")
        lines.append("")
    return "\n".join(lines)


def figures(result: Mapping[str, Any]) -> dict[str, Any]:
    plt = pyplot()
    if result["domain"] == "counseling":
        keys = ["reflection_rate", "open_question_rate", "unsafe_rate"]
    else:
        keys = [f"{k}_rate" for k in CS_CHECKS] + ["all_pass_rate"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.38
    for k, (arm, colour) in enumerate(zip(ARMS, ("#c44e52", "#8c8c8c"))):
        xs = [i + (k - 0.5) * width for i in range(len(keys))]
        ax1.bar(xs, [result["arms"][arm][key] or 0.0 for key in keys], width, label=arm, color=colour)
    ax1.set_xticks(range(len(keys)), [k.removesuffix("_rate") for k in keys], rotation=20)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("share of replies")
    ax1.set_title(f"{result['domain']}: deterministic checks")
    ax1.legend(fontsize=8)
    lengths = {arm: [r["arms"][arm]["checks"]["length_words"] for r in result["rows"]] for arm in ARMS}
    ax2.hist([lengths[a] for a in ARMS], bins=10, label=list(ARMS), color=["#c44e52", "#8c8c8c"])
    ax2.set_xlabel("reply length (words)")
    ax2.set_title(_judge_lines(result)[0][:70], fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return {"checks": fig}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.quality", description="Domain reply-quality eval")
    parser.add_argument("--domain", required=True, choices=DOMAINS)
    parser.add_argument("--data", type=Path, help="JSONL file (default: evals/data/quality_<domain>.jsonl)")
    parser.add_argument("--judge", help="package.module:attribute giving a LangChain chat model (or a factory for one)")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and PNGs into this folder")
    args = parser.parse_args(argv)
    if args.max_tokens < 1 or (args.limit is not None and args.limit < 1) or args.batch_size < 1:
        return fail("--max-tokens, --limit and --batch-size must be positive")
    path = args.data or DATA_DIR / f"quality_{args.domain}.jsonl"
    try:
        rows = load_rows(path, args.domain)[: args.limit]
        judge = load_judge(args.judge) if args.judge else None
    except DataError as exc:
        return fail(str(exc))
    with stdout_to_stderr(args.json):
        from persona_agents.engine import PersonaFuseEngine

        engine = PersonaFuseEngine.load()
        result = evaluate(engine, args.domain, rows, judge=judge, max_tokens=args.max_tokens, batch_size=args.batch_size)
        result = {"data": str(path), "model": engine.model_name, **result}
        if args.out:
            write_report(args.out, f"quality_{args.domain}", result, markdown(result), figures(result))
    emit(result, args.json, print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
