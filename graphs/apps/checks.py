"""``persona-agents screen`` and ``check-output``: one message through a domain's safety layer."""

from __future__ import annotations

import json

from domains.output_check import check_output
from domains.screening import screen_message


def run_screen(domain: str, message: str, rating: int | None, as_json: bool) -> int:
    """Print the risk screen of ``message``: one JSON object, or a verdict line and its reasons."""
    result = screen_message(domain, message, rating=rating)
    if as_json:
        print(json.dumps(result.model_dump()))
    else:
        verdict = "ESCALATE" if result.escalate else "ok"
        print(f"{verdict}  category={result.category}  score={result.score:.2f}")
        for reason in result.reasons:
            print(f"  - {reason}")
    return 0


def run_check_output(domain: str, message: str, as_json: bool) -> int:
    """Print the output check of a draft reply: one JSON object, or a verdict line and its reasons."""
    result = check_output(domain, message)
    if as_json:
        print(json.dumps(result.model_dump()))
    else:
        print(f"{'BLOCK' if result.block else 'allow'}  category={result.category}")
        for reason in result.reasons:
            print(f"  - {reason}")
    return 0
