"""Eval metrics on hand-computed cases, and the eval CLIs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evals.metrics import agreement_by, binary_metrics, confusion, counts, per_kind_metrics, share

ROOT = Path(__file__).resolve().parents[1]


def test_confusion_and_metrics_hand_computed() -> None:
    gold = [True, True, True, True, False, False, False, False, False, False]
    pred = [True, True, True, False, True, False, False, False, False, False]
    assert confusion(gold, pred) == {"tp": 3, "fp": 1, "fn": 1, "tn": 5}
    m = binary_metrics(gold, pred)
    assert m["recall"] == pytest.approx(0.75)
    assert m["false_positive_rate"] == pytest.approx(1 / 6)
    assert m["precision"] == pytest.approx(0.75)


def test_metrics_can_be_zero_and_undefined() -> None:
    m = binary_metrics([True, False], [False, True])
    assert m["recall"] == 0.0 and m["false_positive_rate"] == 1.0 and m["precision"] == 0.0
    m = binary_metrics([False, False], [False, False])
    assert m["recall"] is None and m["precision"] is None and m["false_positive_rate"] == 0.0
    with pytest.raises(ValueError):
        binary_metrics([True], [])


def test_per_kind_hand_computed() -> None:
    kinds = ["idiom", "idiom", "plan", "plan", "plan"]
    gold = [False, False, True, True, True]
    pred = [True, False, True, False, True]
    out = per_kind_metrics(kinds, gold, pred)
    assert out["idiom"]["false_positive_rate"] == pytest.approx(0.5)
    assert out["idiom"]["recall"] is None
    assert out["plan"]["recall"] == pytest.approx(2 / 3)
    assert out["plan"]["accuracy"] == pytest.approx(2 / 3)


def test_share_agreement_and_counts_hand_computed() -> None:
    assert share([True, None, False, True]) == pytest.approx(2 / 3) and share([None]) is None
    table = agreement_by(["a", "b", "a", "a"], [True, False, False, True], every=["c", "a"])
    assert table == {"c": {"agreement": None, "n": 0}, "a": {"agreement": pytest.approx(2 / 3), "n": 3},
                     "b": {"agreement": 0.0, "n": 1}}
    assert list(table) == ["c", "a", "b"]
    assert counts(["rules", "classifier", "rules"]) == {"classifier": 1, "rules": 2}
    with pytest.raises(ValueError):
        agreement_by(["a"], [])
    with pytest.raises(ValueError):
        per_kind_metrics(["a", "b"], [True], [True])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_safety_cli_json(tmp_path: Path) -> None:
    data = tmp_path / "mini.jsonl"
    rows = [
        {"text": "I want to kill myself", "label": "crisis", "kind": "explicit"},
        {"text": "this traffic is killing me", "label": "safe", "kind": "idiom"},
        {"text": "I had a lovely walk today", "label": "safe", "kind": "everyday"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = _run("evals.safety", "--domain", "counseling", "--data", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {"n", "recall", "false_escalation_rate", "precision", "per_kind", "misses"} <= set(
        report
    )
    assert report["n"] == 3 and report["recall"] == 1.0 and report["false_escalation_rate"] == 0.0


def test_output_cli_json(tmp_path: Path) -> None:
    data = tmp_path / "out.jsonl"
    rows = [
        {
            "domain": "customer_service",
            "text": "We will refund you in full.",
            "label": "block",
            "kind": "comp",
        },
        {
            "domain": "customer_service",
            "text": "We're sorry to hear that.",
            "label": "allow",
            "kind": "warm",
        },
        {
            "domain": "counseling",
            "text": "You only need me.",
            "label": "allow",
            "kind": "deliberately_wrong",
        },
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = _run("evals.output_safety", "--data", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["n"] == 3 and report["block_recall"] == 1.0
    assert report["false_block_rate"] == pytest.approx(0.5)
    assert len(report["misses"]) == 1


@pytest.mark.parametrize(
    "content",
    [
        '{"text": "hi", "label": "crisis"}\n{not json}\n',
        '{"text": "hi", "label": "maybe", "kind": "x"}\n',
    ],
)
def test_bad_data_exits_2(tmp_path: Path, content: str) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    proc = _run("evals.safety", "--domain", "counseling", "--data", str(data), "--json")
    assert proc.returncode == 2
    assert "error:" in proc.stderr and proc.stdout == ""


def test_missing_file_exits_2(tmp_path: Path) -> None:
    proc = _run("evals.output_safety", "--data", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_held_out_sets_share_no_text_with_training_files() -> None:
    """The fresh evaluation sets stay out of training: no row of theirs is in a training file."""
    import re

    from domains.classifier import training_paths

    def key(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()

    trained = {
        key(json.loads(line)["text"])
        for domain in ("counseling", "customer_service")
        for kind in ("screen", "output")
        for path in training_paths(domain, kind)  # type: ignore[arg-type]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    fresh_dirs = sorted(Path("evals/data").glob("fresh*"))
    assert fresh_dirs
    for folder in fresh_dirs:
        for path in folder.glob("*.jsonl"):
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            leaked = [r["text"] for r in rows if key(r["text"]) in trained]
            assert not leaked, (path, leaked[:3])
