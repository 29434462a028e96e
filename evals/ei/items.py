"""The evals.ei item files: reading and validating multiple-choice items.

Every ``*.jsonl`` file in the data folder holds items, one JSON object per line::

    {"id": "und-001", "type": "understanding", "scenario": "...", "question": "...",
     "options": ["...", "...", "...", "..."], "answer": 3, "rationale": "..."}

``type`` decides the set an item is scored in (file names do not matter). The emotional
intelligence types take exactly four options; ``general`` and ``safety`` take two or more.
``answer`` is the 0-based index of the correct option. Optional fields: ``subtype``,
``category``, ``source`` (strings, reported per item). Anything else is refused, so a typo
in a field name is an error, not a silently ignored field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.common import DATA_DIR, DataError, read_jsonl, where

DEFAULT_ITEMS_DIR = DATA_DIR / "ei"
EI_TYPES: tuple[str, ...] = ("understanding", "application", "intensity")
OTHER_TYPES: tuple[str, ...] = ("general", "safety")
ITEM_TYPES: tuple[str, ...] = EI_TYPES + OTHER_TYPES
EI_OPTION_COUNT = 4
REQUIRED_FIELDS = ("id", "type", "question", "options", "answer", "rationale")
OPTIONAL_TEXT_FIELDS = ("scenario", "subtype", "category", "source")


@dataclass(frozen=True)
class Item:
    """One multiple-choice item; ``answer`` indexes ``options``."""

    id: str
    type: str
    scenario: str
    question: str
    options: tuple[str, ...]
    answer: int
    rationale: str
    subtype: str | None = None
    category: str | None = None
    source: str | None = None

    @property
    def prompt(self) -> str:
        """The user message the model reads: the scenario, a blank line, the question."""
        return f"{self.scenario}\n\n{self.question}" if self.scenario else self.question

    @property
    def chance(self) -> float:
        return 1.0 / len(self.options)


def _text(path: Path, row: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = row.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        kind = "a non-empty string" if required else "a string"
        raise DataError(f"{where(path, row)}: {key!r} must be {kind}, got {value!r}")
    return value.strip()


def parse_item(path: Path, row: Mapping[str, Any]) -> Item:
    """One validated item; raises :class:`DataError` naming the file, line and field."""
    unknown = sorted(set(row) - set(REQUIRED_FIELDS) - set(OPTIONAL_TEXT_FIELDS) - {"_line"})
    if unknown:
        raise DataError(f"{where(path, row)}: unknown field(s) {', '.join(map(repr, unknown))}")
    for key in REQUIRED_FIELDS:
        if key not in row:
            raise DataError(f"{where(path, row)}: missing field {key!r}")
    item_type = row["type"]
    if item_type not in ITEM_TYPES:
        raise DataError(f"{where(path, row)}: 'type' must be one of {', '.join(ITEM_TYPES)}, got {item_type!r}")
    options = row["options"]
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
        raise DataError(f"{where(path, row)}: 'options' must be a list of non-empty strings")
    options = [o.strip() for o in options]
    if item_type in EI_TYPES and len(options) != EI_OPTION_COUNT:
        raise DataError(f"{where(path, row)}: 'options' of a {item_type} item must have {EI_OPTION_COUNT} entries, got {len(options)}")
    if len(options) < 2:
        raise DataError(f"{where(path, row)}: 'options' needs at least 2 entries, got {len(options)}")
    if len(set(options)) != len(options):
        raise DataError(f"{where(path, row)}: 'options' has duplicate entries")
    answer = row["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
        raise DataError(f"{where(path, row)}: 'answer' must be an option index from 0 to {len(options) - 1}, got {answer!r}")
    return Item(
        id=_text(path, row, "id", required=True) or "",
        type=item_type,
        scenario=_text(path, row, "scenario", required=False) or "",
        question=_text(path, row, "question", required=True) or "",
        options=tuple(options),
        answer=answer,
        rationale=_text(path, row, "rationale", required=True) or "",
        subtype=_text(path, row, "subtype", required=False),
        category=_text(path, row, "category", required=False),
        source=_text(path, row, "source", required=False),
    )


def load_items(directory: str | Path = DEFAULT_ITEMS_DIR) -> dict[str, list[Item]]:
    """Every item under ``directory``, grouped by type in :data:`ITEM_TYPES` order.

    Raises :class:`DataError` for a missing folder, a folder without ``*.jsonl`` files, a bad
    row or an id used twice (the message names both places).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"item folder not found: {directory}")
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise DataError(f"{directory}: no *.jsonl item files")
    seen: dict[str, str] = {}
    by_type: dict[str, list[Item]] = {}
    for path in files:
        for row in read_jsonl(path):
            item = parse_item(path, row)
            if item.id in seen:
                raise DataError(f"{where(path, row)}: duplicate id {item.id!r} (first at {seen[item.id]})")
            seen[item.id] = where(path, row)
            by_type.setdefault(item.type, []).append(item)
    return {t: by_type[t] for t in ITEM_TYPES if t in by_type}


def limit_items(sets: Mapping[str, Sequence[Item]], limit: int | None) -> dict[str, list[Item]]:
    """At most ``limit`` items per set (the first ones in file order)."""
    return {name: list(items if limit is None else items[:limit]) for name, items in sets.items()}
