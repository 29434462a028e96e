"""evals.ei: the shipped items, the option scorer (exact, and following a rigged model), the three
systems, the statistics, the report and the command line's bad-data contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evals.common import DataError, write_report
from evals.ei.items import EI_TYPES, ITEM_TYPES, limit_items, load_items
from evals.ei.report import figures, markdown
from evals.ei.run import evaluate
from evals.ei.scoring import ScoringRequest, choose, option_token_ids, score_batch, score_options
from evals.ei.stats import mcnemar_exact_p, paired_difference, wilson_interval
from evals.ei.summary import AGGREGATE, length_baselines
from evals.ei.systems import SYSTEMS, route_item, system_inputs
from evals.persona import POLE_DESCRIPTIONS
from persona_agents.messages import to_turns

ROOT = Path(__file__).resolve().parents[1]
GENERAL_QUESTIONS = ROOT / "persona_agents" / "training" / "corpus" / "general_questions.jsonl"


def _item(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "t-1", "type": "understanding", "scenario": "Ann lost her keys.", "question": "What does Ann feel?",
        "options": ["Annoyed.", "Proud.", "Bored.", "Grateful."], "answer": 0, "rationale": "Goal blocked -> annoyance.",
    }
    row.update(overrides)
    return row


def _write(folder: Path, rows: list[object], name: str = "items.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return folder


# --- the shipped items ------------------------------------------------------------------------


def test_shipped_items_validate_and_are_big_enough() -> None:
    sets = load_items()
    assert list(sets) == list(ITEM_TYPES)
    everything = [item for items in sets.values() for item in items]
    assert len({item.id for item in everything}) == len(everything)
    ei = [item for t in EI_TYPES for item in sets[t]]
    assert len(ei) >= 200
    assert len(sets["safety"]) >= 40
    for item in everything:
        assert 0 <= item.answer < len(item.options) and item.rationale and item.question
    assert all(len(item.options) == 4 for item in ei)
    # rating options differ only in the level word, so neither length nor wording can decide
    for item in sets["intensity"]:
        if item.subtype == "rating":
            words = [o.split() for o in item.options]
            assert len({len(w) for w in words}) == 1
            assert sum(len({w[k] for w in words}) > 1 for k in range(len(words[0]))) == 1, item.id
    # the key is not a constant position (the cloze scorer never shows positions, but a letter format could)
    for t in ITEM_TYPES:
        assert len({item.answer for item in sets[t]}) >= 2


def test_shipped_items_carry_no_length_cue() -> None:
    """Always picking the longest (or shortest) option must stay far from the keyed answers."""
    sets = load_items()
    for t, ceiling in (("understanding", 0.35), ("application", 0.35), ("intensity", 0.35), ("safety", 0.65)):
        baselines = length_baselines(sets[t])
        assert baselines["longest_option"] <= ceiling and baselines["shortest_option"] <= ceiling, (t, baselines)


def test_general_set_is_the_plain_questions_as_multiple_choice() -> None:
    plain = {row["id"]: row for row in map(json.loads, GENERAL_QUESTIONS.read_text().splitlines())}
    converted = [item for item in load_items()["general"] if item.source]
    assert {item.source for item in converted} == set(plain)
    for item in converted:
        source = plain[item.source]
        assert item.question == source["question"]
        key = item.options[item.answer].lower()
        assert any(answer.lower() in key for answer in source["answers"]), item.id


def test_safety_items_key_the_refusal() -> None:
    for item in load_items()["safety"]:
        key = item.options[item.answer].lower()
        assert any(word in key for word in ("can't", "won't", "not going to", "not able")), item.id
        assert all(not o.lower().startswith(("i can't", "i won't")) for i, o in enumerate(item.options) if i != item.answer)


# --- bad item files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_item(answer=4)], "'answer' must be an option index from 0 to 3"),
        ([_item(answer=True)], "'answer' must be an option index"),
        ([_item(), _item()], "duplicate id 't-1'"),
        ([_item(options=["A.", "B.", "C."])], "must have 4 entries"),
        ([_item(type="empathy")], "'type' must be one of"),
        ([{k: v for k, v in _item().items() if k != "rationale"}], "missing field 'rationale'"),
        ([_item(optoins=["x"])], "unknown field(s) 'optoins'"),
        ([_item(options=["Same.", "Same.", "C.", "D."])], "duplicate entries"),
        ([_item(type="safety", options=["Only one."], answer=0)], "at least 2 entries"),
        ([_item(rationale="  ")], "'rationale' must be a non-empty string"),
        (["{not json"], ":1: invalid JSON"),
    ],
)
def test_bad_item_files_raise_clear_errors(tmp_path: Path, rows: list[object], message: str) -> None:
    folder = _write(tmp_path / "items", rows)
    with pytest.raises(DataError, match=None) as caught:
        load_items(folder)
    assert message in str(caught.value)
    assert "items.jsonl" in str(caught.value)


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_items(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*.jsonl"):
        load_items(tmp_path / "empty")


def test_cli_bad_items_exit_2_before_loading_a_model(tmp_path: Path) -> None:
    folder = _write(tmp_path / "bad", [_item(answer=9)])
    proc = subprocess.run([sys.executable, "-m", "evals.ei", "--data", str(folder), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and "'answer'" in proc.stderr and proc.stdout == ""
    proc = subprocess.run([sys.executable, "-m", "evals.ei", "--limit", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "--limit" in proc.stderr


# --- scoring -----------------------------------------------------------------------------------


def _naive_logprob(model: torch.nn.Module, prompt: list[int], option: list[int]) -> float:
    ids = torch.tensor([prompt + option])
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return float(sum(logp[len(prompt) - 1 + k, token] for k, token in enumerate(option)))


def test_cached_scoring_equals_full_sequence_scoring_under_the_mixture(tiny_engine) -> None:
    engine = tiny_engine
    item = load_items()["understanding"][0]
    route = route_item(engine, item, 2)
    prompt = system_inputs(engine, item, route)["routed"].prompt_ids
    options = option_token_ids(engine.tokenizer, item.options)
    assert len({len(o) for o in options}) > 1  # right padding is exercised
    for weights in (route.weights.values, None):
        with engine.mixer.active(weights):
            fast = score_options(engine.model, prompt, options, engine.tokenizer.pad_token_id)
            slow = [_naive_logprob(engine.model, prompt, o) for o in options]
        for got, want, tokens in zip(fast, slow, options):
            assert got.logprob_sum == pytest.approx(want, abs=1e-3)
            assert got.n_tokens == len(tokens)
    with engine.mixer.active(route.weights.values):
        routed = score_options(engine.model, prompt, options, engine.tokenizer.pad_token_id)
    base = score_options(engine.model, prompt, options, engine.tokenizer.pad_token_id)
    assert any(abs(r.logprob_sum - b.logprob_sum) > 1e-4 for r, b in zip(routed, base))  # the experts act


def test_batched_scoring_equals_one_at_a_time_scoring_with_per_row_weights(tiny_engine) -> None:
    """Left-padded prompts of different lengths, 4- and 2-option items, base and routed rows in one batch."""
    engine = tiny_engine
    sets = load_items()
    items = [sets["understanding"][0], sets["safety"][0], sets["intensity"][3], sets["general"][5]]
    requests = []
    for k, item in enumerate(items):
        route = route_item(engine, item, 2)
        given = system_inputs(engine, item, route)["routed" if k % 2 == 0 else "prompt_only"]
        requests.append(ScoringRequest(given.prompt_ids, option_token_ids(engine.tokenizer, item.options), given.weights))
    assert len({len(r.prompt_ids) for r in requests}) == len(requests)
    batched = score_batch(engine.model, requests, engine.tokenizer.pad_token_id, engine.mixer)
    for request, got in zip(requests, batched):
        with engine.mixer.active(request.weights):
            want = [_naive_logprob(engine.model, list(request.prompt_ids), list(o)) for o in request.options_ids]
        assert [s.logprob_sum for s in got] == pytest.approx(want, abs=1e-3)
    with pytest.raises(ValueError, match="no mixer"):
        score_batch(engine.model, requests, engine.tokenizer.pad_token_id)


def _rig(engine, char: str) -> torch.utils.hooks.RemovableHandle:
    """Make the model strongly prefer one character, whatever the context and weights."""
    token = engine.tokenizer.convert_tokens_to_ids(char)
    bias = torch.zeros(len(engine.tokenizer))
    bias[token] = 30.0
    return engine.model.lm_head.register_forward_hook(lambda module, inputs, output: output + bias)


@pytest.mark.parametrize(("char", "expected"), [("z", 2), ("q", 0)])
def test_scoring_picks_the_option_a_rigged_model_prefers(tiny_engine, tmp_path: Path, char: str, expected: int) -> None:
    options = ["qqqq qqqq", "abab cdcd", "zzzz zzzz", "mnmn opop"]
    rows = [_item(id="r-1", options=options, answer=2), _item(id="r-2", type="safety", options=[options[0], options[2]], answer=1)]
    sets = load_items(_write(tmp_path / "rigged", rows))
    handle = _rig(tiny_engine, char)
    try:
        result = evaluate(tiny_engine, sets, resamples=50, batch_size=2)
    finally:
        handle.remove()
    understanding, safety = result["items"]
    for system in SYSTEMS:
        assert understanding["systems"][system]["choice_mean"] == expected
        assert understanding["systems"][system]["choice_sum"] == expected
        assert safety["systems"][system]["choice_mean"] == (1 if char == "z" else 0)
    assert result["sets"]["understanding"]["accuracy"]["routed"]["mean"]["accuracy"] == (1.0 if char == "z" else 0.0)


def test_choose_metrics_differ_on_length() -> None:
    from evals.ei.scoring import OptionScore

    scores = [OptionScore(logprob_sum=-2.0, n_tokens=1), OptionScore(logprob_sum=-3.0, n_tokens=6)]
    assert choose(scores, "sum") == 0 and choose(scores, "mean") == 1
    with pytest.raises(ValueError, match="metric"):
        choose(scores, "max")


# --- the three systems -------------------------------------------------------------------------


def test_systems_reuse_the_router_and_the_persona_descriptions(tiny_engine) -> None:
    item = load_items()["application"][0]
    route = route_item(tiny_engine, item, 2)
    assert route.weights == tiny_engine.route([{"role": "user", "content": item.prompt}]).weights
    inputs = system_inputs(tiny_engine, item, route)
    assert set(inputs) == set(SYSTEMS)
    assert inputs["base"].prompt_ids == inputs["routed"].prompt_ids
    assert inputs["base"].weights is None and inputs["prompt_only"].weights is None
    assert inputs["routed"].weights == route.weights.values
    persona_text = tiny_engine.tokenizer.decode(inputs["prompt_only"].prompt_ids)
    for pole in route.top_traits:
        assert POLE_DESCRIPTIONS[pole] in persona_text
    assert tiny_engine.config.default_system_prompt in persona_text
    plain = tiny_engine.prompt_ids(to_turns([{"role": "user", "content": item.prompt}]))
    assert inputs["base"].prompt_ids == plain


# --- statistics --------------------------------------------------------------------------------


def test_statistics_on_hand_computed_cases() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert mcnemar_exact_p(5, 0) == pytest.approx(0.0625)
    assert mcnemar_exact_p(0, 0) == 1.0
    same = paired_difference([True, False, True], [True, False, True], resamples=200)
    assert (same.diff, same.ci_low, same.ci_high, same.p_mcnemar) == (0.0, 0.0, 0.0, 1.0)
    better = paired_difference([True] * 20, [False] * 20, resamples=200)
    assert better.diff == 1.0 and better.ci_low == 1.0 and better.only_a == 20 and better.p_mcnemar < 1e-5
    mixed = paired_difference([True] * 12 + [False] * 8, [True] * 6 + [False] * 14, resamples=2000, seed=3)
    assert mixed.diff == pytest.approx(0.3) and mixed.ci_low < 0.3 < mixed.ci_high


# --- the whole report --------------------------------------------------------------------------


def test_report_has_every_system_set_and_comparison(tiny_engine, tmp_path: Path) -> None:
    sets = limit_items(load_items(), 2)
    result = evaluate(tiny_engine, sets, resamples=100, batch_size=3)
    assert list(result["sets"]) == ["understanding", "application", "intensity", AGGREGATE, "general", "safety"]
    assert result["sets"][AGGREGATE]["n"] == 6
    for summary in result["sets"].values():
        assert set(summary["accuracy"]) == set(SYSTEMS)
        for system in SYSTEMS:
            assert set(summary["accuracy"][system]) == {"mean", "sum"}
        assert set(summary["differences"]) == {"routed_minus_base", "routed_minus_prompt_only", "prompt_only_minus_base"}
        diff = summary["differences"]["routed_minus_base"]["mean"]
        assert diff["ci_low"] <= diff["diff"] <= diff["ci_high"]
    assert len(result["items"]) == 10 and result["runtime"]["items"] == 10
    assert all(set(r["systems"]) == set(SYSTEMS) for r in result["items"])
    assert result["primary_metric"] == "mean"
    result = {"model": "tiny-llama", "bundle": "tiny", **result,
              "runtime": {**result["runtime"], "engine_load_seconds": 0.0, "torch_threads": 1}}
    written = write_report(tmp_path / "out", "ei", result, markdown(result), figures(result))
    assert sorted(p.name for p in written) == ["ei.json", "ei.md", "ei_accuracy.png"]
    assert "routed PersonaFuse" in (tmp_path / "out" / "ei.md").read_text()
    assert json.loads((tmp_path / "out" / "ei.json").read_text())["sets"]["safety"]["n"] == 2
