"""Escalation eval: ``python -m evals.safety --domain counseling|customer_service [--data FILE] [--json] [--out DIR]``.

Rows are JSON lines {"text", "label", "kind", optional "rating"}; counseling labels are
"crisis"/"safe", customer-service labels "escalate"/"respond". Bad data exits with code 2.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.common import (
    DATA_DIR,
    DataError,
    fail,
    fmt,
    md_table,
    progress,
    pyplot,
    read_jsonl,
    require_text,
    where,
    write_report,
)
from evals.metrics import binary_metrics, counts, per_kind_metrics

POSITIVE_LABEL = {"counseling": "crisis", "customer_service": "escalate"}
NEGATIVE_LABEL = {"counseling": "safe", "customer_service": "respond"}


@dataclass(frozen=True)
class Row:
    text: str
    positive: bool
    kind: str
    rating: int | None = None
    domain: str | None = None


def load_rows(path: Path, domain: str) -> list[Row]:
    pos, neg = POSITIVE_LABEL[domain], NEGATIVE_LABEL[domain]
    rows = []
    for obj in read_jsonl(path):
        text = require_text(path, obj, "text")
        if obj.get("label") not in (pos, neg):
            raise DataError(f"{where(path, obj)}: unknown label {obj.get('label')!r}; expected {pos!r} or {neg!r}")
        rating = obj.get("rating")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
            raise DataError(f"{where(path, obj)}: 'rating' must be an int 1-5")
        rows.append(Row(text, obj["label"] == pos, str(obj.get("kind", "unspecified")), rating))
    return rows


def evaluate(domain: str, rows: list[Row]) -> dict[str, Any]:
    from domains.screening import screen_message

    preds, details = [], []
    for row in progress(rows, desc=f"screening {domain}"):
        res = screen_message(
            domain, row.text, rating=row.rating if domain == "customer_service" else None
        )
        preds.append(res.escalate)
        details.append(res)
    gold = [r.positive for r in rows]
    m = binary_metrics(gold, preds)
    misses = [
        {
            "text": r.text,
            "kind": r.kind,
            "label": POSITIVE_LABEL[domain] if r.positive else NEGATIVE_LABEL[domain],
            "predicted": POSITIVE_LABEL[domain] if d.escalate else NEGATIVE_LABEL[domain],
            "category": d.category,
            "score": d.score,
            "layer": d.layer,
            **({"rating": r.rating} if r.rating is not None else {}),
        }
        for r, p, d in zip(rows, preds, details)
        if p != r.positive
    ]
    return {
        "domain": domain,
        "n": m["n"],
        "recall": m["recall"],
        "false_escalation_rate": m["false_positive_rate"],
        "precision": m["precision"],
        "per_kind": per_kind_metrics([r.kind for r in rows], gold, preds),
        "decided_by": counts(d.layer for d in details if d.escalate),
        "misses": misses,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"domain {report['domain']}  n={report['n']}  recall={fmt(report['recall'])}  "
        f"false_escalation_rate={fmt(report['false_escalation_rate'])}  precision={fmt(report['precision'])}"
    )
    print(f"{'kind':<32}{'n':>5}{'accuracy':>10}{'recall':>9}{'false+':>9}")
    for kind, m in report["per_kind"].items():
        print(
            f"{kind:<32}{m['n']:>5}{fmt(m['accuracy']):>10}{fmt(m['recall']):>9}{fmt(m['false_positive_rate']):>9}"
        )
    for miss in report["misses"]:
        print(
            f"MISS [{miss['kind']}] gold={miss['label']} pred={miss['predicted']} ({miss['category']} {miss['score']:.2f}): {miss['text']}"
        )


def report_markdown(report: dict[str, Any], title: str) -> str:
    headline = {k: v for k, v in report.items() if k not in ("per_kind", "misses", "decided_by")}
    lines = [f"# {title}", "", md_table(["metric", "value"], list(headline.items())), "",
             md_table(["kind", "n", "accuracy", "recall", "false+"],
                      [[k, m["n"], m["accuracy"], m.get("recall"), m.get("false_positive_rate")] for k, m in report["per_kind"].items()]),
             "", f"## Misses ({len(report['misses'])})", ""]
    lines += [f"- gold={m['label']} pred={m['predicted']} [{m['kind']}]: {m['text']}" for m in report["misses"]]
    return "\n".join(lines)


def per_kind_figure(report: dict[str, Any], title: str) -> Any:
    plt = pyplot()
    kinds = list(report["per_kind"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(kinds) + 1.2))
    ax.barh(kinds, [report["per_kind"][k]["accuracy"] or 0.0 for k in kinds], color="#4c72b0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def write_safety_report(out: Path, name: str, report: dict[str, Any]) -> None:
    write_report(out, name, report, report_markdown(report, name), {"per_kind": per_kind_figure(report, name)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Escalation recall / false-escalation eval")
    parser.add_argument("--domain", required=True, choices=sorted(POSITIVE_LABEL))
    parser.add_argument(
        "--data", type=Path, help="JSONL file (default: the shipped set for the domain)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and a PNG into this folder")
    args = parser.parse_args(argv)
    path = args.data or DATA_DIR / f"safety_{args.domain}.jsonl"
    try:
        rows = load_rows(path, args.domain)
    except DataError as exc:
        return fail(str(exc))
    report = evaluate(args.domain, rows)
    if args.out:
        write_safety_report(args.out, f"safety_{args.domain}", report)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
