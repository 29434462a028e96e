"""Reply-quality eval for the two domains: deterministic checks, an optional judge, reports.

Modules by job: ``checks`` (per-reply checks and summaries; loops are counted with
``persona_agents.repetition``, the definition decoding enforces), ``judge`` (prompts, parsing, running a judge), ``data`` (rows), ``run`` (generating and
scoring both arms), ``report`` (table, markdown, figure), ``cli`` (``python -m evals.quality``),
``sweep`` (repeated runs over a loop-prone sweep of settings).
"""

from evals.quality.checks import (
    COUNSELING_RATES,
    CS_CHECKS,
    complaints_addressed,
    content_words,
    counseling_checks,
    customer_service_checks,
    invented_promise,
    is_open_question,
    open_questions,
    questions,
    rate,
    reflection,
    reply_checks,
    specific_words,
    stem,
    summarise_counseling,
    summarise_customer_service,
    summarise_shared,
    tone_fits_rating,
    word_count,
)
from evals.quality.cli import DOMAINS, main
from evals.quality.data import load_rows
from evals.quality.judge import (
    ARMS,
    CRITERIA,
    pairwise_outcome,
    parse_scores,
    parse_verdict,
    summarise_pairwise,
)
from evals.quality.report import figures, markdown, print_table
from evals.quality.run import JUDGE_SKIPPED, conversation, evaluate, rescore, score, system_prompt

__all__ = [
    "ARMS", "COUNSELING_RATES", "CRITERIA", "CS_CHECKS", "DOMAINS", "JUDGE_SKIPPED", "complaints_addressed",
    "content_words", "conversation", "counseling_checks", "customer_service_checks", "evaluate", "figures",
    "invented_promise", "is_open_question", "load_rows", "main", "markdown", "open_questions", "pairwise_outcome",
    "parse_scores", "parse_verdict", "print_table", "questions", "rate", "reflection", "reply_checks", "rescore", "score", "specific_words", "stem", "summarise_counseling",
    "summarise_customer_service", "summarise_pairwise", "summarise_shared", "system_prompt", "tone_fits_rating",
    "word_count",
]
