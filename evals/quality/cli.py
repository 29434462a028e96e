"""``python -m evals.quality [--domain counseling|customer_service] [--data FILE] [--judge pkg.mod:attr]
[--max-tokens N] [--limit N] [--batch-size N] [--rescore FILE] [--json] [--out DIR]``

Without ``--domain`` both domains run (each on its default data) and the result adds a headline
per domain and arm: the share of replies with a repeated four-word run, the share that end on a
complete sentence, and how many replies hold invented contact details or invented facts.
``--max-tokens`` defaults to the reply default (``GenerationParams.max_new_tokens``).
``--rescore FILE`` scores the replies of a saved ``--json`` result again with today's checks,
without loading a model. Without ``--judge`` the report says "judge skipped": a 135M model does
not grade itself.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evals.common import DATA_DIR, DataError, emit, fail, load_judge, stdout_to_stderr, write_report
from evals.quality.data import load_rows
from evals.quality.judge import ARMS
from evals.quality.report import figures, markdown, print_both, print_table
from evals.quality.run import evaluate, rescore

DOMAINS = ("counseling", "customer_service")
HEADLINE = ("repeated_run_rate", "ends_complete_rate", "invented_contact_replies", "invented_fact_replies")


def headline(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {domain: {arm: {k: r["arms"][arm][k] for k in HEADLINE} for arm in ARMS} for domain, r in results.items()}


def _saved_results(path: Path) -> dict[str, Any]:
    """Domain -> one domain's saved result, from a single-domain or a both-domain ``--json`` file."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"--rescore: file not found: {path}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"--rescore: {path} is not a JSON result ({exc})") from exc
    results = saved.get("domains", {saved.get("domain"): saved}) if isinstance(saved, dict) else {}
    if not results or any(d not in DOMAINS or not isinstance(r, dict) or "rows" not in r for d, r in results.items()):
        raise DataError(f"--rescore: {path} is not an evals.quality --json result with rows")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.quality", description="Domain reply-quality eval")
    parser.add_argument("--domain", choices=DOMAINS, help="one domain (default: both)")
    parser.add_argument("--data", type=Path, help="JSONL file (default: evals/data/quality_<domain>.jsonl); needs --domain")
    parser.add_argument("--judge", help="package.module:attribute giving a LangChain chat model (or a factory for one)")
    parser.add_argument("--max-tokens", type=int, help="new tokens per reply (default: the reply default)")
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rescore", type=Path, help="score the replies of a saved --json result again (no model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and PNGs into this folder")
    args = parser.parse_args(argv)
    if (args.max_tokens is not None and args.max_tokens < 1) or (args.limit is not None and args.limit < 1) or args.batch_size < 1:
        return fail("--max-tokens, --limit and --batch-size must be positive")
    if args.data and not args.domain:
        return fail("--data needs --domain (each domain reads its own rows)")
    if args.rescore and args.judge:
        return fail("--rescore scores saved replies without a model; it takes no --judge")
    domains = (args.domain,) if args.domain else DOMAINS
    try:
        rows = {d: load_rows(args.data or DATA_DIR / f"quality_{d}.jsonl", d)[: args.limit] for d in domains}
        saved = _saved_results(args.rescore) if args.rescore else None
        if saved is not None and (absent := [d for d in domains if d not in saved]):
            raise DataError(f"--rescore: {args.rescore} has no result for {', '.join(absent)}")
        judge = load_judge(args.judge) if args.judge else None
    except DataError as exc:
        return fail(str(exc))
    with stdout_to_stderr(args.json):
        results: dict[str, Any] = {}
        if saved is not None:
            try:
                results = {d: rescore(saved[d], rows[d]) for d in domains}
            except ValueError as exc:
                return fail(f"--rescore: {exc}")
            model = "saved replies"
        else:
            from persona_agents.engine import PersonaFuseEngine

            engine = PersonaFuseEngine.load()
            model = engine.model_name
            for d in domains:
                results[d] = evaluate(engine, d, rows[d], judge=judge, max_tokens=args.max_tokens,
                                      batch_size=args.batch_size)
        for d, r in results.items():
            data = str(args.rescore) if saved is not None else str(args.data or DATA_DIR / f"quality_{d}.jsonl")
            results[d] = {"data": data, "model": model, **r}
            if args.out:
                write_report(args.out, f"quality_{d}", results[d], markdown(results[d]), figures(results[d]))
    if args.domain:
        emit(results[args.domain], args.json, print_table)
    else:
        emit({"model": model, "headline": headline(results), "domains": results}, args.json, print_both)
    return 0
