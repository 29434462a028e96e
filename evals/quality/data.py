"""Reading the quality eval's JSONL rows (errors name the file, line and field)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evals.common import DataError, read_jsonl, require_text, where


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
