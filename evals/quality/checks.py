"""The deterministic checks of a reply, per domain, and their summaries (pure functions).

counseling, per reply:
  - reflects: a reflection cue ("it sounds like", "you feel", ...) or >= 2 content words shared
    with the user's message (light stemming, stop words removed);
  - open_questions: questions whose first three words include what/how/could/would/which/tell;
  - length_words; unsafe: ``domains.output_check.check_output`` blocks the reply.
customer_service, per reply:
  - tone_fits_rating: thanks for 4-5 stars, an apology for 1-2, either for 3;
  - complaints_addressed: for ratings <= 3, every aspect ``domains.reviews.aspects_in(review)``
    finds is also found by ``aspects_in(reply)`` (the reply uses that aspect's vocabulary, e.g.
    review "the courier" -> reply "your delivery"); n/a for 4-5 stars or no aspects;
  - no_invented_promises: ``check_output`` does not block and no "we will refund/replace/
    compensate/reimburse";
  - specific: the reply shares at least one content word with the review (generic reply words
    such as thanks/sorry/feedback/experience/team do not count).
Both domains (``reply_checks``):
  - repeated_run: a four-word run that occurs three or more times, case and punctuation ignored
    (``persona_agents.repetition.repeated_run``); repeated_phrase: the same for a three-word
    run (the run length the decoding guard watches: "What's the plan?" three times); echoed_run:
    a five-word run that occurs twice (a sentence said again: "I'm so proud of you." twice);
  - ends_complete: the reply ends at a sentence end (``persona_agents.sentences``);
  - invented_contacts / invented_facts: what ``domains.invented.invented_details`` finds (the
    output check's own code): contact details and personal data; amounts and policies that
    neither the pack nor the user's message states.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from evals.metrics import mean, median, share
from persona_agents.repetition import ECHO_RUN_WORDS, GUARD_RUN_WORDS, repeated_run

# --- text helpers -------------------------------------------------------------------------

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


def reply_checks(domain: str, user_text: str, reply: str) -> dict[str, Any]:
    """Checks shared by both domains: loops, a complete ending, invented details."""
    from domains.invented import INVENTED_FACT, invented_details
    from persona_agents.sentences import last_sentence_end

    run = repeated_run(reply)
    phrase = repeated_run(reply, n=GUARD_RUN_WORDS)
    echo = repeated_run(reply, n=ECHO_RUN_WORDS, times=2)
    findings = invented_details(domain, reply, user_text=user_text) if reply.strip() else []
    stripped = reply.strip()
    return {
        "repeated_run": run is not None,
        "repeated_words": run,
        "repeated_phrase": phrase is not None,
        "repeated_phrase_words": phrase,
        "echoed_run": echo is not None,
        "echoed_words": echo,
        "ends_complete": bool(stripped) and last_sentence_end(stripped, final=True) == len(stripped),
        "invented_contacts": [f.reason() for f in findings if f.category != INVENTED_FACT],
        "invented_facts": [f.reason() for f in findings if f.category == INVENTED_FACT],
    }


CS_CHECKS = ("tone_fits_rating", "complaints_addressed", "no_invented_promises", "specific")
COUNSELING_RATES = ("reflects", "has_open_question", "unsafe")


def rate(values: Sequence[Any]) -> float | None:
    """Share of True among the applicable (non-None) values."""
    return share(values)


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


def summarise_shared(checks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Loops, endings and invented details over one arm's replies (counts are replies)."""
    return {
        "repeated_run_rate": rate([c["repeated_run"] for c in checks]),
        "repeated_phrase_rate": rate([c["repeated_phrase"] for c in checks]),
        "echoed_run_rate": rate([c["echoed_run"] for c in checks]),
        "ends_complete_rate": rate([c["ends_complete"] for c in checks]),
        "invented_contact_replies": sum(bool(c["invented_contacts"]) for c in checks),
        "invented_fact_replies": sum(bool(c["invented_facts"]) for c in checks),
    }
