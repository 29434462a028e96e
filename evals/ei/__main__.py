"""``python -m evals.ei [--data DIR] [--limit N] [--top-k 2] [--batch-size 8] [--bootstrap 10000] [--seed 0] [--json] [--out DIR]``

Scores every item in ``--data`` (default ``evals/data/ei``) under the base model, the
prompt-only persona and routed PersonaFuse on the default engine, and reports accuracy per
system per set with 95% Wilson intervals, the paired differences with bootstrap 95% CIs and
exact McNemar p-values, and the runtime. ``--out DIR`` also writes ``ei.json``, ``ei.md`` and
``ei_accuracy.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from evals.common import DataError, emit, fail, stdout_to_stderr, write_report
from evals.ei.items import DEFAULT_ITEMS_DIR, limit_items, load_items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.ei", description=__doc__.split("\n\n")[1])
    parser.add_argument("--data", type=Path, default=DEFAULT_ITEMS_DIR, help="folder of *.jsonl item files")
    parser.add_argument("--limit", type=int, help="at most this many items per set (quick runs)")
    parser.add_argument("--top-k", type=int, default=2, help="routed poles described in the prompt-only persona")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts scored per forward pass")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write ei.json, ei.md and ei_accuracy.png into this folder")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        return fail("--limit must be positive")
    if not 1 <= args.top_k <= 10:
        return fail("--top-k must be between 1 and 10")
    if args.bootstrap < 1 or args.batch_size < 1:
        return fail("--bootstrap and --batch-size must be positive")
    try:
        sets = limit_items(load_items(args.data), args.limit)
    except DataError as exc:
        return fail(str(exc))
    with stdout_to_stderr(args.json):
        import torch

        from evals.ei.report import figures, markdown
        from evals.ei.run import evaluate
        from persona_agents.engine import PersonaFuseEngine

        start = time.perf_counter()
        engine = PersonaFuseEngine.load()
        load_seconds = time.perf_counter() - start
        result = evaluate(engine, sets, top_k=args.top_k, resamples=args.bootstrap, seed=args.seed, batch_size=args.batch_size)
        result = {"data": str(args.data), "model": engine.model_name, "bundle": str(engine.bundle.path),
                  "untrained_parts": engine.bundle.manifest.untrained_parts, "limit": args.limit, **result}
        result["runtime"] = {**result["runtime"], "engine_load_seconds": load_seconds,
                             "torch_threads": torch.get_num_threads()}
        if args.out:
            write_report(args.out, "ei", result, markdown(result), figures(result))
    from evals.ei.report import print_table

    emit(result, args.json, print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
