"""Rebuild the per-domain screening heads: ``python -m domains.train_classifiers``.

Full-batch training of a tiny head on cached embeddings takes seconds. The decision
threshold comes from 5-fold out-of-fold scores on the training rows: the lowest
threshold whose out-of-fold false-escalation rate on safe rows stays within the pack's
``max_false_rate``. The training sets are full of deliberate hard negatives, so the
classifier is kept precise; the rule layer and the history window add recall.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from domains.classifier import (
    EMBED_DIM,
    ENCODER_NAME,
    Head,
    embed,
    file_sha256,
    save_classifier,
    training_path,
)
from domains.schema import DOMAINS, load_pack

SEED = 13
HIDDEN = 0  # a linear head generalised better than one hidden layer in cross-validation
EPOCHS = 300
THRESHOLD_RANGE = (0.3, 0.9)


def read_rows(path: Path, categories: list[str]) -> list[dict[str, str]]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(row.get("text"), str) or row.get("category") not in categories:
            raise SystemExit(f"{path}:{lineno}: need text and a category among {categories}")
        rows.append(row)
    return rows


def class_weights(y: torch.Tensor, n_classes: int, safe: int) -> torch.Tensor:
    """Safe rows carry half the total weight, the risk categories share the other half.

    Plain per-class balancing would give the seven risk classes seven times the weight of
    the safe class and push every sad message over the threshold.
    """
    counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
    share = torch.full((n_classes,), 0.5 / (n_classes - 1))
    share[safe] = 0.5
    return share / counts * len(y)


def fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, safe: int, hidden: int = HIDDEN) -> Head:
    torch.manual_seed(SEED)
    head = Head(n_classes, hidden=hidden)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y, n_classes, safe))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2 if hidden == 0 else 3e-3, weight_decay=1e-2)
    head.train()
    for _ in range(EPOCHS):
        opt.zero_grad()
        loss = loss_fn(head(x), y)
        loss.backward()
        opt.step()
    head.eval()
    return head


def out_of_fold_risk(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, safe: int, folds: int = 5
) -> torch.Tensor:
    g = torch.Generator().manual_seed(SEED)
    order = torch.randperm(len(y), generator=g)
    risk = torch.zeros(len(y))
    for k in range(folds):
        test = order[k::folds]
        mask = torch.ones(len(y), dtype=torch.bool)
        mask[test] = False
        head = fit(x[mask], y[mask], n_classes, safe)
        with torch.no_grad():
            risk[test] = 1.0 - torch.softmax(head(x[test]), -1)[:, safe]
    return risk


def pick_threshold(
    risk: torch.Tensor, is_risky: torch.Tensor, max_false_rate: float
) -> tuple[float, float, float]:
    best = THRESHOLD_RANGE[1]
    for t in torch.arange(THRESHOLD_RANGE[1], THRESHOLD_RANGE[0] - 1e-9, -0.01).tolist():
        if (risk[~is_risky] >= t).float().mean() <= max_false_rate:
            best = t
    recall = float((risk[is_risky] >= best).float().mean())
    false_rate = float((risk[~is_risky] >= best).float().mean())
    return round(best, 2), recall, false_rate


def train_domain(domain: str) -> dict[str, object]:
    pack = load_pack(domain)
    categories = pack.classifier.categories
    path = training_path(domain)
    rows = read_rows(path, categories)
    x = embed([r["text"] for r in rows])
    y = torch.tensor([categories.index(r["category"]) for r in rows])
    safe = categories.index(pack.classifier.safe_category)
    risk = out_of_fold_risk(x, y, len(categories), safe)
    threshold, cv_recall, cv_false = pick_threshold(risk, y != safe, pack.classifier.max_false_rate)
    head = fit(x, y, len(categories), safe)
    meta: dict[str, object] = {
        "domain": domain,
        "categories": categories,
        "safe_category": pack.classifier.safe_category,
        "threshold": threshold,
        "encoder": ENCODER_NAME,
        "dim": EMBED_DIM,
        "hidden": HIDDEN,
        "seed": SEED,
        "n_train": len(rows),
        "training_sha256": file_sha256(path),
        "cv_recall": round(cv_recall, 4),
        "cv_false_escalation": round(cv_false, 4),
    }
    save_classifier(domain, head, meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=DOMAINS, action="append", help="default: all domains")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for domain in args.domain or list(DOMAINS):
        meta = train_domain(domain)
        print(
            f"{domain}: {meta['n_train']} rows, threshold {meta['threshold']}, "
            f"cv recall {meta['cv_recall']}, cv false escalation {meta['cv_false_escalation']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
