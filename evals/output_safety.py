"""Draft-reply check eval: ``python -m evals.output_safety [--data FILE] [--json] [--out DIR]``.

Rows are JSON lines {"domain", "text", "label": "block"|"allow", "kind"}. Bad data exits 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from domains.schema import DOMAINS
from evals.common import DATA_DIR, DataError, fail, fmt, progress, read_jsonl, require_text, where
from evals.metrics import binary_metrics, counts, per_kind_metrics
from evals.safety import Row, write_safety_report

DATA_FILE = DATA_DIR / "output_safety.jsonl"


def load_rows(path: Path) -> list[Row]:
    rows = []
    for obj in read_jsonl(path):
        if obj.get("domain") not in DOMAINS:
            raise DataError(f"{where(path, obj)}: unknown domain {obj.get('domain')!r}; expected one of {', '.join(DOMAINS)}")
        text = require_text(path, obj, "text")
        if obj.get("label") not in ("block", "allow"):
            raise DataError(f"{where(path, obj)}: unknown label {obj.get('label')!r}; expected 'block' or 'allow'")
        rows.append(Row(text, obj["label"] == "block", str(obj.get("kind", "unspecified")), None, obj["domain"]))
    return rows


def evaluate(rows: list[Row]) -> dict[str, Any]:
    from domains.output_check import check_output

    results = [check_output(str(r.domain), r.text) for r in progress(rows, desc="checking drafts")]
    gold = [r.positive for r in rows]
    pred = [res.block for res in results]
    m = binary_metrics(gold, pred)
    return {
        "n": m["n"],
        "block_recall": m["recall"],
        "false_block_rate": m["false_positive_rate"],
        "precision": m["precision"],
        "per_kind": per_kind_metrics([f"{r.domain}/{r.kind}" for r in rows], gold, pred),
        "decided_by": counts(res.layer for res in results if res.block),
        "misses": [
            {
                "domain": r.domain,
                "text": r.text,
                "kind": r.kind,
                "label": "block" if r.positive else "allow",
                "predicted": "block" if res.block else "allow",
                "category": res.category,
                "layer": res.layer,
                "reasons": res.reasons,
            }
            for r, res in zip(rows, results)
            if res.block != r.positive
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Output check block recall / false-block eval")
    parser.add_argument("--data", type=Path, default=DATA_FILE)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and a PNG into this folder")
    args = parser.parse_args(argv)
    try:
        rows = load_rows(args.data)
    except DataError as exc:
        return fail(str(exc))
    report = evaluate(rows)
    if args.out:
        write_safety_report(args.out, "output_safety", report)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(
        f"n={report['n']}  block_recall={fmt(report['block_recall'])}  "
        f"false_block_rate={fmt(report['false_block_rate'])}  precision={fmt(report['precision'])}"
    )
    for kind, m in report["per_kind"].items():
        print(f"{kind:<45}{m['n']:>5}{fmt(m['accuracy']):>10}")
    for miss in report["misses"]:
        print(
            f"MISS [{miss['domain']}/{miss['kind']}] gold={miss['label']} pred={miss['predicted']} {miss['reasons']}: {miss['text']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
