"""JSON Lines files: the project's one reader and one writer.

The training corpus, the domain packs' training rows and the eval data are all JSON Lines; each
caller checks its own schema on the objects read here. The module lives in the engine because
it is the lowest layer, the one every other package may import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class JsonlError(ValueError):
    """A JSON Lines file that cannot be read; the message names the file and, where one is at fault, the line."""


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Every non-blank line as ``(line number from 1, object)``, in file order.

    An empty file gives an empty list; a missing file, text that is not UTF-8, a line that is
    not JSON or not a JSON object raise ``JsonlError``.
    """
    path = Path(path)
    if not path.is_file():
        raise JsonlError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise JsonlError(f"{path}: not UTF-8 text ({exc})") from exc
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JsonlError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise JsonlError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
        rows.append((number, obj))
    return rows


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any] | BaseModel], *, append: bool = False) -> Path:
    """One JSON object per line (pydantic models dumped first), UTF-8 kept as is; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        for row in rows:
            data = row.model_dump() if isinstance(row, BaseModel) else dict(row)
            handle.write(json.dumps(data, ensure_ascii=False) + "\n")
    return path
