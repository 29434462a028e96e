"""The project's one JSON Lines reader and writer (persona_agents.jsonl) and its callers' errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from persona_agents.jsonl import JsonlError, read_jsonl, write_jsonl


class Item(BaseModel):
    id: str
    text: str


def test_round_trip_numbers_lines_and_appends(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sub" / "rows.jsonl", [Item(id="a", text="caf\u00e9"), {"id": "b", "text": "x"}])
    assert "caf\u00e9" in path.read_text(encoding="utf-8")  # kept as UTF-8, not \\u escapes
    path.write_text(path.read_text() + "\n   \n")
    write_jsonl(path, [{"id": "c", "text": "y"}], append=True)
    assert read_jsonl(path) == [(1, {"id": "a", "text": "caf\u00e9"}), (2, {"id": "b", "text": "x"}), (5, {"id": "c", "text": "y"})]
    assert read_jsonl(write_jsonl(tmp_path / "empty.jsonl", [])) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1}\n{oops\n', r"rows.jsonl:2: invalid JSON"),
        (b'{"a": 1}\n[1, 2]\n', r"rows.jsonl:2: expected a JSON object, got list"),
        (b'{"a": "\xff"}\n', r"rows.jsonl: not UTF-8 text"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(JsonlError, match=message):
        read_jsonl(path)


def test_every_caller_reports_the_readers_error(tmp_path: Path) -> None:
    from domains.train_classifiers import read_rows
    from evals.common import DataError
    from evals.common import read_jsonl as read_eval_rows
    from persona_agents.training.corpus import CorpusError, Situation
    from persona_agents.training.corpus import read_jsonl as read_corpus

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "category": "safe"}\n{oops\n')
    with pytest.raises(DataError, match="bad.jsonl:2: invalid JSON"):
        read_eval_rows(bad)
    with pytest.raises(CorpusError, match="bad.jsonl:2: invalid JSON"):
        read_corpus(bad, Situation)
    with pytest.raises(SystemExit, match="bad.jsonl:2: invalid JSON"):
        read_rows(bad, ["safe"])
    with pytest.raises(SystemExit, match="file not found"):
        read_rows(tmp_path / "missing.jsonl", ["safe"])
    with pytest.raises(CorpusError, match="file not found"):
        read_corpus(tmp_path / "missing.jsonl", Situation)
